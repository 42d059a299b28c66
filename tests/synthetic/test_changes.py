"""The synthetic daily change stream (mirror.synthetic.upstream.changes) and the INSEE-like API over it."""

from __future__ import annotations

import csv
import io
import zipfile
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest
import requests

from mirror.core.errors import MirrorError
from mirror.core.identifiers import is_valid_siren, is_valid_siret
from mirror.core.insee_records import etablissement_to_rows, lien_to_row, unite_legale_to_rows
from mirror.core.schema import MASKABLE_COLUMNS, ND, STOCK_FILES, STOCK_FILES_BY_KEY
from mirror.synthetic.upstream.changes import DailyChanges, month_days
from mirror.synthetic.upstream.insee import serve_insee
from mirror.update.insee_client import InseeClient, day_query, parse_informations

MONTH = "2026-10"
KEY = "test-key-123"


@pytest.fixture(scope="module")
def stock(stock_dir) -> Path:
    """The shared generated stock of tests/conftest.py (month 2026-10, 3000 units, seed 7)."""
    return stock_dir


@pytest.fixture(scope="module")
def changes(stock) -> DailyChanges:
    dc = DailyChanges(stock, MONTH, seed=3)
    yield dc
    dc.close()


def _read_stock(folder: Path, key: str) -> list[dict]:
    sf = STOCK_FILES_BY_KEY[key]
    with zipfile.ZipFile(folder / sf.zip_name) as zf:
        text = zf.read(sf.csv_member).decode("utf-8")
    reader = csv.DictReader(io.StringIO(text))
    assert reader.fieldnames == list(sf.columns)
    return list(reader)


@pytest.mark.slow
def test_days_are_deterministic_and_chained(stock, changes):
    d1, d2 = date(2026, 10, 1), date(2026, 10, 2)
    first = changes.changes_for(d1)
    again = DailyChanges(stock, MONTH, seed=3)
    try:
        assert again.changes_for(d2) == changes.changes_for(d2)  # d2 generated after d1 on both sides
        assert again.changes_for(d1) == first
    finally:
        again.close()
    other = DailyChanges(stock, MONTH, seed=4)
    try:
        assert other.changes_for(d1).unites_legales != first.unites_legales
    finally:
        other.close()
    counts = first.counts()
    for kind in (
        "creation",
        "closure",
        "naf_change",
        "name_change",
        "diffusion_p",
        "siege_transfer",
        "new_etablissement",
        "etablissement_closure",
    ):
        assert counts.get(kind, 0) >= 1, (kind, counts)
    assert len(first.unites_legales) >= 8 and len(first.etablissements) >= 8


def test_rows_are_valid_and_timestamped_on_their_day(changes):
    for day in month_days(MONTH)[:5]:
        ch = changes.changes_for(day)
        assert ch.day == day
        for r in ch.unites_legales:
            assert is_valid_siren(r["siren"])
            assert r["dateDernierTraitementUniteLegale"].startswith(day.isoformat() + "T")
            assert len(r["dateDernierTraitementUniteLegale"]) == 23  # milliseconds
            assert list(r) == list(STOCK_FILES_BY_KEY["unites_legales"].columns)
            periods = [h for h in ch.unites_legales_historique if h["siren"] == r["siren"]]
            assert int(r["nombrePeriodesUniteLegale"]) == len(periods)
            current = [h for h in periods if h["dateFin"] == ""]
            assert len(current) == 1 and current[0]["dateDebut"] == r["dateDebut"]
            for col in (
                "etatAdministratifUniteLegale",
                "nicSiegeUniteLegale",
                "activitePrincipaleUniteLegale",
                "denominationUniteLegale",
                "nomUsageUniteLegale",
            ):
                assert current[0][col] == r[col]
            # a period opened by the stream closes the previous one the day before (most recent first)
            for a, b in zip(periods, periods[1:], strict=False):
                if a["dateDebut"] >= MONTH and a["dateDebut"] != r["dateCreationUniteLegale"]:
                    assert date.fromisoformat(b["dateFin"]) + timedelta(days=1) == date.fromisoformat(
                        a["dateDebut"]
                    )
        for r in ch.etablissements:
            assert is_valid_siret(r["siret"]) and r["siret"] == r["siren"] + r["nic"]
            assert r["dateDernierTraitementEtablissement"].startswith(day.isoformat() + "T")
            periods = [h for h in ch.etablissements_historique if h["siret"] == r["siret"]]
            assert int(r["nombrePeriodesEtablissement"]) == len(periods)
            assert [h["etatAdministratifEtablissement"] for h in periods if h["dateFin"] == ""] == [
                r["etatAdministratifEtablissement"]
            ]
        for lien in ch.liens_succession:
            assert lien["transfertSiege"] == "true" and lien["dateLienSuccession"] == day.isoformat()


