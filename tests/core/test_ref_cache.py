"""The data derived from sql/ref once per machine (mirror.core.ref_cache): the commune lookups of the typing
SQL and the catalog's ref-table template, read from the cache entry give what deriving gives; a damaged,
unwritable or absent cache changes nothing but the time; processes deriving at once all get one entry."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import REPO

from mirror.catalog import build
from mirror.core import typed
from mirror.core.config import CACHE_DIR_ENV

CODES = ["35238", "2A004", "97411", "75056", "75101", "13201", "99999", "1234", None, "2B033", "97501"]


@pytest.fixture
def fresh(monkeypatch):
    """The process's memos cleared before and after (each call below acts as a new process would)."""

    def clear():
        typed.commune_cache.cache_clear()
        typed._LISTS.clear()

    clear()
    yield lambda cache: (monkeypatch.setenv(CACHE_DIR_ENV, str(cache)), clear())
    clear()


def lookups() -> dict:
    """The four tables and the derived lookups of CODES on a newly prepared connection."""
    con = duckdb.connect()
    try:
        typed.prepare_connection(con)
        typed.prepare_connection(con)  # idempotent
        out = {
            name: con.execute(f"SELECT * FROM {name} ORDER BY ALL").fetchall()
            for name in typed.COMMUNE_TABLES
        }
        out["derived"] = con.execute(
            "SELECT c, mirror_commune_departement(mirror_commune_key(c)), mirror_commune_region(mirror_commune_key(c)), "
            "mirror_commune_epci(mirror_commune_key(c)), "
            "getvariable('mirror_departement_code')[mirror_departement_key(c) + 1], "
            "getvariable('mirror_departement_region')[mirror_departement_key(c) + 1] FROM unnest(?) t(c)",
            [CODES],
        ).fetchall()
        cursor = con.cursor()  # a cursor of a prepared connection is prepared again (its own session)
        typed.prepare_connection(cursor)
        assert cursor.execute("SELECT count(*) FROM _mirror_departements").fetchone()[0] > 100
        return out
    finally:
        con.close()


