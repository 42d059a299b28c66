"""The INSEE API Sirene 3.11 of `mirror serve` (/api-sirene/3.11), over real servers on 127.0.0.1:

- the records equal what the local INSEE-like upstream (mirror.synthetic.upstream.insee, the formats of the
  real API) answers for the same stock, for every unit and établissement, and for the records of days of
  changes applied by `mirror update` (record -> mirror -> served record);
- the protocol: header block, cursor with its extra last page, debut, tri, champs, masquerValeursNulles,
  facettes, date=, CSV, POST form, 301 doublons, 404 on an empty search, 400 in INSEE's error shape, 406,
  the API key;
- real clients: pynsee (installed from PyPI, its INSEE base URL redirected through its requests session) and
  the mirror's own INSEE client: a second mirror updated from the first reproduces its days.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from pathlib import Path

import pytest
import requests
from conftest import _root, run_mirror, running_server

from mirror.catalog.build import connect
from mirror.core.config import INSEE_KEY_HEADER
from mirror.synthetic.upstream.changes import DailyChanges
from mirror.synthetic.upstream.insee import serve_insee

API = "/api-sirene/3.11"
KEY = "insee-key-of-the-tests-0123456789"
private_mirror = _root.private_mirror  # tests/conftest.py's (tests/http/conftest.py re-exports that module)
DAYS_TODAY = date(2026, 10, 3)  # the upstream has published 1 and 2 October


def drop_nulls(value):
    if isinstance(value, dict):
        return {k: drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [drop_nulls(v) for v in value]
    return value


def get(server, path, params=None, **kw):
    return server.get(API + path, params, headers={INSEE_KEY_HEADER: KEY, **kw.pop("headers", {})}, **kw)


def every_record(base_url: str, collection: str, key: str, session=None, q: str | None = None) -> list[dict]:
    """Every record of a search, followed by cursor to its (empty) last page."""
    session = session or requests.Session()
    out, cursor, pages = [], "*", 0
    while True:
        params = {"nombre": 1000, "curseur": cursor, **({"q": q} if q else {})}
        r = session.get(
            f"{base_url}/{collection}", params=params, headers={INSEE_KEY_HEADER: KEY}, timeout=120
        )
        assert r.status_code == 200, r.text
        body = r.json()
        pages += 1
        out += body[key]
        header = body["header"]
        if header["curseurSuivant"] == header["curseur"]:
            assert body[key] == [] and header["nombre"] == 0
            break
        cursor = header["curseurSuivant"]
    assert pages == len(out) // 1000 + (2 if len(out) % 1000 else 1)  # the extra last page included
    return out


def without_score(records):
    for r in records:
        assert next(iter(r)) == "score"
        r.pop("score")
    return records


@pytest.fixture(scope="module")
def stock_upstream(stock_dir):
    """The INSEE-like upstream over the session stock, before its first day of changes: the stock only."""
    server, url = serve_insee(DailyChanges(stock_dir, "2026-10", seed=5), today=date(2026, 9, 30))
    yield url
    server.shutdown()
    server.server_close()


@pytest.mark.slow
def test_every_record_equals_the_insee_record_of_the_same_stock(server, stock_upstream):
    """The SQL-built records equal mirror.core.insee_records' (the upstream's) for every unit and établissement
    of the stock, periods, [ND] masks and nulls included."""
    base = server.url + API
    for collection, key in (("siren", "unitesLegales"), ("siret", "etablissements")):
        mine = without_score(every_record(base, collection, key))
        theirs = every_record(stock_upstream, collection, key)
        assert len(mine) == len(theirs) > 1000
        ident = "siren" if collection == "siren" else "siret"
        mine.sort(key=lambda r: r[ident])
        theirs.sort(key=lambda r: r[ident])
        assert mine == theirs
    text = json.dumps(mine, ensure_ascii=False)
    assert '"[ND]"' in text  # the shapes covered: masks, several periods, nulls
    assert any(len(r["periodesEtablissement"]) > 1 for r in mine)
    assert any(r["adresseEtablissement"]["coordonneeLambertAbscisseEtablissement"] == "[ND]" for r in mine)


# ------------------------------------------------------------------------------------------------
# Days of changes: record -> mirror -> served record, and a second mirror fed by the first
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def days_upstream(stock_dir):
    changes = DailyChanges(stock_dir, "2026-10", seed=5)
    server, url = serve_insee(changes, api_key=KEY, today=DAYS_TODAY)
    yield server.app, url
    server.shutdown()
    server.server_close()


def update(data: Path, url: str):
    res = run_mirror(
        "update", "--insee-url", url, "--rate", "100000", "-q", data_dir=data, env={"INSEE_API_KEY": KEY}
    )
    assert res.returncode == 0, res.stderr
    return res


@pytest.fixture(scope="module")
def updated(http_mirror, days_upstream, tmp_path_factory):
    """A private copy of the session mirror with the upstream's days applied by `mirror update`, served."""
    _app, url = days_upstream
    data = private_mirror(http_mirror, tmp_path_factory.mktemp("insee-updated") / "data")
    update(data, url)
    with running_server(data, "--no-require-context", log_dir=tmp_path_factory.mktemp("insee-logs")) as srv:
        yield data, srv


