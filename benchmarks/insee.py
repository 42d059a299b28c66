"""The INSEE API Sirene 3.11 of `mirror serve` (/api-sirene/3.11) under load, beside the real API's quota.

    python -m benchmarks.insee --scale 100000 [--duration 10] [--connections 16] [--paged 100000]

Scenarios, on one server (python -m mirror serve, access log off) over the generated mirror of
benchmarks.http.prepare (cached per scale):
- `/siren/{siren}` and `/siret/{siret}` lookups with wrk (benchmarks.http's Lua script rotating over 20,000
  sampled SIRENs / SIRETs), interleaved --repeat times with API Entreprise's `/v3/.../unites_legales/{siren}`
  on the same server (the same lookup store, the strongest local alternative), medians kept;
- the same lookups answered by the SQL views (what every lookup cost before the store kept the INSEE
  records, and what answers while the store is rebuilt): mirror.http.insee.lookup in this process, the store
  hidden, one after the other over 100 identifiers;
- `q=` searches timed one after the other with requests (first and repeated run: the server caches the
  totals per catalog): a `periode(...)` query, a wildcard name, and a date range of
  `dateDernierTraitementEtablissement` paged by cursor (`nombre=1000`) over up to --paged results,
  extra last page included.

Beside each figure, the real API's computation: 30 requests/minute per key (0.5/s), so N lookups take N×2 s
and paging R results takes (ceil(R/1000)+1)×2 s. Results: docs/bench/insee-<scale>.json and the "INSEE API
Sirene" section of docs/BENCHMARKS.md rebuilt from every docs/bench/insee-*.json. Synthetic data only.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import time
from pathlib import Path

import requests

from benchmarks.bench import REPO_DIR as ROOT
from benchmarks.bench import log, machine_info
from benchmarks.http import Server, _git_commit, prepare, run_wrk
from benchmarks.report import replace_section

API = "/api-sirene/3.11"
INSEE_PER_S = 30 / 60
SECTION = "## INSEE API Sirene (`mirror serve`)"


def _samples(data: Path, cache: Path, n: int = 20_000) -> tuple[dict[str, Path], dict, dict[str, list[str]]]:
    from mirror.catalog.build import connect

    con = connect(data)
    try:
        sirens = [r[0] for r in con.execute(
            "SELECT siren FROM unites_legales WHERE siren NOT IN (SELECT sirenDoublon FROM doublons) "
            "ORDER BY hash(siren) LIMIT ?", [n]).fetchall()]  # fmt: skip
        sirets = [r[0] for r in con.execute(
            "SELECT siret FROM etablissements WHERE siren NOT IN (SELECT sirenDoublon FROM doublons) "
            "ORDER BY hash(siret) LIMIT ?", [n]).fetchall()]  # fmt: skip
        diffusible = [r[0] for r in con.execute(
            "SELECT siren FROM unites_legales WHERE statutDiffusionUniteLegale = 'O' "
            "AND siren NOT IN (SELECT sirenDoublon FROM doublons) ORDER BY hash(siren) LIMIT ?", [n]).fetchall()]  # fmt: skip
        naf = con.execute(
            "SELECT activitePrincipaleUniteLegale FROM unites_legales_historique "
            "GROUP BY 1 ORDER BY count(*) DESC LIMIT 1"
        ).fetchone()[0]
        word = con.execute(
            "SELECT w FROM (SELECT unnest(regexp_split_to_array(denominationUniteLegale, '[^A-Z]+')) AS w "
            "FROM unites_legales) WHERE length(w) >= 5 GROUP BY w ORDER BY count(*) DESC LIMIT 1"
        ).fetchone()[0]
        stamps = [r[0] for r in con.execute(
            "SELECT dateDernierTraitementEtablissement FROM etablissements "
            "WHERE dateDernierTraitementEtablissement IS NOT NULL ORDER BY 1 DESC LIMIT 1 OFFSET ?",
            [100_000]).fetchall()]  # fmt: skip
    finally:
        con.close()
    for ids in (sirens, sirets, diffusible):
        random.Random(5).shuffle(ids)
    ctx = "context=bench&object=bench&recipient=13002526500013"
    paths = {}
    for name, lines in (
        ("siren", [f"{API}/siren/{s}" for s in sirens]),
        ("siret", [f"{API}/siret/{s}" for s in sirets]),
        ("v3_unite_legale", [f"/v3/insee/sirene/unites_legales/{s}?{ctx}" for s in diffusible]),
    ):
        paths[name] = cache / f"paths-insee-{name}.txt"
        paths[name].write_text("\n".join(lines) + "\n")
    since = stamps[0].strftime("%Y-%m-%dT%H:%M:%S") if stamps else "*"
    queries = {
        "periode": (
            "siren",
            f"periode(activitePrincipaleUniteLegale:{naf} AND etatAdministratifUniteLegale:A)",
        ),
        "wildcard_name": ("siren", f"denominationUniteLegale:{word[:4]}*"),
        "date_range_cursor": ("siret", f"dateDernierTraitementEtablissement:[{since} TO *]"),
    }
    return paths, queries, {"siren": sirens[:100], "siret": sirets[:100]}


def _views_lookups(data: Path, keys: dict[str, list[str]]) -> dict:
    """Lookups/s of mirror.http.insee.lookup answered by the SQL views (the store hidden), in this process,
    one after the other (the server runs at most 2 such lookups at once per worker)."""
    from mirror.http import insee

    out = {}
    hidden, insee.open_store = insee.open_store, lambda data_dir: None
    try:
        for kind, ids in keys.items():
            insee.lookup(data, kind, ids[0], [], None)  # the connection and its Parquet footers, once
            t0 = time.perf_counter()
            statuses = [insee.lookup(data, kind, i, [], None).status for i in ids[1:]]
            seconds = time.perf_counter() - t0
            out[kind] = {"lookups": len(statuses), "req_s": round(len(statuses) / seconds, 1),
                         "ms_each": round(seconds * 1000 / len(statuses), 1),
                         "statuses": sorted(set(statuses))}  # fmt: skip
    finally:
        insee.open_store = hidden
    return out


def _timed_search(url: str, collection: str, q: str, paged: int | None) -> dict:
    """One search: its first page (nombre=1000), or every page by cursor up to `paged` results."""
    s = requests.Session()
    t0 = time.perf_counter()
    pages, got, total, cursor = 0, 0, 0, "*"
    while True:
        r = s.get(f"{url}{API}/{collection}", params={"q": q, "nombre": 1000, "curseur": cursor}, timeout=600)
        pages += 1
        if r.status_code == 404:
            break
        r.raise_for_status()
        body = r.json()
        header = body["header"]
        total = header["total"]
        got += header["nombre"]
        if paged is None or header["curseurSuivant"] == header["curseur"] or got >= paged:
            break  # one page asked, the extra last page reached, or the --paged bound
        cursor = header["curseurSuivant"]
    seconds = time.perf_counter() - t0
    return {"total": total, "rows": got, "pages": pages, "seconds": round(seconds, 3),
            "rows_per_s": round(got / seconds, 1) if seconds else None,
            "insee_seconds": pages / INSEE_PER_S}  # fmt: skip


def _drain(url: str) -> None:
    """Waits until the server has answered what wrk sent before it stopped (requests already in its thread
    pool run to the end): one more request, queued behind them."""
    requests.get(f"{url}{API}/informations", timeout=600)


def _median_run(runs: list[dict]) -> dict:
    """The run of median req/s (its latencies with it), and every run's req/s."""
    ranked = sorted(runs, key=lambda r: r["req_s"])
    return {**ranked[(len(ranked) - 1) // 2], "runs_req_s": [r["req_s"] for r in runs]}


def bench(
    scale: int, cache: Path, duration: int, connections: int, threads: int, paged: int, repeat: int = 3
) -> dict:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian: apt-get install wrk)")
    data = prepare(scale, cache)
    paths, queries, view_keys = _samples(data, cache)
    load_before = os.getloadavg()
    log("lookups answered by the SQL views (in-process, store hidden)")
    views = _views_lookups(data, view_keys)
    for kind, v in views.items():
        log(f"  {kind}: {v['req_s']:,.1f} lookups/s ({v['ms_each']} ms each)")
    server = Server(data, 1, cache / "serve-insee.log")
    try:
        for path in paths.values():  # warm-up
            run_wrk(server.url, path, cache / "bench.lua", threads, connections, 2)
        _drain(server.url)
        runs: dict[str, list[dict]] = {name: [] for name in paths}
        for i in range(repeat):  # interleaved: the machine's load drifts alike over every scenario
            for name, path in paths.items():
                res = run_wrk(server.url, path, cache / "bench.lua", threads, connections, duration)
                runs[name].append(res)
                log(f"  [{i + 1}/{repeat}] {name}: wrk -t{threads} -c{connections} -d{duration}s: "
                    f"{res['req_s']:,.0f} req/s, p50 {res['p50_ms']:.1f} ms, p99 {res['p99_ms']:.1f} ms")  # fmt: skip
        lookups = {name: _median_run(r) for name, r in runs.items()}
        _drain(server.url)  # the requests wrk left behind finish before the searches are timed
        searches = {}
        for name, (collection, q) in queries.items():
            bound = paged if name == "date_range_cursor" else None
            first = _timed_search(server.url, collection, q, bound)
            again = _timed_search(server.url, collection, q, bound)
            searches[name] = {"collection": collection, "q": q, "first": first, "again": again}
            log(f"  {name}: {first['total']:,} results, {first['pages']} page(s) in {first['seconds']:.2f} s "
                f"(again {again['seconds']:.2f} s); the real API: {first['insee_seconds']:.0f} s")  # fmt: skip
    finally:
        server.close()
    return {
        "scale": scale,
        "date": time.strftime("%Y-%m-%d"),
        "commit": _git_commit(),
        "machine": machine_info(),
        "wrk": {"threads": threads, "connections": connections, "duration_s": duration},
        "load_average_before": list(load_before),
        "load_average_after": list(os.getloadavg()),
        "lookups": lookups,
        "views_lookups": views,
        "repeat": repeat,
        "searches": searches,
        "insee_per_s": INSEE_PER_S,
    }


def render_section(results_dir: Path) -> list[str]:
    runs = sorted(
        (json.loads(p.read_text()) for p in results_dir.glob("insee-*.json")), key=lambda r: -r["scale"]
    )
    lines = [
        SECTION,
        "",
        "Produced by `python -m benchmarks.insee --scale N`: `mirror serve`'s INSEE API Sirene 3.11 routes on "
        "127.0.0.1 (one worker, access log off), `/siren/{siren}` and `/siret/{siret}` with wrk rotating over "
        "20,000 sampled identifiers, interleaved with API Entreprise's v3 unit route on the same server (wrk "
        "settings under each scale), the views' lookups in-process, then `q=` searches one after the other (nombre=1000; first run, then the same again: the server keeps "
        "the totals of its latest searches per catalog). The real API allows 30 requests per minute per key "
        "(0.5/s): its column is that computation, not a measurement. National scale (about 29 million "
        "unités légales, 42 million établissements) is not measured here.",
        "",
        "Where the time goes: since the lookup store keeps the INSEE records (DATA_DIR/lookup.sqlite, built by "
        "the same SQL as the views, `date=` cut in Python), a lookup is one SQLite read and a zstd "
        "decompression on the server's event loop, as API Entreprise's v3/v4 routes: the two are side by side "
        "below, interleaved, medians of the runs. The views row is what every lookup cost before (one DuckDB "
        "query over the Parquet snapshot; still the path while the store is rebuilt). A search page takes its "
        "keys from DuckDB over the views and, when no writer is at work, its records from the store. The "
        "`dateDernierTraitement` range falls back to `[* TO *]` when the stock has fewer than 100,000 "
        "établissements. The 20,000 run is older: records built by the views for lookups and pages alike. "
        "Both runs were on a machine SHARED with other work sessions (their load averages are given): the "
        "figures are lower bounds of an idle machine's.",
        "",
    ]
    for run in runs:
        m, lk = run["machine"], run["lookups"]
        lines += [
            f"### Scale {run['scale']:,} unités légales ({run['date']}, commit {run['commit']})",
            "",
            f"Machine: {m['cores']} cores ({m['cpu']}), {m['ram_gb']} GB RAM; load average (1 min) "
            f"{run['load_average_before'][0]:.1f} before, {run['load_average_after'][0]:.1f} after"
            + (
                f"; wrk -t{w['threads']} -c{w['connections']} -d{w['duration_s']}s per run, {run['repeat']} runs "
                "per lookup scenario (the median shown)."
                if (w := run.get("wrk")) and "repeat" in run
                else "."
            ),
            "",
            "| request | mirror | real API (30/min) |",
            "|---|---:|---:|",
        ]
        if "req_s" in lk:  # the older runs: /siren/{siren} only, answered by the views
            lk = {"siren": lk}
        labels = {"siren": "`/siren/{siren}` lookups", "siret": "`/siret/{siret}` lookups",
                  "v3_unite_legale": "API Entreprise `/v3/insee/sirene/unites_legales/{siren}` (same store)"}  # fmt: skip
        for name, res in lk.items():
            runs_note = (
                f", runs {', '.join(f'{r:,.0f}' for r in res['runs_req_s'])}" if "runs_req_s" in res else ""
            )
            lines.append(
                f"| {labels.get(name, name)} | {res['req_s']:,.0f} req/s (p50 {res['p50_ms']:.1f} ms, p99 "
                f"{res['p99_ms']:.1f} ms, {sum(res['errors'].values())} errors{runs_note}) | 0.5 req/s "
                f"(× {res['req_s'] / run['insee_per_s']:,.0f}) |"
            )
        for kind, v in (run.get("views_lookups") or {}).items():
            lines.append(
                f"| `/{kind}/{{{kind}}}` answered by the SQL views (in-process, one at a time, {v['lookups']} "
                f"lookups) | {v['req_s']:,.1f} req/s ({v['ms_each']:,.0f} ms each) | 0.5 req/s |"
            )
        names = {"periode": "`periode(...)` query", "wildcard_name": "wildcard name",
                 "date_range_cursor": "date range paged by cursor"}  # fmt: skip
        for name, s in run["searches"].items():
            f, a = s["first"], s["again"]
            lines.append(
                f"| {names.get(name, name)}: `{s['collection']}?q={s['q']}` ({f['total']:,} results, {f['rows']:,} "
                f"fetched in {f['pages']} page(s)) | {f['seconds']:.2f} s, again {a['seconds']:.2f} s "
                f"({f['rows_per_s'] or 0:,.0f} rows/s) | {f['insee_seconds']:,.0f} s |"
            )
        lines.append("")
    if not runs:
        lines.append("No results yet.")
    return lines


def write_section(report: Path, results_dir: Path) -> None:
    """Replaces (or appends) this section of docs/BENCHMARKS.md."""
    replace_section(report, SECTION, render_section(results_dir))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=100_000)
    parser.add_argument("--duration", type=int, default=10, help="Seconds of the wrk run.")
    parser.add_argument(
        "--connections", type=int, default=4, help="wrk connections (DuckDB answers 2 at a time per worker)."
    )
    parser.add_argument("--threads", type=int, default=2, help="wrk threads.")
    parser.add_argument("--paged", type=int, default=100_000, help="Results paged by cursor (date range).")
    parser.add_argument("--repeat", type=int, default=3, help="Interleaved wrk runs of each lookup scenario.")
    parser.add_argument("--cache", type=Path, default=ROOT / ".bench-cache")
    args = parser.parse_args(argv)
    cache = args.cache / f"http-{args.scale}"
    cache.mkdir(parents=True, exist_ok=True)
    res = bench(args.scale, cache, args.duration, args.connections, args.threads, args.paged, args.repeat)
    results_dir = ROOT / "docs" / "bench"
    out = results_dir / f"insee-{args.scale}.json"
    out.write_text(json.dumps(res, indent=1, default=str))
    log(f"wrote {out}")
    write_section(ROOT / "docs" / "BENCHMARKS.md", results_dir)
    log("docs/BENCHMARKS.md: INSEE API Sirene section rebuilt")


if __name__ == "__main__":
    main()