def test_commune_lookups_read_from_the_cache_equal_the_derived_ones(fresh, tmp_path):
    fresh("off")
    derived = lookups()
    assert derived["derived"][0] == ("35238", "35", "53", "243500139", "35", "53")
    assert len(derived["_mirror_commune_geo"]) > 30_000

    cache = tmp_path / "cache"
    fresh(cache)
    assert lookups() == derived  # the first process derives and writes the entry
    (entry,) = cache.iterdir()
    assert entry.name.startswith("commune-lookups-")
    assert sorted(p.name for p in entry.iterdir()) == sorted(f"{n}.parquet" for n in typed.COMMUNE_TABLES)

    fresh(cache)
    assert lookups() == derived  # the next ones read it
    # ... really from the entry: a value changed there is what they read
    path = entry / "_mirror_departements.parquet"
    table = pq.read_table(path)
    regions = [
        "XX" if code == "35" else r
        for code, r in zip(table["code"].to_pylist(), table["region"].to_pylist(), strict=True)
    ]
    pq.write_table(
        table.set_column(table.schema.get_field_index("region"), "region", pa.array(regions)), path
    )
    fresh(cache)
    assert ("35", "XX") in [(r[1], r[2]) for r in lookups()["_mirror_departements"]]

    # A damaged entry (any of its files): derived again, same answers; the entry is removed and written
    # again by the next preparation (here the cursor's), then read.
    for name in typed.COMMUNE_TABLES:
        for damage in (lambda b: b[: len(b) // 2] + b[-8:], lambda b: b"not a parquet file"):  # footer kept
            damaged = entry / f"{name}.parquet"
            damaged.write_bytes(damage(damaged.read_bytes()))
            fresh(cache)
            assert lookups() == derived, name
            assert pq.read_table(damaged).num_rows > 0  # whole again
            fresh(cache)
            assert lookups() == derived, name


def test_an_unwritable_cache_derives_in_place(fresh, tmp_path):
    fresh("off")
    derived = lookups()
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    fresh(blocker / "cache")  # cannot be created: below a file
    assert lookups() == derived
    assert blocker.is_file()


def test_processes_deriving_at_once_publish_one_complete_entry(tmp_path):
    cache = tmp_path / "cache"
    probe = (
        "import duckdb\nfrom mirror.core import typed\ncon = duckdb.connect()\ntyped.prepare_connection(con)\n"
        "print(con.execute(\"SELECT mirror_commune_epci(mirror_commune_key('35238')), count(*) "
        'FROM _mirror_commune_geo").fetchone())\n'
    )
    env = {"PATH": "/usr/bin:/bin", CACHE_DIR_ENV: str(cache)}
    runs = [
        subprocess.Popen([sys.executable, "-c", probe], cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    outputs = [run.communicate(timeout=120)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0, 0]
    assert len(set(outputs)) == 1 and "243500139" in outputs[0]
    assert [p.name.split("-")[:2] for p in cache.iterdir()] == [["commune", "lookups"]]  # no temporary left

    # What a writer killed mid-entry left (an hour old) goes with the next publication; a younger one stays.
    (entry,) = cache.iterdir()
    killed, working = cache / ".commune-lookups-killed", cache / ".commune-lookups-working"
    for folder in (killed, working):
        folder.mkdir()
    os.utime(killed, (time.time() - 2 * 3600,) * 2)
    shutil.rmtree(entry)
    runs[0] = subprocess.run([sys.executable, "-c", probe], cwd=REPO, env=env, capture_output=True, text=True)
    assert runs[0].returncode == 0 and runs[0].stdout == outputs[0]
    assert sorted(p.name for p in cache.iterdir()) == sorted([entry.name, working.name])


def test_ref_template_of_every_data_directory_is_the_cached_one(monkeypatch, tmp_path):
    monkeypatch.setenv(CACHE_DIR_ENV, "off")
    (tmp_path / "off").mkdir()
    reference = build._ref_template(tmp_path / "off")
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "cache"))
    templates = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        templates.append(build._ref_template(tmp_path / name))
    assert [t.name for t in templates] == [reference.name] * 2
    (entry,) = (tmp_path / "cache").iterdir()
    assert entry.name.startswith("ref-tables-") and [p.name for p in entry.iterdir()] == ["ref.duckdb"]

    def tables(path) -> dict:
        con = duckdb.connect(str(path), read_only=True)
        try:
            names = [
                r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() ORDER BY 1").fetchall()
            ]
            return {n: con.execute(f'SELECT * FROM "{n}" ORDER BY ALL').fetchall() for n in names}
        finally:
            con.close()

    expected = tables(reference)
    assert len(expected) > 10 and "ref_communes" in expected
    assert all(tables(t) == expected for t in templates)

    # A damaged entry is not copied: the next data directory builds its own, and the entry is written again.
    (entry / "ref.duckdb").write_bytes(b"not a DuckDB file")
    (tmp_path / "c").mkdir()
    assert tables(build._ref_template(tmp_path / "c")) == expected
    assert not entry.exists()
    (tmp_path / "d").mkdir()
    assert tables(build._ref_template(tmp_path / "d")) == expected
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [entry.name]


@pytest.mark.slow
def test_full_builds_from_the_views_template_equal_the_views_built_in_place(monkeypatch, tmp_path):
    """A full build copies the machine's views template (placeholder base views, every sql/views view) and
    re-creates its base views: every view then has the columns, types and rows of one built in place; a
    damaged template is removed and the views built in place. The ref tables' Parquet files of
    current.json copied from their cache entry equal the ones written in place."""
    from stock_samples import write_sample_stock

    from mirror.load.stock import load_snapshot

    monkeypatch.setenv(CACHE_DIR_ENV, "off")
    data = tmp_path / "data"
    load_snapshot(data, [write_sample_stock(tmp_path / "stock")], month="2024-04")

    def views() -> dict:
        con = build.connect(data)
        try:
            names = [
                r[0]
                for r in con.execute(
                    "SELECT view_name FROM duckdb_views() WHERE NOT internal ORDER BY 1"
                ).fetchall()
            ]
            return {
                n: (
                    con.execute(f'DESCRIBE "{n}"').fetchall(),
                    sorted(map(repr, con.execute(f'SELECT * FROM "{n}"').fetchall())),
                )
                for n in names
            }
        finally:
            con.close()

    def ref_parquet() -> dict:
        return {p.name: pq.read_table(p) for p in (data / "ref-parquet").glob("*/*.parquet")}

    in_place, written = views(), ref_parquet()
    assert len(in_place) > 20 and in_place["documents_v3_unites_legales"][1] and len(written) > 10
    shutil.rmtree(data / "ref-parquet")
    cache = tmp_path / "cache"
    monkeypatch.setenv(CACHE_DIR_ENV, str(cache))
    unused, recent = cache / "catalog-views-0000-1111", cache / "catalog-views-2222-3333"
    for folder in (unused, recent):  # the templates of other schemas, one unused for a month
        folder.mkdir(parents=True)
    os.utime(unused, (time.time() - build.UNUSED_TEMPLATE_SECONDS - 60,) * 2)
    for _ in range(2):  # the first build writes the template, the second copies it
        build.rebuild(data, None)
        assert views() == in_place
    assert not unused.exists() and recent.exists()
    recent.rmdir()
    (entry,) = cache.glob("catalog-views-*")
    assert [p.name for p in entry.iterdir()] == ["views.duckdb"]
    assert len(list(cache.glob("ref-parquet-*"))) == 1 and ref_parquet() == written

    (entry / "views.duckdb").write_bytes(b"not a DuckDB file")
    build.rebuild(data, None)
    assert views() == in_place
    assert not entry.exists()  # removed; this build made its views in place

    # Placeholders that would not have the base views' types: no template, the views built in place.
    real = build.render

    def untyped(sql_file: str, /, **values) -> str:
        if sql_file == "catalog/placeholder_view.sql":
            values["columns"] = "1 AS one"
        return real(sql_file, **values)

    monkeypatch.setattr(build, "render", untyped)
    build.rebuild(data, None)
    assert views() == in_place and not list(cache.glob("catalog-views-*"))
