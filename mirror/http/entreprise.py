"""The API Entreprise routes of `mirror serve`: the real API's paths, bodies, statuses and error bodies.

Every document is the one `mirror get` prints (mirror.serve.documents.get_document, one call per request:
a request never mixes two states of the mirror); this module only maps a route and its query parameters to
that call, checks the parameters API Entreprise makes mandatory, derives the `/adresse` sub-document, answers
`/successions` from the catalog's `liens_succession` view, and points `links` at this server.

Sources: API Entreprise's documentation (https://entreprise.api.gouv.fr/developpeurs, "Les paramètres
obligatoires": `context`, `recipient`, `object`; error model `{"errors": [{code, title, detail, source,
meta}]}`) and its public OpenAPI description (https://entreprise.api.gouv.fr/developpeurs/openapi).

Pure functions of (data dir, route, identifier, query parameters, base URL) -> (status, body, headers),
synchronous (DuckDB / SQLite): the ASGI app (mirror.http.app) runs them in its thread pool.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from mirror.core.identifiers import is_valid_siret
from mirror.http.params import last
from mirror.serve.documents import (
    error_document,
    get_document,
    get_successions,
    identifier_kind,
    normalize_identifier,
)

API_BASE = "https://entreprise.api.gouv.fr"
# The query parameters API Entreprise requires on every call, and the codes of its 422 when one is missing
# (API Entreprise error codes 00201 context, 00202 object, 00203 recipient).
MANDATORY = (("context", "00201"), ("object", "00202"), ("recipient", "00203"))
MAX_PARAMETER_LENGTH = 500  # context / object / recipient values (free text on the real API)


@dataclass(frozen=True)
class Route:
    """One API Entreprise route: its path (Starlette syntax), version and what it answers."""

    path: str
    version: str  # v2, v3, v4
    resource: str  # unite_legale, siege_social, etablissement, adresse, successions, entreprise (v2)
    param: str  # "siren" or "siret" (the path parameter)
    diffusibles: bool
    summary: str


def _routes() -> list[Route]:
    out = []
    for v in ("v3", "v4"):
        base = f"/{v}/insee/sirene"
        for diff in (False, True):
            d = "/diffusibles" if diff else ""
            what = " (diffusible fields only: the protected ones of P units as [ND])" if diff else ""
            out += [
                Route(f"{base}/unites_legales{d}/{{siren}}", v, "unite_legale", "siren", diff,
                      f"Unité légale{what}"),
                Route(f"{base}/unites_legales{d}/{{siren}}/siege_social", v, "siege_social", "siren", diff,
                      f"Siège social of an unité légale{what}"),
                Route(f"{base}/etablissements{d}/{{siret}}", v, "etablissement", "siret", diff,
                      f"Établissement{what}"),
                Route(f"{base}/etablissements{d}/{{siret}}/adresse", v, "adresse", "siret", diff,
                      f"Adresse of an établissement{what}"),
            ]  # fmt: skip
        out.append(
            Route(f"{base}/etablissements/{{siret}}/successions", v, "successions", "siret", False,
                  "Liens de succession of an établissement (predecessors and successors)")
        )  # fmt: skip
    out += [
        Route("/v2/entreprises/{siren}", "v2", "entreprise", "siren", False,
              "v2 entreprise (unité légale and its siège); non_diffusables=true for P units"),
        Route("/v2/etablissements/{siret}", "v2", "etablissement", "siret", False,
              "v2 établissement; non_diffusables=true for P établissements"),
    ]  # fmt: skip
    return out


ROUTES: list[Route] = _routes()


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict | str  # str: a document's JSON text, sent as it is (answer_from_store)
    headers: dict[str, str]


# ------------------------------------------------------------------------------------------------
# Error bodies beyond get_document's (API Entreprise's error model, v2 strings or v3/v4 objects)
# ------------------------------------------------------------------------------------------------


def error_body(version: str, code: str, title: str, detail: str, parameter: str | None = None) -> dict:
    """An API Entreprise error body: v2 `{"errors": [detail], "gateway_error": false}`, v3/v4 JSON:API-like."""
    if version == "v2":
        return {"errors": [detail], "gateway_error": False}
    return {
        "errors": [
            {
                "code": code,
                "title": title,
                "detail": detail,
                "source": {"parameter": parameter} if parameter else None,
                "meta": {},
            }
        ]
    }


def unauthorized_body(version: str) -> dict:
    """401: API Entreprise's 00101 "Interdit" (missing or unknown token)."""
    return error_body(
        version, "00101", "Interdit", "Votre token n'est pas valide ou n'est pas renseigné", "token"
    )


