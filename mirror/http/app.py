"""The ASGI application of `mirror serve` (Starlette): API Entreprise routes, recherche-entreprises routes,
/health, /openapi.json, /docs.

Every request reads the mirror afresh (get_document opens the catalog per call and the lookup store checks
its token against state.json per call), so an answer always comes from the state published when the request
started, never from two states, and a `mirror update` or `mirror load` beside the server is seen at the next
request, without a restart. The lookups are synchronous (SQLite, DuckDB): they run in Starlette's thread pool
with a time limit, so a slow one (the SQL views while the store is rebuilt) never blocks the event loop.

Errors are always JSON in the model of the API the path belongs to (API Entreprise v2 strings, v3/v4
objects, recherche-entreprises `{"erreur": ...}`); an unexpected exception is logged with its traceback and
answered as a JSON 500 without it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route as StarletteRoute

from mirror.core.errors import MirrorError
from mirror.http import entreprise, security
from mirror.http.openapi import docs_html, openapi

log = logging.getLogger("mirror.http")
access_log = logging.getLogger("mirror.http.access")

CONFIG_ENV = "MIRROR_SERVE_CONFIG"  # the configuration handed to `--workers N` worker processes (JSON)
# API Entreprise answers the lookup store cannot give (v2, successions, a store behind the published state)
# come from DuckDB, which already uses every core per query: at most this many at once per process. Without
# the cap, a store being refreshed by `mirror update` sent up to 40 concurrent view lookups per process,
# which starved the update itself (3 days at scale 100,000: 14 s alone, 145 s under wrk).
VIEW_LOOKUPS_AT_ONCE = 2
# recherche-entreprises answers: a few ms of Python between short SQLite queries, which release the GIL (a
# page's units and établissements are two of them, mirror.http.recherche._indexed; two per result before).
# Many threads at once convoy on the GIL (each reacquisition waits for the switch interval): at scale
# 100,000, 16 connections on 40 threads gave 52 requests/s and a p50 of 278 ms, one thread at a time more.
SEARCHES_AT_ONCE = 1


@dataclass
class ServeConfig:
    data_dir: str
    tokens_file: str | None = None
    cors: list[str] = field(default_factory=list)
    require_context: bool = True
    timeout: float = security.REQUEST_TIMEOUT_S
    max_url_bytes: int = security.MAX_URL_BYTES
    max_query_parameters: int = security.MAX_QUERY_PARAMETERS

    def to_env(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls) -> ServeConfig:
        return cls(**json.loads(os.environ[CONFIG_ENV]))


# ------------------------------------------------------------------------------------------------
# Error bodies by dialect
# ------------------------------------------------------------------------------------------------

_TITLES = {
    400: ("00400", "Requête mal formée"),
    401: ("00101", "Interdit"),
    404: ("00404", "Route inconnue"),
    405: ("00405", "Méthode non autorisée"),
    414: ("00414", "URL trop longue"),
    500: ("00500", "Erreur interne du serveur"),
    503: ("01001", "Service non disponible"),
}


def _dialect(path: str) -> str:
    if path.startswith("/api-sirene/"):
        return "insee"
    if path.startswith(("/search", "/near_point")):
        return "recherche"
    if path.startswith("/v2/"):
        return "v2"
    return "v3"


class JsonBody(JSONResponse):
    """Starlette's JSONResponse rendered by orjson, in a tenth of the time: a /search page of 25 results is
    100 to 170 KB, rendered on the event loop. The same bytes as json.dumps (compact, UTF-8), but for a
    float below 1e-4 or from 1e16, written in another form of the same value (1e-7 for 1e-07), and NaN
    (null, where json.dumps refused it; no body holds one)."""

    def render(self, content) -> bytes:
        return orjson.dumps(content)


def error_response(path: str, status: int, detail: str, headers: dict | None = None) -> JsonBody:
    """A JSON error in the model of the API `path` belongs to."""
    dialect = _dialect(path)
    if dialect == "recherche":
        body = {"erreur": detail}
    elif dialect == "insee":  # INSEE API Sirene's ReponseErreur
        body = {"header": {"statut": status, "message": detail}}
    else:
        code, title = _TITLES.get(status, (f"00{status}", "Erreur"))
        body = entreprise.error_body(dialect, code, title, detail)
    return JsonBody(body, status_code=status, headers=headers)


# ------------------------------------------------------------------------------------------------
# The guard: limits, access log, last-resort errors (a pure ASGI middleware, outermost)
# ------------------------------------------------------------------------------------------------


class Guard:
    """URL length (414) and query parameter count (400) before routing; one access-log line per request
    (client, method, path without the query string, status, duration: no header, no token, no parameter);
    a JSON 500 for anything that escapes the app."""

    def __init__(self, app, config: ServeConfig):
        self.app = app
        self.config = config

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        path = scope.get("path", "")
        status = {"code": 0}

        async def send_logged(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            query = scope.get("query_string", b"")
            if len(scope.get("raw_path") or path.encode()) + len(query) > self.config.max_url_bytes:
                response = error_response(path, 414, f"L'URL dépasse {self.config.max_url_bytes} octets")
                return await response(scope, receive, send_logged)
            if query.count(b"&") + 1 > self.config.max_query_parameters:
                response = error_response(
                    path, 400, f"Plus de {self.config.max_query_parameters} paramètres dans la requête"
                )
                return await response(scope, receive, send_logged)
            await self.app(scope, receive, send_logged)
        except Exception:
            if status["code"] == 0:  # nothing sent yet: a JSON 500 (never the traceback)
                log.exception("unexpected error on %s %s", scope.get("method"), path)
                await error_response(path, 500, "Erreur interne du serveur")(scope, receive, send_logged)
            # else: the app's handler has answered 500 and logged it (Starlette re-raises after that)
        finally:
            client = scope.get("client") or ("-", 0)
            access_log.info(
                '%s "%s %s" %s %.1fms',
                client[0],
                scope.get("method"),
                path,
                status["code"],
                (time.perf_counter() - t0) * 1000,
            )


# ------------------------------------------------------------------------------------------------
# Endpoints
# ------------------------------------------------------------------------------------------------


def _entreprise_response(answer: entreprise.Answer) -> Response:
    """A document's JSON text goes out as it is (it is what JsonBody would render from the dict)."""
    if isinstance(answer.body, str):
        return Response(answer.body, answer.status, answer.headers or None, media_type="application/json")
    return JsonBody(answer.body, status_code=answer.status, headers=answer.headers or None)


