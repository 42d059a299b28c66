"""Readers never broken, one publication step, leftovers, bad stocks (issue 18, items 5-9): real loads,
real DuckDB files, real CLI runs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import duckdb
import pytest
from conftest import run_mirror
from stock_samples import ETAB_2026, ul_rows, write_sample_stock, write_zip

from mirror.catalog import build as catalog
from mirror.core import datadir
from mirror.core.config import catalog_path
from mirror.core.errors import IntegrityError, MirrorError
from mirror.core.schema import ETABLISSEMENTS, UNITES_LEGALES
from mirror.deltas import store as deltas
from mirror.load import publish
from mirror.load.stock import load_snapshot

SIREN = ETAB_2026[0]["siren"]


@pytest.fixture
def loaded(tmp_path) -> tuple[Path, Path]:
    """A data dir with the sample stock loaded as 2024-04, and the stock folder."""
    src = write_sample_stock(tmp_path / "stock")
    load_snapshot(tmp_path / "data", [src], month="2024-04")
    return tmp_path / "data", src


def _served_dir(data: Path) -> str:
    """The snapshot folder name the catalog's views read (its build record)."""
    con = duckdb.connect(str(catalog_path(data)), read_only=True)
    try:
        return Path(con.execute("SELECT snapshot FROM mirror_catalog_build").fetchone()[0]).name
    finally:
        con.close()


# ------------------------------------------------------------------------------------------------
# Item 5: superseded folders stay for the grace period
# ------------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("keep", ["1", "2"])
def test_same_month_reload_keeps_the_folder_a_long_lived_reader_reads(loaded, keep):
    data, src = loaded
    reader = catalog.connect(data)
    assert reader.sql("SELECT count(*) FROM etablissements").fetchone()[0] == 3
    r = run_mirror("load", str(src), "--month", "2024-04", "--keep", keep, data_dir=data)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (data / "snapshots").iterdir()) == ["2024-04", "2024-04.2"]
    # the reader opened before the reload still reads its (superseded) folder
    assert reader.sql("SELECT count(*) FROM etablissements").fetchone()[0] == 3
    assert (data / "snapshots" / "2024-04" / datadir.SUPERSEDED_NAME).is_file()
    # once the grace is over, the next writer deletes it
    r = run_mirror(
        "load", str(src), "--month", "2024-04", "--keep", keep, data_dir=data, env={datadir.GRACE_ENV: "0"}
    )
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (data / "snapshots").iterdir()) == ["2024-04.3"]


def test_a_wall_clock_jump_does_not_shorten_the_grace(tmp_path, monkeypatch):
    folder = tmp_path / "v"
    folder.mkdir()
    datadir.mark_superseded(folder)
    marker = folder / datadir.SUPERSEDED_NAME
    record = json.loads(marker.read_text())
    record["wall"] -= 2 * 3600  # as if the wall clock had jumped 2 h forward since the mark
    marker.write_text(json.dumps(record))
    assert datadir.superseded_for(folder) < 60
    assert not datadir.grace_elapsed(folder)
    # another boot: no reader of the previous boot survives, the wall difference is used
    record["boot_id"] = "another-boot"
    marker.write_text(json.dumps(record))
    assert datadir.grace_elapsed(folder)
    # merged delta versions: superseded ones are kept during the grace despite an old mtime
    root = deltas.merged_root(tmp_path / "data")
    for n in ("1", "2", "3"):
        (root / n).mkdir(parents=True)
    old = time.time() - 2 * 3600
    for n in ("1", "2", "3"):
        os.utime(root / n, (old, old))
    deltas._cleanup(tmp_path / "data", keep={root / "3"})
    assert sorted(p.name for p in root.iterdir()) == ["1", "2", "3"]
    monkeypatch.setenv(datadir.GRACE_ENV, "0")
    deltas._cleanup(tmp_path / "data", keep={root / "3"})
    assert sorted(p.name for p in root.iterdir()) == ["3"]


@pytest.mark.slow
def test_get_and_status_work_while_a_read_write_session_holds_the_catalog(loaded):
    data, _src = loaded
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb,sys,time; c=duckdb.connect(sys.argv[1]); print('ok', flush=True); time.sleep(60)",
            str(catalog_path(data)),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ok"
        with pytest.raises(duckdb.IOException, match="lock"):
            duckdb.connect(str(catalog_path(data)), read_only=True)
        r = run_mirror("get", SIREN, data_dir=data)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)
        r = run_mirror("status", "--json", data_dir=data)
        assert r.returncode == 0, r.stderr
        assert not [p for p in Path("/tmp").glob("mirror-catalog-*") if p.stat().st_mtime > time.time() - 5]
    finally:
        holder.kill()
        holder.wait()