def test_event_invariants(changes):
    day = date(2026, 10, 3)
    ch = changes.changes_for(day)
    uls = {r["siren"]: r for r in ch.unites_legales}
    ets = {}
    for r in ch.etablissements:
        ets.setdefault(r["siren"], []).append(r)
    prev = day - timedelta(days=1)
    for kind, ident in ch.events:
        if kind == "closure":
            assert uls[ident]["etatAdministratifUniteLegale"] == "C"
            cur = [h for h in ch.unites_legales_historique if h["siren"] == ident and h["dateFin"] == ""][0]
            assert (
                cur["changementEtatAdministratifUniteLegale"] == "true"
                and cur["dateDebut"] == day.isoformat()
            )
            state = changes.current_rows("etablissements", day, "siren = ?", [ident])
            assert state and all(e["etatAdministratifEtablissement"] == "F" for e in state)
        elif kind == "siege_transfer":
            ul = uls[ident]
            state = changes.current_rows("etablissements", day, "siren = ?", [ident])
            sieges = [e for e in state if e["etablissementSiege"] == "true"]
            assert len(sieges) == 1 and sieges[0]["nic"] == ul["nicSiegeUniteLegale"]
            assert sieges[0]["etatAdministratifEtablissement"] == "A"
            before = changes.current_rows("unites_legales", prev, "siren = ?", [ident])[0]
            old = ident + before["nicSiegeUniteLegale"]
            assert [e for e in state if e["siret"] == old][0]["etatAdministratifEtablissement"] == "F"
            assert {
                "siretEtablissementPredecesseur": old,
                "siretEtablissementSuccesseur": sieges[0]["siret"],
            }.items() <= [lk for lk in ch.liens_succession if lk["siretEtablissementPredecesseur"] == old][
                0
            ].items()
        elif kind == "creation":
            assert uls[ident]["dateCreationUniteLegale"] == day.isoformat()
            assert changes.current_rows("unites_legales", prev, "siren = ?", [ident]) == []
            assert [e["etablissementSiege"] for e in ets[ident]] == ["true"]
            assert ets[ident][0]["nic"] == uls[ident]["nicSiegeUniteLegale"]
        elif kind == "diffusion_p":
            ul = uls[ident]
            assert ul["statutDiffusionUniteLegale"] == "P"
            masked = [c for c, v in ul.items() if v == ND]
            assert set(masked) <= MASKABLE_COLUMNS["unites_legales"]
            for e in ets.get(ident, []):
                assert e["statutDiffusionEtablissement"] == "P"
                assert {c for c, v in e.items() if v == ND} <= MASKABLE_COLUMNS["etablissements"]
                assert e["codeCommuneEtablissement"] != ND
        elif kind == "naf_change":
            before = changes.current_rows("unites_legales", prev, "siren = ?", [ident])[0]
            assert before["activitePrincipaleUniteLegale"] != uls[ident]["activitePrincipaleUniteLegale"]
        elif kind == "reopening":
            assert uls[ident]["etatAdministratifUniteLegale"] == "A"
            assert uls[ident]["categorieJuridiqueUniteLegale"] == "1000"
    # one siège per active unit for every unit touched that day
    for siren in uls:
        state = changes.current_rows("etablissements", day, "siren = ?", [siren])
        assert sum(e["etablissementSiege"] == "true" for e in state) == 1


