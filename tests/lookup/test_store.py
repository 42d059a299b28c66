"""The lookup store (DATA_DIR/lookup.sqlite): real generated stock, real catalog views, real `mirror` CLI
runs against the local INSEE / data.gouv.fr upstream on 127.0.0.1.

The store must answer exactly what the SQL document views answer (the views are the document truth), stay
current after every update day, and never answer from a half-written state."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest
from conftest import REPO, built_once, caller_env, private_mirror, run_mirror
from test_insee_store import assert_insee_store_equals_views

from mirror.catalog.build import connect
from mirror.core import datadir
from mirror.lookup.search import search
from mirror.lookup.store import open_store, store_path
from mirror.serve.documents import get_document, iter_documents
from mirror.synthetic.upstream import server

MONTH = "2026-10"
SCALE = 600
SEED = 21
ENV = {"INSEE_API_KEY": server.DEFAULT_API_KEY}
pytestmark = pytest.mark.lookup_store


@pytest.fixture(scope="module")
def upstream_data(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("upstream-store")
    server.prepare_stock(data, MONTH, SCALE, SEED)
    return data


@pytest.fixture(scope="module")
def synced(upstream_data, tmp_path_factory) -> Path:
    """The data directory of a plain `mirror sync` on 2026-10-01 (snapshot, catalog, lookup store), built
    once per run for the tests that start from one: each takes a private copy (synced_copy)."""

    def build(root: Path) -> None:
        up = server.start(upstream_data, MONTH, scale=SCALE, seed=SEED, today=date(2026, 10, 1))
        try:  # the store on explicitly: module fixtures run before the per-test lookup_store_off
            result = mirror_cmd("sync", root / "data", up, env={"MIRROR_LOOKUP_STORE": "on"})
            assert result.returncode == 0, result.stderr
        finally:
            up.close()

    return built_once(tmp_path_factory, f"store-synced-{SCALE}-{SEED}", build) / "data"


def synced_copy(synced: Path, tmp_path: Path) -> Path:
    mirror = private_mirror(synced, tmp_path / "mirror")
    store = open_store(mirror)
    assert store is not None and store.begin(), "the copied store must be current"
    store.end()
    return mirror


def mirror_cmd(command: str, data_dir: Path, up, *extra: str, env: dict | None = None):
    urls = ["--insee-url", up.insee_url, "--rate", "100000", "-q"]
    if command == "sync":
        urls = ["--datagouv-url", up.datagouv_url, *urls]
    return run_mirror(command, *urls, *extra, data_dir=data_dir, env={**ENV, **(env or {})})


def identifiers(data_dir: Path) -> list[str]:
    """Every SIREN and SIRET of the mirror, plus the doublons and identifiers it does not know."""
    con = connect(data_dir)
    try:
        sirens = [r[0] for r in con.execute("SELECT siren FROM unites_legales ORDER BY siren").fetchall()]
        sirets = [r[0] for r in con.execute("SELECT siret FROM etablissements ORDER BY siret").fetchall()]
        doublons = [r[0] for r in con.execute("SELECT DISTINCT sirenDoublon FROM doublons").fetchall()]
    finally:
        con.close()
    return sirens + sirets + doublons + ["000000000", "00000000000000", "123456789", "12"]


def assert_store_equals_views(data_dir: Path, ids: list[str]) -> int:
    """Every (identifier, format, variant) answered by the store equals the views' answer (status and
    body); returns the number of answers compared."""
    store = open_store(data_dir)
    assert store is not None and store.begin(), "the store must be current"
    store.end()
    con = connect(data_dir)
    compared = 0
    try:
        for fmt in ("v3", "v4"):
            for diffusibles, non_diffusables in ((False, False), (True, False), (False, True)):
                for siege in (False, True):
                    wanted = [i for i in ids if not siege or len(i) != 14]
                    views = iter_documents(con, wanted, fmt, diffusibles, non_diffusables, siege)
                    for ident, status, body in views:
                        got = get_document(data_dir, ident, fmt, diffusibles, non_diffusables, siege)
                        assert got == (status, body), (ident, fmt, diffusibles, non_diffusables, siege)
                        compared += 1
    finally:
        con.close()
    return compared


def assert_point_in_time_equals_views(data_dir: Path, ids: list[str], days: list[date]) -> int:
    """For each identifier and day, the `--date` document rebuilt from the store's rows of the unit equals
    the one rebuilt from the catalog's Parquet tables (a connection as the source never reads the store);
    returns the number of answers compared."""
    from mirror.serve.documents import _stored_rows

    con = connect(data_dir)
    compared = 0
    try:
        for n, ident in enumerate(ids):
            assert _stored_rows(data_dir, ident[:9]) is not None, "the store must answer the rows"
            for day in days:
                fmt = ("v3", "v4")[n % 2]
                got = get_document(data_dir, ident, fmt, as_of=day)
                assert got == get_document(con, ident, fmt, as_of=day), (ident, fmt, day)
                compared += 1
    finally:
        con.close()
    return compared


@pytest.mark.slow
def test_store_answers_what_the_views_answer_and_follows_every_update_day(upstream_data, synced, tmp_path):
    """sync (load + store build), then days of INSEE changes (renames, cessations, creations, siège
    transfers, diffusion changes): after each run the store is current and equal to the views for every
    identifier; search finds the new names and no longer the old ones."""
    mirror = synced_copy(synced, tmp_path)
    assert store_path(mirror).is_file()
    base_ids = identifiers(mirror)
    assert assert_store_equals_views(mirror, base_ids) > 10_000

    con = connect(mirror)
    old_names = dict(
        con.execute(
            "SELECT siren, denominationUniteLegale FROM unites_legales WHERE denominationUniteLegale IS NOT NULL"
        ).fetchall()
    )
    con.close()

    up = server.start(upstream_data, MONTH, scale=SCALE, seed=SEED, today=date(2026, 10, 5))
    try:
        result = mirror_cmd("update", mirror, up)
        assert result.returncode == 0, result.stderr
        days = [up.changes.changes_for(date(2026, 10, d)) for d in (1, 2, 3, 4)]
    finally:
        up.close()
    kinds = {k for day in days for k, _ in day.events}
    assert {"creation", "siege_transfer", "name_change", "diffusion_p"} <= kinds, kinds
    assert len(datadir.read_state(mirror)["deltas"]) == 4

    changed = sorted({r["siren"] for day in days for r in day.unites_legales})
    changed_sirets = sorted({r["siret"] for day in days for r in day.etablissements})
    assert assert_store_equals_views(mirror, changed + changed_sirets + base_ids[:300]) > 1000
    # the rows kept for point-in-time documents follow the days too
    assert (
        assert_point_in_time_equals_views(
            mirror, changed[:12] + changed_sirets[:6], [date(2026, 10, 3), date(2015, 1, 1)]
        )
        == 36
    )
    # The INSEE records follow the days too: the changed units (their établissements nest the unit) and
    # établissements, and every other key, cut to every boundary day.
    assert assert_insee_store_equals_views(mirror) > 6 * 1000

    renamed = [s for day in days for k, s in day.events if k == "name_change"]
    con = connect(mirror)
    for siren in renamed:
        (new_name, statut) = con.execute(
            "SELECT denominationUniteLegale, statutDiffusionUniteLegale FROM unites_legales WHERE siren = ?",
            [siren],
        ).fetchone()
        if not new_name or statut != "O" or new_name == old_names.get(siren):
            continue
        found = search(mirror, new_name, limit=20).results
        assert siren in [r["siren"] for r in found], (siren, new_name)
        old = old_names.get(siren)
        if old and not set(old.split()) & set(new_name.split()):
            assert siren not in [r["siren"] for r in search(mirror, old, limit=100).results], (siren, old)
    con.close()


@pytest.mark.slow
def test_crash_while_building_or_updating_keeps_the_previous_store_answering(upstream_data, tmp_path):
    """A crash before the switch of a full build, and before the commit of a day, leave the previous store
    answering (or the views, with the same answers); the next run completes the store."""
    mirror = tmp_path / "mirror"
    up = server.start(upstream_data, MONTH, scale=SCALE, seed=SEED, today=date(2026, 10, 1))
    try:
        crashed = mirror_cmd("sync", mirror, up, env={"MIRROR_CRASH_AT": "lookup-before-switch"})
        assert crashed.returncode == 86, crashed.stderr
    finally:
        up.close()
    assert not store_path(mirror).exists()  # never half-built and visible
    ids = identifiers(mirror)[:50]
    con = connect(mirror)
    views = list(iter_documents(con, ids, "v3"))
    con.close()
    assert [get_document(mirror, i) for i, _s, _b in views] == [(s, b) for _i, s, b in views]

    repaired = run_mirror("store", data_dir=mirror)
    assert repaired.returncode == 0, repaired.stderr
    assert "lookup store built" in repaired.stdout
    assert not list(mirror.glob(".lookup-building-*"))  # the crashed build's file is cleaned

    up = server.start(upstream_data, MONTH, scale=SCALE, seed=SEED, today=date(2026, 10, 3))
    try:
        crashed = mirror_cmd("update", mirror, up, env={"MIRROR_CRASH_AT": "lookup-before-commit"})
        assert crashed.returncode == 86, crashed.stderr
        # The day is applied to the catalog; the store rolled back: it is not current, the views answer.
        store = open_store(mirror)
        assert store is not None and not store.begin()
        changed = sorted({r["siren"] for r in up.changes.changes_for(date(2026, 10, 1)).unites_legales})
        con = connect(mirror)
        views = list(iter_documents(con, changed, "v4"))
        con.close()
        assert [get_document(mirror, i, "v4") for i in changed] == [(s, b) for _i, s, b in views]
        db = sqlite3.connect(store_path(mirror))
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        db.close()

        result = mirror_cmd("update", mirror, up)
        assert result.returncode == 0, result.stderr
    finally:
        up.close()
    store = open_store(mirror)
    assert store is not None and store.begin()
    store.end()
    assert assert_store_equals_views(mirror, changed) > 0


@pytest.mark.slow
def test_a_background_build_runs_beside_the_writers_and_catches_up_their_days(upstream_data, tmp_path):
    """MIRROR_STORE_BUILD=background: sync returns once the snapshot is published and a detached `mirror
    store` builds the store without the writer lock (the views answer meanwhile, and `mirror status` says
    so); an update applies days while it builds; the build then switches its store in under the lock and
    applies those days: current, equal to the views, no file left behind."""
    from mirror.lookup.store import background_builder

    mirror = tmp_path / "mirror"
    resume = tmp_path / "resume"  # the built store waits at that stage until the update below is done
    env = {"MIRROR_STORE_BUILD": "background", "MIRROR_PAUSE_AT": "lookup-built-aside"}
    env.update(MIRROR_RESUME_FILE=str(resume), MIRROR_PAUSE_SECONDS="120")
    up = server.start(upstream_data, MONTH, scale=SCALE, seed=SEED, today=date(2026, 10, 1))
    try:
        result = mirror_cmd("sync", mirror, up, env=env)
        assert result.returncode == 0, result.stderr
    finally:
        up.close()
    assert "being built in the background" in result.stdout + result.stderr
    builder = background_builder(mirror)
    assert builder is not None and not store_path(mirror).exists()
    status = run_mirror("status", data_dir=mirror, env={"MIRROR_LOOKUP_STORE": "on"})
    assert f"being built by pid {builder}" in status.stdout + status.stderr
    second = run_mirror("store", data_dir=mirror, env={"MIRROR_LOOKUP_STORE": "on"})  # not a second build
    assert second.returncode == 1 and second.stderr.splitlines() == [
        f"Error: the lookup store is already being built by pid {builder} "
        f"(log {mirror / 'lookup-build.log'}); try again once it is done"
    ], second.stderr
    ids = identifiers(mirror)[:20]
    con = connect(mirror)
    views = list(iter_documents(con, ids, "v3"))
    con.close()
    assert [get_document(mirror, i) for i, _s, _b in views] == [(s, b) for _i, s, b in views]

    up = server.start(upstream_data, MONTH, scale=SCALE, seed=SEED, today=date(2026, 10, 3))
    try:
        result = mirror_cmd("update", mirror, up, env={"MIRROR_STORE_BUILD": "background"})
        assert result.returncode == 0, result.stderr
        changed = sorted(
            {r["siren"] for d in (1, 2) for r in up.changes.changes_for(date(2026, 10, d)).unites_legales}
        )
    finally:
        up.close()
    assert background_builder(mirror) == builder  # not a second build: that one catches up
    assert datadir.read_state(mirror)["deltas"] == ["2026-10-01", "2026-10-02"]
    resume.touch()
    for _ in range(240):
        if background_builder(mirror) is None:
            break
        time.sleep(0.5)
    assert background_builder(mirror) is None, "the background build did not end"
    log = (mirror / "lookup-build.log").read_text()
    assert "lookup store built" in log, log
    store = open_store(mirror)
    assert store is not None and store.begin() and not store.lagging  # current, the two days included
    store.end()
    assert assert_store_equals_views(mirror, changed + ids) > 0
    assert not list(mirror.glob(".lookup-building-*"))


@pytest.mark.slow
def test_store_answers_the_previous_state_while_its_writer_refreshes_it(upstream_data, synced, tmp_path):
    """Between a day's publication and the store's commit, lookups answer the state the store holds (one
    state behind, consistent) instead of the slow views, as long as that writer is alive; once it is
    gone (killed), the views answer the published state."""
    mirror = synced_copy(synced, tmp_path)
    up = server.start(upstream_data, MONTH, scale=SCALE, seed=SEED, today=date(2026, 10, 2))
    try:
        changed = sorted({r["siren"] for r in up.changes.changes_for(date(2026, 10, 1)).unites_legales})
        before = {siren: get_document(mirror, siren, "v3") for siren in changed}
        env = caller_env(insee_key=True)
        env.update(ENV, MIRROR_PAUSE_AT="lookup-before-commit", MIRROR_LOOKUP_STORE="on")
        writer = subprocess.Popen(
            [sys.executable, "-m", "mirror", "update", "--insee-url", up.insee_url, "--rate", "100000", "-q",
             "--data-dir", str(mirror)],
            cwd=REPO, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        try:
            assert writer.stderr.readline().strip() == "[paused at lookup-before-commit]"
            state = datadir.read_state(mirror)
            assert state["deltas"] == ["2026-10-01"]  # the day is published ...
            store = open_store(mirror)
            assert store.begin() and store.lagging  # ... and the store answers the previous state
            store.end()
            assert {siren: get_document(mirror, siren, "v3") for siren in changed} == before
            con = connect(mirror)
            try:
                views = {i: (s, b) for i, s, b in iter_documents(con, changed, "v3")}
            finally:
                con.close()
            assert views != before  # the published state differs: the store is one state behind
            status = run_mirror("status", data_dir=mirror, env={"MIRROR_LOOKUP_STORE": "on"})
            assert "catching up" in status.stdout, status.stdout
        finally:
            writer.kill()
            writer.wait()
        # A dead writer leaves its record in state.json but no process: the views answer the new state.
        store = open_store(mirror)
        assert not store.begin()
        assert {siren: get_document(mirror, siren, "v3") for siren in changed} == views
        assert mirror_cmd("update", mirror, up).returncode == 0
    finally:
        up.close()
    store = open_store(mirror)
    assert store.begin() and not store.lagging
    store.end()
    assert assert_store_equals_views(mirror, changed) > 0


@pytest.mark.slow
def test_get_answers_from_the_store_without_importing_duckdb_or_pyarrow(synced, tmp_path):
    """`mirror get` on a current store imports neither DuckDB nor pyarrow (process start-up); on a v2
    question (views only) it does, and both answer like the views."""
    mirror = synced_copy(synced, tmp_path)
    siren = identifiers(mirror)[0]
    probe = (
        "import sys\n"
        "from mirror.cli import main\n"
        "try:\n"
        "    main([*sys.argv[1:]], standalone_mode=False)\n"
        "finally:\n"
        "    print('LOADED', 'duckdb' in sys.modules, 'pyarrow' in sys.modules, file=sys.stderr)\n"
    )
    for fmt, heavy in (("v3", "False False"), ("v4", "False False"), ("v2", "True")):
        run = subprocess.run(
            [
                sys.executable,
                "-c",
                probe,
                "get",
                siren,
                "--format",
                fmt,
                "--compact",
                "--data-dir",
                str(mirror),
            ],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=120,
        )
        assert run.returncode == 0, run.stderr
        assert f"LOADED {heavy}" in run.stderr, (fmt, run.stderr)
        con = connect(mirror)
        try:
            assert json.loads(run.stdout) == get_document(con, siren, fmt)[1]  # the views' answer
        finally:
            con.close()


@pytest.mark.slow
def test_store_built_by_load_equals_the_views_on_a_sample(stock_dir, tmp_path):
    """The quick tier's check: `load_snapshot` builds the store, which answers a sample of identifiers
    (units, établissements, doublons, unknown and invalid ones) exactly as the views do, in v3 and v4,
    protected, /diffusibles/ and siège variants; P units included."""
    from mirror.load.stock import load_snapshot

    mirror = tmp_path / "mirror"
    summary = load_snapshot(mirror, [stock_dir], month="2026-10")
    assert summary["lookup_store"] and "Lookup store built" in summary["lookup_store"]
    ids = identifiers(mirror)
    con = connect(mirror)
    p_units = [r[0] for r in con.execute(
        "SELECT siren FROM unites_legales WHERE statutDiffusionUniteLegale = 'P' ORDER BY siren LIMIT 20"
    ).fetchall()]  # fmt: skip
    con.close()
    assert p_units
    sample = ids[::25] + p_units + ids[-6:]
    assert assert_store_equals_views(mirror, sample) > 1000

    # A writer holding the store's exclusive lock (a commit that does not end), then a damaged row: the
    # answer still comes, from the views, and is the same.
    siren, siret = ids[0], next(i for i in ids if len(i) == 14)
    con = connect(mirror)
    expected = {i: get_document(con, i, "v3") for i in (siren, siret)}
    con.close()
    writer = sqlite3.connect(store_path(mirror), isolation_level=None)
    writer.execute("BEGIN EXCLUSIVE")
    try:
        assert get_document(mirror, siren, "v3") == expected[siren]
    finally:
        writer.execute("ROLLBACK")
    writer.execute("UPDATE lookup_etablissements SET documents = x'00ff00ff' WHERE siret = ?", [siret])
    writer.close()
    assert get_document(mirror, siret, "v3") == expected[siret]


def test_point_in_time_rows_cut_in_siren_ranges_are_the_rows_of_one_pass(loaded_stock, monkeypatch):
    """A large mirror's full build writes the per-unit rows in SIREN ranges (bounded memory): cut into ranges
    of 400 units, the store holds the same rows per SIREN as written in one pass, and every row of the four
    base views once."""
    import sqlite3 as sqlite

    import zstandard

    from mirror.lookup import build as store_build
    from mirror.lookup.store import decode_variants

    con = connect(loaded_stock)
    try:
        (units,) = con.execute("SELECT count(*) FROM unites_legales").fetchone()
        assert units > 2 * 400, "several ranges"
        written = []
        for per_range in (store_build.ROWS_PER_RANGE, 400):
            monkeypatch.setattr(store_build, "ROWS_PER_RANGE", per_range)
            db = sqlite.connect(":memory:")
            db.execute("CREATE TABLE lookup_rows (siren TEXT PRIMARY KEY, rows BLOB) WITHOUT ROWID")
            dctx = zstandard.ZstdDecompressor(dict_data=store_build._write_rows(con, db, None))
            units = {}
            for siren, blob in db.execute("SELECT siren, rows FROM lookup_rows"):
                tables = decode_variants(dctx.decompress(blob))
                units[siren] = {
                    t: sorted(json.dumps(r, sort_keys=True) for r in json.loads(v)) for t, v in tables.items()
                }
            written.append(units)
        one_pass, ranges = written
        assert one_pass == ranges
        for table in store_build.ROW_TABLES:
            (rows,) = con.execute(f"SELECT count(*) FROM {table}").fetchone()
            assert sum(len(u[table]) for u in ranges.values()) == rows > 0, table
    finally:
        con.close()
