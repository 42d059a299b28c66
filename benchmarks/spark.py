"""Spark local beside DuckDB on the same mirror: the standard filter (a count) and a 1M-row export.

    python -m benchmarks.spark --scale 1000000

Reuses the data of `make bench` (`.bench-cache/scale-N/data`, its prep.json for the standard filter and
the départements adding up to about 1M établissements); run `make bench SCALE=N` first. Both engines run
the export's own query (mirror.export.build_query; transpiled to Spark by sqlglot), interleaved
(DuckDB, Spark, DuckDB, Spark...) so that a change of machine load hits both; medians and the Spark /
DuckDB ratio are printed as a Markdown table for docs/BENCHMARKS.md. The Spark session (local[*]) is
started once and its start-up time reported apart; the export writes Parquet with each engine.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.bench import DEFAULT_CACHE, log, standard_filter_args


def _queries(con, prep: dict):
    from mirror.export.exporter import build_query, build_source
    from mirror.export.filters import Filters

    source = build_source(con, "etablissement")
    count = build_query(con, source, Filters(**standard_filter_args(prep)))
    export = build_query(con, source, Filters(departements=prep["export_departements"], etat="all"))
    return count, export


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.spark", description=__doc__.splitlines()[0])
    p.add_argument("--scale", type=int, default=1_000_000)
    p.add_argument("--cache", default=str(DEFAULT_CACHE))
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    cache = Path(args.cache) / f"scale-{args.scale}"
    data, prep_path = cache / "data", cache / "prep.json"
    if not prep_path.exists():
        raise SystemExit(f"no benchmark data in {cache}: run `make bench SCALE={args.scale}` first")
    prep = json.loads(prep_path.read_text())

    import sqlglot
    from pyspark.sql import SparkSession

    from mirror.catalog.build import connect
    from mirror.engines.spark import register

    con = connect(data)
    count, export = _queries(con, prep)
    t0 = time.perf_counter()
    spark = (
        SparkSession.builder.master("local[*]")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.memory", "4g")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    started = time.perf_counter() - t0
    t0 = time.perf_counter()
    register(spark, data)
    registered = time.perf_counter() - t0
    spark_count = sqlglot.transpile(count.count_sql or count.sql, read="duckdb", write="spark")[0]
    spark_export = sqlglot.transpile(export.sql, read="duckdb", write="spark")[0]
    out = Path(tempfile.mkdtemp(prefix="mirror-spark-bench-"))
    times: dict[str, list[float]] = {
        k: [] for k in ("duckdb_filter", "spark_filter", "duckdb_export", "spark_export")
    }
    rows = {}
    try:
        for i in range(args.repeats):
            log(f"round {i + 1}/{args.repeats}")
            t0 = time.perf_counter()
            rows["duckdb_filter"] = con.execute(count.count_sql or count.sql, count.params).fetchone()[0]
            times["duckdb_filter"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            rows["spark_filter"] = spark.sql(spark_count, args=list(count.params)).collect()[0][0]
            times["spark_filter"].append(time.perf_counter() - t0)
            target = out / f"duckdb-{i}.parquet"
            t0 = time.perf_counter()
            con.execute(
                f"COPY ({export.sql}) TO '{target}' (FORMAT parquet, COMPRESSION zstd)", export.params
            )
            times["duckdb_export"].append(time.perf_counter() - t0)
            rows["duckdb_export"] = con.execute(f"SELECT count(*) FROM '{target}'").fetchone()[0]
            target = out / f"spark-{i}"
            t0 = time.perf_counter()
            spark.sql(spark_export, args=list(export.params)).write.option("compression", "zstd").parquet(
                str(target)
            )
            times["spark_export"].append(time.perf_counter() - t0)
            rows["spark_export"] = spark.read.parquet(str(target)).count()
    finally:
        shutil.rmtree(out, ignore_errors=True)
        spark.stop()
        con.close()
    med = {k: statistics.median(v) for k, v in times.items()}
    print(
        f"\nSpark local: session start {started:.1f} s, register {registered:.1f} s (scale {args.scale:,})\n"
    )
    print("| operation | rows | DuckDB (median) | Spark local (median) | Spark / DuckDB |")
    print("|---|---:|---:|---:|---:|")
    for op, label in (("filter", "standard filter (count)"), ("export", "export to Parquet")):
        d, s = med[f"duckdb_{op}"], med[f"spark_{op}"]
        assert rows[f"duckdb_{op}"] == rows[f"spark_{op}"], rows
        print(f"| {label} | {rows[f'duckdb_{op}']:,} | {d:.2f} s | {s:.2f} s | {s / d:.1f}x |")


if __name__ == "__main__":
    main()
