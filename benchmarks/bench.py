"""Benchmarks: `python -m benchmarks.bench --scale N` (what `make bench SCALE=N` runs).

Data is generated once per scale into a cache folder (`.bench-cache/scale-N/`) and reused. Each
operation runs in its own subprocess, so that its wall time and its peak memory (ru_maxrss of that
child, from os.wait4) are its own; repeated operations report median, min and max. Results are
kept per scale in `docs/bench/results-<N>.json`; `docs/BENCHMARKS.md` and the scaling chart are
rebuilt from every results file present, so runs at several scales add up.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from mirror.core.schema import ETABLISSEMENTS, UNITES_LEGALES

REPO_DIR = Path(__file__).resolve().parent.parent  # the checkout: docs/ and .bench-cache/ live there
DOCS = REPO_DIR / "docs"
RESULTS_DIR = DOCS / "bench"
REPORT = DOCS / "BENCHMARKS.md"
DEFAULT_CACHE = REPO_DIR / ".bench-cache"
STOCK_MONTH = "2026-10"
INSEE_RATE_PER_MINUTE = 30  # published limit of the INSEE API Sirene, per key
INSEE_PAGE_SIZE = 1000  # nombre=1000 per request on multi-criteria searches

# Targets from the issues: (operation key, limit in seconds or MB, unit, where it comes from).
TARGETS = [
    ("generate_ul_etab", 15 * 60, "s", "issue 2: national generation of UL + établissements"),
    ("load", 10 * 60, "s", "issue 3: national load"),
    ("load_rss", 8 * 1024, "MB", "issue 3: peak memory of the national load"),
    ("update_day", 10, "s", "issue 4: one national day of changes, local work"),
    ("filter_after_deltas_ratio", 1.5, "x", "issue 4: filter after 30 days of deltas vs fresh"),
    ("lookup_api_median", 0.050, "s", "issue 5: one lookup through the Python API (median)"),
    ("documents_1m", 60, "s", "issue 5: 1M documents as JSON Lines"),
    ("standard_filter", 1, "s", "issue 6: NAF + département + tranche + active"),
    ("export_csv_1m", 15, "s", "issue 6: export of 1M rows to CSV"),
    ("export_parquet_1m", 8, "s", "issue 6: export of 1M rows to Parquet"),
    ("batch_1m", 30, "s", "issue 6: batch enrichment of 1M SIRENs to CSV"),
]


# ------------------------------------------------------------------------------------------------
# Measuring
# ------------------------------------------------------------------------------------------------


def run_with_rusage(cmd: list[str], env: dict | None = None, cwd: Path | None = None) -> dict:
    """Runs a command; returns its wall seconds, its own peak RSS in MB (os.wait4) and its output."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=full_env, cwd=cwd, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark step failed ({proc.returncode}): {' '.join(cmd)}\n{stderr[-2000:]}")
    return {"seconds": seconds, "max_rss_mb": usage.ru_maxrss / 1024, "stdout": stdout, "stderr": stderr}


def summarize(samples: list[dict]) -> dict:
    """Median / min / max of the seconds of repeated runs, and the peak RSS over them."""
    secs = [s["seconds"] for s in samples]
    res = {"median": statistics.median(secs), "min": min(secs), "max": max(secs), "runs": len(secs)}
    rss = [s["max_rss_mb"] for s in samples if "max_rss_mb" in s]
    if rss:
        res["max_rss_mb"] = max(rss)
    return res


def repeat(n: int, cmd: list[str], env: dict | None = None) -> dict:
    return summarize([run_with_rusage(cmd, env=env) for _ in range(n)])


def du_mb(path: Path) -> float:
    total = 0
    for p in path.rglob("*"):
        if p.is_file() and not p.is_symlink():
            total += p.stat().st_size
    return total / 1e6


def machine_info() -> dict:
    mem_kb = 0
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    disk = shutil.disk_usage(REPO_DIR)
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO_DIR
        ).stdout.strip()
    except OSError:
        commit = "unknown"
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "ram_gb": round(mem_kb / 1024 / 1024, 1),
        "disk_total_gb": round(disk.total / 1e9),
        "disk_free_gb": round(disk.free / 1e9),
        "python": platform.python_version(),
        "commit": commit,
        "date": dt.date.today().isoformat(),
    }