@pytest.mark.slow
def test_next_month_stock_applies_every_change(stock, changes, tmp_path):
    paths = changes.write_next_month_stock(tmp_path)
    assert set(paths) == {sf.key for sf in STOCK_FILES}
    new_ul = {r["siren"]: r for r in _read_stock(tmp_path, "unites_legales")}
    new_et = {r["siret"]: r for r in _read_stock(tmp_path, "etablissements")}
    new_ulh = _read_stock(tmp_path, "unites_legales_historique")
    liens = _read_stock(tmp_path, "liens_succession")
    latest_ul, latest_et = {}, {}
    for day in month_days(MONTH):
        ch = changes.changes_for(day)
        for r in ch.unites_legales:
            latest_ul[r["siren"]] = (r, [h for h in ch.unites_legales_historique if h["siren"] == r["siren"]])
        for r in ch.etablissements:
            latest_et[r["siret"]] = r
        for lk in ch.liens_succession:
            assert lk in liens
    assert len(latest_ul) > 100
    for siren, (row, hist) in latest_ul.items():
        assert new_ul[siren] == row
        assert sorted(tuple(h.values()) for h in new_ulh if h["siren"] == siren) == sorted(
            tuple(h.values()) for h in hist
        )
    for siret, row in latest_et.items():
        assert new_et[siret] == row
    # unchanged units are copied verbatim, siren order kept, identifiers unique
    sirens = list(new_ul)
    assert sirens == sorted(sirens) and len(sirens) == len(set(sirens))
    old_ul = _read_stock(stock, "unites_legales")
    for r in old_ul:
        if r["siren"] not in latest_ul:
            assert new_ul[r["siren"]] == r
    created = sum(1 for d in month_days(MONTH) for k, _ in changes.changes_for(d).events if k == "creation")
    assert len(new_ul) == len(old_ul) + created
    # one siège per unit, pointing to nicSiege, everywhere in the new stock
    sieges = {}
    for e in new_et.values():
        if e["etablissementSiege"] == "true":
            assert e["siren"] not in sieges
            sieges[e["siren"]] = e["nic"]
    for siren in latest_ul:
        assert sieges[siren] == new_ul[siren]["nicSiegeUniteLegale"]
    # INSEE's CSV dialect: DuckDB reads every file back without a rejected line
    con = duckdb.connect()
    for key, zpath in paths.items():
        sf = STOCK_FILES_BY_KEY[key]
        with zipfile.ZipFile(zpath) as zf:
            assert zf.namelist() == [sf.csv_member]
            csv_path = tmp_path / sf.csv_member
            csv_path.write_bytes(zf.read(sf.csv_member))
        rows = con.execute(  # strict: a malformed line raises
            f"SELECT * FROM read_csv('{csv_path}', all_varchar=true, quote='\"', escape='\"', header=true)"
        ).fetchall()
        assert len(rows) == len(_read_stock(tmp_path, key))
    con.close()
    # the new stock feeds the next month's stream
    nxt = DailyChanges(tmp_path, "2026-11", seed=3)
    try:
        assert nxt.n_units == len(new_ul)
        assert nxt.changes_for(date(2026, 11, 1)).unites_legales
    finally:
        nxt.close()


def test_mid_month_stock(changes, tmp_path):
    through = date(2026, 10, 4)
    changes.write_next_month_stock(tmp_path, through=through)
    new_ul = {r["siren"]: r for r in _read_stock(tmp_path, "unites_legales")}
    assert max(r["dateDernierTraitementUniteLegale"] for r in new_ul.values()) < "2026-10-05"
    for day in month_days(MONTH)[:4]:
        for r in changes.changes_for(day).unites_legales:
            assert (
                new_ul[r["siren"]]["dateDernierTraitementUniteLegale"]
                >= r["dateDernierTraitementUniteLegale"]
            )
    with pytest.raises(MirrorError, match="not a day"):
        changes.write_next_month_stock(tmp_path, through=date(2026, 11, 1))


def test_bad_month_and_missing_stock(tmp_path):
    with pytest.raises(MirrorError, match="bad month"):
        DailyChanges(tmp_path, "2026-13")
    with pytest.raises(MirrorError, match="StockUniteLegale"):
        DailyChanges(tmp_path, MONTH)


# ------------------------------------------------------------------------------------------------
# The INSEE-like server, through the real client.
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def api(changes):
    server, url = serve_insee(changes, api_key=KEY, today=date(2026, 10, 6))
    yield server.app, url
    server.shutdown()
    server.server_close()


def _client(url, **kw):
    sleeps = []
    return InseeClient(url, KEY, rate_per_minute=10**6, sleep=sleeps.append, **kw), sleeps


def test_api_day_query_returns_the_day_changes(api, changes):
    app, url = api
    c, _ = _client(url)
    day = date(2026, 10, 6)
    ch = changes.changes_for(day)
    got = list(c.iter_unites_legales(day_query("unites_legales", day)))
    assert sorted(unite_legale_to_rows(r)[0]["siren"] for r in got) == sorted(
        r["siren"] for r in ch.unites_legales
    )
    for rec in got:
        row, hist = unite_legale_to_rows(rec)
        assert row == next(r for r in ch.unites_legales if r["siren"] == row["siren"])
        exp = [h for h in ch.unites_legales_historique if h["siren"] == row["siren"]]
        assert sorted(map(tuple, (h.values() for h in hist))) == sorted(map(tuple, (h.values() for h in exp)))
        assert rec["periodesUniteLegale"][0]["dateFin"] is None
    ets = list(c.iter_etablissements(day_query("etablissements", day)))
    assert sorted(etablissement_to_rows(r)[0]["siret"] for r in ets) == sorted(
        r["siret"] for r in ch.etablissements
    )
    for rec in ets:
        assert rec["uniteLegale"]["nicSiegeUniteLegale"]  # the unit's current values
    liens = list(c.iter_liens_succession(day_query("liens_succession", day)))
    assert sorted(map(lambda r: tuple(lien_to_row(r).values()), liens)) == sorted(
        tuple(r.values()) for r in ch.liens_succession
    )


