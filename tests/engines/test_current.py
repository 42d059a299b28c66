"""DATA_DIR/current.json: the current state for any Parquet reader (mirror.catalog.current).

A polars reader that applies the documented rule to the documented layout gets exactly the rows of the
catalog's views, after every one of 30 applied days; the manifest is replaced in one step with the catalog."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import duckdb
import pytest
from conftest import private_mirror, run_mirror
from layout_days import write_day

from mirror.catalog import build as catalog
from mirror.catalog import current
from mirror.core.schema import DELTA_TABLES
from mirror.core.typed import prepare_connection
from mirror.deltas import store as deltas

pl = pytest.importorskip("polars")
from polars.testing import assert_frame_equal  # noqa: E402

TABLES = [*DELTA_TABLES, "doublons", "etablissements_departements"]


def scan(data: Path, manifest: dict, table: str):
    """The documented rule, as a polars user would write it from the README."""
    entry = manifest["tables"][table]
    layers = entry["layers"]
    frames = []
    for i, layer in enumerate(layers):
        files = [str(data / f) for f in layer["files"]]
        if layer.get("hive"):
            schema = {c: pl.String for c in layer["hive"]["columns"]}
            lf = pl.scan_parquet(files, hive_partitioning=True, hive_schema=schema)
        else:
            lf = pl.scan_parquet(files)
        if entry["key"]:
            for later in layers[i + 1 :]:
                keys = pl.scan_parquet([str(data / f) for f in later["keys"]]).select(entry["key"])
                lf = lf.join(keys, on=entry["key"], how="anti", nulls_equal=True)
        lf = lf.with_columns([pl.lit(None).alias(c) for c in layer.get("missing", [])])
        frames.append(lf.select(entry["columns"]))
    return pl.concat(frames, how="vertical_relaxed").collect()


def view(data: Path, table: str):
    con = duckdb.connect(str(data / "sirene.duckdb"), read_only=True)
    try:
        return pl.from_arrow(con.execute(f'SELECT * FROM "{table}"').to_arrow_table())
    finally:
        con.close()


def same_rows(a, b) -> None:
    assert a.columns == b.columns
    assert_frame_equal(
        a.sort(a.columns, nulls_last=True), b.sort(b.columns, nulls_last=True), check_dtypes=False
    )


@pytest.mark.slow
def test_polars_on_the_layout_equals_the_views_after_30_applied_days(loaded_stock, tmp_path):
    data = private_mirror(loaded_stock, tmp_path / "data")
    manifest = current.read(data)
    assert manifest["merged"] is None and [len(e["layers"]) for e in manifest["tables"].values()] == [1] * 7
    con = duckdb.connect()
    prepare_connection(con)
    con.execute(f"ATTACH '{data / 'sirene.duckdb'}' AS c (READ_ONLY)")
    for table in TABLES:  # the plain snapshot first
        same_rows(scan(data, manifest, table), view(data, table))
    for i in range(1, 31):
        con.execute("DETACH c")
        con.execute(f"ATTACH '{data / 'sirene.duckdb'}' AS c (READ_ONLY)")  # the state before the day
        write_day(data, con, date(2026, 10, i), i, i)
        catalog.rebuild(data, deltas.compact_for(data), reuse=True)  # what `mirror update` does per day
    con.close()
    manifest = current.read(data)
    assert manifest["merged"] == deltas.merged_versions(data)[-1].relative_to(data).as_posix()
    assert manifest["days"] == [f"2026-10-{d:02d}" for d in range(1, 31)]
    for table in TABLES:
        same_rows(scan(data, manifest, table), view(data, table))
    # The days are really there (the rule is not the plain snapshot): the last day's names win.
    ul = scan(data, manifest, "unites_legales")
    assert ul.filter(pl.col("denominationUniteLegale") == "DAY 30").height > 10
    plain = pl.scan_parquet(
        str(data / manifest["tables"]["unites_legales"]["layers"][0]["files"][0])
    ).collect()
    assert plain.filter(pl.col("denominationUniteLegale") == "DAY 30").height == 0
    # Every path is relative to DATA_DIR: the folder moved elsewhere still reads.
    moved = tmp_path / "moved"
    (tmp_path / "data").rename(moved)
    same_rows(scan(moved, manifest, "etablissements"), view_rows_of(moved, manifest))


def view_rows_of(data: Path, manifest: dict):
    """The établissements of the moved folder, by the DuckDB script of `mirror views` over it."""
    from mirror.engines.dialects import catalog_script

    con = duckdb.connect()
    try:
        con.execute(catalog_script(data, "duckdb", manifest))
        return pl.from_arrow(con.execute("SELECT * FROM etablissements").to_arrow_table())
    finally:
        con.close()


def test_manifest_switches_with_the_catalog_and_names_only_existing_files(loaded_stock, tmp_path):
    """`mirror catalog` publishes current.json (no temp file left) naming files that all exist, the
    reference tables as Parquet, and the string type of the département partitions."""
    data = private_mirror(loaded_stock, tmp_path / "data")
    before = (data / current.CURRENT_NAME).read_text()
    result = run_mirror("catalog", data_dir=data)
    assert result.returncode == 0, result.stderr
    manifest = json.loads((data / current.CURRENT_NAME).read_text())
    assert manifest["snapshot"] == json.loads(before)["snapshot"]
    assert not list(data.glob(f"{current.CURRENT_NAME}.tmp-*"))
    named = [f for e in manifest["tables"].values() for layer in e["layers"] for f in layer["files"]]
    named += [r["file"] for r in manifest["ref"].values()]
    assert named and all((data / f).is_file() for f in named)
    assert set(manifest["ref"]) >= {"ref_communes", "ref_naf_rev2", "ref_categories_juridiques"}
    assert manifest["tables"]["etablissements"]["layers"][0]["hive"]["columns"] == {"departement": "string"}
