"""`mirror serve` as a server: tokens, listening addresses, limits, CORS, /health, /openapi.json, /docs, a
client library we did not write (api-entreprise), a fuzz of every route, graceful shutdown."""

from __future__ import annotations

import json
import socket
import string

import pytest
import requests
from conftest import CONTEXT, run_mirror, running_server
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mirror.core.config import INSEE_KEY_HEADER
from mirror.core.identifiers import luhn_check_digit
from mirror.http import insee
from mirror.http.entreprise import ROUTES
from mirror.serve.documents import get_document

TOKEN = "s3cret-token-for-tests-0123456789"


@pytest.fixture(scope="module")
def tokens_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("tokens") / "tokens.txt"
    path.write_text(f"# the tokens of the tests\n\n{TOKEN}\nanother-token-abcdefghijkl\n")
    return path


@pytest.fixture(scope="module")
def guarded(http_mirror, tokens_file, tmp_path_factory):
    """A server requiring tokens, with CORS for one origin and without the mandatory parameters."""
    with running_server(
        http_mirror,
        "--tokens", str(tokens_file), "--cors", "https://app.example.org", "--no-require-context",
        log_dir=tmp_path_factory.mktemp("guarded-logs"),
    ) as srv:  # fmt: skip
        yield srv


def test_tokens_required_compared_and_never_logged(guarded, samples):
    path = f"/v3/insee/sirene/etablissements/{samples['sirets_o'][0]}"
    for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"}, {"Authorization": TOKEN}):
        r = guarded.get(path, headers=headers)
        assert r.status_code == 401
        assert r.json() == {
            "errors": [
                {
                    "code": "00101",
                    "title": "Interdit",
                    "detail": "Votre token n'est pas valide ou n'est pas renseigné",
                    "source": {"parameter": "token"},
                    "meta": {},
                }
            ]
        }
    r = guarded.get(path, headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200, r.text  # --no-require-context: no context / object / recipient needed
    r = guarded.get(path, headers={"Authorization": "bearer another-token-abcdefghijkl"})
    assert r.status_code == 200
    v2 = f"/v2/etablissements/{samples['sirets_o'][0]}"
    assert guarded.get(v2).status_code == 401
    assert guarded.get(v2, {"token": TOKEN}).status_code == 200  # v2 also took ?token=
    assert guarded.get(path, {"token": TOKEN}).status_code == 401  # v3 only takes the header
    for open_path in ("/health", "/openapi.json", "/docs"):  # no token needed
        assert guarded.get(open_path).status_code == 200
    r = guarded.get("/search", {"q": "boulangerie"})
    if r.status_code != 404:  # the recherche routes are mounted
        assert r.status_code == 401 and isinstance(r.json()["erreur"], str)
        assert guarded.get("/search", {"q": "boulangerie"}, headers={"Authorization": f"Bearer {TOKEN}"}).ok
    log = guarded.log.read_text()
    assert TOKEN not in log and "wrong-token" not in log and "token=" not in log
    assert f'"GET {path}" 200' in log and f'"GET {v2}" 401' in log  # paths, never query strings


def test_cors_only_when_asked(guarded, server, samples):
    path = f"/v3/insee/sirene/etablissements/{samples['sirets_o'][0]}"
    origin = {"Origin": "https://app.example.org", "Authorization": f"Bearer {TOKEN}"}
    assert (
        guarded.get(path, headers=origin).headers["access-control-allow-origin"] == "https://app.example.org"
    )
    other = {"Origin": "https://evil.example.com", "Authorization": f"Bearer {TOKEN}"}
    assert "access-control-allow-origin" not in guarded.get(path, headers=other).headers
    r = server.get(path, CONTEXT, headers={"Origin": "https://app.example.org"})
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers


@pytest.mark.slow
def test_insee_routes_follow_the_same_cors_and_token_rules(guarded, server, samples):
    """/api-sirene/3.11: a token is required as on the other routes (the INSEE key header or a Bearer
    token), answered 401 in INSEE's error shape; the CORS origin gets its headers, also on the 401 and on
    the preflight of a POST search sending the INSEE key header."""
    lookup = f"/api-sirene/3.11/siret/{samples['sirets_o'][0]}"
    origin = {"Origin": "https://app.example.org"}
    for headers in ({}, {INSEE_KEY_HEADER: "wrong-token-0123456789"}, {"Authorization": TOKEN}):
        r = guarded.get(lookup, headers={**origin, **headers})
        assert r.status_code == 401, headers
        assert r.json() == {"header": {"statut": 401, "message": "Jeton d'accès manquant ou invalide"}}
        assert r.headers["access-control-allow-origin"] == "https://app.example.org"
    for headers in ({INSEE_KEY_HEADER: TOKEN}, {"Authorization": f"Bearer {TOKEN}"}):
        r = guarded.get(lookup, headers={**origin, **headers})
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "https://app.example.org"
        r = guarded.session.post(guarded.url + "/api-sirene/3.11/siren", data={"q": "etatAdministratifUniteLegale:A",
                                 "nombre": "1"}, headers={**origin, **headers}, timeout=60)  # fmt: skip
        assert r.status_code == 200 and r.json()["header"]["nombre"] == 1
    assert (
        guarded.session.post(
            guarded.url + "/api-sirene/3.11/siren", data={"q": "siren:*"}, timeout=60
        ).status_code
        == 401
    )
    preflight = guarded.session.options(
        guarded.url + "/api-sirene/3.11/siren",
        headers={**origin, "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": INSEE_KEY_HEADER.lower()},
        timeout=60,
    )  # fmt: skip
    assert preflight.status_code == 200, preflight.text
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert INSEE_KEY_HEADER.lower() in preflight.headers["access-control-allow-headers"].lower()
    other = guarded.get(lookup, headers={"Origin": "https://evil.example.com", INSEE_KEY_HEADER: TOKEN})
    assert other.status_code == 200 and "access-control-allow-origin" not in other.headers
    r = server.get(lookup, headers=origin)  # no --cors, no --tokens
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers


def test_refuses_other_hosts_without_tokens(http_mirror, tmp_path):
    for host in ("0.0.0.0", "192.168.1.10", "::"):
        res = run_mirror("serve", "--host", host, "--port", "0", data_dir=http_mirror, timeout=60)
        assert res.returncode == 2, res
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: --host") and "--tokens" in lines[0], res.stderr
        assert "Traceback" not in res.stderr
    bad = tmp_path / "bad-tokens.txt"
    for content, why in (("", "no token"), ("short\n", "not a token")):
        bad.write_text(content)
        res = run_mirror("serve", "--host", "0.0.0.0", "--tokens", str(bad), data_dir=http_mirror, timeout=60)
        assert res.returncode == 2 and why in res.stderr and len(res.stderr.strip().splitlines()) == 1
    res = run_mirror("serve", "--tokens", str(tmp_path / "missing"), data_dir=http_mirror, timeout=60)
    assert res.returncode == 2 and "cannot read" in res.stderr
    res = run_mirror("serve", data_dir=tmp_path / "nothing", timeout=60)
    assert res.returncode == 1 and "no mirror" in res.stderr
    with socket.socket() as taken:  # a busy port: one line, before uvicorn logs a start
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = str(taken.getsockname()[1])
        res = run_mirror("serve", "--port", port, data_dir=http_mirror, timeout=60)
    assert res.returncode == 2, res
    assert res.stderr.strip().splitlines() == [
        f"Error: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]
    help_text = run_mirror("serve", "--help", timeout=60).stdout
    for needed in ("reverse proxy", "--root-path", "X-Forwarded-Proto", "--tokens", "Authorization: Bearer",
                   "/api-sirene/3.11", "X-INSEE-Api-Key-Integration"):  # fmt: skip
        assert needed in help_text, needed


def test_limits_answer_json(server, samples):
    siret = samples["sirets_o"][0]
    path = f"/v3/insee/sirene/etablissements/{siret}"
    r = server.get(path, {**CONTEXT, "pad": "x" * 3000})
    assert r.status_code == 414 and r.json()["errors"][0]["code"] == "00414"
    r = server.get(path, [*CONTEXT.items(), *[(f"p{i}", "1") for i in range(40)]])
    assert r.status_code == 400 and r.json()["errors"][0]["code"] == "00400"
    r = server.get(path, {**CONTEXT, "context": "c" * 600})
    assert r.status_code == 400
    r = server.get("/v2/entreprises/" + "1" * 3000)
    assert r.status_code == 414 and r.json()["gateway_error"] is False
    r = server.get("/search", {"q": "x" * 3000})
    assert r.status_code == 414 and "erreur" in r.json()


def test_health(server):
    r = server.get("/health")
    assert r.status_code == 200
    body = r.json()
    assert body["snapshot"]["month"] == "2026-10"
    assert body["status"] in ("ok", "stale")
    assert body["lookup_store"]["current"] is True
    assert set(body) >= {"last_update", "freshness", "rows", "warnings"}
    assert "/" not in json.dumps(body["snapshot"]["month"]) and "data_dir" not in body  # no paths


def test_openapi_and_docs_list_every_route(server):
    spec = server.get("/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    for route in ROUTES:
        op = spec["paths"][route.path]["get"]
        names = {p["name"] for p in op["parameters"]}
        assert {route.param, "context", "object", "recipient"} <= names
    for route in insee.ROUTES:  # the INSEE API Sirene 3.11's routes, their parameters and POST forms
        item = spec["paths"][route.path]
        assert set(item) == ({"get", "post"} if "POST" in route.methods else {"get"}), route.path
        names = {p["name"] for p in item["get"]["parameters"]}
        assert names == set(route.params) | ({route.kind} if route.endpoint == "lookup" else set()), (
            route.path
        )
        if "post" in item:
            form = item["post"]["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
            assert set(form["properties"]) == set(route.params)
        assert item["get"]["responses"]["400"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ErrorInsee"
        }
    assert {"siren", "siret", "liensSuccession", None} == {r.kind for r in insee.ROUTES}
    assert {"/health"} <= set(spec["paths"])
    assert len(spec["paths"]) >= len(ROUTES) + len(insee.ROUTES) + 1
    docs = server.get("/docs")
    assert docs.status_code == 200 and docs.headers["content-type"].startswith("text/html")
    for path in spec["paths"]:
        assert path in docs.text
    assert "<script" not in docs.text  # no CDN, nothing to fetch


def test_api_entreprise_client_library(server, http_mirror, samples):
    """The `api-entreprise` package (PyPI) with its base_url swapped drives the v3 établissement routes."""
    from api_entreprise import ApiEntreprise, Config, ContextInfo

    client = ApiEntreprise(
        Config(
            base_url=server.url,
            token="unused-without-tokens-file",
            default_context_info=ContextInfo(
                context=CONTEXT["context"], recipient=CONTEXT["recipient"], object=CONTEXT["object"]
            ),
        )
    )
    for siret in samples["sirets_o"][:5]:
        _, doc = get_document(http_mirror, siret, fmt="v3")
        got = client.donnees_etablissement(siret)
        assert got.siret == siret
        assert got.adresse.code_postal == doc["data"]["adresse"]["code_postal"]
        assert got.activite_principale.code == doc["data"]["activite_principale"]["code"]
        assert got.unite_legale.forme_juridique.code == doc["data"]["unite_legale"]["forme_juridique"]["code"]
        assert client.raw_donnees_etablissement(siret)["data"] == doc["data"]
        assert client.donnees_etablissement_diffusibles(siret).siret == siret
    p = samples["sirets_p"][0]
    assert client.donnees_etablissement_diffusibles(p).siret == p
    unknown = samples["sirets_o"][0][:9] + "9999"
    unknown += luhn_check_digit(unknown)
    assert client.donnees_etablissement(unknown) is None  # 404 -> None in the client


def test_graceful_shutdown_exit_0(http_mirror, tmp_path):
    with running_server(http_mirror, log_dir=tmp_path) as srv:
        assert srv.get("/health").status_code == 200
        code = srv.stop()
    assert code == 0, srv.log.read_text()
    assert "Traceback" not in srv.log.read_text()


# ------------------------------------------------------------------------------------------------
# Fuzz: random identifiers and query parameters on every route of the OpenAPI description
# ------------------------------------------------------------------------------------------------

_IDENT = st.one_of(
    st.text(alphabet=string.digits, min_size=0, max_size=16),
    st.text(alphabet=string.printable, min_size=1, max_size=30),
    st.sampled_from(["000000000", "00000000000000", "356000000", "35600000000048", "%00", "..", "%2F"]),
)
_VALUE = st.text(max_size=40)
_PARAM = st.sampled_from(["context", "object", "recipient", "non_diffusables", "token", "x", "page", ""])


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    route=st.sampled_from(ROUTES),
    ident=_IDENT,
    params=st.lists(st.tuples(_PARAM, _VALUE), max_size=6),
    with_context=st.booleans(),
)
def test_fuzz_routes_never_5xx(server, route, ident, params, with_context):
    path = route.path.replace("{" + route.param + "}", requests.utils.quote(ident, safe=""))
    query = ([*CONTEXT.items()] if with_context else []) + params
    r = server.get(path, query)
    assert r.status_code < 500, (path, query, r.status_code, r.text)
    body = r.json()
    if r.status_code >= 400:
        errors = body["errors"]
        assert errors
        if route.version == "v2":
            assert all(isinstance(e, str) for e in errors) and "gateway_error" in body
        else:
            assert all({"code", "title", "detail"} <= set(e) for e in errors)
    assert "Traceback" not in r.text


# ------------------------------------------------------------------------------------------------
# recherche-entreprises routes, mounted from mirror.http.recherche
# ------------------------------------------------------------------------------------------------


def test_annuaire_entreprises_client_on_search(server, http_mirror):
    """The `annuaire-entreprises-py` package (PyPI) with its BASE_URL swapped gets what search_response
    answers in this process."""
    recherche = pytest.importorskip("mirror.http.recherche")
    from annuaire_entreprises_py.client import AnnuaireEntreprisesGet

    client = AnnuaireEntreprisesGet()
    client.BASE_URL = server.url + "/search"
    # search() sends page / per_page from attributes its __init__ never sets (annuaire-entreprises-py 0.2.0)
    client.default_page, client.default_per_page = 1, 10
    for query in ({"q": "boulangerie"}, {"q": "conseil", "departement": "75"}, {"q": "plo"}):
        got = client.search(**query)
        sent = [*query.items(), ("page", "1"), ("per_page", "10")]
        status, body = recherche.search_response(http_mirror, sent, server.url)
        assert status == 200 and got == body, query
        assert set(got) >= {"results", "total_results", "page", "per_page", "total_pages"}


_SEARCH_NAMES = st.sampled_from(
    ["q", "page", "per_page", "departement", "code_postal", "activite_principale", "etat_administratif",
     "lat", "long", "radius", "minimal", "include", "est_ess", "x", ""]
)  # fmt: skip


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    path=st.sampled_from(["/search", "/near_point"]),
    params=st.lists(st.tuples(_SEARCH_NAMES, st.text(max_size=30)), max_size=6),
)
def test_fuzz_recherche_never_5xx(server, path, params):
    pytest.importorskip("mirror.http.recherche")
    r = server.get(path, params)
    assert r.status_code < 500, (path, params, r.status_code, r.text)
    body = r.json()
    if r.status_code >= 400:
        assert isinstance(body.get("erreur"), str), body
    assert "Traceback" not in r.text


def test_behind_a_proxy_root_path_and_forwarded_proto(http_mirror, samples, tmp_path):
    """--root-path: links and Location carry the prefix the proxy strips; X-Forwarded-Proto and Host from
    a trusted proxy (127.0.0.1) give the public scheme and host."""
    siret, doublon = samples["sirets_o"][0], samples["doublons"][0]
    with running_server(http_mirror, "--root-path", "/sirene/", log_dir=tmp_path) as srv:
        body = srv.get(f"/v3/insee/sirene/etablissements/{siret}", CONTEXT).json()
        assert body["links"]["unite_legale"] == f"{srv.url}/sirene/v3/insee/sirene/unites_legales/{siret[:9]}"
        proxied = {"X-Forwarded-Proto": "https", "Host": "api.example.org"}
        r = srv.get(f"/v3/insee/sirene/unites_legales/{doublon}", CONTEXT, headers=proxied)
        assert r.status_code == 301
        assert r.headers["location"].startswith(
            "https://api.example.org/sirene/v3/insee/sirene/unites_legales/"
        )
