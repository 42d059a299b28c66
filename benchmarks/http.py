"""`mirror serve` under load: wrk (a real HTTP load generator, Debian package `wrk`) against 127.0.0.1.

    python -m benchmarks.http --scale 100000 [--duration 10] [--connections 32] [--workers 1 2]

Scenarios, each on a freshly started server (python -m mirror serve, access log off, lookup store on):
- API Entreprise v3 établissement lookups, a Lua script rotating over many SIRETs
  (/v3/insee/sirene/etablissements/{siret}?context=...&object=...&recipient=...);
- the same with /v3/insee/sirene/unites_legales/{siren};
- recherche-entreprises /search, top 25 (per_page=25), rotating over search terms, when mirror.http.recherche
  exists;
- with --during-update: the établissement lookups, then the searches, while `mirror update` applies days of
  changes from the local INSEE-like upstream (a mirror built by `mirror sync` from the local
  data.gouv.fr-like upstream, copied for each run): back-to-back 5 s wrk runs until the update ends; each
  with the update at the writers' default niceness (MIRROR_NICE unset) and at MIRROR_NICE=0.

Reported: requests/s, latency percentiles (wrk's own, from its Lua `done` hook), errors, and how many times
the real APIs' quotas that is (API Entreprise 250 requests/min, recherche-entreprises 7 requests/s per IP,
INSEE API Sirene 30 requests/min). wrk runs on the same machine (2 of its threads), so it takes CPU from
the server: the figures are a floor. Results: docs/bench/http-<scale>.json, and the "HTTP server" section of
docs/BENCHMARKS.md rebuilt from every docs/bench/http-*.json. All data is synthetic (`mirror generate`).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import requests

from benchmarks.bench import REPO_DIR as ROOT
from benchmarks.bench import log, machine_info
from benchmarks.report import replace_section

STOCK_MONTH = "2026-11"
CONTEXT = "context=bench&object=bench&recipient=13002526500013"
SEARCH_TERMS = ("boulangerie", "plomberie", "boulangerie patisserie", "plo", "garage", "conseil", "transport")
QUOTAS_PER_S = {
    "API Entreprise (250/min)": 250 / 60,
    "recherche-entreprises (7/s)": 7.0,
    "INSEE API Sirene (30/min)": 30 / 60,
}
SECTION = "## HTTP server (`mirror serve`)"

_LUA = """
local paths = {}
for line in io.lines("%(paths)s") do paths[#paths + 1] = line end
local counter = 0
setup = function(thread)
  thread:set("offset", math.random(1, #paths))
end
init = function(args)
  counter = offset or 1
end
request = function()
  counter = counter %% #paths + 1
  return wrk.format("GET", paths[counter])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK-JSON {"requests": %%d, "duration_us": %%d, "errors": {"connect": %%d, "read": %%d, "write": %%d, ' ..
    '"status": %%d, "timeout": %%d}, "p50_us": %%d, "p90_us": %%d, "p99_us": %%d, "p999_us": %%d, ' ..
    '"max_us": %%d, "mean_us": %%.1f}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    latency.max, latency.mean))
end
"""


def _git_commit() -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    return out.stdout.strip() or "unknown"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare(scale: int, cache: Path) -> Path:
    """The mirror of a generated stock at `scale` (cached), with its lookup store."""
    data = cache / "data"
    if (data / "lookup.sqlite").is_file() and (cache / "ready").is_file():
        return _store_current(data)
    stock = cache / "stock"
    env = {**os.environ, "MIRROR_LOOKUP_STORE": "on"}
    log(f"generating the stock at scale {scale:,}")
    subprocess.run(
        [sys.executable, "-m", "mirror", "generate", "--out", str(stock), "--month", STOCK_MONTH,
         "--scale", str(scale), "--seed", "3", "--no-progress"],
        check=True, env=env, cwd=ROOT,
    )  # fmt: skip
    log("loading the mirror (snapshot, catalog, lookup store)")
    subprocess.run(
        [sys.executable, "-m", "mirror", "load", str(stock), "--data-dir", str(data), "--month", STOCK_MONTH,
         "--force", "-q"],
        check=True, env=env, cwd=ROOT,
    )  # fmt: skip
    (cache / "ready").write_text("ok")
    return data


def _store_current(data: Path) -> Path:
    """The cached mirror, its lookup store rebuilt when it is not current (e.g. a store format upgrade since
    it was built: lookups would then measure the SQL views) or is a plain file (a rollback-journal store
    built before the link layout of mirror.lookup.build._switch_in: updates would lock its readers out)."""
    from mirror.lookup.store import describe, store_path

    if not describe(data)["current"] or not store_path(data).is_symlink():
        log(f"lookup store of {data} not current or built before WAL mode: mirror store --rebuild")
        subprocess.run(
            [sys.executable, "-m", "mirror", "store", "--rebuild", "--data-dir", str(data)],
            check=True, env={**os.environ, "MIRROR_LOOKUP_STORE": "on"}, cwd=ROOT,
        )  # fmt: skip
    return data


def sample_paths(data: Path, cache: Path, n: int = 20_000) -> dict[str, Path]:
    """Files of request paths (one per line) for each scenario."""
    from mirror.catalog.build import connect

    con = connect(data)
    try:
        # Diffusible units and établissements: the protected routes answer 200 for them (451 for P ones).
        sirets = [r[0] for r in con.execute(
            "SELECT e.siret FROM etablissements e JOIN unites_legales u USING (siren) "
            "WHERE e.statutDiffusionEtablissement = 'O' AND u.statutDiffusionUniteLegale = 'O' "
            "ORDER BY hash(e.siret) LIMIT ?", [n]).fetchall()]  # fmt: skip
        sirens = [r[0] for r in con.execute(
            "SELECT siren FROM unites_legales WHERE statutDiffusionUniteLegale = 'O' "
            "AND siren NOT IN (SELECT sirenDoublon FROM doublons) ORDER BY hash(siren) LIMIT ?", [n]).fetchall()]  # fmt: skip
    finally:
        con.close()
    rng = random.Random(11)
    rng.shuffle(sirets)
    rng.shuffle(sirens)
    out = {}
    for name, lines in (
        ("v3_etablissements", [f"/v3/insee/sirene/etablissements/{s}?{CONTEXT}" for s in sirets[:n]]),
        ("v3_unites_legales", [f"/v3/insee/sirene/unites_legales/{s}?{CONTEXT}" for s in sirens[:n]]),
        ("search_top25", [f"/search?q={t.replace(' ', '+')}&per_page=25&page={p}"
                          for t in SEARCH_TERMS for p in (1, 2, 3)]),
    ):  # fmt: skip
        path = cache / f"paths-{name}.txt"
        path.write_text("\n".join(lines) + "\n")
        out[name] = path
    return out


class Server:
    def __init__(self, data: Path, workers: int, log_path: Path):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(log_path, "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mirror", "serve", "--port", str(self.port), "--workers", str(workers),
             "--no-access-log", "--log-level", "warning", "--data-dir", str(data)],
            stdout=self.log, stderr=subprocess.STDOUT, cwd=ROOT,
            env={**os.environ, "MIRROR_LOOKUP_STORE": "on"},
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(self.url + "/openapi.json", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"mirror serve did not start: {Path(log_path).read_text()}")
            time.sleep(0.2)

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


def run_wrk(url: str, paths: Path, script: Path, threads: int, connections: int, duration: int) -> dict:
    script.write_text(_LUA % {"paths": str(paths)})
    cmd = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{duration}s", "--timeout", "10s",
           "-s", str(script), url]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("WRK-JSON "))
    res = json.loads(line.removeprefix("WRK-JSON "))
    seconds = res["duration_us"] / 1e6
    return {
        "requests": res["requests"],
        "req_s": round(res["requests"] / seconds, 1),
        "p50_ms": res["p50_us"] / 1000,
        "p90_ms": res["p90_us"] / 1000,
        "p99_ms": res["p99_us"] / 1000,
        "p999_ms": res["p999_us"] / 1000,
        "max_ms": res["max_us"] / 1000,
        "errors": res["errors"],
    }


def bench(
    scale: int,
    cache: Path,
    duration: int,
    connections: int,
    threads: int,
    workers: list[int],
    update: bool,
    repeat: int = 2,
) -> dict:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian: apt-get install wrk)")
    data = prepare(scale, cache)
    paths = sample_paths(data, cache)
    load_before = os.getloadavg()  # the machine may be shared: said next to the figures
    recherche = importlib.util.find_spec("mirror.http.recherche") is not None
    scenarios = ["v3_etablissements", "v3_unites_legales"] + (["search_top25"] if recherche else [])
    results = []
    for w in workers:
        for name in scenarios:
            server = Server(data, w, cache / f"serve-{name}-{w}.log")
            try:
                # Warm-up: every worker opens its store and the OS caches the pages touched.
                run_wrk(server.url, paths[name], cache / "bench.lua", threads, connections, 3)
                log(f"{name}, {w} worker(s): wrk -t{threads} -c{connections} -d{duration}s, {repeat} run(s)")
                runs = [
                    run_wrk(server.url, paths[name], cache / "bench.lua", threads, connections, duration)
                    for _ in range(repeat)
                ]
            finally:
                server.close()
            # The machine may be shared: the run with the most requests is kept, every run is recorded.
            r = dict(max(runs, key=lambda x: x["req_s"]))
            r.update(scenario=name, workers=w, runs_req_s=[x["req_s"] for x in runs])
            log(
                f"  {r['req_s']:,.0f} req/s, p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, errors {r['errors']}"
            )
            results.append(r)
    if update:
        # The writers' default niceness against the update at the server's priority (MIRROR_NICE=0), for
        # lookups and for searches, alternated so that the machine's other load falls on both alike.
        for name in ("v3_etablissements", "search_top25"):
            for writer_nice in (None, 0):
                results.append(
                    during_update(scale, cache, threads, connections, max(workers), name, writer_nice)
                )
    return {
        "scale": scale,
        "date": time.strftime("%Y-%m-%d"),
        "commit": _git_commit(),
        "machine": machine_info(),
        "wrk": {"threads": threads, "connections": connections, "duration_s": duration, "repeat": repeat},
        "recherche_routes": recherche,
        "load_average_before": list(load_before),
        "load_average_after": list(os.getloadavg()),
        "quotas_per_s": QUOTAS_PER_S,
        "results": results,
    }


# ------------------------------------------------------------------------------------------------
# Lookups while `mirror update` applies days
# ------------------------------------------------------------------------------------------------

UPDATE_MONTH = "2026-10"


def _mirror_env() -> dict:
    from mirror.synthetic.upstream.server import DEFAULT_API_KEY

    return {**os.environ, "MIRROR_LOOKUP_STORE": "on", "INSEE_API_KEY": DEFAULT_API_KEY}


def prepare_synced(scale: int, cache: Path) -> tuple[Path, Path]:
    """(upstream data, mirror) where the mirror is `mirror sync`ed from the local upstream on 2026-10-01."""
    from datetime import date

    from mirror.synthetic.upstream import server as upstream

    up_data, mirror = cache / "upstream", cache / "synced"
    if (cache / "synced-ready").is_file():
        return up_data, _store_current(mirror)
    log(f"mirror sync from the local upstream at scale {scale:,}")
    up = upstream.start(up_data, UPDATE_MONTH, scale=scale, seed=3, today=date(2026, 10, 1))
    try:
        subprocess.run(
            [sys.executable, "-m", "mirror", "sync", "--datagouv-url", up.datagouv_url, "--insee-url",
             up.insee_url, "--rate", "100000", "-q", "--data-dir", str(mirror)],
            check=True, env=_mirror_env(), cwd=ROOT,
        )  # fmt: skip
    finally:
        up.close()
    (cache / "synced-ready").write_text("ok")
    return up_data, mirror


def _statuses(data_dir: Path, sirets: list[str]) -> dict[str, int]:
    """How many of the sampled établissements answer each status once the update is done (wrk counts the
    4xx answers as errors: a day may close a unit as a doublon, 301, or make it non-diffusible, 451)."""
    from collections import Counter

    from mirror.serve.documents import get_document

    counts = Counter(str(get_document(data_dir, s, "v3")[0]) for s in sirets)
    return dict(sorted(counts.items()))


def during_update(
    scale: int,
    cache: Path,
    threads: int,
    connections: int,
    workers: int,
    scenario: str = "v3_etablissements",
    writer_nice: int | None = None,
    days: int = 3,
) -> dict:
    """The `scenario` requests (établissement lookups or /search) while `mirror update` applies `days`
    days; `writer_nice`: the update's MIRROR_NICE (None: the writers' default, core.config.DEFAULT_WRITER_NICE;
    0: the update at the server's priority, as before that default)."""
    from datetime import date, timedelta

    from mirror.catalog.build import connect, rebuild
    from mirror.core.config import DEFAULT_WRITER_NICE, NICE_ENV
    from mirror.deltas.store import compact_for
    from mirror.synthetic.upstream import server as upstream

    up_data, synced = prepare_synced(scale, cache)
    work = cache / "synced-work"
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(synced, work, symlinks=True)
    rebuild(work, compact_for(work))  # the copy's catalog still named the original's files
    con = connect(work)
    try:
        sirets = [r[0] for r in con.execute(
            "SELECT e.siret FROM etablissements e JOIN unites_legales u USING (siren) "
            "WHERE e.statutDiffusionEtablissement = 'O' AND u.statutDiffusionUniteLegale = 'O' "
            "ORDER BY hash(e.siret) LIMIT 20000").fetchall()]  # fmt: skip
    finally:
        con.close()
    paths = cache / f"paths-{scenario}-during-update.txt"
    if scenario == "v3_etablissements":
        paths.write_text("".join(f"/v3/insee/sirene/etablissements/{s}?{CONTEXT}\n" for s in sirets))
    else:
        shutil.copyfile(cache / f"paths-{scenario}.txt", paths)
    env = _mirror_env()
    env.pop(NICE_ENV, None)
    if writer_nice is not None:
        env[NICE_ENV] = str(writer_nice)
    up = upstream.start(
        up_data, UPDATE_MONTH, scale=scale, seed=3, today=date(2026, 10, 1) + timedelta(days=days)
    )
    server = Server(work, workers, cache / "serve-during-update.log")
    runs = []
    try:
        run_wrk(server.url, paths, cache / "bench.lua", threads, connections, 3)
        nice = DEFAULT_WRITER_NICE if writer_nice is None else writer_nice
        log(f"{scenario} during `mirror update` ({days} days, MIRROR_NICE={nice}), {workers} worker(s)")
        t0 = time.monotonic()
        update = subprocess.Popen(
            [sys.executable, "-m", "mirror", "update", "--insee-url", up.insee_url, "--rate", "100000", "-q",
             "--data-dir", str(work)],
            env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        while update.poll() is None:
            runs.append(run_wrk(server.url, paths, cache / "bench.lua", threads, connections, 5))
        update_seconds = time.monotonic() - t0
        output = update.stdout.read()
        if update.returncode != 0:
            raise SystemExit(f"mirror update failed: {output}")
    finally:
        server.close()
        up.close()
    requests_total = sum(r["requests"] for r in runs)
    result = {
        "scenario": f"{scenario}_during_update",
        "workers": workers,
        "update_days": days,
        "writer_nice": nice,
        "update_seconds": round(update_seconds, 1),
        "wrk_runs": len(runs),
        "requests": requests_total,
        "req_s": round(statistics.median(r["req_s"] for r in runs), 1) if runs else 0.0,
        "req_s_min": min((r["req_s"] for r in runs), default=0.0),
        "p50_ms": statistics.median(r["p50_ms"] for r in runs) if runs else 0.0,
        "p90_ms": max((r["p90_ms"] for r in runs), default=0.0),
        "p99_ms": max((r["p99_ms"] for r in runs), default=0.0),
        "p999_ms": max((r["p999_ms"] for r in runs), default=0.0),
        "max_ms": max((r["max_ms"] for r in runs), default=0.0),
        "errors": {k: sum(r["errors"][k] for r in runs) for k in (runs[0]["errors"] if runs else {})},
    }
    if scenario == "v3_etablissements":
        result["statuses_after"] = _statuses(work, sirets)
    log(f"  update {update_seconds:.0f} s; {result['req_s']:,.0f} req/s (median of {len(runs)} runs), "
        f"p99 {result['p99_ms']:.2f} ms (worst run), errors {result['errors']}")  # fmt: skip
    return result


# ------------------------------------------------------------------------------------------------
# docs/BENCHMARKS.md section
# ------------------------------------------------------------------------------------------------


def render_section(results_dir: Path) -> list[str]:
    runs = sorted(
        (json.loads(p.read_text()) for p in results_dir.glob("http-*.json")), key=lambda r: -r["scale"]
    )
    lines = [
        SECTION,
        "",
        "Produced by `python -m benchmarks.http --scale N` (also run by `make bench`): wrk against `mirror serve` "
        "on 127.0.0.1, one fresh server per row (access log off, lookup store on), a Lua script rotating over "
        "20,000 sampled identifiers (or 21 searches), 3 s of warm-up then the measured runs (the best one is "
        "shown, every run's requests/s is in the JSON: the machine may be shared). wrk runs on the "
        "same machine and takes CPU from the server. Targets of the issue on this 2-core machine: lookups "
        "≥ 3,000 requests/s with p99 ≤ 10 ms; `/search` top 25 ≥ 300 requests/s with p99 ≤ 100 ms.",
        "",
    ]
    for run in runs:
        m = run["machine"]
        w = run["wrk"]
        lines += [
            f"### Scale {run['scale']:,} unités légales ({run['date']}, commit {run['commit']})",
            "",
            f"Machine: {m['cores']} cores ({m['cpu']}), {m['ram_gb']} GB RAM. wrk: {w['threads']} threads, "
            f"{w['connections']} connections, {w['duration_s']} s, best of {w.get('repeat', 1)} run(s)."
            + (
                f" Load average (1 min) {run['load_average_before'][0]:.1f} before the runs, "
                f"{run['load_average_after'][0]:.1f} after (other work on the machine shows here)."
                if "load_average_before" in run
                else ""
            ),
            *(["", run["note"]] if run.get("note") else []),
            "",
            "| route | workers | requests/s | p50 | p90 | p99 | max | errors | × API Entreprise quota | "
            "× recherche-entreprises quota | × INSEE quota |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        q = run["quotas_per_s"]

        for r in run["results"]:
            errors = sum(r["errors"].values())
            ratios = [f"{r['req_s'] / v:,.0f}" for v in q.values()]
            kept = (
                f" (commit {r['commit']}, not re-run)"
                if r.get("commit", run["commit"]) != run["commit"]
                else ""
            )
            lines.append(
                f"| {_row_name(r)}{kept} | {r['workers']} | {r['req_s']:,.0f} | "
                f"{r['p50_ms']:.2f} ms | {r['p90_ms']:.2f} ms | {r['p99_ms']:.2f} ms | {r['max_ms']:.1f} ms | "
                f"{errors} | {' | '.join(ratios)} |"
            )
        during = [r for r in run["results"] if "update_seconds" in r]
        if during:
            seconds = ", ".join(f"{r['update_seconds']:.0f}" for r in during)
            lines += [
                "",
                f"During `mirror update`: {during[0]['update_days']} days applied (in {seconds} s, row by "
                "row) while wrk ran back-to-back 5 s runs; requests/s is their median, p90 / p99 / max the "
                "worst run's. `MIRROR_NICE` is the update's niceness: 10 is the writers' default, 0 the update "
                "at the server's priority. The server shares the 2 cores with the update (DuckDB runs a thread "
                "per core): at niceness 10 the update yields it to a saturated server and takes longer, the "
                "server comes first. The lookup store is in WAL mode, so the update's commit does not lock the "
                "readers out: with the rollback journal it had before (commit 94adb2d and earlier), a reader "
                "waited the whole commit (about 100 ms at 100,000 units), and the lookups' p99 during an update "
                "was 69 to 100 ms there. Between a day's publication and the end of the store's refresh of that day the "
                "store answers the previous state (state.json `lookup_grace`, while the writer is alive). "
                "Errors are wrk's count of 4xx/5xx answers: the établissements were sampled before the update, "
                "and a day closes units as doublons (301) or makes them non-diffusible (451)"
                + (
                    ": after it they answer "
                    + ", ".join(f"{n:,} × {code}" for code, n in during[0]["statuses_after"].items())
                    + "."
                    if "statuses_after" in during[0]
                    else "."
                ),
            ]
        lines += [
            "",
            "The quotas are the real APIs' published limits as requests per second: API Entreprise 250/min "
            "(4.2/s), recherche-entreprises 7/s per IP, INSEE API Sirene 30/min (0.5/s); the ratios say how "
            "many such quotas one server replaces.",
            "",
        ]
    if not runs:
        lines.append("No results yet.")
    return lines


_ROW_NAMES = {
    "v3_etablissements": "`/v3/insee/sirene/etablissements/{siret}`",
    "v3_unites_legales": "`/v3/insee/sirene/unites_legales/{siren}`",
    "search_top25": "`/search?q=...&per_page=25`",
}


def _row_name(r: dict) -> str:
    scenario = r["scenario"].removesuffix("_during_update")
    label = _ROW_NAMES.get(scenario, scenario)
    if scenario == r["scenario"]:
        return label
    if "writer_nice" in r:
        return f"{label} during `mirror update` (`MIRROR_NICE={r['writer_nice']}`)"
    return f"{label} during `mirror update` (at the server's priority)"  # before the writers' niceness


def write_section(report: Path, results_dir: Path) -> None:
    """Replaces (or appends) the HTTP section of docs/BENCHMARKS.md."""
    replace_section(report, SECTION, render_section(results_dir))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=100_000)
    parser.add_argument("--duration", type=int, default=10, help="Seconds of each measured wrk run.")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads.")
    parser.add_argument("--repeat", type=int, default=2, help="Measured runs per row (the best is shown).")
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[1, 2], help="mirror serve --workers values."
    )
    parser.add_argument("--cache", type=Path, default=ROOT / ".bench-cache")
    parser.add_argument(
        "--during-update",
        action="store_true",
        help="Also the lookups and searches while `mirror update` applies days (at the writers' default "
        "niceness, then at MIRROR_NICE=0).",
    )
    parser.add_argument("--note", default="", help="a sentence the report prints after the machine line")
    args = parser.parse_args(argv)
    cache = args.cache / f"http-{args.scale}"
    cache.mkdir(parents=True, exist_ok=True)
    res = bench(
        args.scale, cache, args.duration, args.connections, args.threads, args.workers, args.during_update,
        args.repeat,
    )  # fmt: skip
    results_dir = ROOT / "docs" / "bench"
    out = results_dir / f"http-{args.scale}.json"
    if not args.during_update and out.is_file():
        # The rows during `mirror update` (a sync of their own and three update days: the longest part) are
        # kept from the previous run, each labelled with the commit that measured it.
        previous = json.loads(out.read_text())
        res["results"] += [
            {**r, "commit": r.get("commit", previous["commit"])}
            for r in previous["results"]
            if "update_seconds" in r
        ]
    if args.note:
        res["note"] = args.note
    out.write_text(json.dumps(res, indent=1, default=str))
    log(f"wrote {out}")
    write_section(ROOT / "docs" / "BENCHMARKS.md", results_dir)
    log("docs/BENCHMARKS.md: HTTP server section rebuilt")


if __name__ == "__main__":
    main()