# ------------------------------------------------------------------------------------------------
# Baselines: DuckDB on the raw zipped CSV, and a SQLite row store as the classic mirrors build it
# ------------------------------------------------------------------------------------------------


def _zip_member_fifo(zip_path: Path, tmp: Path):
    """Streams the CSV member of a stock zip into a named pipe; returns (fifo path, writer thread)."""
    import threading

    fifo = tmp / (zip_path.stem + ".csv")
    if fifo.exists():
        fifo.unlink()
    os.mkfifo(fifo)

    def pump():
        with zipfile.ZipFile(zip_path) as zf, zf.open(zf.namelist()[0]) as src, open(fifo, "wb") as dst:
            try:
                shutil.copyfileobj(src, dst, 1 << 20)
            except BrokenPipeError:
                pass

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    return fifo, thread


def raw_csv_query(zip_path: Path, sql: str, params: list | None = None) -> float:
    """Seconds DuckDB needs to answer `sql` (with {src} = the CSV) straight from the zipped stock."""
    import duckdb

    with tempfile.TemporaryDirectory() as tmp:
        fifo, thread = _zip_member_fifo(zip_path, Path(tmp))
        con = duckdb.connect()
        src = f"read_csv('{fifo}', all_varchar=true, header=true, quote='\"', escape='\"')"
        t0 = time.perf_counter()
        con.execute(sql.format(src=src), params or []).fetchall()
        seconds = time.perf_counter() - t0
        con.close()
        thread.join(timeout=5)
    return seconds


SQLITE_INDEXES = {
    "unites_legales": ["siren", "activitePrincipaleUniteLegale"],
    "etablissements": ["siren", "siret", "activitePrincipaleEtablissement", "departement"],
}


def sqlite_load(stock: Path, db_path: Path) -> float:
    """Loads UL and établissements into SQLite row tables with the classic indexes; returns seconds."""
    import csv
    import io

    if db_path.exists():
        db_path.unlink()
    t0 = time.perf_counter()
    con = sqlite3.connect(db_path)
    con.execute("PRAGMA journal_mode=OFF")
    con.execute("PRAGMA synchronous=OFF")
    for spec in (UNITES_LEGALES, ETABLISSEMENTS):
        cols = list(spec.columns) + (["departement"] if spec is ETABLISSEMENTS else [])
        con.execute(f"CREATE TABLE {spec.key} ({', '.join(cols)})")
        insert = f"INSERT INTO {spec.key} VALUES ({', '.join('?' * len(cols))})"
        with zipfile.ZipFile(stock / spec.zip_name) as zf, zf.open(spec.csv_member) as raw:
            reader = csv.reader(io.TextIOWrapper(raw, encoding="utf-8", newline=""))
            header = next(reader)
            idx = [header.index(c) if c in header else None for c in spec.columns]
            commune = header.index("codeCommuneEtablissement") if spec is ETABLISSEMENTS else None
            batch = []
            for rec in reader:
                row = [rec[i] if i is not None else "" for i in idx]
                if commune is not None:
                    code = rec[commune]
                    row.append(code[:3] if code[:2] in ("97", "98") else code[:2])
                batch.append(row)
                if len(batch) >= 50_000:
                    con.executemany(insert, batch)
                    batch.clear()
            con.executemany(insert, batch)
        for col in SQLITE_INDEXES[spec.key]:
            con.execute(f"CREATE INDEX idx_{spec.key}_{col} ON {spec.key} ({col})")
        con.commit()
    con.close()
    return time.perf_counter() - t0


def sqlite_query(db_path: Path, sql: str, params: list) -> float:
    con = sqlite3.connect(db_path)
    t0 = time.perf_counter()
    con.execute(sql, params).fetchall()
    seconds = time.perf_counter() - t0
    con.close()
    return seconds


