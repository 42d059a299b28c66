"""`mirror sync` end to end against the combined local upstream (real HTTP on 127.0.0.1, real CLI runs).

Oracle: the mirror after stock M plus every day of M's changes must equal the stock M+1 that the change
stream writes (mirror.synthetic.upstream.changes.write_next_month_stock), loaded by the real loader.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from datetime import date
from pathlib import Path

import duckdb
import pytest
from conftest import run_mirror

from mirror.core.errors import MirrorError
from mirror.deltas import store as deltas
from mirror.synthetic.upstream import server

MONTH = "2026-10"
SCALE = 1200
SEED = 5
KEY = server.DEFAULT_API_KEY
ENV = {"INSEE_API_KEY": KEY}
VIEWS = (
    "unites_legales",
    "etablissements",
    "unites_legales_historique",
    "etablissements_historique",
    "liens_succession",
    "doublons",
)


@pytest.fixture(scope="module")
def upstream_data(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("upstream")
    server.prepare_stock(data, MONTH, SCALE, SEED, geolocation=True)  # the same six files, and the geo file
    return data


def start(upstream_data: Path, today: date, **options) -> server.Upstream:
    return server.start(
        upstream_data, MONTH, scale=SCALE, seed=SEED, today=today, geolocation=True, **options
    )


def sync(data_dir: Path, up: server.Upstream, *extra: str, env: dict | None = None):
    return run_mirror(
        "sync",
        "--datagouv-url",
        up.datagouv_url,
        "--insee-url",
        up.insee_url,
        "--rate",
        "100000",
        "-q",
        *extra,
        data_dir=data_dir,
        env={**ENV, **(env or {})},
    )


def differences(a: Path, b: Path, views=VIEWS) -> dict[str, int]:
    """Rows of each view present in one catalog and not the other (EXCEPT ALL, both ways)."""
    con = duckdb.connect()
    con.execute(f"ATTACH '{a / 'sirene.duckdb'}' AS a (READ_ONLY)")
    con.execute(f"ATTACH '{b / 'sirene.duckdb'}' AS b (READ_ONLY)")
    out = {}
    for view in views:
        cols = ", ".join(
            f'"{c}"' for c in con.execute(f"SELECT * FROM a.{view} LIMIT 0").to_arrow_table().column_names
        )
        (n,) = con.execute(
            f"SELECT (SELECT count(*) FROM (SELECT {cols} FROM a.{view} EXCEPT ALL SELECT {cols} FROM b.{view}))"
            f" + (SELECT count(*) FROM (SELECT {cols} FROM b.{view} EXCEPT ALL SELECT {cols} FROM a.{view}))"
        ).fetchone()
        out[view] = n
    con.close()
    return out


def rows(data_dir: Path, view: str) -> list[tuple]:
    con = duckdb.connect(str(data_dir / "sirene.duckdb"), read_only=True)
    try:
        return sorted(con.execute(f"SELECT * FROM {view}").fetchall(), key=repr)
    finally:
        con.close()


def no_duplicates(data_dir: Path) -> None:
    con = duckdb.connect(str(data_dir / "sirene.duckdb"), read_only=True)
    for view, key in (("unites_legales", "siren"), ("etablissements", "siret")):
        n, distinct = con.execute(f"SELECT count(*), count(DISTINCT {key}) FROM {view}").fetchone()
        assert n == distinct, f"{view}: {n - distinct} duplicated keys"
    con.close()


def net_changes(rows: list[dict]) -> dict:
    """{(identifier, field): (first old value, last new value)} of change rows in their order, the
    variables that came back to their first value left out; a creation is (identifier, None): None."""
    first, last, created = {}, {}, set()
    for r in rows:
        if r["kind"] == "creation":
            first[(r["identifier"], None)] = last[(r["identifier"], None)] = None
            created.add(r["identifier"])
        if r["identifier"] in created:  # a key created in the month: one creation, whatever came next
            continue
        first.setdefault((r["identifier"], r["field"]), r["old_value"])
        last[(r["identifier"], r["field"])] = r["new_value"]
    return {
        k: (first[k], last[k]) if k[1] else None
        for k in first
        if k[1] is None or first[k] != last[k] or last[k] == "[ND]"
    }


def stock_differences(mirror: Path, reference: Path, sirens: set[str], sirets: set[str]) -> dict:
    """The differences of stock M (the mirror's snapshot alone) and stock M+1 (the reference's views) for
    the given units and établissements, in the form of net_changes: per compared variable (as text), a
    value masked ([ND]) in M+1 masked in M too; a key new in M+1 is a creation."""
    from mirror.catalog.build import connect, snapshot_select
    from mirror.serve.changes import compared_columns

    out = {}
    for table, key, keys in (("unites_legales", "siren", sirens), ("etablissements", "siret", sirets)):
        columns = compared_columns(table)
        cols = ", ".join(f'CAST("{c}" AS VARCHAR)' for c in columns)
        sides = []
        for data_dir, source in ((mirror, None), (reference, table)):
            con = connect(data_dir)
            try:
                select = f"({snapshot_select(con, data_dir, table)})" if source is None else source
                fetched = con.execute(
                    f"SELECT {key}, {cols} FROM {select} WHERE {key} IN (SELECT unnest(?))", [sorted(keys)]
                ).fetchall()
            finally:
                con.close()
            sides.append({r[0]: dict(zip(columns, r[1:], strict=True)) for r in fetched})
        old, new = sides
        for k, row in new.items():
            if k not in old:
                out[(k, None)] = None
                continue
            for field, value in row.items():
                if value != old[k][field]:
                    out[(k, field)] = ("[ND]" if value == "[ND]" else old[k][field], value)
    return out


def new_links(mirror: Path, reference: Path) -> list[tuple]:
    """The liens de succession of the reference (stock M+1) absent from the mirror's snapshot (stock M), as
    `succession` rows (identifier, field, new value, effective date as text): one per établissement."""
    from mirror.catalog.build import connect, snapshot_select

    link = "siretEtablissementPredecesseur, siretEtablissementSuccesseur, CAST(dateLienSuccession AS VARCHAR)"
    sides = []
    for data_dir, source in ((mirror, None), (reference, "liens_succession")):
        con = connect(data_dir)
        try:
            select = f"({snapshot_select(con, data_dir, 'liens_succession')})" if source is None else source
            sides.append(set(con.execute(f"SELECT {link} FROM {select}").fetchall()))
        finally:
            con.close()
    added = sides[1] - sides[0]
    return sorted(
        [(p, "siretEtablissementSuccesseur", s, d) for p, s, d in added]
        + [(s, "siretEtablissementPredecesseur", p, d) for p, s, d in added]
    )


def state(data_dir: Path) -> dict:
    return json.loads((data_dir / "state.json").read_text())


@pytest.mark.slow
def test_sync_month_of_changes_equals_next_month_stock(upstream_data, tmp_path):
    """Stock M + its 31 days of changes through the views == stock M+1, even after a crash in the middle
    of a day's fetch and a crash in the middle of re-applying a day (nothing lost or doubled); re-applying
    days changes nothing; a stock re-published mid-month supersedes the delta days it contains, a newer
    monthly stock all of them."""
    up = start(upstream_data, today=date(2026, 11, 1))  # every day of October published
    try:
        mirror = tmp_path / "mirror"
        crashed = sync(mirror, up, env={"MIRROR_CRASH_AT": "fetch-2026-10-03"})
        assert crashed.returncode == 86
        assert state(mirror)["deltas"] == ["2026-10-01", "2026-10-02"]
        result = sync(mirror, up)
        assert result.returncode == 0, result.stderr
        assert "is the latest published" in result.stdout  # the stock loaded before the crash is kept
        assert "2026-10-31" in result.stdout and "2026-11-01" not in result.stdout
        st = state(mirror)
        assert st["deltas"] == [f"2026-10-{d:02d}" for d in range(1, 32)]

        # The oracle: stock M+1 written by the change stream, loaded by the real loader elsewhere.
        next_dir = tmp_path / "next-stock"
        up.changes.write_next_month_stock(next_dir)
        reference = tmp_path / "reference"
        loaded = run_mirror("load", str(next_dir), "--month", "2026-11", data_dir=reference, env=ENV)
        assert loaded.returncode == 0, loaded.stderr

        changed_ul = {r["siren"] for d in up.changes.days for r in up.changes.changes_for(d).unites_legales}
        changed_et = {r["siret"] for d in up.changes.days for r in up.changes.changes_for(d).etablissements}
        assert len(changed_ul) > 50 and len(changed_et) > 50  # a real month of changes, not a trivial one
        con = duckdb.connect(str(mirror / "sirene.duckdb"), read_only=True)
        # The views really show the deltas: every changed unit has its latest timestamp from October.
        (stale,) = con.execute(
            "SELECT count(*) FROM unites_legales WHERE siren IN (SELECT unnest(?)) "
            "AND dateDernierTraitementUniteLegale < TIMESTAMP '2026-10-01'",
            [sorted(changed_ul)],
        ).fetchone()
        assert stale == 0
        con.close()
        assert differences(mirror, reference) == dict.fromkeys(VIEWS, 0)
        no_duplicates(mirror)
        # `mirror changes` over the month lists exactly the differences of stock M and stock M+1 for the
        # changed units, field by field (per variable: the first old value, the last new one).
        listed = run_mirror(
            "changes", "--since", "2026-10-01", "-o", str(tmp_path / "month.jsonl"), data_dir=mirror
        )
        assert listed.returncode == 0, listed.stderr
        month = [json.loads(line) for line in (tmp_path / "month.jsonl").read_text().splitlines()]
        assert {r["source"] for r in month} == {"daily"}
        expected = stock_differences(mirror, reference, changed_ul, changed_et)
        assert (
            len(expected) > 100 and net_changes([r for r in month if r["kind"] != "succession"]) == expected
        )
        # and the liens de succession of stock M+1 that stock M did not hold, once on each side
        successions = sorted(
            (r["identifier"], r["field"], r["new_value"], r["effective_date"])
            for r in month
            if r["kind"] == "succession"
        )
        assert successions and successions == new_links(mirror, reference)

        # Re-applying days changes nothing, even after a crash in the middle of swapping a re-applied day.
        reapply = ["update", "--since", "2026-10-29", "--until", "2026-10-31", "--insee-url", up.insee_url]
        reapply += ["--rate", "100000", "-q"]
        crashed = run_mirror(*reapply, data_dir=mirror, env={**ENV, "MIRROR_CRASH_AT": "delta-mid-swap"})
        assert crashed.returncode == 86
        assert not (mirror / "deltas" / "2026-10-29").exists()  # moved aside, not yet replaced
        again = run_mirror(*reapply, data_dir=mirror, env=ENV)
        assert again.returncode == 0, again.stderr
        assert differences(mirror, reference) == dict.fromkeys(VIEWS, 0)
        assert deltas.list_days(mirror) == [date(2026, 10, d) for d in range(1, 32)]
        assert not any((mirror / ".deltas-staging").iterdir())

        # INSEE re-publishes the October stock mid-month, now holding October's changes (as on 2025-12-16):
        # sync reloads it, its coverage (last dateDernierTraitement, on 31 Oct) supersedes the earlier days.
        up.datagouv.add_month(MONTH, next_dir)
        up.datagouv.republish(MONTH)
        result = sync(mirror, up)
        assert result.returncode == 0, result.stderr
        assert "Loaded the 2026-10 monthly stock" in result.stdout
        assert deltas.list_days(mirror) == [date(2026, 10, 31)]
        assert differences(mirror, reference) == dict.fromkeys(VIEWS, 0)
        no_duplicates(mirror)
        # compared with the mirror it replaced (stock M + the days), it brings nothing the days did not report
        assert state(mirror)["snapshot"]["stock_changes"] == 0

        # A newer monthly stock (November) supersedes every delta day: the views are the snapshot's again.
        up.datagouv.add_month("2026-11", next_dir)
        up.datagouv.publish("2026-11")
        result = sync(mirror, up)
        assert result.returncode == 0, result.stderr
        assert "Loaded the 2026-11 monthly stock (replacing 2026-10)" in result.stdout
        assert deltas.list_days(mirror) == []
        assert state(mirror)["snapshot"]["month"] == "2026-11"
        assert (
            state(mirror)["snapshot"]["stock_changes"] == 0
        )  # nothing the days (and the reload) did not say
        con = duckdb.connect(str(mirror / "sirene.duckdb"), read_only=True)
        (view_sql,) = con.execute(
            "SELECT sql FROM duckdb_views() WHERE view_name = 'unites_legales'"
        ).fetchone()
        con.close()
        assert "_delta" not in view_sql
        assert differences(mirror, reference) == dict.fromkeys(VIEWS, 0)

        # Nothing new upstream: a second sync is a no-op that still exits 0.
        result = sync(mirror, up)
        assert result.returncode == 0, result.stderr
        assert "is the latest published" in result.stdout
    finally:
        up.close()


@pytest.mark.slow
def test_429_and_503_storms_are_survived(upstream_data, tmp_path, monkeypatch):
    from mirror import pipeline as sync_module
    from mirror.update import insee_client as insee

    monkeypatch.setattr(insee, "BACKOFF_BASE", 0.01)  # real retries, short waits
    monkeypatch.setenv("INSEE_API_KEY", KEY)
    up = start(upstream_data, today=date(2026, 10, 4), throttle_every=3, retry_after=0.01, fail_next=4)
    try:
        mirror = tmp_path / "mirror"
        report = sync_module.run_sync(mirror, up.datagouv_url, up.insee_url, rate=100000, progress=False)
        assert [d.day for d in report.update.days] == [
            date(2026, 10, 1),
            date(2026, 10, 2),
            date(2026, 10, 3),
        ]
        statuses_seen = len(up.insee.calls)
        assert report.update.requests == statuses_seen  # every call counted, retries included
        assert statuses_seen >= 3 * 3 + 4 + 3  # pages + the 4 failures + the throttled ones

        # Nothing lost or doubled by the retries: re-applying the same days without storms changes nothing.
        before = {v: rows(mirror, v) for v in VIEWS}
        up.insee.throttle_every = 0
        sync_module.update.run_update(
            mirror, since=date(2026, 10, 1), insee_url=up.insee_url, rate=100000, progress=False
        )
        assert {v: rows(mirror, v) for v in VIEWS} == before
        no_duplicates(mirror)

        # data.gouv.fr unreachable: the existing mirror still gets its daily updates (cron-safe), and the
        # run says it is only partly done (exit 4 from the CLI, below).
        monkeypatch.setattr(sync_module, "CHECK_BACKOFF", 0.01)
        up.insee.today = date(2026, 10, 5)
        with pytest.raises(
            sync_module.PartlyDone, match="partly done: .*data.gouv.fr could not be checked"
        ) as e:
            sync_module.run_sync(mirror, "http://127.0.0.1:9", up.insee_url, rate=100000, progress=False)
        assert e.value.exit_code == 4
        assert e.value.report.stock.startswith("warning: cannot check data.gouv.fr")
        assert deltas.list_days(mirror)[-1] == date(2026, 10, 4)

        # 5xx forever: a clear failure, and nothing half-applied.
        up.insee.today = date(2026, 10, 6)
        up.insee.down = True
        monkeypatch.setattr(insee, "BACKOFF_BASE", 0.001)
        before = state(mirror)
        with pytest.raises(MirrorError, match="INSEE API unavailable"):
            sync_module.run_sync(mirror, up.datagouv_url, up.insee_url, rate=100000, progress=False)
        assert state(mirror)["deltas"] == before["deltas"]
    finally:
        up.close()


@pytest.mark.slow
def test_missing_key_is_a_clear_error_before_any_work(tmp_path):
    mirror = tmp_path / "mirror"
    for args in (["sync", "--datagouv-url", "http://127.0.0.1:9"], ["update"]):
        result = run_mirror(*args, data_dir=mirror)
        assert result.returncode != 0
        assert result.stderr.strip().count("\n") == 0, result.stderr
        assert "INSEE_API_KEY is not set" in result.stderr
        assert "Traceback" not in result.stderr
    assert not mirror.exists()


@pytest.mark.slow
def test_sync_applies_the_days_when_the_new_stock_fails_validation(upstream_data, tmp_path):
    """A newer stock refused by the load's checks: the days are still applied to the current snapshot,
    and sync exits 4 (partly done) with one line naming the refused stock."""
    mirror = tmp_path / "mirror"
    up = start(upstream_data, today=date(2026, 10, 3))
    try:
        assert sync(mirror, up).returncode == 0
    finally:
        up.close()
    before = state(mirror)
    assert before["deltas"][-1] == "2026-10-02"
    # The same month "re-published" (newer last_modified) with far fewer rows than the mirror holds.
    before["snapshot"]["rows"] = {k: v * 2 for k, v in before["snapshot"]["rows"].items()}
    before["sync_stock"]["last_modified"] = ""
    (mirror / "state.json").write_text(json.dumps(before))
    up = start(upstream_data, today=date(2026, 10, 6))
    try:
        result = sync(mirror, up)
    finally:
        up.close()
    assert result.returncode == 4, result.stderr  # partly done: the days applied, the stock refused
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "fewer than 98 %" in lines[0], result.stderr
    assert lines[0].startswith("Error: partly done: ")
    assert "the daily updates were applied to 2026-10" in lines[0]
    after = state(mirror)
    assert after["deltas"][-1] == "2026-10-05"
    assert after["snapshot"]["dir"] == before["snapshot"]["dir"]


@pytest.mark.slow
def test_sync_with_data_gouv_unreachable_is_partly_done_exit_4(upstream_data, tmp_path):
    """Cron tells "done" from "partly done": data.gouv.fr down, the days are applied and sync exits 4 with
    the summary on stdout and one line on stderr; once data.gouv.fr is back, exit 0. The summary lists the
    downloads before "Loaded the ... monthly stock"."""
    mirror = tmp_path / "mirror"
    up = start(upstream_data, today=date(2026, 10, 3))
    try:
        first = sync(mirror, up)
        assert first.returncode == 0, first.stderr
        out = first.stdout.splitlines()
        loaded = next(i for i, li in enumerate(out) if li.startswith("Loaded the 2026-10 monthly stock"))
        downloads = [i for i, li in enumerate(out) if li.startswith("downloaded ")]
        assert downloads and max(downloads) < loaded, first.stdout
        up.insee.today = date(2026, 10, 5)
        result = run_mirror(
            "sync", "--datagouv-url", "http://127.0.0.1:9", "--insee-url", up.insee_url, "--rate", "100000",
            "-q", "--max-wait", "0", data_dir=mirror, env=ENV,
        )  # fmt: skip
        assert result.returncode == 4, result.stdout + result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: partly done: "), result.stderr
        assert "data.gouv.fr could not be checked" in lines[0]
        # --max-wait 0 bounds the data.gouv.fr check too: one attempt, no backoff wait
        assert "Connection refused" in result.stdout and "attempts" not in result.stdout
        assert "warning: cannot check data.gouv.fr" in result.stdout and "2026-10-04" in result.stdout
        assert state(mirror)["deltas"][-1] == "2026-10-04"
        again = sync(mirror, up)
        assert again.returncode == 0, again.stderr
    finally:
        up.close()


@pytest.mark.slow
def test_sync_geolocalisation_loads_the_geolocation_file_with_the_stock(upstream_data, tmp_path):
    """`mirror sync --geolocalisation` (or MIRROR_GEOLOCALISATION=1) fetches INSEE's geolocation file from
    its data.gouv.fr dataset with the stock and loads it (qualiteXY, iris, qpv); without it, as before.
    Before: sync never fetched it (only `mirror download --geolocalisation` did)."""
    help_text = run_mirror("sync", "--help").stdout
    assert "--geolocalisation" in help_text and "MIRROR_GEOLOCALISATION" in help_text
    up = start(upstream_data, today=date(2026, 10, 3))
    try:
        flagged, env_set = tmp_path / "flag", tmp_path / "env"
        first = sync(flagged, up, "--geolocalisation")
        second = sync(env_set, up, env={"MIRROR_GEOLOCALISATION": "1"})
        days = [up.changes.changes_for(date(2026, 10, d)) for d in (1, 2)]
    finally:
        up.close()
    geo = "GeolocalisationEtablissement_Sirene_pour_etudes_statistiques_utf8.zip"
    for mirror, result in ((flagged, first), (env_set, second)):
        assert result.returncode == 0, result.stderr
        assert f"downloaded  {geo.split('_utf8')[0]}" in result.stdout, result.stdout
        assert (mirror / "downloads" / MONTH / geo).read_bytes() == (upstream_data / MONTH / geo).read_bytes()
        con = duckdb.connect(str(mirror / "sirene.duckdb"), read_only=True)
        try:
            (located,) = con.execute("SELECT count(*) FROM etablissements WHERE iris IS NOT NULL").fetchone()
        finally:
            con.close()
        assert located > 0
        count = run_mirror("export", "--qpv", "any", "--count", data_dir=mirror)
        assert count.returncode == 0, count.stderr

    # The days touched établissements of the stock: those whose geocoded address is the stock's keep the
    # file's zones and point; the others (here: turned P, the API masks their address) have none.
    # Before: every établissement changed by a day lost qualiteXY, iris, qpv and the file's point.
    assert state(flagged)["deltas"] == ["2026-10-01", "2026-10-02"]

    def read(name: str, delimiter: str = ",") -> dict[str, dict]:
        with zipfile.ZipFile(upstream_data / MONTH / name) as zf:
            text = zf.read(zf.namelist()[0]).decode("utf-8")
        return {r["siret"]: r for r in csv.DictReader(io.StringIO(text), delimiter=delimiter)}

    zones, stock = read(geo, ";"), read("StockEtablissement_utf8.zip")
    address = (
        "codeCommuneEtablissement,codePostalEtablissement,numeroVoieEtablissement,indiceRepetitionEtablissement,"
        "typeVoieEtablissement,libelleVoieEtablissement,codePaysEtrangerEtablissement"
    ).split(",")
    last = {r["siret"]: r for d in days for r in d.etablissements}  # the latest version of each siret
    touched = last.keys() & zones.keys()
    same = {s for s in touched if all((last[s][c] or "") == stock[s][c] for c in address)}
    assert len(same) >= 5 and touched - same
    con = duckdb.connect(str(flagged / "sirene.duckdb"), read_only=True)
    try:
        got = dict(
            con.execute(
                "SELECT siret, [qualiteXY, iris, qpv, CAST(latitude AS VARCHAR)] FROM etablissements "
                "WHERE siret IN (SELECT unnest(?))",
                [sorted(touched)],
            ).fetchall()
        )
    finally:
        con.close()
    for siret in same:
        z = zones[siret]
        qualite, iris, qpv, latitude = got[siret]
        assert (qualite, iris) == (z["qualite_xy"], z["plg_code_commune"] + z["plg_iris"]), siret
        assert qpv == (None if z["plg_qp24"] in ("HZ", "CSZ") else z["plg_qp24"]), siret
        if z["y_latitude"] != "[ND]":
            assert float(latitude) == pytest.approx(float(z["y_latitude"]), abs=1e-9), siret
    for siret in touched - same:
        assert got[siret][:3] == [None, None, None], siret
