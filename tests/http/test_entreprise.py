"""`mirror serve`'s API Entreprise routes against a real server (python -m mirror serve on 127.0.0.1) over a
real generated mirror: each body and status is the one get_document gives (computed in this process from the
SQL views: the server answers v3/v4 from the lookup store), links point at the server, errors are API
Entreprise's."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl, urlsplit

import pytest
from conftest import CONTEXT, run_mirror

from mirror.catalog.build import connect
from mirror.core.identifiers import luhn_check_digit
from mirror.serve.documents import get_document

API = "https://entreprise.api.gouv.fr"
UNKNOWN_SIREN = "99999999" + luhn_check_digit("99999999")
UNKNOWN_SIRET = UNKNOWN_SIREN + "9999" + luhn_check_digit(UNKNOWN_SIREN + "9999")


def rebased(body: dict, base: str) -> dict:
    """The body with its links on the server (computed on the JSON text, independently of the server)."""
    return json.loads(json.dumps(body, ensure_ascii=False).replace(API + "/", base + "/"))


def expected(data_dir, base, ident, fmt, **kw) -> tuple[int, dict]:
    status, body = get_document(data_dir, ident, fmt=fmt, **kw)
    if "links" in body or "errors" in body:
        body = rebased(body, base)
    return status, body


def test_server_answers_from_the_lookup_store(server):
    health = server.get("/health").json()
    assert health["lookup_store"] == {**health["lookup_store"], "exists": True, "current": True}


@pytest.mark.parametrize("fmt", ["v3", "v4"])
def test_v3_v4_units_and_etablissements_equal_get_document(server, http_mirror, samples, fmt):
    sirens = samples["sirens_o"][:6] + samples["sirens_p"][:2] + samples["doublons"][:1] + [UNKNOWN_SIREN]
    sirets = samples["sirets_o"][:6] + samples["sirets_p"][:2] + [UNKNOWN_SIRET]
    seen = set()
    for diff in (False, True):
        d = "/diffusibles" if diff else ""
        for siren in sirens:
            for suffix, siege in (("", False), ("/siege_social", True)):
                r = server.get(f"/{fmt}/insee/sirene/unites_legales{d}/{siren}{suffix}", CONTEXT)
                want = expected(http_mirror, server.url, siren, fmt, diffusibles=diff, siege=siege)
                assert (r.status_code, r.json()) == want, (siren, diff, siege)
                assert r.headers["content-type"] == "application/json"
                seen.add(r.status_code)
        for siret in sirets:
            r = server.get(f"/{fmt}/insee/sirene/etablissements{d}/{siret}", CONTEXT)
            assert (r.status_code, r.json()) == expected(
                http_mirror, server.url, siret, fmt, diffusibles=diff
            )
            seen.add(r.status_code)
    assert {200, 301, 404, 451} <= seen, seen


def test_links_point_at_the_server(server, samples):
    siret = samples["sirets_o"][0]
    body = server.get(f"/v3/insee/sirene/etablissements/{siret}", CONTEXT).json()
    assert body["links"]["unite_legale"] == f"{server.url}/v3/insee/sirene/unites_legales/{siret[:9]}"
    assert API not in json.dumps(body["links"])


@pytest.mark.parametrize("fmt", ["v3", "v4"])
def test_adresse_is_the_etablissement_address(server, http_mirror, samples, fmt):
    for diff in (False, True):
        d = "/diffusibles" if diff else ""
        for siret in samples["sirets_o"][:4] + samples["sirets_p"][:2] + [UNKNOWN_SIRET]:
            r = server.get(f"/{fmt}/insee/sirene/etablissements{d}/{siret}/adresse", CONTEXT)
            status, doc = expected(http_mirror, server.url, siret, fmt, diffusibles=diff)
            assert r.status_code == status, (siret, diff)
            if status != 200:
                assert r.json() == doc
                continue
            body = r.json()
            assert body["data"] == doc["data"]["adresse"]  # the adresse object alone, without the siret
            assert body["links"] == {
                "unite_legale": f"{server.url}/{fmt}/insee/sirene/unites_legales/{siret[:9]}",
                "etablissement": f"{server.url}/{fmt}/insee/sirene/etablissements/{siret}",
            }
            assert body["meta"] == {"date_derniere_mise_a_jour": doc["meta"]["date_derniere_mise_a_jour"]}


def test_successions_are_the_liens_de_succession(server, http_mirror, samples):
    con = connect(http_mirror)
    try:
        for siret in samples["sirets_linked"]:
            rows = con.execute(
                "SELECT siretEtablissementPredecesseur, siretEtablissementSuccesseur, dateLienSuccession::VARCHAR, "
                "transfertSiege, continuiteEconomique FROM liens_succession "
                "WHERE siretEtablissementPredecesseur = ? OR siretEtablissementSuccesseur = ?",
                [siret, siret],
            ).fetchall()
            for fmt in ("v3", "v4"):
                r = server.get(f"/{fmt}/insee/sirene/etablissements/{siret}/successions", CONTEXT)
                assert r.status_code == 200, r.text
                body = r.json()
                assert body["links"] == {} and body["meta"] == {}
                got_pred = {(x["siret"], x["date_succession"], x["transfert_siege"], x["continuite_economique"])
                            for x in body["data"]["predecesseurs"]}  # fmt: skip
                got_succ = {(x["siret"], x["date_succession"], x["transfert_siege"], x["continuite_economique"])
                            for x in body["data"]["successeurs"]}  # fmt: skip
                assert got_pred == {(p, d, t, c) for p, s, d, t, c in rows if s == siret}
                assert got_succ == {(s, d, t, c) for p, s, d, t, c in rows if p == siret}
                assert got_pred or got_succ
        unlinked = next(
            s for s in samples["all_sirets"] if not con.execute(
                "SELECT count(*) FROM liens_succession WHERE ? IN (siretEtablissementPredecesseur, "
                "siretEtablissementSuccesseur)", [s]).fetchone()[0]
        )  # fmt: skip
    finally:
        con.close()
    r = server.get(f"/v3/insee/sirene/etablissements/{unlinked}/successions", CONTEXT)
    assert (r.status_code, r.json()["data"]) == (200, {"predecesseurs": [], "successeurs": []})
    r = server.get(f"/v3/insee/sirene/etablissements/{UNKNOWN_SIRET}/successions", CONTEXT)
    assert r.status_code == 404 and r.json()["errors"][0]["code"] == "01003"
    r = server.get("/v3/insee/sirene/etablissements/12345678901234/successions", CONTEXT)
    assert r.status_code == 422 and r.json()["errors"][0]["code"] == "00302"

    # `mirror get SIRET --successions` answers the same document and statuses from the command line.
    linked = samples["sirets_linked"][0]
    served = server.get(f"/v4/insee/sirene/etablissements/{linked}/successions", CONTEXT).json()
    cli = run_mirror("get", linked, "--successions", "--format", "v4", "--compact", data_dir=http_mirror)
    assert cli.returncode == 0 and json.loads(cli.stdout) == served, cli.stderr
    assert run_mirror("get", UNKNOWN_SIRET, "--successions", data_dir=http_mirror).returncode == 3
    usage = run_mirror("get", linked, "--successions", "--format", "v2", data_dir=http_mirror)
    assert usage.returncode == 2 and "--successions" in usage.stderr and "Traceback" not in usage.stderr


def test_v2_routes_and_non_diffusables(server, http_mirror, samples):
    for siren in samples["sirens_o"][:3] + samples["sirens_p"][:2]:
        for nd in (False, True):
            r = server.get(f"/v2/entreprises/{siren}", {**CONTEXT, "non_diffusables": str(nd).lower()})
            assert (r.status_code, r.json()) == expected(
                http_mirror, server.url, siren, "v2", non_diffusables=nd
            )
    p = samples["sirens_p"][0]
    assert server.get(f"/v2/entreprises/{p}", CONTEXT).status_code == 451
    assert server.get(f"/v2/entreprises/{p}", {**CONTEXT, "non_diffusables": "true"}).status_code == 200
    for siret in samples["sirets_o"][:3] + samples["sirets_p"][:2]:
        r = server.get(f"/v2/etablissements/{siret}", CONTEXT)
        assert (r.status_code, r.json()) == expected(http_mirror, server.url, siret, "v2")
    r = server.get(f"/v2/entreprises/{p}", {**CONTEXT, "non_diffusables": "yes"})
    assert r.status_code == 400 and r.json()["gateway_error"] is False


def test_422_bodies(server, samples):
    siren, siret = samples["sirens_o"][0], samples["sirets_o"][0]
    for path, code, param in (
        ("/v3/insee/sirene/unites_legales/123456789", "00301", "siren"),
        (f"/v3/insee/sirene/unites_legales/{siret}", "00301", "siren"),  # a SIRET on a SIREN route
        (f"/v4/insee/sirene/etablissements/{siren}", "00302", "siret"),
        ("/v4/insee/sirene/etablissements/abc", "00302", "siret"),
    ):
        r = server.get(path, CONTEXT)
        assert r.status_code == 422
        assert r.json() == {
            "errors": [
                {
                    "code": code,
                    "title": "Entité non traitable",
                    "detail": f"Le numéro de {param} n'est pas correctement formatté",
                    "source": {"parameter": param},
                    "meta": {},
                }
            ]
        }
    r = server.get("/v2/entreprises/123", CONTEXT)
    assert r.status_code == 422
    assert r.json() == {
        "errors": ["Le numéro de siren n'est pas correctement formatté"],
        "gateway_error": False,
    }


def test_mandatory_context_object_recipient(server, samples):
    path = f"/v3/insee/sirene/unites_legales/{samples['sirens_o'][0]}"
    r = server.get(path)
    assert r.status_code == 422
    assert [e["code"] for e in r.json()["errors"]] == ["00201", "00202", "00203"]
    assert r.json()["errors"][0] == {
        "code": "00201",
        "title": "Entité non traitable",
        "detail": "Le paramètre context est obligatoire",
        "source": {"parameter": "context"},
        "meta": {},
    }
    r = server.get(path, {k: v for k, v in CONTEXT.items() if k != "object"})
    assert r.status_code == 422 and [e["code"] for e in r.json()["errors"]] == ["00202"]
    r = server.get(path, {**CONTEXT, "recipient": ""})
    assert [e["code"] for e in r.json()["errors"]] == ["00203"]
    r = server.get(path, {**CONTEXT, "recipient": "12345678901234"})
    assert r.status_code == 422 and r.json()["errors"][0]["code"] == "00210"
    r = server.get(path.replace("/v3/insee/sirene/unites_legales/", "/v2/entreprises/"))
    assert r.status_code == 422 and r.json()["errors"][0] == "Le paramètre context est obligatoire"
    # The identifier is checked after the parameters, as on the real API.
    r = server.get("/v3/insee/sirene/unites_legales/1")
    assert [e["code"] for e in r.json()["errors"]] == ["00201", "00202", "00203"]


def test_301_doublon_location_on_the_server(server, http_mirror, samples):
    doublon = samples["doublons"][0]
    for fmt, path in (
        ("v3", f"/v3/insee/sirene/unites_legales/{doublon}"),
        ("v4", f"/v4/insee/sirene/unites_legales/diffusibles/{doublon}"),
        ("v3", f"/v3/insee/sirene/unites_legales/{doublon}/siege_social"),
        ("v2", f"/v2/entreprises/{doublon}"),
    ):
        r = server.get(path, CONTEXT)
        assert r.status_code == 301, (path, r.text)
        status, body = get_document(http_mirror, doublon, fmt=fmt)
        assert status == 301
        assert r.json() == rebased(body, server.url)
        location = urlsplit(r.headers["location"])
        replacing = (body["errors"][0]["meta"]["siren"] if fmt != "v2"
                     else body["errors"][0].rsplit(" ", 1)[1])  # fmt: skip
        assert f"{location.scheme}://{location.netloc}" == server.url
        assert replacing in location.path and location.path.endswith(
            "/siege_social" if "siege_social" in path else replacing
        )
        assert dict(parse_qsl(location.query)) == CONTEXT  # the caller's parameters kept
        followed = server.get(r.headers["location"].removeprefix(server.url))
        assert followed.status_code in (200, 451), followed.text


def test_head_and_unknown_routes_and_methods(server, samples):
    path = f"/v3/insee/sirene/unites_legales/{samples['sirens_o'][0]}"
    r = server.session.head(server.url + path, params=CONTEXT, timeout=30)
    assert r.status_code == 200 and r.content == b""
    r = server.session.post(server.url + path, params=CONTEXT, timeout=30)
    assert r.status_code == 405 and r.json()["errors"][0]["code"] == "00405"
    r = server.get("/v3/insee/sirene/unknown/1")
    assert r.status_code == 404 and "errors" in r.json()
    r = server.get("/v2/nothing")
    assert r.status_code == 404 and r.json()["gateway_error"] is False


def test_a_writer_holding_the_store_lock_does_not_freeze_the_server(server, http_mirror, samples):
    """While a writer holds the store's exclusive lock (a day's commit), a lookup gives up on the store at
    once on the event loop and waits in the thread pool (then answers from the views): other requests
    are served meanwhile, and the answer is the same."""
    import sqlite3
    import threading
    import time

    from mirror.lookup.store import store_path

    siret = samples["sirets_o"][1]
    path = f"/v3/insee/sirene/etablissements/{siret}"
    want = server.get(path, CONTEXT).json()
    writer = sqlite3.connect(store_path(http_mirror), isolation_level=None)
    writer.execute("BEGIN EXCLUSIVE")
    try:
        got = {}
        slow = threading.Thread(target=lambda: got.update(r=server.get(path, CONTEXT)))
        slow.start()
        time.sleep(0.3)
        t0 = time.monotonic()
        assert server.get("/openapi.json").status_code == 200
        assert time.monotonic() - t0 < 1.0  # the event loop was not waiting on the lock
        slow.join(timeout=60)
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert got["r"].status_code == 200 and got["r"].json() == want


def test_store_documents_sent_as_text_equal_the_rendered_dicts_for_every_identifier(http_mirror):
    """The event loop's path sends a document's stored JSON text with its links rebased on the text: for
    every identifier (v3 units and établissements; the first 300 on the other routes and variants) the bytes
    are those JSONResponse renders from the rebased dict."""
    from starlette.responses import JSONResponse

    from mirror.http import entreprise

    con = connect(http_mirror)
    try:
        sirens = [r[0] for r in con.execute("SELECT siren FROM unites_legales").fetchall()]
        sirets = [r[0] for r in con.execute("SELECT siret FROM etablissements").fetchall()]
    finally:
        con.close()
    base = "http://127.0.0.1:8123/prefix"
    params = list(CONTEXT.items())
    routes = [r for r in entreprise.ROUTES if r.version in ("v3", "v4") and r.resource != "successions"]
    texts = 0
    for route in routes:
        idents = sirens if route.param == "siren" else sirets
        every = (
            route.version == "v3"
            and not route.diffusibles
            and route.resource in ("unite_legale", "etablissement")
        )
        for ident in idents if every else idents[:300]:
            fast = entreprise.answer_from_store(http_mirror, route, ident, params, base)
            assert fast is not None, (route.path, ident)
            slow = entreprise.answer(http_mirror, route, ident, params, base)
            assert fast.status == slow.status, (route.path, ident)
            if isinstance(fast.body, str):
                texts += 1
                assert fast.body.encode() == JSONResponse(slow.body).body, (route.path, ident)
            else:
                assert fast.body == slow.body, (route.path, ident)
    assert texts > len(sirens) + len(sirets)