# ------------------------------------------------------------------------------------------------
# Item 6: a publication interrupted between the catalog switch and state.json is finished
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "stage,finished",
    [
        ("before-rename", False),
        ("after-rename", False),
        ("after-pending", False),
        ("after-catalog", True),
        ("after-state", True),
        ("after-pending-removed", True),
    ],
)
@pytest.mark.slow
def test_crash_between_catalog_and_state_is_finished_by_the_next_writer(loaded, tmp_path, stage, finished):
    data, _src = loaded
    bigger = write_sample_stock(
        tmp_path / "m2", extra_etab=[dict(ETAB_2026[1], nic="00057", siret=ETAB_2026[1]["siren"] + "00057")]
    )
    r = run_mirror(
        "load", str(bigger), "--month", "2024-05", "--force", data_dir=data, env={"MIRROR_CRASH_AT": stage}
    )
    assert r.returncode == 86, r.stderr
    # the next writer (here a load refused by validation: it still prepares the data dir first)
    shrunk = tmp_path / "empty"
    shrunk.mkdir()
    write_zip(shrunk, UNITES_LEGALES, UNITES_LEGALES.header("current"), ul_rows("current")[:1])
    write_zip(shrunk, ETABLISSEMENTS, ETABLISSEMENTS.header("current"), ETAB_2026[:1])
    r = run_mirror("load", str(shrunk), "--month", "2024-06", data_dir=data)
    assert r.returncode == 1 and "fewer than 98 %" in r.stderr, r.stderr
    state = datadir.read_state(data)
    assert not (data / datadir.PENDING_NAME).exists()
    assert state["snapshot"]["month"] == ("2024-05" if finished else "2024-04")
    assert _served_dir(data) == state["snapshot"]["dir"]
    con = catalog.connect(data)
    assert con.sql("SELECT count(*) FROM etablissements").fetchone()[0] == (4 if finished else 3)


# ------------------------------------------------------------------------------------------------
# Item 7: leftovers of a killed update or sync
# ------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_prepare_writer_removes_a_killed_updates_catalog_temp_files(loaded):
    data, _src = loaded
    for name in ("sirene.duckdb.tmp-4242", "sirene.duckdb.tmp-4242.wal", "state.json.pending.tmp-7"):
        (data / name).write_bytes(b"x" * 100)
    notes = publish.prepare_writer(data)
    assert not [p for p in data.iterdir() if ".tmp-" in p.name]
    assert "removed leftover sirene.duckdb.tmp-4242.wal" in notes
    assert catalog.connect(data).sql("SELECT count(*) FROM unites_legales").fetchone()[0] == 10


# ------------------------------------------------------------------------------------------------
# Item 9: duplicated or malformed identifiers
# ------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_duplicated_siren_is_refused_and_counted_when_forced(tmp_path):
    src = tmp_path / "stock"
    write_sample_stock(src)
    rows = ul_rows("current")
    write_zip(src, UNITES_LEGALES, UNITES_LEGALES.header("current"), rows + [rows[0], rows[0]])
    with pytest.raises(IntegrityError, match="unites_legales: 2 duplicated siren row"):
        load_snapshot(tmp_path / "data", [src], month="2024-04")
    assert not (tmp_path / "data" / "state.json").exists()
    summary = load_snapshot(tmp_path / "data", [src], month="2024-04", force=True)
    assert summary["identifiers"]["unites_legales"] == {"duplicates": 2, "malformed": 0}
    assert any("2 duplicated siren" in w for w in summary["warnings"])


def test_five_digit_siren_is_refused(tmp_path):
    src = tmp_path / "stock"
    write_sample_stock(src)
    rows = ul_rows("current")
    write_zip(src, UNITES_LEGALES, UNITES_LEGALES.header("current"), rows + [dict(rows[0], siren="12345")])
    r = run_mirror("load", str(src), "--month", "2024-04", data_dir=tmp_path / "data")
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [
        "Error: unites_legales: 1 siren value(s) not of 9 digits (over 0.1% of 11 rows) (use --force to load anyway)"
    ]


# ------------------------------------------------------------------------------------------------
# Item 8: one line, never a traceback
# ------------------------------------------------------------------------------------------------