def _base_url(request: Request) -> str:
    """The server's own base URL as the client sees it (scheme and host of the request, root path; behind a
    proxy, the X-Forwarded-Proto / X-Forwarded-For uvicorn trusts from --forwarded-allow-ips)."""
    return str(request.base_url).rstrip("/")


class _App:
    def __init__(self, config: ServeConfig):
        self.config = config
        self.data_dir = Path(config.data_dir)
        self.tokens = security.load_tokens(config.tokens_file) if config.tokens_file else ()
        self.view_lookups = None  # anyio.CapacityLimiter(VIEW_LOOKUPS_AT_ONCE), made on the event loop
        self.searches = None  # anyio.CapacityLimiter(SEARCHES_AT_ONCE), made on the event loop

    def authorized(self, request: Request, allow_query_token: bool = False) -> bool:
        if not self.tokens:
            return True
        given = security.bearer_token(request.headers.get("authorization"))
        if given is None and allow_query_token:  # API Entreprise v2 also took ?token=
            value = request.query_params.get("token")
            given = value.encode("utf-8", "replace") if value else None
        return security.token_ok(given, self.tokens)

    def search_limiter(self):
        """The limiter of recherche-entreprises answers (SEARCHES_AT_ONCE), made on the event loop."""
        if self.searches is None:
            import anyio

            self.searches = anyio.CapacityLimiter(SEARCHES_AT_ONCE)
        return self.searches

    def view_limiter(self):
        """The limiter of DuckDB answers (VIEW_LOOKUPS_AT_ONCE at once), made on the event loop at first use."""
        if self.view_lookups is None:
            import anyio

            self.view_lookups = anyio.CapacityLimiter(VIEW_LOOKUPS_AT_ONCE)
        return self.view_lookups

    async def call(self, request: Request, fn, *args, limiter=None):
        """fn(*args) in the thread pool (at most `limiter`'s tokens at once, else anyio's default 40) with
        the time limit, which counts the wait for a token too; MirrorError -> 503, timeout -> 503."""
        import anyio.to_thread

        path = request.url.path
        try:
            return await asyncio.wait_for(
                anyio.to_thread.run_sync(fn, *args, limiter=limiter), self.config.timeout
            )
        except TimeoutError:
            log.warning("time limit (%g s) reached on %s", self.config.timeout, path)
            return error_response(path, 503, f"La requête a dépassé {self.config.timeout:g} s")
        except MirrorError as exc:
            log.error("mirror unavailable on %s: %s", path, exc)
            return error_response(path, 503, "Le miroir Sirene n'est pas lisible pour le moment")

    def entreprise_endpoint(self, route: entreprise.Route):
        ident_name = route.param

        async def endpoint(request: Request) -> Response:
            if not self.authorized(request, allow_query_token=route.version == "v2"):
                return JsonBody(entreprise.unauthorized_body(route.version), status_code=401)
            params = request.query_params.multi_items()
            args = (request.path_params[ident_name], params, _base_url(request), self.config.require_context)
            try:  # on the event loop when the store answers (no DuckDB), else in the thread pool
                fast = entreprise.answer_from_store(self.data_dir, route, *args)
            except MirrorError:
                fast = None
            if fast is not None:
                return _entreprise_response(fast)
            if self.view_lookups is None:  # created on the event loop
                import anyio

                self.view_lookups = anyio.CapacityLimiter(VIEW_LOOKUPS_AT_ONCE)
            result = await self.call(
                request, entreprise.answer, self.data_dir, route, *args, limiter=self.view_lookups
            )
            if isinstance(result, Response):
                return result
            return _entreprise_response(result)

        endpoint.__name__ = route.path
        return endpoint

    def recherche_endpoint(self, fn):
        async def endpoint(request: Request) -> Response:
            if not self.authorized(request):
                return error_response(request.url.path, 401, "Token manquant ou invalide")
            params = request.query_params.multi_items()
            result = await self.call(
                request, fn, self.data_dir, params, _base_url(request), limiter=self.search_limiter()
            )
            if isinstance(result, Response):
                return result
            status, body = result
            return JsonBody(body, status_code=status)

        return endpoint

    async def health(self, request: Request) -> Response:
        result = await self.call(request, health, self.data_dir)
        if isinstance(result, Response):
            return result
        status, body = result
        return JsonBody(body, status_code=status)