def day_records(upstream_url: str, collection: str, key: str, field: str) -> list[dict]:
    out = []
    for day in ("2026-10-01", "2026-10-02"):
        out += every_record(upstream_url, collection, key, q=f"{field}:{day}")
    return out


@pytest.mark.slow
def test_records_of_the_days_come_back_as_received(updated, days_upstream):
    """Each record `mirror update` received comes back from the mirror as it was received, with and without
    masquerValeursNulles."""
    _data, srv = updated
    _app, url = days_upstream
    units = day_records(url, "siren", "unitesLegales", "dateDernierTraitementUniteLegale")
    etabs = day_records(url, "siret", "etablissements", "dateDernierTraitementEtablissement")
    assert units and etabs
    for kind, records, key in (("siren", units, "uniteLegale"), ("siret", etabs, "etablissement")):
        for rec in records:
            served = get(srv, f"/{kind}/{rec[kind]}")
            assert served.status_code == 200, served.text
            assert served.json() == {"header": {"statut": 200, "message": "OK"}, key: rec}
            hidden = get(srv, f"/{kind}/{rec[kind]}", {"masquerValeursNulles": "true"}).json()[key]
            assert hidden == drop_nulls(rec)
    assert any(len(r["periodesUniteLegale"]) > 1 for r in units)
    assert any(v is None for r in units for v in r.values())


@pytest.mark.slow
def test_a_second_mirror_updated_from_the_first_reproduces_its_days(updated, http_mirror, tmp_path):
    """`mirror update --insee-url http://127.0.0.1:PORT/api-sirene/3.11` (the mirror's own INSEE client)
    gives a second mirror the first one's rows."""
    first, srv = updated
    second = private_mirror(http_mirror, tmp_path / "data")
    res = update(second, srv.url + API)
    st1 = json.loads((first / "state.json").read_text())
    st2 = json.loads((second / "state.json").read_text())
    assert st2["deltas"] == st1["deltas"] and st2["delta_watermark"] == st1["delta_watermark"], res.stdout
    tables = ("unites_legales", "etablissements", "unites_legales_historique", "etablissements_historique",
              "liens_succession")  # fmt: skip
    a, b = connect(first), connect(second)
    try:
        for table in tables:
            rows_a = a.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall()
            rows_b = b.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall()
            assert rows_a == rows_b, table
        changed = a.execute(
            "SELECT count(*) FROM unites_legales WHERE dateDernierTraitementUniteLegale >= '2026-10-01'"
        ).fetchone()[0]
        assert changed > 0
    finally:
        a.close()
        b.close()
    assert "INSEE requests" in res.stdout or res.stdout == ""


# ------------------------------------------------------------------------------------------------
# The protocol
# ------------------------------------------------------------------------------------------------


def test_lookups_header_doublons_and_errors(server, samples):
    siren = samples["sirens_o"][0]
    r = get(server, f"/siren/{siren}")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert list(body) == ["header", "uniteLegale"] and body["header"] == {"statut": 200, "message": "OK"}
    assert list(body["uniteLegale"])[:3] == ["siren", "statutDiffusionUniteLegale", "unitePurgeeUniteLegale"]
    assert list(body["uniteLegale"])[-1] == "periodesUniteLegale"

    siret = samples["sirets_o"][0]
    et = get(server, f"/siret/{siret}").json()["etablissement"]
    assert list(et)[-4:] == [
        "uniteLegale",
        "adresseEtablissement",
        "adresse2Etablissement",
        "periodesEtablissement",
    ]

    doublon = samples["doublons"][0]
    r = get(server, f"/siren/{doublon}")
    assert r.status_code == 301
    assert r.json() == {"header": {"statut": 301, "message": "Unité légale fermée pour cause de doublon"}}
    assert r.headers["location"].startswith(f"{API}/siren/")

    r = get(server, "/siren/000000000")
    assert r.status_code == 404 and r.json() == {
        "header": {"statut": 404, "message": "Aucun élément trouvé pour le siren 000000000"}
    }
    assert get(server, "/siren/123").status_code == 400
    assert get(server, f"/siren/{siren}", {"date": "2026-13-01"}).json()["header"]["statut"] == 400
    assert get(server, f"/siren/{siren}", headers={"Accept": "application/xml"}).status_code == 406
    r = get(server, "/sirens")
    assert r.status_code == 404 and set(r.json()) == {"header"}


