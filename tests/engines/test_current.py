"""DATA_DIR/current.json: the current state for any Parquet reader (mirror.catalog.current).

A polars reader that applies the documented rule to the documented layout gets exactly the rows of the
catalog's views, for every table, over the plain snapshot and after 1, 4, 8 and 12 applied days (two folds
of the recent files into the merged base in between); the
manifest is replaced in one step with the catalog, a crash between the two switches is repaired by the next
writer, and the reference versions no manifest names go after the grace."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import duckdb
import pytest
from conftest import private_mirror, run_mirror
from layout_days import mirror_with_days, write_day

from mirror.catalog import current
from mirror.core.schema import DELTA_TABLES, SIRET_INDEX
from mirror.core.typed import prepare_connection
from mirror.deltas import store as deltas

pl = pytest.importorskip("polars")
from polars.testing import assert_frame_equal  # noqa: E402

TABLES = [*current.TABLES, SIRET_INDEX]  # every table of the layout


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


def same_as_the_views(data: Path) -> dict:
    """Every table current.json names, read by polars with the documented rule, has the rows of its DuckDB
    view; every reference table's Parquet file has the rows of the catalog's ref_* table. Returns the
    manifest read."""
    manifest = current.read(data)
    assert sorted(manifest["tables"]) == sorted(TABLES)
    for table in manifest["tables"]:
        same_rows(scan(data, manifest, table), view(data, table))
    for name, ref in manifest["ref"].items():
        same_rows(pl.read_parquet(data / ref["file"]), view(data, name))
    return manifest


@pytest.mark.slow
def test_polars_on_the_layout_equals_the_views_through_appends_and_folds(loaded_stock, tmp_path, monkeypatch):
    """12 applied days, the recent files folded into the merged base whenever they outgrow 8 % of it (the
    default 25 % took 30 days for the same two folds)."""
    monkeypatch.setattr(deltas, "RECENT_RATIO", 0.08)
    manifest = same_as_the_views(loaded_stock)  # the plain snapshot first
    assert manifest["merged"] is None and [len(e["layers"]) for e in manifest["tables"].values()] == [1] * 7
    checked, bases = [], set()

    def after_day(i: int, data: Path) -> None:  # the first day, then every fourth
        bases.add((deltas.merged_versions(data)[-1] / "etablissements.parquet").stat().st_ino)
        if i == 1 or i % 4 == 0:
            assert same_as_the_views(data)["days"][-1] == f"2026-10-{i:02d}"
            checked.append(i)

    data = mirror_with_days(loaded_stock, tmp_path / "data", 12, after_day)
    assert checked == [1, 4, 8, 12]
    assert len(bases) >= 3  # the first base, then at least two folds (an appended day hard-links the base)
    manifest = current.read(data)
    assert manifest["merged"] == deltas.merged_versions(data)[-1].relative_to(data).as_posix()
    assert manifest["days"] == [f"2026-10-{d:02d}" for d in range(1, 13)]
    assert {len(e["layers"]) for t, e in manifest["tables"].items() if t in DELTA_TABLES} == {3}
    # The days are really there (the rule is not the plain snapshot): the last day's names win.
    ul = scan(data, manifest, "unites_legales")
    assert ul.filter(pl.col("denominationUniteLegale") == "DAY 12").height > 10
    plain = pl.scan_parquet(
        str(data / manifest["tables"]["unites_legales"]["layers"][0]["files"][0])
    ).collect()
    assert plain.filter(pl.col("denominationUniteLegale") == "DAY 12").height == 0
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


@pytest.mark.slow
def test_a_crash_at_the_publication_leaves_the_previous_manifest_and_the_next_writer_repairs(
    loaded_stock, tmp_path
):
    """`mirror catalog` killed between the catalog's switch and current.json's (the temp manifest written,
    not yet renamed): current.json is still the previous one and every file it names is there, so a reader
    gets the previous state; the next writer (prepare_writer, what load/update/sync/catalog run first)
    removes the temp file and publishes the catalog's state."""
    from mirror.catalog.build import prepare_writer
    from mirror.core.datadir import writer_lock

    data = private_mirror(loaded_stock, tmp_path / "data")
    before = current.read(data)
    expected = {t: view(data, t) for t in TABLES}
    con = duckdb.connect()
    prepare_connection(con)
    con.execute(f"ATTACH '{data / 'sirene.duckdb'}' AS c (READ_ONLY)")
    write_day(data, con, date(2026, 10, 1), 1, 1)
    con.close()
    deltas.compact_for(data)
    crashed = run_mirror("catalog", data_dir=data, env={"MIRROR_CRASH_AT": "before-replace-current.json"})
    assert crashed.returncode == 86, crashed.stderr
    assert [p.name for p in data.glob(f"{current.CURRENT_NAME}.tmp-*")], "the crash left its temp manifest"
    assert current.read(data) == before
    assert view(data, "unites_legales").filter(pl.col("denominationUniteLegale") == "DAY 1").height > 0
    for table in TABLES:  # the previous state, whole, from the previous manifest
        same_rows(scan(data, before, table), expected[table])
    with writer_lock(data, "test"):
        notes = prepare_writer(data)
    assert any(n.startswith(f"removed leftover {current.CURRENT_NAME}.tmp-") for n in notes), notes
    assert any("published current.json again" in n for n in notes), notes
    assert not list(data.glob(f"{current.CURRENT_NAME}.tmp-*"))
    manifest = current.read(data)
    assert manifest["merged"] == deltas.merged_versions(data)[-1].relative_to(data).as_posix()
    for table in TABLES:
        same_rows(scan(data, manifest, table), view(data, table))
    with writer_lock(data, "test"):  # once repaired, nothing more to do
        assert prepare_writer(data) == []


@pytest.mark.slow
def test_reference_versions_no_manifest_names_go_after_the_grace_and_leftovers_with_the_next_writer(
    loaded_stock, tmp_path
):
    """ref-parquet/<version> folders that current.json no longer names are marked superseded at the first
    switch without them and deleted only once MIRROR_GRACE_SECONDS has passed since; the named version is
    never deleted (and loses a stale mark); a crashed writer's staging or half-deleted folders go with the
    next writer."""
    data = private_mirror(loaded_stock, tmp_path / "data")
    root = data / "ref-parquet"
    (named,) = {Path(r["file"]).parent.name for r in current.read(data)["ref"].values()}
    old, staging, trash = root / "0123456789abcdef", root / f".staging-{named}-999", root / ".trash-x-999"
    for folder in (old, staging, trash):
        folder.mkdir()
        (folder / "ref_naf_rev2.parquet").write_bytes(b"PAR1")
    (root / named / ".superseded.json").write_text('{"wall": 0, "monotonic": 0, "boot_id": null}')
    result = run_mirror("catalog", data_dir=data)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in root.iterdir()) == sorted([named, old.name])
    assert (old / ".superseded.json").is_file() and not (root / named / ".superseded.json").exists()
    result = run_mirror("catalog", data_dir=data, env={"MIRROR_GRACE_SECONDS": "0"})
    assert result.returncode == 0, result.stderr
    assert [p.name for p in root.iterdir()] == [named]
    manifest = current.read(data)
    assert all((data / r["file"]).is_file() for r in manifest["ref"].values())
    ref = manifest["ref"]["ref_naf_rev2"]
    assert pl.read_parquet(data / ref["file"]).height > 700