def health(data_dir: Path) -> tuple[int, dict]:
    """/health: what `mirror status` says, without the paths of the data directory."""
    from mirror.serve.status import status

    try:
        s = status(data_dir)
    except MirrorError as exc:
        log.error("health: %s", exc)
        return 503, {"status": "unavailable", "detail": "no readable mirror in the data directory"}
    store = s["lookup_store"]
    return 200, {
        "status": "stale" if s["stale"] else "ok",
        "snapshot": {k: s["snapshot"].get(k) for k in ("month", "loaded_at", "max_date_dernier_traitement")},
        "last_update": s["last_update"],
        "watermark": s["watermark"],
        "freshness": s["freshness"],
        "rows": s["rows"],
        "lookup_store": {k: store.get(k) for k in ("exists", "current", "lagging", "built_at")},
        "warnings": s["warnings"],
    }


def _recherche_module():
    """mirror.http.recherche when it is there (written beside this module), else None."""
    import importlib.util

    if importlib.util.find_spec("mirror.http.recherche") is None:
        return None
    from mirror.http import recherche

    return recherche


def create_app(config: ServeConfig) -> Starlette:
    """The Starlette app serving `config.data_dir`."""
    state = _App(config)
    routes = [
        StarletteRoute(r.path, state.entreprise_endpoint(r), methods=["GET", "HEAD"])
        for r in entreprise.ROUTES
    ]
    recherche = _recherche_module()
    if recherche is not None:
        routes += [
            StarletteRoute(
                "/search", state.recherche_endpoint(recherche.search_response), methods=["GET", "HEAD"]
            ),
            StarletteRoute(
                "/near_point",
                state.recherche_endpoint(recherche.near_point_response),
                methods=["GET", "HEAD"],
            ),
        ]
    from mirror.http import insee

    routes += insee.routes(state)
    spec = openapi(recherche=recherche is not None)
    spec_body = json.dumps(spec, ensure_ascii=False).encode("utf-8")
    docs = docs_html(spec)

    async def openapi_json(request: Request) -> Response:
        return Response(spec_body, media_type="application/json")

    async def docs_page(request: Request) -> Response:
        return HTMLResponse(docs)

    routes += [
        StarletteRoute("/health", state.health, methods=["GET", "HEAD"]),
        StarletteRoute("/openapi.json", openapi_json, methods=["GET", "HEAD"]),
        StarletteRoute("/docs", docs_page, methods=["GET", "HEAD"]),
    ]

    async def http_error(request: Request, exc: HTTPException) -> Response:
        detail = {404: "Aucune route ne correspond à cette URL", 405: "Seuls GET et HEAD sont acceptés"}
        if request.url.path.startswith(insee.PREFIX + "/") and exc.status_code == 405:
            detail[405] = "Méthode non autorisée sur cette ressource"
        return error_response(
            request.url.path, exc.status_code, detail.get(exc.status_code, str(exc.detail)), exc.headers
        )

    async def server_error(request: Request, exc: Exception) -> Response:
        log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(request.url.path, 500, "Erreur interne du serveur")

    middleware = []
    if config.cors:
        from starlette.middleware import Middleware
        from starlette.middleware.cors import CORSMiddleware

        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(config.cors),
                allow_methods=list(security.CORS_METHODS),
                allow_headers=list(security.CORS_HEADERS),
            )
        )
    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={HTTPException: http_error, Exception: server_error},
    )
    app.router.redirect_slashes = False  # a trailing slash is another (unknown) route: a JSON 404, no 307
    return Guard(app, config)


def app_from_env():
    """The app factory of `--workers N` (uvicorn imports it in each worker process, a fresh interpreter that
    did not start at the program's entry point: pandas is kept unimported here too)."""
    from mirror.core.unused_imports import hide_pandas

    hide_pandas()
    return create_app(ServeConfig.from_env())