def test_champs_masquer_and_date(server, http_mirror, samples):
    con = connect(http_mirror)
    try:
        siren, debut = con.execute(
            "SELECT siren, min(dateDebut) FILTER (WHERE dateFin IS NOT NULL) FROM unites_legales_historique "
            "WHERE siren NOT IN (SELECT sirenDoublon FROM doublons) GROUP BY siren HAVING count(*) >= 2 "
            "AND min(dateDebut) FILTER (WHERE dateFin IS NOT NULL) IS NOT NULL ORDER BY siren LIMIT 1"
        ).fetchone()
        creation = con.execute(
            "SELECT dateCreationUniteLegale FROM unites_legales WHERE siren = ?", [siren]
        ).fetchone()[0]
    finally:
        con.close()
    full = get(server, f"/siren/{siren}").json()["uniteLegale"]
    old = get(server, f"/siren/{siren}", {"date": debut.isoformat()}).json()["uniteLegale"]
    assert len(full["periodesUniteLegale"]) >= 2 and len(old["periodesUniteLegale"]) == 1
    assert old["periodesUniteLegale"][0] == next(
        p for p in full["periodesUniteLegale"] if p["dateDebut"] == debut.isoformat()
    )
    assert {k: v for k, v in old.items() if k != "periodesUniteLegale"} == {
        k: v for k, v in full.items() if k != "periodesUniteLegale"
    }
    if creation is not None and creation.year > 1900:
        before = get(server, f"/siren/{siren}", {"date": "1900-01-01"})
        assert before.status_code == 404

    cut = get(server, f"/siren/{siren}", {"champs": "siren,denominationUniteLegale,dateDebut"}).json()[
        "uniteLegale"
    ]
    assert list(cut) == ["siren", "periodesUniteLegale"]
    assert all(set(p) <= {"denominationUniteLegale", "dateDebut"} for p in cut["periodesUniteLegale"])
    hidden = get(server, f"/siren/{siren}", {"masquerValeursNulles": "true"}).json()["uniteLegale"]
    assert hidden == drop_nulls(full) and None not in hidden.values()
    bad = get(server, f"/siren/{siren}", {"champs": "siren,nope"})
    assert bad.status_code == 400 and "nope" in bad.json()["header"]["message"]

    siret = samples["sirets_o"][0]
    et = get(
        server, f"/siret/{siret}", {"champs": "siret,codePostalEtablissement,denominationUniteLegale"}
    ).json()
    assert et["etablissement"]["siret"] == siret
    assert set(et["etablissement"]) == {"siret", "uniteLegale", "adresseEtablissement"}
    assert list(et["etablissement"]["adresseEtablissement"]) == ["codePostalEtablissement"]