def _one_line(r: subprocess.CompletedProcess) -> str:
    assert r.returncode not in (0, 86), r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    return lines[0]


def test_zip_holding_an_empty_csv_is_one_line(tmp_path):
    src = tmp_path / "stock"
    write_sample_stock(src)
    with zipfile.ZipFile(src / UNITES_LEGALES.zip_name, "w") as zf:
        zf.writestr(UNITES_LEGALES.csv_member, "")
    line = _one_line(run_mirror("load", str(src), "--month", "2024-04", data_dir=tmp_path / "data"))
    assert "empty CSV" in line


def test_ten_megabyte_single_line_csv_is_one_line(tmp_path):
    src = tmp_path / "stock"
    write_sample_stock(src)
    header = ",".join(UNITES_LEGALES.header("current"))
    with zipfile.ZipFile(src / UNITES_LEGALES.zip_name, "w") as zf:
        zf.writestr(UNITES_LEGALES.csv_member, header + "," + "x" * (10 << 20))
    line = _one_line(run_mirror("load", str(src), "--month", "2024-04", data_dir=tmp_path / "data"))
    assert "not a Sirene CSV header" in line


@pytest.mark.slow
def test_deleted_snapshot_folder_is_one_line_in_get_and_status(loaded):
    data, _src = loaded
    shutil.rmtree(data / "snapshots" / "2024-04")
    for args in (("get", SIREN), ("status",)):
        line = _one_line(run_mirror(*args, data_dir=data))
        assert "snapshot folder" in line and "is missing: run `mirror load` again" in line, line
    with pytest.raises(MirrorError, match="is missing"):
        catalog.snapshot_select(duckdb.connect(), data, "unites_legales")  # what `mirror update` reads


@pytest.mark.slow
def test_deleted_merged_version_is_one_line(loaded):
    data, _src = loaded
    (data / "deltas-merged" / "7").mkdir(parents=True)
    # a catalog naming merged version 7 (as a daily update builds it), then the version deleted
    path = catalog_path(data)
    con = duckdb.connect(str(path))
    con.execute("UPDATE mirror_catalog_build SET merged = '7'")
    con.close()
    shutil.rmtree(data / "deltas-merged" / "7")
    line = _one_line(run_mirror("get", SIREN, data_dir=data))
    assert "merged delta version" in line and "run `mirror catalog`" in line


def _read_only_mount(path: Path) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(path)], capture_output=True)
    return r.returncode == 0


def test_load_into_a_read_only_data_dir_is_one_line(tmp_path):
    data = tmp_path / "ro"
    if not _read_only_mount(data):
        pytest.skip("cannot mount a read-only tmpfs here (not root, or no mount permission)")
    try:
        src = write_sample_stock(tmp_path / "stock")
        line = _one_line(run_mirror("load", str(src), "--month", "2024-04", data_dir=data))
        assert line.startswith(f"Error: cannot write into {data}: Read-only file system"), line
    finally:
        subprocess.run(["umount", str(data)], check=False)


def test_a_process_holding_the_catalog_open_reads_the_one_published_after_it(tmp_path):
    """A catalog is replaced by os.replace. A process still holding a connection to the previous one (a
    `mirror serve` worker, a search cursor) must open the new one: duckdb.connect on the same path would
    hand back the instance of the previous file while it is open (duckdb/duckdb#15912). Its cursors read
    the new one too."""
    from mirror.core.sql import private_cursor

    path = tmp_path / "sirene.duckdb"
    for value, target in ((1, path), (2, tmp_path / "next.duckdb")):
        con = duckdb.connect(str(target))
        con.execute(f"CREATE TABLE t AS SELECT {value} AS v")
        con.execute("CREATE VIEW w AS SELECT v * 10 AS x FROM t")
        con.close()
    held = catalog._open_read_only(path)
    assert held.execute("SELECT x FROM w").fetchone() == (10,)
    os.replace(tmp_path / "next.duckdb", path)
    new = catalog._open_read_only(path)
    assert new.execute("SELECT x FROM w").fetchone() == (20,)  # not the held instance's file
    assert new.execute("SELECT current_database()").fetchone() == ("sirene",)
    cur = private_cursor(new)
    assert cur.execute("SELECT x FROM w").fetchone() == (20,)
    assert held.execute("SELECT x FROM w").fetchone() == (10,)  # the holder keeps its consistent state
    for c in (cur, new, held):
        c.close()