def _missing_parameters(version: str, missing: list[tuple[str, str]]) -> dict:
    if version == "v2":
        return {"errors": [f"Le paramètre {p} est obligatoire" for p, _ in missing], "gateway_error": False}
    return {
        "errors": [
            {
                "code": code,
                "title": "Entité non traitable",
                "detail": f"Le paramètre {p} est obligatoire",
                "source": {"parameter": p},
                "meta": {},
            }
            for p, code in missing
        ]
    }


def bad_request(version: str, detail: str, parameter: str | None = None) -> dict:
    """400 for a query parameter with a value the route cannot take (code 00400: local to the mirror)."""
    return error_body(version, "00400", "Requête mal formée", detail, parameter)


# ------------------------------------------------------------------------------------------------
# Query parameters
# ------------------------------------------------------------------------------------------------


def check_parameters(route: Route, params: list[tuple[str, str]], require_context: bool) -> Answer | None:
    """The 400 / 422 of the query parameters, None when they are fine.

    context, object and recipient are mandatory on the real API (422 00201 / 00202 / 00203, all the missing
    ones listed); recipient must be a SIRET there (422 00210, as in the public specs of API Entreprise's
    backend, github.com/etalab/siade). `require_context=False` (mirror serve
    --no-require-context) accepts calls without them; values that are given are still checked."""
    missing = []
    for name, code in MANDATORY:
        value = last(params, name)
        if value is not None and len(value) > MAX_PARAMETER_LENGTH:
            return Answer(
                400, bad_request(route.version, f"Le paramètre {name} est trop long", name), {}
            )  # fmt: skip
        if require_context and not (value or "").strip():
            missing.append((name, code))
    if missing:
        return Answer(422, _missing_parameters(route.version, missing), {})
    recipient = last(params, "recipient")
    if recipient and not (len(recipient) == 14 and recipient.isdigit() and is_valid_siret(recipient)):
        detail = "Le paramètre recipient n'est pas un siret valide"
        return Answer(
            422, error_body(route.version, "00210", "Entité non traitable", detail, "recipient"), {}
        )
    if route.version == "v2":
        value = last(params, "non_diffusables")
        if value is not None and value not in ("true", "false"):
            detail = "Le paramètre non_diffusables doit valoir true ou false"
            return Answer(400, bad_request("v2", detail, "non_diffusables"), {})
    return None


def _non_diffusables(params: list[tuple[str, str]]) -> bool:
    return last(params, "non_diffusables") == "true"


# ------------------------------------------------------------------------------------------------
# Links and redirects
# ------------------------------------------------------------------------------------------------


def _rebase(value, base_url: str):
    if isinstance(value, str) and value.startswith(API_BASE + "/"):
        return base_url + value[len(API_BASE) :]
    if isinstance(value, dict):
        return {k: _rebase(v, base_url) for k, v in value.items()}
    if isinstance(value, list):
        return [_rebase(v, base_url) for v in value]
    return value


def rebase_links(body: dict | str, base_url: str) -> dict | str:
    """`links` (and the `meta.location` of a 301) pointing at this server instead of entreprise.api.gouv.fr.
    `body` may be a 200 document's JSON text as the lookup store keeps it (see _rebase_text)."""
    if base_url == API_BASE:
        return body
    if isinstance(body, str):
        return _rebase_text(body, base_url)
    if isinstance(body.get("links"), dict):
        body["links"] = _rebase(body["links"], base_url)
    errors = body.get("errors")
    if isinstance(errors, list):
        for err in errors:
            if isinstance(err, dict) and isinstance(err.get("meta"), dict):
                err["meta"] = _rebase(err["meta"], base_url)
    return body


def _rebase_text(text: str, base_url: str) -> str:
    """rebase_links on a v3/v4 document's compact JSON text, without parsing it: the string values starting
    with API_BASE + "/" between its top-level `"links":` key (the last one: `data` comes first) and its
    `"meta"` key. Inside a JSON string every quote is escaped, so neither key can be matched there."""
    start = text.rfind('"links":{')
    if start < 0:
        return text
    end = text.find(',"meta":', start)
    end = len(text) if end < 0 else end
    return text[:start] + text[start:end].replace(f'"{API_BASE}/', f'"{base_url}/') + text[end:]


def _location(route: Route, replacing: str, base_url: str, params: list[tuple[str, str]]) -> str:
    """The replacing unit's route on this server, the same variant, the caller's query parameters kept (a
    client following the redirect still sends context / object / recipient), never a token."""
    if route.version == "v2":
        path = f"/v2/entreprises/{replacing}"
    else:
        d = "/diffusibles" if route.diffusibles else ""
        path = f"/{route.version}/insee/sirene/unites_legales{d}/{replacing}"
        if route.resource == "siege_social":
            path += "/siege_social"
    kept = [(k, v) for k, v in params if k != "token"]
    return base_url + path + (f"?{urlencode(kept)}" if kept else "")