@pytest.mark.slow
def test_search_cursor_debut_tri_post_csv(server, http_mirror):
    base = server.url + API
    q = "etatAdministratifUniteLegale:A"
    con = connect(http_mirror)
    try:
        expected = [r[0] for r in con.execute(
            "SELECT siren FROM unites_legales WHERE etatAdministratifUniteLegale = 'A' ORDER BY siren"
        ).fetchall()]  # fmt: skip
    finally:
        con.close()
    records = every_record(base, "siren", "unitesLegales", q=q)
    assert [r["siren"] for r in records] == expected

    first = get(server, "/siren", {"q": q, "nombre": 5, "debut": 3}).json()
    assert first["header"] == {
        "statut": 200,
        "message": "OK",
        "total": len(expected),
        "debut": 3,
        "nombre": 5,
    }
    assert [r["siren"] for r in first["unitesLegales"]] == expected[3:8]
    assert get(server, "/siren", {"q": q, "nombre": 5000}).json()["header"]["nombre"] == 1000

    page = get(server, "/siren", {"q": q, "nombre": 50, "curseur": "*"}).json()["header"]
    assert set(page) == {"statut", "message", "total", "debut", "nombre", "curseur", "curseurSuivant"}

    tri = get(server, "/siren", {"q": q, "tri": "dateCreationUniteLegale", "nombre": 1000}).json()[
        "unitesLegales"
    ]
    dates = [r["dateCreationUniteLegale"] or "" for r in tri]
    assert dates == sorted(dates)

    posted = server.session.post(base + "/siren", data={"q": q, "nombre": "7", "champs": "siren"},
                                 headers={INSEE_KEY_HEADER: KEY}, timeout=60)  # fmt: skip
    assert posted.status_code == 200
    assert [r["siren"] for r in posted.json()["unitesLegales"]] == expected[:7]

    text = get(server, "/siren", {"q": q, "nombre": 4}, headers={"Accept": "text/csv"})
    assert text.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(text.text)))
    assert [r["siren"] for r in rows] == expected[:4] and rows[0]["etatAdministratifUniteLegale"] == "A"

    facets = get(
        server, "/siren", {"q": q, "nombre": 1, "facette.champ": "categorieJuridiqueUniteLegale"}
    ).json()
    (facet,) = facets["facettes"]
    assert facet["nom"] == "categorieJuridiqueUniteLegale"
    assert facet["total"] + facet["manquants"] == len(expected)
    assert sum(c["nombre"] for c in facet["comptages"]) == facet["total"]


def test_search_errors_in_insee_shape(server):
    for q, part in (
        ("denominationUniteLegale:(A OR", "Erreur de syntaxe"),
        ("inconnu:1", "Champ inconnu"),
        ("siren:1 siren:2", "AND ou OR"),
        ("periode(siren:123456789)", "n'est pas historisé"),
        ("dateCreationUniteLegale:[2020 TO 2019]", "ordre incorrect"),
    ):
        r = get(server, "/siren", {"q": q})
        assert r.status_code == 400, q
        body = r.json()
        assert (
            set(body) == {"header"} and body["header"]["statut"] == 400 and part in body["header"]["message"]
        ), body
    r = get(server, "/siren", {"q": "siren:000000000"})
    assert r.status_code == 404 and r.json() == {"header": {"statut": 404, "message": "Aucun élément trouvé"}}
    assert get(server, "/siren", {"q": "siren:1", "nombre": "x"}).status_code == 400
    assert get(server, "/siren", {"curseur": "nope"}).status_code == 400
    assert get(server, "/siren", {"inconnu": "1"}).status_code == 400


@pytest.mark.slow
def test_siret_search_with_unit_fields_and_liens(server, http_mirror):
    con = connect(http_mirror)
    try:
        (naf,) = con.execute(
            "SELECT activitePrincipaleUniteLegale FROM unites_legales GROUP BY 1 ORDER BY count(*) DESC LIMIT 1"
        ).fetchone()
        expected = [r[0] for r in con.execute(
            "SELECT e.siret FROM etablissements e JOIN unites_legales u USING (siren) "
            "WHERE u.activitePrincipaleUniteLegale = ? ORDER BY e.siret", [naf]).fetchall()]  # fmt: skip
        liens = con.execute(
            "SELECT siretEtablissementSuccesseur FROM liens_succession ORDER BY siretEtablissementPredecesseur, "
            "siretEtablissementSuccesseur, dateLienSuccession"
        ).fetchall()
    finally:
        con.close()
    got = every_record(server.url + API, "siret", "etablissements", q=f"activitePrincipaleUniteLegale:{naf}")
    assert [r["siret"] for r in got] == expected
    assert all(r["uniteLegale"]["activitePrincipaleUniteLegale"] == naf for r in got)

    body = get(server, "/siret/liensSuccession", {"nombre": 1000}).json()
    assert body["header"]["total"] == len(liens)
    assert [r["siretEtablissementSuccesseur"] for r in body["liensSuccession"]] == [r[0] for r in liens][
        :1000
    ]
    assert list(body["liensSuccession"][0]) == [
        "siretEtablissementPredecesseur", "siretEtablissementSuccesseur", "dateLienSuccession", "transfertSiege",
        "continuiteEconomique", "dateDernierTraitementLienSuccession",
    ]  # fmt: skip
    succ = get(server, "/siret/liensSuccession", {"nombre": 1000, "tri": "successeur"}).json()[
        "liensSuccession"
    ]
    assert [r["siretEtablissementSuccesseur"] for r in succ] == sorted(r[0] for r in liens)[:1000]


