"""The OpenAPI 3 description of `mirror serve` (/openapi.json) and its HTML rendering (/docs, no CDN).

Generated from the route tables of mirror.http.entreprise and mirror.http.insee (one source for the routes
the app mounts and the routes it describes), plus /search, /near_point (recherche-entreprises' parameters)
and /health.
"""

from __future__ import annotations

import html

from mirror import __version__
from mirror.core.config import INSEE_KEY_HEADER
from mirror.http import insee
from mirror.http.entreprise import ROUTES

_ERROR_V3 = {
    "type": "object",
    "required": ["errors"],
    "properties": {
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["code", "title", "detail"],
                "properties": {
                    "code": {"type": "string", "pattern": "^[0-9]{5}$"},
                    "title": {"type": "string"},
                    "detail": {"type": "string"},
                    "source": {"type": ["object", "null"]},
                    "meta": {"type": "object"},
                },
            },
        }
    },
}
_ERROR_V2 = {
    "type": "object",
    "required": ["errors"],
    "properties": {
        "errors": {"type": "array", "items": {"type": "string"}},
        "gateway_error": {"type": "boolean"},
    },
}
_ERROR_INSEE = {  # INSEE's ReponseErreur: the header block only
    "type": "object",
    "required": ["header"],
    "properties": {
        "header": {
            "type": "object",
            "required": ["statut", "message"],
            "properties": {"statut": {"type": "integer"}, "message": {"type": "string"}},
        }
    },
}
_ERROR_RECHERCHE = {"type": "object", "required": ["erreur"], "properties": {"erreur": {"type": "string"}}}

_CONTEXT_PARAMS = [
    {
        "name": name,
        "in": "query",
        "required": True,
        "description": f"{desc} (mandatory as on API Entreprise; `mirror serve --no-require-context` relaxes it)",
        "schema": {"type": "string", "minLength": 1, "maxLength": 500},
    }
    for name, desc in (
        ("context", "Cadre de la requête (e.g. 'aides publiques')"),
        ("object", "Raison de l'appel (e.g. a case number)"),
        ("recipient", "SIRET of the administration the call is made for"),
    )
]

# recherche-entreprises' query parameters (https://recherche-entreprises.api.gouv.fr/docs/).
_SEARCH_PARAMS = [
    ("q", "string", "Terms searched in names, sigle, enseignes, SIREN / SIRET"),
    ("activite_principale", "string", "NAF codes, comma separated"),
    ("section_activite_principale", "string", "NAF sections (A-U), comma separated"),
    ("tranche_effectif_salarie", "string", "Tranche d'effectif codes, comma separated"),
    ("categorie_entreprise", "string", "PME, ETI, GE"),
    ("etat_administratif", "string", "A or C"),
    ("nature_juridique", "string", "Catégories juridiques, comma separated"),
    ("code_postal", "string", "Codes postaux, comma separated"),
    ("code_commune", "string", "COG codes (75056, 69123, 13055 cover their arrondissements)"),
    ("departement", "string", "Départements, comma separated"),
    ("region", "string", "Régions, comma separated"),
    ("epci", "string", "SIREN of EPCIs, comma separated"),
    ("est_ess", "boolean", "Économie sociale et solidaire"),
    ("est_societe_mission", "boolean", "Société à mission"),
    ("est_association", "boolean", "Association (has an RNA id or a catégorie juridique 92xx)"),
    ("est_entrepreneur_individuel", "boolean", "Entrepreneur individuel (catégorie juridique 1000)"),
    ("minimal", "boolean", "Only the main fields"),
    ("include", "string", "With minimal=true: siege, matching_etablissements, ..."),
    ("limite_matching_etablissements", "integer", "Matching établissements per result (1-100)"),
    ("page", "integer", "Page (from 1)"),
    ("per_page", "integer", "Results per page (up to 1,000 here; 25 on the real API)"),
    ("cursor", "string", "Deep-paging cursor (beyond the real API)"),
]
_NEAR_POINT_PARAMS = [
    ("lat", "number", "Latitude (WGS84)"),
    ("long", "number", "Longitude (WGS84)"),
    ("radius", "number", "Radius in km (default 5, at most 50)"),
    *[p for p in _SEARCH_PARAMS if p[0] != "q"],
]


