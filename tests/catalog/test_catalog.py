"""The catalog DATA_DIR/sirene.duckdb: views + ref tables, opened by the real DuckDB CLI from anywhere."""

from __future__ import annotations

import subprocess
from pathlib import Path

import duckdb
import pytest
from conftest import REPO, run_mirror
from stock_samples import write_sample_stock

from mirror.catalog import build as catalog
from mirror.core.config import THREADS_ENV
from mirror.core.errors import MirrorError
from mirror.load.stock import load_snapshot

DUCKDB_CLI = REPO / ".venv" / "bin" / "duckdb"


@pytest.fixture(scope="module")
def mirror_dir(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("catalog")
    load_snapshot(base / "data", [write_sample_stock(base / "stock")], month="2024-04")
    return base / "data"


def duckdb_cli(db: Path, sql: str, cwd: Path, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(DUCKDB_CLI), *flags, "-csv", "-noheader", str(db), "-c", sql],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
    )


@pytest.mark.slow
def test_duckdb_cli_reads_catalog_from_another_cwd_read_only(mirror_dir, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    db = mirror_dir / "sirene.duckdb"
    for flags in (("-readonly",), ()):
        r = duckdb_cli(db, "select count(*) from etablissements", elsewhere, *flags)
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == "3"
    r = duckdb_cli(
        db,
        "select departement, epci from etablissements where siret = '00032517500024'",
        elsewhere,
        "-readonly",
    )
    assert r.stdout.strip() == "84,248400251"
    # the CLI is the same DuckDB version as the library (same storage format)
    r = subprocess.run([str(DUCKDB_CLI), "-version"], capture_output=True, text=True, timeout=30)
    assert duckdb.__version__ in r.stdout


def test_catalog_holds_views_typed_ref_tables_and_its_build_record_only(mirror_dir):
    con = catalog.connect(mirror_dir)
    kinds = dict(con.sql("SELECT table_name, table_type FROM information_schema.tables").fetchall())
    for t in catalog.TABLES:
        assert kinds[t] == "VIEW"
    tables = sorted(k for k, v in kinds.items() if v == "BASE TABLE" and k != catalog.BUILD_TABLE)
    assert kinds[catalog.BUILD_TABLE] == "BASE TABLE"  # one row: what the catalog was built from
    assert all(t.startswith("ref_") for t in tables)
    ref_files = sorted(p.name.split(".")[0] for p in (REPO / "sql" / "ref").iterdir() if ".csv" in p.name)
    assert tables == [f"ref_{s}" for s in ref_files]
    types = dict(
        con.sql(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = 'ref_tranches_effectifs'"
        ).fetchall()
    )
    assert types == {"code": "VARCHAR", "de": "INTEGER", "a": "INTEGER", "intitule": "VARCHAR"}
    assert con.sql("SELECT de, a FROM ref_tranches_effectifs WHERE code = '11'").fetchone() == (10, 19)
    assert con.sql("SELECT typeof(population), typeof(code) FROM ref_communes LIMIT 1").fetchone() == (
        "INTEGER",
        "VARCHAR",
    )
    assert con.sql("SELECT count(*) FROM ref_communes WHERE code = '2A004'").fetchone()[0] == 1
    assert con.sql("SELECT code FROM ref_departements WHERE code = '01'").fetchone() == ("01",)
    # views reference the snapshot by absolute path
    sql = con.sql("SELECT sql FROM duckdb_views() WHERE view_name = 'unites_legales'").fetchone()[0]
    assert str(mirror_dir / "snapshots" / "2024-04") in sql
    with pytest.raises(duckdb.Error):
        con.execute("CREATE TABLE x (a INT)")  # read-only by default
    con.close()


def test_view_columns_follow_insee_names_and_types(mirror_dir):
    from mirror.core.schema import GEOLOCATION_COLUMNS
    from mirror.core.typed import base_columns

    con = catalog.connect(mirror_dir)
    for t in catalog.TABLES:
        rel = con.sql(f"SELECT * FROM {t} LIMIT 0")
        # the geolocation file's columns come only with that file (this stock was loaded without it)
        expected = {c: k for c, k in base_columns(t).items() if c not in GEOLOCATION_COLUMNS}
        assert rel.columns == list(expected), t
        assert [str(x) for x in rel.types] == list(expected.values()), t
    con.close()


@pytest.mark.slow
def test_rebuild_is_atomic_for_open_readers_and_missing_mirror_is_a_clear_error(mirror_dir, tmp_path):
    reader = catalog.connect(mirror_dir)
    before = (mirror_dir / "sirene.duckdb").stat().st_ino
    r = run_mirror("catalog", data_dir=mirror_dir)
    assert r.returncode == 0, r.stderr
    assert (mirror_dir / "sirene.duckdb").stat().st_ino != before  # replaced, not rewritten in place
    assert reader.sql("SELECT count(*) FROM etablissements").fetchone()[0] == 3  # old handle still works
    reader.close()
    assert not [p for p in mirror_dir.iterdir() if ".tmp-" in p.name]
    with pytest.raises(MirrorError, match="no mirror in"):
        catalog.connect(tmp_path / "empty")
    r = run_mirror("status", data_dir=tmp_path / "empty")
    assert r.returncode == 1 and "no mirror in" in r.stderr and "Traceback" not in r.stderr


def test_mirror_threads_bounds_the_catalogs_connections(mirror_dir, monkeypatch):
    """MIRROR_THREADS reaches every connection the mirror opens (mirror.core.config.open_duckdb; the
    architecture test checks that no other module calls duckdb.connect), readers' included."""
    for threads in ("1", "3"):
        monkeypatch.setenv(THREADS_ENV, threads)
        con = catalog.connect(mirror_dir)
        try:
            assert con.execute("SELECT current_setting('threads')").fetchone()[0] == int(threads)
        finally:
            con.close()
    monkeypatch.delenv(THREADS_ENV)
    con = catalog.connect(mirror_dir)
    default = duckdb.connect()
    try:  # unset: DuckDB's default (one per core)
        setting = "SELECT current_setting('threads')"
        assert con.execute(setting).fetchone() == default.execute(setting).fetchone()
    finally:
        con.close()
        default.close()