def test_api_pagination_cursor_and_header_shape(api):
    app, url = api
    q = "dateDernierTraitementEtablissement:[2026-10-01 TO 2026-10-06]"
    full = list(_client(url)[0].iter_etablissements(q))
    assert len(full) > 12
    app.calls.clear()
    pages, cursor, seen = [], "*", 0
    while True:
        r = requests.get(
            url + "/siret",
            params={"q": q, "nombre": 5, "curseur": cursor},
            headers={"X-INSEE-Api-Key-Integration": KEY},
            timeout=10,
        )
        assert r.status_code == 200
        header = r.json()["header"]
        assert list(header) == ["statut", "message", "total", "debut", "nombre", "curseur", "curseurSuivant"]
        assert header["total"] == len(full) and header["debut"] == 0
        pages.append(header["nombre"])
        seen += header["nombre"]
        if header["curseur"] == header["curseurSuivant"]:
            assert header["nombre"] == 0 and r.json()["etablissements"] == []
            break
        cursor = header["curseurSuivant"]
    assert seen == len(full) and pages[-1] == 0 and all(p == 5 for p in pages[:-2])
    # the client stops on the total, without the extra empty page
    c, _ = _client(url)
    app.calls.clear()
    assert len(list(c.search("/siret", "etablissements", q))) == len(full)
    assert len(app.calls) == 1  # 1000 per page


def test_api_404_401_400_lookups_and_post(api, changes):
    app, url = api
    hdr = {"X-INSEE-Api-Key-Integration": KEY}
    r = requests.get(
        url + "/siren", params={"q": "dateDernierTraitementUniteLegale:2031-01-01"}, headers=hdr, timeout=10
    )
    assert r.status_code == 404 and r.json() == {"header": {"statut": 404, "message": "Aucun élément trouvé"}}
    r = requests.get(url + "/siren", params={"q": "siren:000000000"}, timeout=10)
    assert r.status_code == 401 and r.json()["header"]["statut"] == 401
    r = requests.get(
        url + "/siren",
        params={"q": "dateDernierTraitementUniteLegale:[2026-10-05 TO 2026-10-01]"},
        headers=hdr,
        timeout=10,
    )
    assert r.status_code == 400 and "ordre incorrect" in r.json()["header"]["message"]
    with pytest.raises(MirrorError, match="key rejected"):
        InseeClient(url, "wrong-key", sleep=lambda s: None).informations()
    c, _ = _client(url)
    assert list(c.iter_unites_legales("dateDernierTraitementUniteLegale:2031-01-01")) == []
    created = next(i for k, i in changes.changes_for(date(2026, 10, 2)).events if k == "creation")
    rec = c.unite_legale(created)
    assert rec["siren"] == created and rec["dateCreationUniteLegale"] == "2026-10-02"
    etab = c.etablissement(created + rec["periodesUniteLegale"][0]["nicSiegeUniteLegale"])
    assert (
        etab["etablissementSiege"] is True and etab["uniteLegale"]["dateCreationUniteLegale"] == "2026-10-02"
    )
    assert c.unite_legale("000000000") is None
    # a unit created after "today" is not published yet
    later = next(i for k, i in changes.changes_for(date(2026, 10, 9)).events if k == "creation")
    assert c.unite_legale(later) is None
    # POST form search gives the same as GET
    r = requests.post(url + "/siren", data={"q": f"siren:{created}", "nombre": "10"}, headers=hdr, timeout=10)
    assert r.status_code == 200 and r.json()["unitesLegales"][0]["siren"] == created
    # doublons answer 301, never followed
    dup = changes.con.execute("SELECT siren, sirenDoublon FROM doublons ORDER BY 1 LIMIT 1").fetchone()
    if dup:
        r = requests.get(f"{url}/siren/{dup[1]}", headers=hdr, allow_redirects=False, timeout=10)
        assert r.status_code == 301 and r.headers["Location"].endswith(f"/siren/{dup[0]}")