def _param(name: str, kind: str, desc: str, required: bool = False) -> dict:
    return {"name": name, "in": "query", "required": required, "description": desc, "schema": {"type": kind}}


def _responses(route) -> dict:
    error = {
        "$ref": "#/components/schemas/ErrorV2" if route.version == "v2" else "#/components/schemas/Error"
    }
    body = {"application/json": {"schema": error}}
    out = {
        "200": {
            "description": "The document, as `mirror get` prints it",
            "content": {"application/json": {"schema": {"type": "object"}}},
        },
        "400": {"description": "A query parameter with a value the route cannot take", "content": body},
        "401": {"description": "Token missing or unknown (when the server requires tokens)", "content": body},
        "404": {"description": "Unknown to the mirror", "content": body},
        "414": {"description": "URL too long", "content": body},
        "422": {
            "description": "Malformed SIREN/SIRET (00301 / 00302), missing context / object / recipient "
            "(00201 / 00202 / 00203), recipient not a SIRET (00210)",
            "content": body,
        },
        "503": {
            "description": "No mirror in the data directory, or the request took too long",
            "content": body,
        },
    }
    if route.resource != "successions":
        out["451"] = {"description": "Partially diffusible (statut P) on a protected route", "content": body}
        out["301"] = {
            "description": "SIREN closed as a doublon: `Location` names the replacing unit's route here",
            "headers": {"Location": {"schema": {"type": "string"}}},
            "content": body,
        }
    return out


def _insee_paths() -> dict:
    """The INSEE API Sirene 3.11 routes (mirror.http.insee.ROUTES)."""
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorInsee"}}}
    paths: dict = {}
    for route in insee.ROUTES:
        params = [_param(n, *insee.PARAM_DOCS[n]) for n in route.params]
        if route.endpoint == "lookup":
            params.insert(0, {"name": route.kind, "in": "path", "required": True,
                              "description": "SIREN (9 digits)" if route.kind == "siren" else "SIRET (14 digits)",
                              "schema": {"type": "string"}})  # fmt: skip
        responses = {
            "200": {"description": "As the INSEE API Sirene 3.11 answers (header block, then the records)",
                    "content": {"application/json": {"schema": {"type": "object"}}}},
            "400": {"description": "Malformed parameter or q", "content": error},
            "401": {"description": f"Token missing or unknown (when the server requires tokens; "
                                   f"{INSEE_KEY_HEADER} or Authorization: Bearer)", "content": error},
            "404": {"description": "Nothing found", "content": error},
            "406": {"description": "Accept type not served", "content": error},
            "503": {"description": "No mirror in the data directory, or the request took too long",
                    "content": error},
        }  # fmt: skip
        if route.endpoint == "lookup":
            responses["301"] = {
                "description": "SIREN closed as a doublon: `Location` names the replacing unit's route here",
                "headers": {"Location": {"schema": {"type": "string"}}},
                "content": error,
            }
        operation = {
            "summary": route.summary,
            "operationId": "insee_"
            + route.path[len(insee.PREFIX) + 1 :].replace("/", "_").replace("{", "").replace("}", ""),
            "tags": ["INSEE API Sirene 3.11"],
            "parameters": params,
            "responses": responses,
            "security": [{"inseeKey": []}, {"bearer": []}, {}],
        }
        paths[route.path] = {"get": operation}
        if "POST" in route.methods:
            form = {
                "type": "object",
                "properties": {n: {"type": insee.PARAM_DOCS[n][0]} for n in route.params},
            }
            paths[route.path]["post"] = {
                **operation,
                "operationId": operation["operationId"] + "_post",
                "parameters": [],
                "requestBody": {"content": {"application/x-www-form-urlencoded": {"schema": form}}},
            }
    return paths