def _replacing_siren(body: dict) -> str | None:
    for err in body.get("errors") or []:
        if isinstance(err, dict) and isinstance(err.get("meta"), dict) and err["meta"].get("siren"):
            return err["meta"]["siren"]
        if isinstance(err, str) and "SIREN valide : " in err:
            return err.rsplit("SIREN valide : ", 1)[1].strip()
    return None


# ------------------------------------------------------------------------------------------------
# Answers
# ------------------------------------------------------------------------------------------------


def answer(
    data_dir: Path,
    route: Route,
    identifier: str,
    params: list[tuple[str, str]],
    base_url: str,
    require_context: bool = True,
) -> Answer:
    """The answer of one API Entreprise route (the caller has checked the token)."""
    return _answer(data_dir, route, identifier, params, base_url, require_context, store_only=False)


def answer_from_store(
    data_dir: Path,
    route: Route,
    identifier: str,
    params: list[tuple[str, str]],
    base_url: str,
    require_context: bool = True,
) -> Answer | None:
    """`answer` when it needs neither DuckDB nor the SQL views: parameter and identifier errors, and the
    v3/v4 documents the lookup store answers now (a read of well under a millisecond); None otherwise (v2,
    successions, a store that is not current or is locked by a writer's commit), and the caller runs
    `answer`. The app calls this on its event loop and `answer` in its thread pool: the thread hop costs
    more than the lookup itself (measured with wrk: 2,700 against 1,100 requests/s on 2 cores)."""
    return _answer(data_dir, route, identifier, params, base_url, require_context, store_only=True)


# How long a read on the event loop waits for a writer's commit holding the store's lock (SQLite busy
# timeout) before giving up to the thread pool, where get_document waits its own READ_BUSY_MS: the event
# loop, which serves every other request, is never blocked longer than this.
LOOP_BUSY_MS = 20


def _store_document(data_dir: Path, ident: str, fmt: str, diffusibles: bool, siege: bool, as_text: bool):
    """get_document's answer from the lookup store alone (no fallback to the views), or None; as_text: a 200
    body as its stored JSON text (parsing and re-encoding it took 40 % of a lookup's time in the app)."""
    from mirror.serve.documents import get_document_from_store

    return get_document_from_store(data_dir, ident, fmt, diffusibles, siege, LOOP_BUSY_MS, as_text)


def _answer(data_dir, route, identifier, params, base_url, require_context, store_only) -> Answer | None:
    base_url = base_url.rstrip("/")
    problem = check_parameters(route, params, require_context)
    if problem is not None:
        return problem
    fmt = route.version
    ident = normalize_identifier(identifier)
    if identifier_kind(ident) != route.param:  # a SIRET on a SIREN route (or the reverse) is malformed here
        return Answer(422, error_document(422, fmt, route.param), {})
    siege = route.resource == "siege_social"
    if store_only:
        if fmt == "v2" or route.resource == "successions":
            return None
        found = _store_document(data_dir, ident, fmt, route.diffusibles, siege, route.resource != "adresse")
        if found is None:
            return None
        status, body = found
    elif route.resource == "successions":
        status, body = get_successions(data_dir, ident, fmt)
    else:
        status, body = get_document(
            data_dir,
            ident,
            fmt=fmt,
            diffusibles=route.diffusibles,
            non_diffusables=_non_diffusables(params) if fmt == "v2" else False,
            siege=siege,
            follow_doublons=False,
        )
    if status == 200 and route.resource == "adresse":
        body = adresse_document(body, ident, fmt)
    headers = {}
    if status == 301:
        replacing = _replacing_siren(body)
        if replacing:
            headers["Location"] = _location(route, replacing, base_url, params)
    return Answer(status, rebase_links(body, base_url), headers)


def adresse_document(etablissement: dict, siret: str, fmt: str) -> dict:
    """`/etablissements/{siret}/adresse` from the établissement document: `data` is its `adresse` object alone,
    `links` the unit and the établissement, `meta` the update date (API Entreprise's OpenAPI, "Adresse
    d'un établissement")."""
    data = etablissement.get("data") or {}
    meta = etablissement.get("meta") or {}
    unit = (etablissement.get("links") or {}).get("unite_legale")
    return {
        "data": data.get("adresse"),
        "links": {
            "unite_legale": unit or f"{API_BASE}/{fmt}/insee/sirene/unites_legales/{siret[:9]}",
            "etablissement": f"{API_BASE}/{fmt}/insee/sirene/etablissements/{siret}",
        },
        "meta": {"date_derniere_mise_a_jour": meta.get("date_derniere_mise_a_jour")},
    }
