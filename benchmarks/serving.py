"""The serving paths side by side with the strongest alternatives a user would pick, in one run.

    python -m benchmarks.serving --scale 1000000 [--rounds 7]

Compared, each operation interleaved round by round (the machine is shared: medians, then ratios):
- the mirror: get_document on the data directory (lookup store), mirror.lookup.search, the export path's
  count, `mirror export`, `mirror batch`;
- the official single-file Parquet as data.gouv.fr publishes it (StockUniteLegale_utf8.parquet,
  StockEtablissement_utf8.parquet: zstd, INSEE types, source order), queried by DuckDB and by polars;
- an indexed SQLite row store (the two stock files as rows, classic indexes) with an FTS5 index of the
  names, the strongest hand-rolled single-file alternative.

Results: docs/bench/serving-<scale>.json, rendered into docs/BENCHMARKS.md by benchmarks.report.
All data is synthetic (`mirror generate`).
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.bench import REPO_DIR as ROOT
from benchmarks.bench import du_mb, log, machine_info, run_with_rusage, sqlite_load

STOCK_MONTH = "2026-11"
SEARCHES = ("boulangerie", "plomberie", "boulangerie patisserie", "plo")


def mirror_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "mirror", *args]


def _git_commit() -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    return out.stdout.strip() or "unknown"


# ------------------------------------------------------------------------------------------------
# Preparation (cached per scale)
# ------------------------------------------------------------------------------------------------


def prepare(scale: int, cache: Path) -> dict:
    stock, data = cache / "stock", cache / "data"
    prep_path = cache / "prep.json"
    if prep_path.exists():
        return json.loads(prep_path.read_text())
    cache.mkdir(parents=True, exist_ok=True)
    log(f"generating the stock (zip and Parquet) at scale {scale:,}")
    run = run_with_rusage(
        mirror_cmd(
            "generate",
            "--out",
            str(stock),
            "--month",
            STOCK_MONTH,
            "--scale",
            str(scale),
            "--seed",
            "3",
            "--format",
            "both",
            "--no-progress",
        )  # fmt: skip
    )
    zips = cache / "zips"
    zips.mkdir(exist_ok=True)
    for z in stock.glob("*.zip"):
        z.rename(zips / z.name)
    log("loading the mirror (snapshot, catalog, lookup store)")
    run = run_with_rusage(
        mirror_cmd("load", str(zips), "--data-dir", str(data), "--month", STOCK_MONTH, "--force", "-q")
    )
    load = {"seconds": run["seconds"], "max_rss_mb": run["max_rss_mb"], "stdout": run["stdout"][-500:]}
    log("SQLite row store with indexes and FTS5")
    sqlite_db = cache / "baseline.sqlite"
    sqlite_seconds = build_sqlite(zips, sqlite_db)
    import duckdb

    con = duckdb.connect()
    ul = str(stock / "StockUniteLegale_utf8.parquet")
    et = str(stock / "StockEtablissement_utf8.parquet")
    rng = random.Random(5)
    sirens = [
        r[0]
        for r in con.execute(f"SELECT siren FROM '{ul}' WHERE statutDiffusionUniteLegale = 'O'").fetchall()
    ]
    sirets = [
        r[0]
        for r in con.execute(f"SELECT siret FROM '{et}' WHERE statutDiffusionEtablissement = 'O'").fetchall()
    ]
    naf, dep = con.execute(
        f"SELECT activitePrincipaleEtablissement, left(codeCommuneEtablissement, 2) FROM '{et}' "
        "WHERE etatAdministratifEtablissement = 'A' GROUP BY ALL ORDER BY count(*) DESC LIMIT 1"
    ).fetchone()
    ids = cache / "batch-sirens.csv"
    batch = [rng.choice(sirens) for _ in range(batch_rows(scale))]
    ids.write_text("siren\n" + "\n".join(batch) + "\n")
    prep = {
        "scale": scale,
        "data": str(data),
        "ul_parquet": ul,
        "et_parquet": et,
        "sqlite": str(sqlite_db),
        "sirens": rng.sample(sirens, 1000),
        "sirets": rng.sample(sirets, 1000),
        "naf": naf,
        "departement": dep,
        "batch_file": str(ids),
        "load": load,
        "sqlite_build_seconds": sqlite_seconds,
    }
    prep_path.write_text(json.dumps(prep, indent=1))
    return prep


def disk_mb(prep: dict) -> dict:
    def size(path) -> float:
        path = Path(path)
        return path.stat().st_size / 1e6 if path.is_file() else du_mb(path)

    data = Path(prep["data"])
    return {
        "snapshot": size(data / "snapshots"),
        "lookup_store": size(data / "lookup.sqlite"),
        "official_parquet": size(prep["ul_parquet"]) + size(prep["et_parquet"]),
        "sqlite_row_store_fts": size(prep["sqlite"]),
    }


def build_sqlite(zips: Path, db_path: Path) -> float:
    """The main benchmark's SQLite row store (benchmarks.bench.sqlite_load: the two stock files as rows
    with the classic indexes) plus an FTS5 index of the unit names."""
    load_seconds = sqlite_load(zips, db_path)
    t0 = time.perf_counter()
    db = sqlite3.connect(db_path)
    db.execute(
        "CREATE VIRTUAL TABLE names USING fts5(nom, tokenize = 'unicode61 remove_diacritics 2', prefix = '3')"
    )
    db.execute(
        "INSERT INTO names(rowid, nom) SELECT rowid, coalesce(denominationUniteLegale, '') || ' ' || "
        "coalesce(sigleUniteLegale, '') || ' ' || coalesce(nomUniteLegale, '') || ' ' || "
        "coalesce(prenom1UniteLegale, '') || ' ' || coalesce(denominationUsuelle1UniteLegale, '') FROM unites_legales"
    )
    db.execute("INSERT INTO names(names) VALUES ('optimize')")
    db.commit()
    db.close()
    return load_seconds + time.perf_counter() - t0


# ------------------------------------------------------------------------------------------------
# The systems
# ------------------------------------------------------------------------------------------------


def _timed(fn, items) -> float:
    """Median seconds of fn(item) over items."""
    times = []
    for item in items:
        t0 = time.perf_counter()
        fn(item)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _p(times: list[float], q: float) -> float:
    times = sorted(times)
    return times[min(len(times) - 1, int(len(times) * q))]


def lookups(prep: dict, rounds: int) -> dict:
    import duckdb
    import polars as pl

    from mirror.serve.documents import get_document

    data = Path(prep["data"])
    sq = sqlite3.connect(prep["sqlite"])
    dk = duckdb.connect()
    ul, et = prep["ul_parquet"], prep["et_parquet"]

    def mirror_siren(s):
        assert get_document(data, s, "v3")[0] == 200

    def mirror_siret(s):
        assert get_document(data, s, "v3")[0] == 200

    def sqlite_siren(s):  # the unit and its siège, as the v3 document needs
        row = sq.execute("SELECT * FROM unites_legales WHERE siren = ?", [s]).fetchone()
        sq.execute("SELECT * FROM etablissements WHERE siret = ?", [s + row[UL_NIC]]).fetchone()

    def sqlite_siret(s):
        sq.execute("SELECT * FROM etablissements WHERE siret = ?", [s]).fetchone()
        sq.execute("SELECT * FROM unites_legales WHERE siren = ?", [s[:9]]).fetchone()

    def duckdb_siren(s):
        dk.execute(f"SELECT * FROM '{ul}' WHERE siren = ?", [s]).fetchall()
        dk.execute(f"SELECT * FROM '{et}' WHERE siren = ? AND etablissementSiege", [s]).fetchall()

    def duckdb_siret(s):
        dk.execute(f"SELECT * FROM '{et}' WHERE siret = ?", [s]).fetchall()
        dk.execute(f"SELECT * FROM '{ul}' WHERE siren = ?", [s[:9]]).fetchall()

    lul, let = pl.scan_parquet(ul), pl.scan_parquet(et)

    def polars_siren(s):
        lul.filter(pl.col("siren") == s).collect()
        let.filter((pl.col("siren") == s) & pl.col("etablissementSiege")).collect()

    def polars_siret(s):
        let.filter(pl.col("siret") == s).collect()
        lul.filter(pl.col("siren") == s[:9]).collect()

    global UL_NIC
    UL_NIC = [d[1] for d in sq.execute("PRAGMA table_info(unites_legales)").fetchall()].index(
        "nicSiegeUniteLegale"
    )
    # Identifiers with a document (a doublon answers 301, an établissement of a P unit 451).
    sirens = [s for s in prep["sirens"] if get_document(data, s, "v3")[0] == 200]
    sirets = [s for s in prep["sirets"] if get_document(data, s, "v3")[0] == 200]
    for s in sirens[:20]:  # warm-up of every system
        for f in (mirror_siren, sqlite_siren, duckdb_siren, polars_siren):
            f(s)
    systems = {
        "mirror": (mirror_siren, mirror_siret, 1000),
        "sqlite": (sqlite_siren, sqlite_siret, 1000),
        "duckdb_parquet": (duckdb_siren, duckdb_siret, 40),
        "polars_parquet": (polars_siren, polars_siret, 40),
    }
    out: dict = {}
    all_times: dict = {}
    for r in range(rounds):
        for name, (f_siren, f_siret, n) in systems.items():
            chunk = slice((r * n) % len(sirens), (r * n) % len(sirens) + n)
            for kind, fn, items in (("siren", f_siren, sirens[chunk]), ("siret", f_siret, sirets[chunk])):
                times = []
                for item in items:
                    t0 = time.perf_counter()
                    fn(item)
                    times.append(time.perf_counter() - t0)
                all_times.setdefault((name, kind), []).append(times)
    for (name, kind), per_round in all_times.items():
        flat = [t for ts in per_round for t in ts]
        out.setdefault(name, {})[kind] = {
            "median": statistics.median(statistics.median(ts) for ts in per_round),
            "p95": _p(flat, 0.95),
            "p99": _p(flat, 0.99),
            "n": len(flat),
        }
    return out


def searches(prep: dict, rounds: int) -> dict:
    from mirror.lookup.search import search

    data = Path(prep["data"])
    sq = sqlite3.connect(prep["sqlite"])

    def fts5(text: str):  # the baseline: bm25 top 20, last word as a prefix
        words = text.split()
        expr = " ".join(f'"{w}"' for w in words[:-1]) + f' "{words[-1]}"*'
        return sq.execute(
            "SELECT u.siren FROM names JOIN unites_legales u ON u.rowid = names.rowid WHERE names MATCH ? "
            "ORDER BY rank LIMIT 20",
            [expr.strip()],
        ).fetchall()

    def mirror(text: str):
        return search(data, text, limit=20)

    times: dict = {}
    for _ in range(rounds):
        for text in SEARCHES:
            for name, fn in (("mirror", mirror), ("sqlite_fts5", fts5)):
                runs = []
                for _ in range(5):
                    t0 = time.perf_counter()
                    fn(text)
                    runs.append(time.perf_counter() - t0)
                times.setdefault((name, text), []).extend(runs)
    out: dict = {}
    for (name, text), ts in times.items():
        out.setdefault(name, {})[text] = {"median": statistics.median(ts), "p95": _p(ts, 0.95)}
    out["hits"] = {text: search(data, text, limit=20).total for text in SEARCHES}
    return out


def filters(prep: dict, rounds: int) -> dict:
    import duckdb

    from mirror.catalog.build import connect
    from mirror.export.exporter import build_query, build_source, count_rows
    from mirror.export.filters import Filters

    data = Path(prep["data"])
    con = connect(data, read_only=True)
    sq = sqlite3.connect(prep["sqlite"])
    dk = duckdb.connect()
    et = prep["et_parquet"]
    naf, dep = prep["naf"], prep["departement"]
    tranches = ["01", "02", "03", "11"]
    source = build_source(con, "etablissement")

    standard_query = build_query(
        con, source, Filters(naf=[naf], departements=[dep], tranches=tranches, etat="active")
    )
    departement_query = build_query(con, source, Filters(departements=[dep], etat="all"))

    def mirror_standard():
        return count_rows(con, standard_query)

    def mirror_departement():
        return count_rows(con, departement_query)

    def sqlite_standard():
        return sq.execute(
            "SELECT count(*) FROM etablissements WHERE activitePrincipaleEtablissement = ? AND departement = ? "
            "AND trancheEffectifsEtablissement IN ('01', '02', '03', '11') AND etatAdministratifEtablissement = 'A'",
            [naf, dep],
        ).fetchone()[0]

    def sqlite_departement():
        return sq.execute("SELECT count(*) FROM etablissements WHERE departement = ?", [dep]).fetchone()[0]

    def duckdb_standard():
        return dk.execute(
            f"SELECT count(*) FROM '{et}' WHERE activitePrincipaleEtablissement = ? AND left(codeCommuneEtablissement, 2) = ? "
            "AND trancheEffectifsEtablissement IN ('01', '02', '03', '11') AND etatAdministratifEtablissement = 'A'",
            [naf, dep],
        ).fetchone()[0]

    def duckdb_departement():
        return dk.execute(
            f"SELECT count(*) FROM '{et}' WHERE left(codeCommuneEtablissement, 2) = ?", [dep]
        ).fetchone()[0]

    systems = {
        "mirror": (mirror_standard, mirror_departement),
        "sqlite": (sqlite_standard, sqlite_departement),
        "duckdb_parquet": (duckdb_standard, duckdb_departement),
    }
    counts = {name: (a(), b()) for name, (a, b) in systems.items()}
    times: dict = {}
    for _ in range(rounds):
        for name, (standard, departement) in systems.items():
            for kind, fn in (("standard_filter", standard), ("departement_count", departement)):
                t0 = time.perf_counter()
                fn()
                times.setdefault((name, kind), []).append(time.perf_counter() - t0)
    con.close()
    out: dict = {"counts": {k: list(v) for k, v in counts.items()}}
    for (name, kind), ts in times.items():
        out.setdefault(name, {})[kind] = {"median": statistics.median(ts)}
    return out


def batch_rows(scale: int) -> int:
    """How many identifiers the batch files hold (drawn with replacement)."""
    return min(1_000_000, max(scale, 1000))


def sirets_file(prep: dict) -> str:
    """The file of SIRETs of the établissement-level batch (diffusible établissements drawn with
    replacement, as many as the SIRENs' file), written beside the cached mirror the first time."""
    path = Path(prep["batch_file"]).with_name("batch-sirets.csv")
    if not path.is_file():
        import duckdb

        con = duckdb.connect()
        sirets = [
            r[0]
            for r in con.execute(
                f"SELECT siret FROM '{prep['et_parquet']}' WHERE statutDiffusionEtablissement = 'O'"
            ).fetchall()
        ]
        con.close()
        rng = random.Random(7)
        drawn = [rng.choice(sirets) for _ in range(batch_rows(prep["scale"]))]
        path.write_text("siret\n" + "\n".join(drawn) + "\n")
    return str(path)


def bulk(prep: dict, rounds: int) -> dict:
    """Export of every établissement row (CSV, Parquet), batch of SIRENs (unit level) and of SIRETs
    (établissement level), as processes."""
    data = prep["data"]
    et, ul = prep["et_parquet"], prep["ul_parquet"]
    sirets = sirets_file(prep)
    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        duck = [sys.executable, "-c", "import duckdb, sys; duckdb.connect().execute(sys.argv[1])"]
        commands = {
            ("export_csv", "mirror"): mirror_cmd("export", "--all", "-o", str(tmp / "m.csv"), "-q",
                                                 "--data-dir", data),
            ("export_csv", "duckdb_parquet"): duck + [f"COPY (SELECT * FROM '{et}') TO '{tmp / 'd.csv'}' (HEADER)"],
            ("export_parquet", "mirror"): mirror_cmd("export", "--all", "-o", str(tmp / "m.parquet"), "-q",
                                                     "--data-dir", data),
            ("export_parquet", "duckdb_parquet"): duck + [
                f"COPY (SELECT * FROM '{et}') TO '{tmp / 'd.parquet'}' (FORMAT parquet)"],
            ("batch", "mirror"): mirror_cmd("batch", prep["batch_file"], "-o", str(tmp / "b.csv"), "-q",
                                            "--data-dir", data),
            ("batch", "duckdb_parquet"): duck + [
                f"COPY (SELECT i.siren, u.* EXCLUDE (siren) FROM read_csv('{prep['batch_file']}', columns = "
                f"{{'siren': 'VARCHAR'}}, header = true) i LEFT JOIN '{ul}' u USING (siren)) TO '{tmp / 'db.csv'}' (HEADER)"],
            ("batch_sirets", "mirror"): mirror_cmd("batch", sirets, "--level", "etablissement", "-o",
                                                   str(tmp / "bs.csv"), "-q", "--data-dir", data),
            ("batch_sirets", "duckdb_parquet"): duck + [
                f"COPY (SELECT i.siret, e.* EXCLUDE (siret) FROM read_csv('{sirets}', columns = "
                f"{{'siret': 'VARCHAR'}}, header = true) i LEFT JOIN '{et}' e USING (siret)) TO '{tmp / 'dbs.csv'}' (HEADER)"],
        }  # fmt: skip
        times: dict = {}
        for _ in range(rounds):
            for key, cmd in commands.items():
                for old in tmp.iterdir():  # exports never overwrite: each run writes a new file
                    old.unlink()
                run = run_with_rusage(cmd)  # raises with the command's stderr when it fails
                times.setdefault(key, []).append(run["seconds"])
        for (op, name), ts in times.items():
            out.setdefault(name, {})[op] = {"median": statistics.median(ts)}
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--cache", type=Path, default=ROOT / ".bench-cache")
    parser.add_argument(
        "--note", default="", help="a sentence the report prints after the disk and load figures"
    )
    args = parser.parse_args(argv)
    cache = args.cache / f"serving-{args.scale}"
    prep = prepare(args.scale, cache)
    res = {
        "scale": args.scale,
        "date": time.strftime("%Y-%m-%d"),
        "commit": _git_commit(),
        "machine": machine_info(),
        "prep": {k: prep[k] for k in ("load", "sqlite_build_seconds", "naf", "departement")},
    }
    res["prep"]["disk_mb"] = disk_mb(prep)
    if args.note:
        res["prep"]["note"] = args.note
    log("lookups")
    res["lookups"] = lookups(prep, args.rounds)
    log("searches")
    res["searches"] = searches(prep, args.rounds)
    log("filters")
    res["filters"] = filters(prep, args.rounds)
    log("exports and batch")
    res["bulk"] = bulk(prep, max(3, args.rounds // 2))
    out = ROOT / "docs" / "bench" / f"serving-{args.scale}.json"
    out.write_text(json.dumps(res, indent=1, default=str))
    log(f"wrote {out}")
    from benchmarks.bench import REPORT, RESULTS_DIR
    from benchmarks.report import write_report

    log(f"report: {write_report(RESULTS_DIR, REPORT)}")


if __name__ == "__main__":
    main()
