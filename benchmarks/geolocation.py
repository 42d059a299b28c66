"""Load time of INSEE's geolocation file at national scale: `python -m benchmarks.geolocation`.

Generates a national-scale geolocation file with DuckDB (37,901,783 rows, the September 2026 count; the
19 columns of the current header, values of the real shapes: Lambert-93 x/y, WGS84 strings, "[ND]" for
1 %, qualite_xy in the published shares, IRIS, QPV codes / HZ / CSZ), as Parquet and as INSEE's zipped
`;`-separated CSV, then measures in a child process per format (wall time and that child's peak RSS,
os.wait4) what `mirror load` adds when the file is given:

1. staging: reading the file into the one-row-per-siret table the établissements are joined with
   (mirror.load.stock._stage_geolocation: the zip's CSV extracted, typed, repeated sirets merged);
2. the join: the loader's own SQL (sql/catalog/geolocated_etablissements.sql) over 44,064,115
   établissements in siret order, written to Parquet. The établissements here are narrow (siret and
   coordinates): in a real load their ~60 columns ride along, which the staging file write already pays.

The files go to DATA (default ./data/bench-geolocation, git-ignored) and are deleted afterwards. Results:
docs/bench/geolocation.json and the "Geolocation file" section of docs/BENCHMARKS.md (replaced in place).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import zipfile
from pathlib import Path

from benchmarks.bench import REPO_DIR, REPORT, RESULTS_DIR, machine_info, run_with_rusage
from benchmarks.report import replace_section
from mirror.core.schema import GEOLOCALISATION, GEOLOCALISATION_FILE_COLUMNS

GEO_ROWS = 37_901_783  # GeolocalisationEtablissement, 2026-09-21
ETAB_ROWS = 44_064_115  # StockEtablissement, 2026-09-01
SECTION = "## Geolocation file (national scale)"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _siret(i: str) -> str:
    """SQL: the i-th synthetic siret, 14 characters, increasing with i."""
    return f"lpad(CAST({i} * 22000 + 1000000000 AS VARCHAR), 14, '0')"


def geolocation_sql(rows: int, etabs: int) -> str:
    """SELECT of `rows` geolocation rows over the first `etabs` sirets (every etabs/rows-th), siret order."""
    h = "hash(j)"
    nd = f"({h} % 100 = 0)"
    cols = {
        "siret": _siret(f"(j * {etabs} // {rows})"),
        "x": f"CASE WHEN {nd} THEN '[ND]' ELSE CAST(round(100000 + ({h} % 1000000) + ({h} % 97) / 97, 2) AS VARCHAR) END",
        "y": f"CASE WHEN {nd} THEN '[ND]' ELSE CAST(round(6100000 + ({h} % 1000000) + ({h} % 89) / 89, 2) AS VARCHAR) END",
        "qualite_xy": f"CASE WHEN {h} % 1000 < 625 THEN '11' WHEN {h} % 1000 < 784 THEN '12' "
        f"WHEN {h} % 1000 < 804 THEN '21' WHEN {h} % 1000 < 824 THEN '22' ELSE '33' END",
        "epsg": "'2154'",
        "plg_qp24": f"CASE WHEN {h} % 100 < 6 THEN 'QN0' || lpad(CAST({h} % 95 + 1 AS VARCHAR), 2, '0') || "
        f"lpad(CAST({h} % 40 AS VARCHAR), 2, '0') || 'M' WHEN {h} % 100 < 60 THEN 'HZ' ELSE 'CSZ' END",
        "plg_iris": f"CASE WHEN {h} % 100 < 45 THEN '0000' ELSE lpad(CAST({h} % 3000 + 101 AS VARCHAR), 4, '0') END",
        "plg_zus": "''",
        "plg_qp15": f"CASE WHEN {h} % 100 < 5 THEN 'QP0' || lpad(CAST({h} % 95000 AS VARCHAR), 5, '0') ELSE 'HZ' END",
        "plg_qva": "'HZ'",
        "plg_code_commune": f"lpad(CAST({h} % 95000 + 1001 AS VARCHAR), 5, '0')",
        "distance_precision": f"CAST(round(({h} % 200000) / 100, 1) AS VARCHAR)",
        "qualite_qp24": "'1'",
        "qualite_iris": "'1'",
        "qualite_zus": "''",
        "qualite_qp15": "'1'",
        "qualite_qva": "'1'",
        "y_latitude": f"CASE WHEN {nd} THEN '[ND]' ELSE CAST(round(42.3 + ({h} % 8800000) / 1e6, 6) AS VARCHAR) END",
        "x_longitude": f"CASE WHEN {nd} THEN '[ND]' ELSE CAST(round(-4.7 + ({h} % 12900000) / 1e6, 6) AS VARCHAR) END",
    }
    assert list(cols) == GEOLOCALISATION_FILE_COLUMNS
    select = ", ".join(f"{expr} AS {name}" for name, expr in cols.items())
    return f"SELECT {select} FROM range({rows}) t(j)"


def generate(folder: Path, rows: int, etabs: int, formats: list[str]) -> dict:
    """Writes the geolocation file(s) and the narrow établissements into `folder`; returns sizes/times."""
    import duckdb

    folder.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute(f"SET temp_directory = '{folder / '.tmp'}'")
    out: dict = {}
    t0 = time.monotonic()
    con.execute(
        f"COPY (SELECT {_siret('i')} AS siret, CAST(NULL AS DOUBLE) AS latitude, CAST(NULL AS DOUBLE) AS longitude "
        f"FROM range({etabs}) t(i)) TO '{folder / 'etablissements.parquet'}' (FORMAT parquet, COMPRESSION zstd)"
    )
    out["etablissements_s"] = round(time.monotonic() - t0, 1)
    if "parquet" in formats:
        t0 = time.monotonic()
        path = folder / GEOLOCALISATION.parquet_name
        con.execute(f"COPY ({geolocation_sql(rows, etabs)}) TO '{path}' (FORMAT parquet, COMPRESSION zstd)")
        out["parquet"] = {"bytes": path.stat().st_size, "generate_s": round(time.monotonic() - t0, 1)}
    if "zip" in formats:
        t0 = time.monotonic()
        csv_path = folder / GEOLOCALISATION.csv_member
        con.execute(
            f"COPY ({geolocation_sql(rows, etabs)}) TO '{csv_path}' (FORMAT csv, DELIMITER ';', HEADER true, QUOTE '')"
        )
        zip_path = folder / GEOLOCALISATION.zip_name
        with zipfile.ZipFile(
            zip_path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1, allowZip64=True
        ) as zf:
            zf.write(csv_path, GEOLOCALISATION.csv_member)
        out["zip"] = {
            "bytes": zip_path.stat().st_size,
            "csv_bytes": csv_path.stat().st_size,
            "generate_s": round(time.monotonic() - t0, 1),
        }
        csv_path.unlink()
    con.close()
    return out


def op_load(path: Path, etab_parquet: Path, work: Path) -> None:
    """The child process: staging then join, as `mirror load` runs them; prints a JSON line."""
    from mirror.core.sql import literal
    from mirror.core.typed import geolocated_select_sql
    from mirror.load import stock

    build = work / "build"
    build.mkdir(parents=True, exist_ok=True)
    src = stock.Source(GEOLOCALISATION, path, path.suffix.lstrip("."))
    con = stock._connect_for_build(build)
    t0 = time.monotonic()
    staged = stock._stage_geolocation(con, src, build / ".tmp")
    stage_s = time.monotonic() - t0
    t0 = time.monotonic()
    out = build / "joined.parquet"
    typed = f"SELECT * FROM read_parquet({literal(etab_parquet)})"
    (written,) = con.execute(
        f"COPY ({geolocated_select_sql(typed, stock.GEOLOCATION_TABLE)}) TO {literal(out)} ({stock._parquet_opts()})"
    ).fetchone()
    join_s = time.monotonic() - t0
    in_order = stock._row_groups_sorted(con, out, "siret")
    t0 = time.monotonic()  # the join keeps no order: what putting the rows back in siret order costs
    con.execute(
        f"COPY (SELECT * FROM read_parquet({literal(out)}) ORDER BY siret) TO {literal(build / 'sorted.parquet')} "
        f"({stock._parquet_opts()})"
    )
    sort_s = time.monotonic() - t0
    (geolocated,) = con.sql(f"SELECT count(qualiteXY) FROM read_parquet({literal(out)})").fetchone()
    con.close()
    shutil.rmtree(build, ignore_errors=True)
    print(json.dumps({
        "stage_s": round(stage_s, 1), "join_s": round(join_s, 1), "sort_s": round(sort_s, 1), "rows": staged["rows"],
        "sirets": staged["sirets"], "joined_rows": written, "geolocated": geolocated, "siret_order_kept": in_order,
    }))  # fmt: skip


def render_section(res: dict) -> list[str]:
    m = res["machine"]
    lines = [
        SECTION,
        "",
        "Produced by `python -m benchmarks.geolocation` (not part of `make bench`): what `mirror load` adds "
        f"when INSEE's geolocation file is given, on a DuckDB-generated file of {res['rows']:,} rows (the "
        f"national file: {GEO_ROWS:,}; SYNTHETIC values of the real shapes) and {res['etablissements']:,} "
        "établissements in siret order. Staging = the file read into the one-row-per-siret table the "
        "établissements are joined with; join = the loader's SQL over the établissements, written to "
        "Parquet (narrow rows here: siret and coordinates; in a real load the ~60 établissement columns "
        "ride along, and their write is already in the load's time). Each format in its own child process "
        "(peak RSS = that process's).",
        "",
        f"Date {res['date']}, commit {m['commit']}. Machine: {m['cores']} cores ({m['cpu']}), {m['ram_gb']} GB "
        f"RAM, SHARED with other jobs while it ran: load average (1, 5, 15 min) "
        f"{', '.join(f'{x:.1f}' for x in res['load_average_before'])} before, "
        f"{', '.join(f'{x:.1f}' for x in res['load_average_after'])} after. "
        + (
            ""
            if res["national"]
            else f"NOT national: run at {res['rows']:,} rows; the last column EXTRAPOLATES staging + join "
            f"linearly to {GEO_ROWS:,} rows (x {GEO_ROWS / res['rows']:.2f}), not measured."
        ),
        "",
        "| format | file size | staging | join | staging + join | peak RSS | siret order kept | sort by siret |"
        + ("" if res["national"] else " extrapolated to national |"),
        "|---|---:|---:|---:|---:|---:|---|---:|" + ("" if res["national"] else "---:|"),
    ]
    for fmt, r in res["formats"].items():
        size = r["bytes"] / 1e9
        lines.append(
            f"| {fmt} | {size:.2f} GB | {r['stage_s']:.0f} s | {r['join_s']:.0f} s | "
            f"{(r['stage_s'] + r['join_s']) / 60:.1f} min | {r['peak_rss_mb']:,.0f} MB | "
            f"{'yes' if r['siret_order_kept'] else 'no'} | {r['sort_s']:.0f} s |"
            + (
                ""
                if res["national"]
                else f" {(r['stage_s'] + r['join_s']) * GEO_ROWS / res['rows'] / 60:.1f} min |"
            )
        )
    if not res["national"]:
        peak = max(r["peak_rss_mb"] for r in res["formats"].values()) * GEO_ROWS / res["rows"] / 1024
        lines += [
            "",
            "Peak memory grows with the rows staged (the one-row-per-siret table, its hash aggregate, the join's "
            f"hash table): extrapolated linearly, ~{peak:.0f} GB at national scale (not measured; DuckDB spills "
            "to the build folder beyond its memory limit, MIRROR_MEMORY_LIMIT).",
        ]
    lines += [
        "",
        "DuckDB's hash join does not keep the établissements' siret order: with the file, the loader's "
        "partition files come out unsorted and are re-sorted one by one (mirror.load.stock, sort_file); the "
        "`sort by siret` column is the cost of one sort of the narrow joined rows by siret, a lower bound of that. "
        f"Every run checked {res['etablissements']:,} joined rows out and {res['geolocated_share']:.1%} of "
        "them geolocated. Reproduce: `python -m benchmarks.geolocation` (the files, ~7 GB at national scale, "
        "are deleted afterwards; `--rows N` for a smaller run).",
        "",
    ]
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=GEO_ROWS, help="Rows of the geolocation file.")
    parser.add_argument("--formats", nargs="+", default=["parquet", "zip"], choices=["parquet", "zip"])
    parser.add_argument("--data", type=Path, default=REPO_DIR / "data" / "bench-geolocation")
    parser.add_argument("--no-report", action="store_true", help="Print the results only.")
    parser.add_argument("--op", help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.op == "load":
        op_load(args.file, args.data / "etablissements.parquet", args.data / f"work-{args.file.suffix[1:]}")
        return
    etabs = round(args.rows * ETAB_ROWS / GEO_ROWS)
    res = {"rows": args.rows, "etablissements": etabs, "national": args.rows == GEO_ROWS, "formats": {}}
    res["load_average_before"] = list(os.getloadavg())
    try:
        log(f"generating {args.rows:,} rows ({', '.join(args.formats)}) and {etabs:,} sirets in {args.data}")
        res["generation"] = generate(args.data, args.rows, etabs, args.formats)
        log(f"generated: {res['generation']}")
        for fmt in args.formats:
            path = args.data / (
                GEOLOCALISATION.parquet_name if fmt == "parquet" else GEOLOCALISATION.zip_name
            )
            log(f"loading {path.name}")
            run = run_with_rusage(
                [sys.executable, "-m", "benchmarks.geolocation", "--op", "load", "--file", str(path),
                 "--data", str(args.data)],
                cwd=REPO_DIR,
            )  # fmt: skip
            out = json.loads(run["stdout"].strip().splitlines()[-1])
            res["formats"][fmt] = {
                **out, "bytes": res["generation"][fmt]["bytes"], "peak_rss_mb": round(run["max_rss_mb"]),
                "wall_s": round(run["seconds"], 1),
            }  # fmt: skip
            log(f"{fmt}: {res['formats'][fmt]}")
            assert out["rows"] == args.rows and out["sirets"] == args.rows and out["joined_rows"] == etabs
            _report(res, etabs, args.no_report)  # after each format: a run stopped later keeps this one
    finally:
        shutil.rmtree(args.data, ignore_errors=True)


def _report(res: dict, etabs: int, no_report: bool) -> None:
    res["load_average_after"] = list(os.getloadavg())
    res["geolocated_share"] = min(r["geolocated"] for r in res["formats"].values()) / etabs
    res["machine"] = machine_info()
    res["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(json.dumps(res, indent=1))
    if not no_report:
        (RESULTS_DIR / "geolocation.json").write_text(json.dumps(res, indent=1) + "\n")
        replace_section(REPORT, SECTION, render_section(res))
        log(f"wrote {RESULTS_DIR / 'geolocation.json'} and the section of {REPORT}")


if __name__ == "__main__":
    main()