def openapi(recherche: bool = True) -> dict:
    """The OpenAPI 3.1 description of every route of the server."""
    paths: dict = {}
    for route in ROUTES:
        params = [
            {
                "name": route.param,
                "in": "path",
                "required": True,
                "description": "SIREN (9 digits)" if route.param == "siren" else "SIRET (14 digits)",
                "schema": {"type": "string"},
            },
            *_CONTEXT_PARAMS,
        ]
        if route.version == "v2":
            params.append(
                {
                    "name": "non_diffusables",
                    "in": "query",
                    "required": False,
                    "description": "true: answer for partially diffusible units too instead of 451",
                    "schema": {"type": "string", "enum": ["true", "false"]},
                }
            )
        paths[route.path] = {
            "get": {
                "summary": route.summary,
                "operationId": route.path.strip("/").replace("/", "_").replace("{", "").replace("}", ""),
                "tags": [f"API Entreprise {route.version}"],
                "parameters": params,
                "responses": _responses(route),
                "security": [{"bearer": []}, {}],
            }
        }
    if recherche:
        error = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorRecherche"}}}
        for path, plist, summary in (
            ("/search", _SEARCH_PARAMS, "recherche-entreprises: full-text search with filters"),
            ("/near_point", _NEAR_POINT_PARAMS, "recherche-entreprises: établissements around a point"),
        ):
            paths[path] = {
                "get": {
                    "summary": summary,
                    "operationId": path.strip("/"),
                    "tags": ["recherche-entreprises"],
                    "parameters": [
                        _param(n, k, d, required=path == "/near_point" and n in ("lat", "long"))
                        for n, k, d in plist
                    ],
                    "responses": {
                        "200": {
                            "description": "{results, total_results, page, per_page, total_pages}",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        },
                        "400": {"description": "Invalid parameter", "content": error},
                        "401": {"description": "Token missing or unknown", "content": error},
                        "503": {"description": "Search index unavailable", "content": error},
                    },
                    "security": [{"bearer": []}, {}],
                }
            }
    paths.update(_insee_paths())
    paths["/health"] = {
        "get": {
            "summary": "Snapshot month, last applied day, freshness, status of the lookup store",
            "operationId": "health",
            "tags": ["server"],
            "responses": {
                "200": {"description": "Mirror readable", "content": {"application/json": {}}},
                "503": {
                    "description": "No mirror, or it cannot be read",
                    "content": {"application/json": {}},
                },
            },
        }
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Sirene Mirror (mirror serve)",
            "version": __version__,
            "description": "API Entreprise (INSEE / Sirene routes), recherche-entreprises and the INSEE API "
            "Sirene 3.11 (under /api-sirene/3.11) over a local mirror of Sirene: same paths, bodies and errors, "
            "no quota. Swap the base URL of your client.",
        },
        "paths": paths,
        "components": {
            "schemas": {
                "Error": _ERROR_V3,
                "ErrorV2": _ERROR_V2,
                "ErrorRecherche": _ERROR_RECHERCHE,
                "ErrorInsee": _ERROR_INSEE,
            },
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "inseeKey": {"type": "apiKey", "in": "header", "name": INSEE_KEY_HEADER},
            },
        },
    }


def docs_html(spec: dict) -> str:
    """A plain HTML page listing every route and parameter of `spec` (no script, no CDN)."""
    e = html.escape
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{e(spec['info']['title'])}</title>",
        "<style>body{font-family:sans-serif;max-width:70em;margin:2em auto;padding:0 1em}"
        "code{background:#f3f3f3;padding:0 .2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left;vertical-align:top}</style>",
        "</head><body>",
        f"<h1>{e(spec['info']['title'])} <small>{e(spec['info']['version'])}</small></h1>",
        f"<p>{e(spec['info']['description'])}</p>",
        "<p>Machine-readable description: <a href='openapi.json'>openapi.json</a>.</p>",
    ]
    for path, item in spec["paths"].items():
        op = item["get"]
        methods = " | ".join(m.upper() for m in item)
        parts.append(f"<h2><code>{methods} {e(path)}</code></h2><p>{e(op['summary'])}</p>")
        if op.get("parameters"):
            parts.append("<table><tr><th>parameter</th><th>in</th><th>required</th><th>description</th></tr>")
            for p in op["parameters"]:
                parts.append(
                    f"<tr><td><code>{e(p['name'])}</code></td><td>{e(p['in'])}</td>"
                    f"<td>{'yes' if p.get('required') else 'no'}</td><td>{e(p.get('description', ''))}</td></tr>"
                )
            parts.append("</table>")
        codes = ", ".join(f"{c} {r['description']}" for c, r in op["responses"].items())
        parts.append(f"<p><small>Responses: {e(codes)}</small></p>")
    parts.append("</body></html>")
    return "\n".join(parts)
