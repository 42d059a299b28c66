"""Local stand-ins for the mirror's upstreams (data.gouv.fr, INSEE), served over real HTTP on 127.0.0.1.

An upstream "app" is any object with `handle(handler) -> bool`: it answers the request held by a
`BaseHTTPRequestHandler` and returns True when it owns the path, False to let the next app try.
Several apps can share ONE server (e.g. the demo upstream mounts the data.gouv-like app next to an
INSEE-like API):

    server, base_url = serve([DatagouvUpstream(folder), InseeApp(...)])
    ...
    server.shutdown(); server.server_close()
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Protocol


class UpstreamServer(ThreadingHTTPServer):
    """The stand-ins' HTTP server: a client that hangs up before its answer is written (a timeout, Ctrl-C
    in `mirror sync`, a test that stops reading) is the client's business, not a traceback on stderr."""

    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):  # BrokenPipe, ConnectionReset, ConnectionAborted
            return
        super().handle_error(request, client_address)


class App(Protocol):
    def handle(self, handler: BaseHTTPRequestHandler) -> bool: ...


def make_handler(apps: Sequence[App]) -> type[BaseHTTPRequestHandler]:
    """A request handler class that offers each request to `apps` in order; 404 when none owns it."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, like the real servers; every answer has a Content-Length

        def _dispatch(self) -> None:
            for app in apps:
                if app.handle(self):
                    return
            send_bytes(self, 404, b'{"message": "Not found"}', "application/json")

        do_GET = do_HEAD = _dispatch

        def log_message(self, format, *args):  # noqa: A002 - keep test output clean
            pass

    return Handler


def send_bytes(
    handler: BaseHTTPRequestHandler,
    status: int,
    body: bytes,
    content_type: str,
    headers: dict[str, str] | None = None,
) -> None:
    """Sends a complete response with a Content-Length (body omitted for HEAD)."""
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    for key, value in (headers or {}).items():
        handler.send_header(key, value)
    handler.end_headers()
    if handler.command != "HEAD":
        handler.wfile.write(body)


def serve(apps: Sequence[App], host: str = "127.0.0.1", port: int = 0) -> tuple[UpstreamServer, str]:
    """Starts a threaded HTTP server for `apps` in a daemon thread; returns it and its base URL.

    Port 0 picks a free ephemeral port. Stop it with `server.shutdown(); server.server_close()`.
    """
    server = UpstreamServer((host, port), make_handler(apps))
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="upstream", daemon=True
    )
    thread.start()
    bound_host, bound_port = server.server_address[:2]
    return server, f"http://{bound_host}:{bound_port}"
