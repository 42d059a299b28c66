"""Spark local beside DuckDB on the same mirror: the standard filter (a count) and a 1M-row export.

    MIRROR_LOOKUP_STORE=off python -m benchmarks.spark --scale 1000000 [--cache data/bench]

Uses the cache layout of `make bench` (`<cache>/scale-N/`): the stock is generated and loaded there when it
is missing (benchmarks.bench.generate_and_load; the lookup store is not needed here, so the switch above
saves its build), and prep.json gives the standard filter and the départements adding up to about 1M
établissements (benchmarks.bench.prepare). Both engines run the export's own query
(mirror.export.build_query; transpiled to Spark by sqlglot, the same parameters bound), interleaved
(DuckDB, Spark, DuckDB, Spark...) so that a change of machine load hits both; each engine exports to Parquet
(zstd) in-process. The Spark session (local[*]) is started once and its start-up and `register` times are
reported apart. Results go to docs/bench/spark-N.json and the "Spark local" section of docs/BENCHMARKS.md
(replaced in place).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.bench import (
    DEFAULT_CACHE,
    REPORT,
    RESULTS_DIR,
    generate_and_load,
    log,
    machine_info,
    prepare,
    standard_filter_args,
)
from benchmarks.report import replace_section
from mirror.core.config import LOOKUP_STORE_ENV

SECTION = "## Spark local beside DuckDB"
OPS = (("filter", "standard filter (NAF + département + tranches + active), count"), ("export", "export"))


def _queries(con, prep: dict):
    from mirror.export.exporter import build_query, build_source
    from mirror.export.filters import Filters

    source = build_source(con, "etablissement")
    count = build_query(con, source, Filters(**standard_filter_args(prep)))
    export = build_query(con, source, Filters(departements=prep["export_departements"], etat="all"))
    return count, export


def _spark_session(memory: str):
    from pyspark.sql import SparkSession

    spark = (
        SparkSession.builder.master("local[*]")
        .appName("sirene-mirror-bench")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.memory", memory)
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def run(data: Path, prep: dict, repeats: int, memory: str) -> dict:
    import sqlglot

    from mirror.catalog.build import connect
    from mirror.engines.spark import register

    con = connect(data)
    count, export = _queries(con, prep)
    t0 = time.perf_counter()
    spark = _spark_session(memory)
    started = time.perf_counter() - t0
    t0 = time.perf_counter()
    register(spark, data)
    registered = time.perf_counter() - t0
    count_sql = count.count_sql or f"SELECT count(*) FROM ({count.sql}) AS q"
    (spark_count,) = sqlglot.transpile(count_sql, read="duckdb", write="spark")
    (spark_export,) = sqlglot.transpile(export.sql, read="duckdb", write="spark")
    out = Path(tempfile.mkdtemp(prefix="mirror-spark-bench-", dir=data.parent))
    times: dict[str, list[float]] = {f"{e}_{op}": [] for op, _ in OPS for e in ("duckdb", "spark")}
    rows: dict[str, set] = {k: set() for k in times}
    try:
        for i in range(repeats):
            log(f"round {i + 1}/{repeats}")
            t0 = time.perf_counter()
            n = con.execute(count_sql, count.params).fetchone()[0]
            times["duckdb_filter"].append(time.perf_counter() - t0)
            rows["duckdb_filter"].add(n)
            t0 = time.perf_counter()
            n = spark.sql(spark_count, args=list(count.params)).collect()[0][0]
            times["spark_filter"].append(time.perf_counter() - t0)
            rows["spark_filter"].add(n)
            target = out / f"duckdb-{i}.parquet"
            t0 = time.perf_counter()
            con.execute(
                f"COPY ({export.sql}) TO '{target}' (FORMAT parquet, COMPRESSION zstd)", export.params
            )
            times["duckdb_export"].append(time.perf_counter() - t0)
            rows["duckdb_export"].add(con.execute(f"SELECT count(*) FROM '{target}'").fetchone()[0])
            target.unlink()
            target = out / f"spark-{i}"
            t0 = time.perf_counter()
            spark.sql(spark_export, args=list(export.params)).write.option("compression", "zstd").parquet(
                str(target)
            )
            times["spark_export"].append(time.perf_counter() - t0)
            rows["spark_export"].add(spark.read.parquet(str(target)).count())
            shutil.rmtree(target)
    finally:
        shutil.rmtree(out, ignore_errors=True)
        spark.stop()
        con.close()
    import pyspark

    return {
        "spark_version": pyspark.__version__,
        "session_start_s": started,
        "register_s": registered,
        "repeats": repeats,
        "driver_memory": memory,
        "times": times,
        "rows": {k: sorted(v) for k, v in rows.items()},
    }


def render_section(res: dict) -> list[str]:
    m = res["machine"]
    la_before = ", ".join(f"{x:.1f}" for x in res["load_average_before"])
    la_after = ", ".join(f"{x:.1f}" for x in res["load_average_after"])
    lines = [
        SECTION,
        "",
        f"Produced by `python -m benchmarks.spark --scale {res['scale']}` (not part of `make bench`): "
        f"scale {res['scale']:,} unités légales (synthetic stock, the snapshot just loaded, no delta day), "
        f"the catalog's views registered in a Spark {res['spark_version']} session in local mode "
        f"(`local[*]`, driver memory {res['driver_memory']}) by `mirror.engines.spark.register`, beside "
        "DuckDB on the same files. Both run the export's own query (mirror.export, transpiled to Spark by "
        "sqlglot, same bound parameters); the export writes Parquet (zstd) from each engine's own process. "
        f"{res['repeats']} rounds, interleaved (DuckDB then Spark in each round); medians, min – max.",
        "",
        f"Date {m['date']}, commit {m['commit']}. Machine: {m['cores']} cores ({m['cpu']}), {m['ram_gb']} GB "
        f"RAM, SHARED with other sessions while it ran: load average (1, 5, 15 min) {la_before} before, "
        f"{la_after} after. Spark session start {res['session_start_s']:.1f} s and `register` "
        f"{res['register_s']:.1f} s (once, not in the times below).",
        "",
        "| operation | rows | DuckDB | Spark local | Spark / DuckDB |",
        "|---|---:|---:|---:|---:|",
    ]
    for op, label in OPS:
        d, s = res["times"][f"duckdb_{op}"], res["times"][f"spark_{op}"]
        (n,) = res["rows"][f"duckdb_{op}"]
        if op == "export":
            label = f"export {n:,} rows to Parquet"
        lines.append(
            f"| {label} | {n:,} | {statistics.median(d):.3f} s ({min(d):.3f} – {max(d):.3f}) | "
            f"{statistics.median(s):.3f} s ({min(s):.3f} – {max(s):.3f}) | "
            f"{statistics.median(s) / statistics.median(d):.1f}x |"
        )
    lines += [
        "",
        "Spark local pays a fixed cost per query (planning, a job per stage, a JVM that shares the two cores "
        "with the Python driver): what it buys is the same views on a cluster, next to tables that do not "
        "fit one machine, not speed on one machine.",
        "",
    ]
    return lines


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.spark", description=__doc__.splitlines()[0])
    p.add_argument("--scale", type=int, default=1_000_000)
    p.add_argument("--cache", default=str(DEFAULT_CACHE))
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--driver-memory", default="4g")
    args = p.parse_args(argv)
    os.environ.setdefault(LOOKUP_STORE_ENV, "off")  # the load's children inherit it
    cache = Path(args.cache).resolve() / f"scale-{args.scale}"
    res: dict = {"scale": args.scale, "machine": machine_info(), "load_average_before": os.getloadavg()}
    res["data"] = generate_and_load(cache, args.scale, reps=1)
    prep = prepare(cache / "data", cache, 1_000_000)
    res["prep"] = {k: v for k, v in prep.items() if k != "ids_file"}
    log(f"Spark and DuckDB, {args.repeats} interleaved rounds")
    res.update(run(cache / "data", prep, args.repeats, args.driver_memory))
    res["load_average_after"] = os.getloadavg()
    out = RESULTS_DIR / f"spark-{args.scale}.json"
    out.write_text(json.dumps(res, indent=1, default=str))
    log(f"wrote {out}")
    for op, _ in OPS:  # both engines gave the same count in every round
        if not (
            len(res["rows"][f"duckdb_{op}"]) == 1
            and res["rows"][f"duckdb_{op}"] == res["rows"][f"spark_{op}"]
        ):
            raise SystemExit(f"{op}: DuckDB and Spark disagree: {res['rows']}")
    replace_section(REPORT, SECTION, render_section(res))
    print("\n".join(render_section(res)))


if __name__ == "__main__":
    main()
