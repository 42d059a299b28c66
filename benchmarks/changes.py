"""History benchmarks: `python -m benchmarks.changes --scale N` (not shipped; results in docs/bench/changes-N.json,
the section of docs/BENCHMARKS.md written from it by hand).

World (cached in .bench-cache/changes-N/): a generated stock of 2026-10, a mirror synced from the local upstream
through every day of October (the real `mirror sync`), and the 2026-11 stock the change stream writes, loaded
into a second data directory. Operations, each interleaved round by round with its natural alternative in the
same process (medians of the rounds):

- `mirror changes --since 2026-10-01` over the whole mirror (Python `changes`), against a hand-written DuckDB
  diff of the two snapshots (UNPIVOT of every compared variable as text, EXCEPT both ways);
- the comparison of the new stock with the mirror at publication (`write_stock_changes`), against the same
  hand-written diff;
- a watchlist of N_WATCHED SIRENs collected after a sync that applied one day (`watch.collect`), against a
  DuckDB semi-join of that day's delta files with the list;
- `get --date` (`get_document(as_of=...)`) per SIREN on the data directory (the day's rows rebuilt from the
  lookup store's rows of the unit), against the same rebuilt from the catalog's Parquet tables (a connection
  as the source: the path without a current store) and the document today from the views.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MONTH, SEED = "2026-10", 5
N_WATCHED = 100_000


def log(msg: str) -> None:
    print(f"[changes-bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def mirror(*args: str, data_dir: Path, env: dict | None = None) -> None:
    full = {k: v for k, v in os.environ.items() if not k.startswith("MIRROR_")}
    # the lookup store is not measured here: its upkeep after each day would only slow the world's build
    full.update({"MIRROR_DATA_DIR": str(data_dir), "MIRROR_LOOKUP_STORE": "off", **(env or {})})
    done = subprocess.run([sys.executable, "-m", "mirror", *args], env=full, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"mirror {' '.join(args)} failed: {done.stderr[-2000:]}")


def build(cache: Path, scale: int) -> dict:
    from mirror.synthetic.upstream import server

    marker = cache / "built.json"
    if marker.is_file():
        return json.loads(marker.read_text())
    shutil.rmtree(cache, ignore_errors=True)
    cache.mkdir(parents=True)
    t0 = time.monotonic()
    server.prepare_stock(cache / "upstream", MONTH, scale, SEED)
    log(f"stock generated in {time.monotonic() - t0:.0f} s")
    up = server.start(cache / "upstream", MONTH, scale=scale, seed=SEED, today=date(2026, 11, 1))
    try:
        t0 = time.monotonic()
        mirror("sync", "--datagouv-url", up.datagouv_url, "--insee-url", up.insee_url, "--rate", "1000000", "-q",
               data_dir=cache / "mirror", env={"INSEE_API_KEY": server.DEFAULT_API_KEY})  # fmt: skip
        log(f"mirror synced through 2026-10-31 in {time.monotonic() - t0:.0f} s")
        up.changes.write_next_month_stock(cache / "next-stock")
    finally:
        up.close()
    t0 = time.monotonic()
    mirror("load", str(cache / "next-stock"), "--month", "2026-11", data_dir=cache / "next")
    info = {"scale": scale, "next_load_s": round(time.monotonic() - t0, 1)}
    marker.write_text(json.dumps(info))
    return info


def hand_diff(con, old_dir: Path, new_dir: Path) -> int:
    """The natural alternative: the changed (key, variable, value) triples of two snapshot folders, by
    UNPIVOT of every compared variable as text and EXCEPT both ways (no hash, no views)."""
    from mirror.core.changes import TABLES, compared_columns

    total = 0
    for table, (key, *_rest) in TABLES.items():
        pattern = "*/*.parquet" if table == "etablissements" else "*.parquet"
        cols = ", ".join(f'CAST("{c}" AS VARCHAR) AS "{c}"' for c in compared_columns(table))

        def side(folder: Path, table=table, key=key, pattern=pattern, cols=cols) -> str:
            return (
                f"(UNPIVOT (SELECT {key}, {cols} FROM read_parquet('{folder / table / pattern}', union_by_name = true)) "
                f"ON COLUMNS(* EXCLUDE ({key})) INTO NAME field VALUE value)"
            )

        (n,) = con.execute(
            f"SELECT count(*) FROM ((SELECT * FROM {side(old_dir)} EXCEPT SELECT * FROM {side(new_dir)}) "
            f"UNION ALL (SELECT * FROM {side(new_dir)} EXCEPT SELECT * FROM {side(old_dir)}))"
        ).fetchone()
        total += n
    return total


def timed(fn) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def run(scale: int, rounds: int, cache_root: Path) -> dict:
    import duckdb
    import pyarrow as pa

    from mirror.catalog.build import connect
    from mirror.core.datadir import read_state, snapshots_dir, write_json_atomic
    from mirror.deltas.store import day_dir
    from mirror.load.stock_changes import write_stock_changes
    from mirror.lookup.build import refresh
    from mirror.serve.changes import changes
    from mirror.serve.documents import get_document
    from mirror.watch import lists as watch

    cache = cache_root / f"changes-{scale}"
    info = build(cache, scale)
    data, nxt = cache / "mirror", cache / "next"
    # the store the world's sync did not build (the rows of get --date)
    t, done = timed(lambda: refresh(data))
    log(f"lookup store {done} in {t:.1f} s")
    old_dir = snapshots_dir(data) / read_state(data)["snapshot"]["dir"]
    new_dir = snapshots_dir(nxt) / read_state(nxt)["snapshot"]["dir"]
    con = connect(data)
    sirens = [
        r[0]
        for r in con.execute(
            "SELECT siren FROM unites_legales ORDER BY hash(siren) LIMIT ?", [N_WATCHED]
        ).fetchall()
    ]
    con.close()
    watch.add(data, "bench", sirens)
    plain = duckdb.connect()
    samples: dict[str, list[float]] = {}
    counts: dict[str, int] = {}
    build_dir = Path(tempfile.mkdtemp(prefix="changes-bench-", dir=cache))
    for sub in new_dir.iterdir():  # the new snapshot's tables, in a folder the comparison may write into
        (build_dir / sub.name).symlink_to(sub)
    lookups = sirens[:200]
    for r in range(rounds):
        log(f"round {r + 1}/{rounds}")
        t, table = timed(lambda: changes(data, date(2026, 10, 1)))
        samples.setdefault("changes_month", []).append(t)
        counts["changes_month"] = table.num_rows
        t, n = timed(lambda: hand_diff(plain, old_dir, new_dir))
        samples.setdefault("hand_diff", []).append(t)
        counts["hand_diff"] = n
        t, n = timed(lambda: write_stock_changes(data, build_dir, None, date(2026, 11, 1)))
        samples.setdefault("stock_comparison", []).append(t)
        counts["stock_comparison"] = n
        entry = watch.get(data, "bench")
        entry.update(
            done_through="2026-10-30", delivered=[], stock_through=read_state(data)["snapshot"]["loaded_at"]
        )
        write_json_atomic(watch.lists_dir(data) / "bench.json", entry)
        shutil.rmtree(watch.alerts_dir(data, "bench"), ignore_errors=True)
        t, out = timed(lambda: watch.collect(data))
        samples.setdefault("watchlist_collect", []).append(t)
        counts["watchlist_collect"] = out[0].changes
        files = [
            str(day_dir(data, date(2026, 10, 31)) / f"{t}.parquet")
            for t in ("unites_legales", "etablissements")
        ]
        plain.register("watched", pa.table({"siren": sirens}))
        t, n = timed(lambda: sum(plain.execute(
            f"SELECT count(*) FROM read_parquet('{f}') WHERE siren IN (SELECT siren FROM watched)").fetchone()[0]
            for f in files))  # fmt: skip  # noqa: B023
        samples.setdefault("watchlist_semijoin", []).append(t)
        counts["watchlist_semijoin"] = n
        con = connect(data)
        per, per_store = [], []
        for s in lookups:
            t, views = timed(lambda s=s, con=con: get_document(con, s, as_of=date(2020, 6, 30)))
            per.append(t)
            t, stored = timed(lambda s=s: get_document(str(data), s, as_of=date(2020, 6, 30)))
            per_store.append(t)
            assert stored == views, s
        samples.setdefault("get_date", []).append(statistics.median(per))
        samples.setdefault("get_date_store", []).append(statistics.median(per_store))
        per = []
        for s in lookups:
            t, _ = timed(lambda s=s, con=con: get_document(con, s))
            per.append(t)
        samples.setdefault("get_today_views", []).append(statistics.median(per))
        con.close()
    shutil.rmtree(build_dir, ignore_errors=True)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    return {
        "scale": scale,
        "date": date.today().isoformat(),
        "commit": commit,
        "cores": os.cpu_count(),
        "load_avg": os.getloadavg(),
        "rounds": rounds,
        "medians_s": {k: statistics.median(v) for k, v in samples.items()},
        "samples_s": samples,
        "rows": counts,
        "delta_days": len(read_state(data).get("deltas") or []),
        **info,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cache", type=Path, default=REPO / ".bench-cache")
    args = parser.parse_args()
    res = run(args.scale, args.rounds, args.cache)
    out = REPO / "docs" / "bench" / f"changes-{args.scale}.json"
    out.write_text(json.dumps(res, indent=1))
    print(json.dumps(res["medians_s"], indent=1))


if __name__ == "__main__":
    main()