def insee_api_seconds(
    rows: int, rate_per_minute: float = INSEE_RATE_PER_MINUTE, per_request: int = 1
) -> float:
    """A COMPUTATION, not a measurement: seconds the INSEE API needs at its published rate limit."""
    requests_needed = -(-rows // per_request)
    return requests_needed * 60.0 / rate_per_minute


# ------------------------------------------------------------------------------------------------
# Operations measured in-process (each run in its own `python -m benchmarks.bench --op ...` child)
# ------------------------------------------------------------------------------------------------


def _connect(data_dir: Path):
    from mirror.catalog.build import connect

    return connect(data_dir, read_only=True)


def standard_filter_args(prep: dict) -> dict:
    """The issue's standard filter: NAF + département + tranche d'effectif + active."""
    return {
        "naf": [prep["top_naf"]],
        "departements": [prep["top_departement"]],
        "tranches": ["01", "02", "03", "11"],
        "etat": "active",
    }


def op_lookup(data_dir: Path, n: int) -> dict:
    """Median time of get_document (v3) over n random SIRENs, connection already open."""
    from mirror.serve.documents import get_document

    con = _connect(data_dir)
    sirens = [
        r[0] for r in con.execute(f"SELECT siren FROM unites_legales USING SAMPLE {int(n)} ROWS").fetchall()
    ]
    for s in sirens[:10]:  # warm-up: catalog, metadata caches
        get_document(con, s, "v3")
    times = []
    statuses: dict[int, int] = {}
    for s in sirens:
        t0 = time.perf_counter()
        status, _doc = get_document(con, s, "v3")
        times.append(time.perf_counter() - t0)
        statuses[status] = statuses.get(status, 0) + 1
    times.sort()
    sirets = [
        r[0] for r in con.execute(f"SELECT siret FROM etablissements USING SAMPLE {int(n)} ROWS").fetchall()
    ]
    siret_times = []
    for s in sirets:
        t0 = time.perf_counter()
        get_document(con, s, "v3")
        siret_times.append(time.perf_counter() - t0)
    siret_times.sort()
    return {
        "siret_median": statistics.median(siret_times),
        "siret_p95": siret_times[int(len(siret_times) * 0.95) - 1],
        "n": len(times),
        "median": statistics.median(times),
        "p95": times[int(len(times) * 0.95) - 1],
        "min": times[0],
        "max": times[-1],
        "statuses": statuses,
    }


def op_filter(data_dir: Path, prep: dict, repeats: int) -> dict:
    """The standard filter (count of matching établissements) through the export's query builder."""
    from mirror.export.exporter import build_query, build_source, count_rows
    from mirror.export.filters import Filters

    con = _connect(data_dir)
    query = build_query(con, build_source(con, "etablissement"), Filters(**standard_filter_args(prep)))
    times, rows = [], 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        rows = count_rows(con, query)
        times.append(time.perf_counter() - t0)
    return {"rows": rows, "median": statistics.median(times), "min": min(times), "max": max(times)}


def op_raw_csv(stock: Path, prep: dict) -> dict:
    """Baseline (a): DuckDB answering the same questions straight from the zipped CSV stock."""
    f = standard_filter_args(prep)
    dep = "CASE WHEN left(codeCommuneEtablissement, 2) IN ('97', '98') THEN left(codeCommuneEtablissement, 3) ELSE left(codeCommuneEtablissement, 2) END"
    return {
        "siren_lookup": raw_csv_query(
            stock / UNITES_LEGALES.zip_name, "SELECT * FROM {src} WHERE siren = ?", [prep["sample_siren"]]
        ),
        "departement_filter": raw_csv_query(
            stock / ETABLISSEMENTS.zip_name,
            f"SELECT count(*) FROM {{src}} WHERE {dep} = ?",
            [f["departements"][0]],
        ),
        "standard_filter": raw_csv_query(
            stock / ETABLISSEMENTS.zip_name,
            "SELECT count(*) FROM {src} WHERE activitePrincipaleEtablissement = ? AND "
            f"{dep} = ? AND trancheEffectifsEtablissement IN ('01', '02', '03', '11') "
            "AND etatAdministratifEtablissement = 'A'",
            [f["naf"][0], f["departements"][0]],
        ),
    }


def op_mirror_queries(data_dir: Path, prep: dict) -> dict:
    """The same siren lookup and département filter as the raw-CSV baseline, on the mirror's views."""
    con = _connect(data_dir)
    out = {}
    for key, sql, params in (
        ("siren_lookup", "SELECT * FROM unites_legales WHERE siren = ?", [prep["sample_siren"]]),
        (
            "departement_filter",
            "SELECT count(*) FROM etablissements WHERE departement = ?",
            [prep["top_departement"]],
        ),
    ):
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            con.execute(sql, params).fetchall()
            times.append(time.perf_counter() - t0)
        out[key] = statistics.median(times)
    return out


def op_sqlite(stock: Path, cache: Path, prep: dict) -> dict:
    """Baseline (b): SQLite row store with indexes (load, then the same queries)."""
    db = cache / "baseline.sqlite"
    load_s = sqlite_load(stock, db)
    f = standard_filter_args(prep)
    res = {
        "load": load_s,
        "size_mb": db.stat().st_size / 1e6,
        "siren_lookup": sqlite_query(
            db, "SELECT * FROM unites_legales WHERE siren = ?", [prep["sample_siren"]]
        ),
        "departement_filter": sqlite_query(
            db, "SELECT count(*) FROM etablissements WHERE departement = ?", [f["departements"][0]]
        ),
        "standard_filter": sqlite_query(
            db,
            "SELECT count(*) FROM etablissements WHERE activitePrincipaleEtablissement = ? AND departement = ? "
            "AND trancheEffectifsEtablissement IN ('01', '02', '03', '11') AND etatAdministratifEtablissement = 'A'",
            [f["naf"][0], f["departements"][0]],
        ),
    }
    db.unlink()
    return res


# ------------------------------------------------------------------------------------------------
# Daily updates: a national-size day of INSEE records applied through the real `mirror update` code,
# with the HTTP client replaced by one serving prebuilt records (the measure is the local work).
# ------------------------------------------------------------------------------------------------

DAY_UL, DAY_ETAB = 20_000, 50_000  # a national day of changes (issue 4)


def _as_csv_strings(table: str, alias: str = "t") -> str:
    """SELECT list turning a typed view's columns back into stock-file strings (as the CSV holds them)."""
    from mirror.core.schema import STOCK_FILES_BY_KEY, typed_column_type

    out = []
    for col in STOCK_FILES_BY_KEY[table].columns:
        ref, kind = f'{alias}."{col}"', typed_column_type(table, col)
        if kind == "DATE":
            expr = f"strftime({ref}, '%Y-%m-%d')"
        elif kind == "TIMESTAMP":
            expr = f"strftime({ref}, '%Y-%m-%dT%H:%M:%S')"
        elif kind == "BOOLEAN":
            expr = f"CASE WHEN {ref} THEN 'true' WHEN NOT {ref} THEN 'false' END"
        else:
            expr = f"CAST({ref} AS VARCHAR)"
        out.append(f"coalesce({expr}, '') AS \"{col}\"")
    return ", ".join(out)


def day_records(con, day: dt.date, seed: int) -> dict[str, list[dict]]:
    """INSEE API records of ~DAY_UL units and ~DAY_ETAB établissements changed on `day`: rows of the
    mirror (siren ranges picked at random), stamped with the day, a tenth with a new NAF code."""
    from mirror.core.insee_records import etablissement_record, unite_legale_record

    rng = random.Random(seed)
    lo_s, hi_s, n_ul, n_et = con.execute(
        "SELECT min(siren)::BIGINT, max(siren)::BIGINT, (SELECT count(*) FROM unites_legales), "
        "(SELECT count(*) FROM etablissements) FROM unites_legales"
    ).fetchone()
    ranges = 20
    width = int((hi_s - lo_s) * (DAY_ETAB / n_et) / ranges) + 1
    bounds = []
    for _ in range(ranges):
        a = rng.randrange(lo_s, max(lo_s + 1, hi_s - width))
        bounds.append((f"{a:09d}", f"{a + width:09d}"))
    where = " OR ".join(f"(t.siren BETWEEN '{a}' AND '{b}')" for a, b in bounds)
    stamp = f"{day.isoformat()}T03:{rng.randrange(60):02d}:{rng.randrange(60):02d}.{rng.randrange(1000):03d}"

    def rows(table: str, extra: str = "") -> list[dict]:
        rel = con.execute(f"SELECT {_as_csv_strings(table)} FROM {table} AS t WHERE ({where}) {extra}")
        cols = [d[0] for d in rel.description]
        return [dict(zip(cols, r, strict=True)) for r in rel.fetchall()]

    ul = rows("unites_legales", f"ORDER BY t.siren LIMIT {DAY_UL}")
    ul_by_siren = {r["siren"]: r for r in rows("unites_legales")}
    et = rows("etablissements", f"LIMIT {DAY_ETAB}")
    ulh: dict[str, list[dict]] = {}
    for h in rows("unites_legales_historique"):
        ulh.setdefault(h["siren"], []).append(h)
    eth: dict[str, list[dict]] = {}
    for h in rows("etablissements_historique"):
        eth.setdefault(h["siret"], []).append(h)
    out: dict[str, list[dict]] = {"unites_legales": [], "etablissements": [], "liens_succession": []}
    for i, r in enumerate(ul):
        r["dateDernierTraitementUniteLegale"] = stamp
        if i % 10 == 0:
            r["activitePrincipaleUniteLegale"] = "62.01Z"
            for h in ulh.get(r["siren"], []):
                if not h["dateFin"]:
                    h["activitePrincipaleUniteLegale"] = "62.01Z"
        out["unites_legales"].append(unite_legale_record(r, ulh.get(r["siren"], [])))
    for i, r in enumerate(et):
        r["dateDernierTraitementEtablissement"] = stamp
        if i % 10 == 0:
            r["activitePrincipaleEtablissement"] = "62.01Z"
            for h in eth.get(r["siret"], []):
                if not h["dateFin"]:
                    h["activitePrincipaleEtablissement"] = "62.01Z"
        out["etablissements"].append(
            etablissement_record(r, eth.get(r["siret"], []), ul_by_siren.get(r["siren"]))
        )
    return out


class PrebuiltInseeClient:
    """Stands in for mirror.update.insee_client.InseeClient: serves prebuilt records, publishes through `day`."""

    records: dict[str, list[dict]] = {}
    day: dt.date = dt.date(2026, 10, 1)

    def __init__(self, *args, **kwargs):
        self.requests_made = 0

    def informations(self) -> dict:
        ready = f"{(self.day + dt.timedelta(days=1)).isoformat()}T07:00:00.000"
        names = ("Unités Légales", "Établissements", "Liens de succession")
        return {
            "datesDernieresMisesAJourDesDonnees": [
                {
                    "collection": n,
                    "dateDerniereMiseADisposition": ready,
                    "dateDernierTraitementMaximum": ready,
                }
                for n in names
            ]
        }

    def iter_kind(self, kind: str, q: str):
        from mirror.update.insee_client import kind_key

        records = self.records.get(kind_key(kind), [])
        self.requests_made += max(1, -(-len(records) // INSEE_PAGE_SIZE))
        yield from records


def op_update(data_dir: Path, prep: dict, days: int) -> dict:
    """Applies `days` national-size days through mirror.update.run (records prebuilt, untimed); measures each
    day's local work and the standard filter before and after; removes the delta days afterwards."""
    from mirror.catalog import build as catalog
    from mirror.core import datadir as snapshot
    from mirror.deltas import store as deltas
    from mirror.export.exporter import build_query, build_source, count_rows
    from mirror.export.filters import Filters
    from mirror.update import insee_client as insee
    from mirror.update import run as update

    os.environ.setdefault("INSEE_API_KEY", "bench")
    insee.InseeClient = PrebuiltInseeClient  # the only change: no HTTP

    def filter_seconds() -> float:
        con = _connect(data_dir)
        query = build_query(con, build_source(con, "etablissement"), Filters(**standard_filter_args(prep)))
        count_rows(con, query)  # warm-up
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            count_rows(con, query)
            times.append(time.perf_counter() - t0)
        con.close()
        return statistics.median(times)

    fresh = filter_seconds()
    state = snapshot.read_state(data_dir)
    first = dt.date.fromisoformat(state["snapshot"]["month"] + "-01")
    per_day, rows = [], []
    reader = _connect(data_dir)
    for i in range(days):
        day = first + dt.timedelta(days=i)
        PrebuiltInseeClient.records = day_records(reader, day, seed=1000 + i)
        PrebuiltInseeClient.day = day
        rows.append({k: len(v) for k, v in PrebuiltInseeClient.records.items()})
        t0 = time.perf_counter()
        update.run_update(data_dir, since=day, until=day, progress=False)
        per_day.append(time.perf_counter() - t0)
        if i == 0:  # the first day switches the catalog to merged views: reopen
            reader.close()
            reader = _connect(data_dir)
    reader.close()
    after = filter_seconds()
    applied = deltas.list_days(data_dir)
    deltas.remove_days(data_dir, applied)
    snapshot.write_state(
        data_dir,
        {
            k: v
            for k, v in snapshot.read_state(data_dir).items()
            if not k.startswith("delta") and k != "last_update"
        },
    )
    catalog.rebuild(data_dir, deltas.compact_for(data_dir))
    # the merged versions the days left behind (superseded ones are otherwise kept an hour)
    shutil.rmtree(deltas.merged_root(data_dir), ignore_errors=True)
    return {
        "day_seconds": per_day,
        "median": statistics.median(per_day),
        "min": min(per_day),
        "max": max(per_day),
        "records_per_day": rows[0],
        "filter_fresh": fresh,
        "filter_after": after,
        "ratio": after / fresh,
        "days": days,
    }


def prepare(data_dir: Path, cache: Path, n_ids: int) -> dict:
    """Chooses the benchmark's parameters from the data once per scale and writes the identifier lists."""
    path = cache / "prep.json"
    if path.exists():
        return json.loads(path.read_text())
    con = _connect(data_dir)
    top_naf = con.execute(
        "SELECT activitePrincipaleEtablissement FROM etablissements WHERE etatAdministratifEtablissement = 'A' "
        "GROUP BY 1 ORDER BY count(*) DESC LIMIT 1"
    ).fetchone()[0]
    deps = con.execute(
        "SELECT departement, count(*) FROM etablissements WHERE departement IS NOT NULL GROUP BY 1 ORDER BY 2 DESC"
    ).fetchall()
    # Départements whose établissements add up to about 1M rows (or all of them at small scales).
    chosen, total = [], 0
    for dep, n in reversed(deps):
        if total + n > 1_000_000:
            continue
        chosen.append(dep)
        total += n
    ids = cache / "sirens-1m.txt"
    con.execute(
        f"COPY (SELECT siren FROM (SELECT siren FROM unites_legales) USING SAMPLE {int(n_ids)} ROWS "
        "(reservoir, 42)) TO '{ids}' (HEADER false)".replace("{ids}", str(ids))
    )
    if sum(1 for _ in open(ids)) < n_ids:  # fewer units than identifiers wanted: draw with replacement
        con.execute(
            f"COPY (SELECT siren FROM unites_legales, range(CAST(ceil({n_ids} / (SELECT count(*) FROM unites_legales)) "
            f"AS BIGINT)) ORDER BY hash(siren, range) LIMIT {int(n_ids)}) TO '{ids}' (HEADER false)"
        )
    prep = {
        "top_naf": top_naf,
        "top_departement": deps[0][0],
        "export_departements": chosen,
        "export_rows": total,
        # A diffusible unit: a partially diffusible one answers 451 (exit 4) and would fail the CLI step.
        "sample_siren": con.execute(
            "SELECT siren FROM (SELECT siren FROM unites_legales WHERE statutDiffusionUniteLegale = 'O') "
            "USING SAMPLE 1 ROWS"
        ).fetchone()[0],
        "ids_file": str(ids),
        "n_ids": n_ids,
    }
    path.write_text(json.dumps(prep, indent=2))
    return prep


# ------------------------------------------------------------------------------------------------
# Orchestration
# ------------------------------------------------------------------------------------------------

PY = sys.executable


def mirror_cmd(*args: str) -> list[str]:
    return [PY, "-m", "mirror", *args]


def op_cmd(op: str, data_dir: Path, cache: Path, **kw) -> list[str]:
    cmd = [PY, "-m", "benchmarks.bench", "--op", op, "--data-dir", str(data_dir), "--cache", str(cache)]
    for k, v in kw.items():
        cmd += [f"--{k.replace('_', '-')}", str(v)]
    return cmd


def measured_op(op: str, data_dir: Path, cache: Path, **kw) -> dict:
    """Runs an in-process operation in a child; merges its own JSON report with its wall time and RSS."""
    res = run_with_rusage(op_cmd(op, data_dir, cache, **kw))
    report = json.loads(res["stdout"].strip().splitlines()[-1])
    report["process_seconds"] = res["seconds"]
    report["max_rss_mb"] = res["max_rss_mb"]
    return report


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def generate_and_load(cache: Path, scale: int, reps: int) -> dict:
    """The stock generated at `scale` into `cache`/stock and loaded into `cache`/data, each once per cache
    (their measures saved beside them); returns the `generate` and `load` measures."""
    stock, data = cache / "stock", cache / "data"
    cache.mkdir(parents=True, exist_ok=True)
    ops: dict = {}
    gen_json = cache / "generate.json"
    if not (gen_json.exists() and (stock / ETABLISSEMENTS.zip_name).exists()):
        log(f"generating the stock at scale {scale:,} into {stock}")
        r = run_with_rusage(
            mirror_cmd(
                "generate",
                "--out",
                str(stock),
                "--month",
                STOCK_MONTH,
                "--scale",
                str(scale),
                "--seed",
                "1",
                "--format",
                "zip",
                "--no-progress",
            )
        )
        gen_json.write_text(
            json.dumps(
                {
                    "seconds": r["seconds"],
                    "max_rss_mb": r["max_rss_mb"],
                    "summary": r["stdout"].strip()[-2000:],
                }
            )
        )
    ops["generate"] = json.loads(gen_json.read_text())
    ops["generate"]["stock_zip_mb"] = du_mb(stock)

    load_json = cache / "load.json"
    if load_json.exists() and (data / "sirene.duckdb").exists():
        ops["load"] = json.loads(load_json.read_text())  # measured when this cache was filled
    else:
        log("load")
        samples = []
        for _ in range(reps):
            samples.append(
                run_with_rusage(
                    mirror_cmd(
                        "load",
                        str(stock),
                        "--data-dir",
                        str(data),
                        "--month",
                        STOCK_MONTH,
                        "--force",
                        "--keep",
                        "1",
                        "--quiet",
                    )
                )
            )
        ops["load"] = summarize(samples)
        ops["load"]["summary"] = samples[-1]["stdout"].strip()
        ops["load"]["disk_mb"] = du_mb(data)
        load_json.write_text(json.dumps(ops["load"]))

    return ops


def run_bench(
    scale: int, cache_root: Path, repeats: int, sqlite_max_scale: int, n_ids: int, days: int = 30
) -> dict:
    cache = cache_root / f"scale-{scale}"
    data = cache / "data"
    res: dict = {"scale": scale, "machine": machine_info(), "ops": {}, "baselines": {}}
    ops, base = res["ops"], res["baselines"]
    reps = repeats if scale <= 1_000_000 else 1

    ops.update(generate_and_load(cache, scale, reps))
    prep = prepare(data, cache, n_ids)
    res["prep"] = {k: v for k, v in prep.items() if k != "ids_file"}

    log("lookups (Python API, CLI)")
    ops["lookup_api"] = measured_op("lookup", data, cache, n=1000)
    ops["lookup_cli"] = repeat(5, mirror_cmd("get", prep["sample_siren"], "--data-dir", str(data)))

    log("standard filter")
    ops["standard_filter"] = measured_op("filter", data, cache, repeats=5)
    ops["mirror_queries"] = measured_op("mirror-queries", data, cache)

    out = cache / "out"
    out.mkdir(exist_ok=True)
    dep_args = [a for d in prep["export_departements"] for a in ("--departement", d)]
    for fmt in ("csv", "parquet"):
        log(f"export {prep['export_rows']:,} rows to {fmt}")
        ops[f"export_{fmt}"] = repeat(
            reps,
            mirror_cmd(
                "export", "--all", *dep_args, "-o", str(out / f"export.{fmt}"), "-q", "--data-dir", str(data)
            ),
        )
        ops[f"export_{fmt}"]["rows"] = prep["export_rows"]
    log(f"batch enrichment of {n_ids:,} SIRENs to CSV")
    ops["batch_csv"] = repeat(
        reps,
        mirror_cmd("batch", prep["ids_file"], "-o", str(out / "batch.csv"), "-q", "--data-dir", str(data)),
    )
    log(f"documents (v3 JSON Lines) for {n_ids:,} SIRENs")
    ops["documents_jsonl"] = repeat(
        reps,
        mirror_cmd("batch", prep["ids_file"], "-o", str(out / "docs.jsonl"), "-q", "--data-dir", str(data)),
    )
    shutil.rmtree(out, ignore_errors=True)

    log(f"daily updates: {days} national-size days, then the standard filter over the deltas")
    upd = measured_op("update", data, cache, days=days)
    ops["update_day"] = {k: upd[k] for k in ("median", "min", "max", "max_rss_mb", "records_per_day")}
    ops["update_day"]["note"] = update_note(upd["records_per_day"], days)
    ops["filter_after_deltas"] = {k: upd[k] for k in ("filter_fresh", "filter_after", "ratio", "days")}

    log("baseline: DuckDB on the raw zipped CSV")
    base["raw_csv"] = measured_op("raw-csv", data, cache)
    sqlite_json = cache / "sqlite.json"
    if scale <= sqlite_max_scale and sqlite_json.exists():
        base["sqlite"] = json.loads(sqlite_json.read_text())  # depends on the cached stock only
    elif scale <= sqlite_max_scale:
        log("baseline: SQLite row store")
        base["sqlite"] = measured_op("sqlite", data, cache)
        sqlite_json.write_text(json.dumps(base["sqlite"]))
    else:
        base["sqlite"] = {"skipped": f"not run above {sqlite_max_scale:,} units (hours at this scale)"}
    base["insee_api"] = {
        "computed": True,
        "lookups_1_per_request_s": insee_api_seconds(n_ids),
        "paged_1000_per_request_s": insee_api_seconds(n_ids, per_request=INSEE_PAGE_SIZE),
    }
    return res


def update_note(records_per_day: dict, days: int) -> str:
    return (
        f"{records_per_day.get('unites_legales', 0):,} UL + {records_per_day.get('etablissements', 0):,} "
        f"établissements a day, median of {days} days. Local work: converting, typing, counting and writing "
        "the day, appending it to the merged delta version and re-pointing the catalog's base views; the "
        "maximum is a day that also folds the recent delta files into the base"
    )


def write_results(res: dict) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"results-{res['scale']}.json"
    path.write_text(json.dumps(res, indent=2, default=str))
    return path


def op_main(args) -> None:
    data_dir, cache = Path(args.data_dir), Path(args.cache)
    prep_path = cache / "prep.json"
    prep = json.loads(prep_path.read_text()) if prep_path.exists() else {}
    if args.op == "lookup":
        out = op_lookup(data_dir, args.n)
    elif args.op == "filter":
        out = op_filter(data_dir, prep, args.repeats)
    elif args.op == "mirror-queries":
        out = op_mirror_queries(data_dir, prep)
    elif args.op == "raw-csv":
        out = op_raw_csv(cache / "stock", prep)
    elif args.op == "update":
        out = op_update(data_dir, prep, args.days)
    elif args.op == "sqlite":
        out = op_sqlite(cache / "stock", cache, prep)
    else:
        raise SystemExit(f"unknown op {args.op}")
    print(json.dumps(out, default=str))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench", description=__doc__.splitlines()[0])
    p.add_argument(
        "--scale", type=int, default=100_000, help="number of unités légales (30000000 = national)"
    )
    p.add_argument("--cache", default=str(DEFAULT_CACHE), help="cache folder for generated data")
    p.add_argument("--repeats", type=int, default=3, help="runs per operation (1 above 1M units)")
    p.add_argument("--ids", type=int, default=1_000_000, help="identifiers for batch and documents")
    p.add_argument(
        "--sqlite-max-scale", type=int, default=30_000_000, help="skip the SQLite baseline above this scale"
    )
    p.add_argument("--report-only", action="store_true", help="rebuild docs/BENCHMARKS.md from saved results")
    p.add_argument("--op", help=argparse.SUPPRESS)
    p.add_argument("--data-dir", help=argparse.SUPPRESS)
    p.add_argument("--n", type=int, default=1000, help=argparse.SUPPRESS)
    p.add_argument("--days", type=int, default=30, help="days of deltas for the update benchmark")
    args = p.parse_args(argv)
    if args.op:
        op_main(args)
        return
    if not args.report_only:
        res = run_bench(
            args.scale, Path(args.cache), args.repeats, args.sqlite_max_scale, args.ids, args.days
        )
        log(f"results: {write_results(res)}")
    from benchmarks.report import write_report

    log(f"report: {write_report(RESULTS_DIR, REPORT)}")


if __name__ == "__main__":
    main()