def test_informations_are_the_mirror_dates(server, http_mirror):
    body = get(server, "/informations").json()
    assert list(body) == ["header", "etatService", "etatsDesServices", "versionService", "journalDesModifications",
                          "datesDernieresMisesAJourDesDonnees"]  # fmt: skip
    state = json.loads((http_mirror / "state.json").read_text())
    coverage = state["snapshot"]["max_date_dernier_traitement"]
    by_name = {d["collection"]: d for d in body["datesDernieresMisesAJourDesDonnees"]}
    assert set(by_name) == {"Unités Légales", "Établissements", "Liens de succession"}
    for d in by_name.values():
        assert d["dateDernierTraitementDeMasse"][:19] == coverage[:19]
        assert d["dateDerniereMiseADisposition"][:10] > coverage[:10]


@pytest.fixture(scope="module")
def keyed(http_mirror, tmp_path_factory):
    tokens = tmp_path_factory.mktemp("insee-tokens") / "tokens.txt"
    tokens.write_text(KEY + "\n")
    with running_server(
        http_mirror, "--tokens", str(tokens), log_dir=tmp_path_factory.mktemp("keyed")
    ) as srv:
        yield srv


@pytest.mark.slow
def test_api_key_required_when_tokens_are_configured(keyed, samples):
    siren = samples["sirens_o"][0]
    r = keyed.get(f"{API}/siren/{siren}")
    assert r.status_code == 401
    assert r.json() == {"header": {"statut": 401, "message": "Jeton d'accès manquant ou invalide"}}
    assert (
        keyed.get(f"{API}/siren/{siren}", headers={INSEE_KEY_HEADER: "wrong-key-wrong-key"}).status_code
        == 401
    )
    assert keyed.get(f"{API}/siren/{siren}", headers={INSEE_KEY_HEADER: KEY}).status_code == 200
    assert keyed.get(f"{API}/siren/{siren}", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
    assert KEY not in keyed.log.read_text()


# ------------------------------------------------------------------------------------------------
# pynsee against the mirror
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def pynsee_on_mirror(server, monkeypatch, tmp_path):
    """pynsee with its INSEE base URL redirected to the local server by a transport adapter mounted on its
    own requests session (pynsee is not edited: its sessions mount the adapter when they start)."""
    pytest.importorskip("pynsee")
    from pynsee.utils import requests_session
    from requests.adapters import HTTPAdapter

    real = "https://api.insee.fr/api-sirene/3.11"
    local = server.url + API

    class ToMirror(HTTPAdapter):
        def send(self, request, **kwargs):
            request.url = local + request.url[len(real) :]
            return super().send(request, **kwargs)

    mount = requests_session.PynseeAPISession._mount_adapters

    def mount_and_redirect(self):
        mount(self)
        self.mount(real, ToMirror())

    monkeypatch.setattr(requests_session.PynseeAPISession, "_mount_adapters", mount_and_redirect)
    monkeypatch.setenv("sirene_key", KEY)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    from pynsee.sirene._request_sirene import _request_sirene

    _request_sirene.cache_clear()
    yield server


@pytest.mark.slow
def test_pynsee_get_sirene_data_and_search_sirene(pynsee_on_mirror, samples, http_mirror):
    from pynsee.sirene import get_sirene_data, search_sirene

    server = pynsee_on_mirror
    siren, siret = samples["sirens_o"][0], samples["sirets_o"][1]
    df = get_sirene_data(siren, siret)
    assert set(df["siren"]) == {siren, siret[:9]}  # one row per period
    assert siret in df["siret"].dropna().tolist()

    con = connect(http_mirror)
    try:
        name, = con.execute(
            "SELECT denominationUniteLegale FROM unites_legales WHERE denominationUniteLegale IS NOT NULL "
            "AND statutDiffusionUniteLegale = 'O' ORDER BY siren LIMIT 1").fetchone()  # fmt: skip
    finally:
        con.close()
    word = max(name.replace('"', " ").split(), key=len)
    found = search_sirene(variable=["denominationUniteLegale"], pattern=[word], kind="siren",
                          activity=False, legal=False, closed=True, update=True)  # fmt: skip
    direct = get(server, "/siren", {"q": f"(periode(denominationUniteLegale:{word}))", "nombre": 1000}).json()
    assert sorted(found["siren"].unique()) == sorted(r["siren"] for r in direct["unitesLegales"])
    assert len(found) >= 1