def test_api_knobs_429_503_414(api):
    app, url = api
    q = "dateDernierTraitementUniteLegale:2026-10-04"
    c, sleeps = _client(url)
    expected = len(list(c.iter_unites_legales(q)))
    app.throttle_every, app.retry_after = 2, 3
    c, sleeps = _client(url)
    assert len(list(c.iter_unites_legales(q))) == expected
    assert 3.0 in c.waits
    app.throttle_every = 0
    app.fail_next = 3
    c, _ = _client(url)
    assert len(list(c.iter_unites_legales(q))) == expected and len(c.waits) == 3
    app.down = True
    c, _ = _client(url, max_retries=2)
    with pytest.raises(MirrorError, match="HTTP 503"):
        c.informations()
    app.down = False
    app.max_get_url = 60
    app.calls.clear()
    c, _ = _client(url)
    assert len(list(c.iter_unites_legales(q))) == expected
    assert [m for m, _, _ in app.calls][:2] == ["GET", "POST"]


def test_api_informations_and_today(api, changes):
    app, url = api
    c, _ = _client(url)
    info = parse_informations(c.informations())
    for key in ("unites_legales", "etablissements", "liens_succession"):
        assert info[key]["dateDerniereMiseADisposition"].date() == date(2026, 10, 6)
        assert info[key]["dateDernierTraitementDeMasse"].date() < date(2026, 10, 1)
    top = info["unites_legales"]["dateDernierTraitementMaximum"]
    assert top.date() == date(2026, 10, 6)
    assert top.isoformat(timespec="milliseconds") == max(
        r["dateDernierTraitementUniteLegale"] for r in changes.changes_for(date(2026, 10, 6)).unites_legales
    )
    app.today = date(2026, 10, 8)
    assert list(c.iter_unites_legales(day_query("siren", date(2026, 10, 8))))
    app.today = date(2026, 10, 7)
    assert list(c.iter_unites_legales(day_query("siren", date(2026, 10, 8)))) == []


def test_every_stock_row_round_trips_through_api_records(changes):
    """row -> API record -> row is lossless on the whole generated stock (units, établissements, liens)."""
    from mirror.core.insee_records import etablissement_record, lien_record, unite_legale_record

    uls = changes.current_rows("unites_legales", None)
    ulh = {}
    for h in changes.current_rows("unites_legales_historique", None):
        ulh.setdefault(h["siren"], []).append(h)
    by_siren = {r["siren"]: r for r in uls}
    for r in uls:
        row, hist = unite_legale_to_rows(unite_legale_record(r, ulh.get(r["siren"], [])))
        assert row == dict(r, dateDernierTraitementUniteLegale=_ms(r["dateDernierTraitementUniteLegale"]))
        if r["siren"] in ulh:
            assert sorted(map(lambda h: tuple(h.values()), hist)) == sorted(
                map(lambda h: tuple(h.values()), ulh[r["siren"]])
            )
    eth = {}
    for h in changes.current_rows("etablissements_historique", None):
        eth.setdefault(h["siret"], []).append(h)
    ets = changes.current_rows("etablissements", None)
    assert ets
    for r in ets:
        rec = etablissement_record(r, eth.get(r["siret"], []), by_siren.get(r["siren"]))
        row, hist = etablissement_to_rows(rec)
        assert row == dict(r, dateDernierTraitementEtablissement=_ms(r["dateDernierTraitementEtablissement"]))
        if r["siret"] in eth:
            assert sorted(map(lambda h: tuple(h.values()), hist)) == sorted(
                map(lambda h: tuple(h.values()), eth[r["siret"]])
            )
    for r in changes.current_rows("liens_succession", None):
        assert lien_to_row(lien_record(r)) == dict(
            r, dateDernierTraitementLienSuccession=_ms(r["dateDernierTraitementLienSuccession"])
        )


def _ms(ts: str) -> str:
    """The API form of a stock timestamp (T separator, milliseconds)."""
    if not ts:
        return ts
    ts = ts.replace(" ", "T")
    return ts if "." in ts else ts + ".000"


def test_quiet_day_answers_404_and_next_day_still_chains(stock):
    quiet = date(2026, 10, 2)
    dc = DailyChanges(stock, MONTH, seed=3, quiet_days=[quiet])
    server, url = serve_insee(dc, api_key=KEY, today=date(2026, 10, 3))
    try:
        assert dc.changes_for(quiet).unites_legales == [] and dc.changes_for(quiet).events == []
        c, _ = _client(url)
        for kind in ("unites_legales", "etablissements", "liens_succession"):
            assert list(c.iter_kind(kind, day_query(kind, quiet))) == []
        assert [m[1] for m in server.app.calls] == ["/siren", "/siret", "/siret/liensSuccession"]
        assert list(c.iter_unites_legales(day_query("siren", date(2026, 10, 3))))
    finally:
        server.shutdown()
        server.server_close()
        dc.close()
