"""Running the app: uvicorn, one process or `--workers N` processes, graceful shutdown on SIGTERM / SIGINT.

uvicorn stops accepting connections on the first SIGTERM or SIGINT, lets the requests in flight finish
(at most `GRACEFUL_SHUTDOWN_S`), then returns; `serve` then returns normally (exit 0).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket

from mirror.core.errors import BadInput
from mirror.http import security
from mirror.http.app import CONFIG_ENV, ServeConfig, create_app

GRACEFUL_SHUTDOWN_S = 10
KEEP_ALIVE_S = 5


def _log_config(level: str, access_log: bool) -> dict:
    """uvicorn's own messages (start, stop, errors) on stderr; its access log off (ours has no query
    string: it could carry a v2 ?token=)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "formatter": "plain", "stream": "ext://sys.stderr"}
        },
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": level.upper(), "propagate": False},
            "uvicorn.error": {"level": level.upper()},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
            "mirror.http": {"handlers": ["stderr"], "level": level.upper(), "propagate": False},
            "mirror.http.access": {"level": "INFO" if access_log else "WARNING"},
        },
    }


def _check_port_free(host: str, port: int) -> None:
    """BadInput (one line) when `host:port` cannot be listened on (taken, not an address of this machine):
    uvicorn would log its start, then the error, over two lines and exit 3."""
    if port == 0:
        return
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as exc:
        raise BadInput(f"--host {host}: not an address of this machine ({exc.strerror or exc})") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind(address)
        except OSError as exc:
            raise BadInput(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def serve(
    config: ServeConfig,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    root_path: str = "",
    forwarded_allow_ips: str | None = None,
    log_level: str = "info",
    access_log: bool = True,
) -> None:
    """Serves `config` until SIGTERM / SIGINT. BadInput (one line) for a listening address beyond this
    machine without tokens, or an unreadable tokens file."""
    import uvicorn

    tokens = security.load_tokens(config.tokens_file) if config.tokens_file else ()
    security.check_listen_address(host, tokens)
    _check_port_free(host, port)
    options = dict(
        host=host,
        port=port,
        root_path=root_path,
        # X-Forwarded-Proto / -For are trusted from these addresses only (uvicorn's default: 127.0.0.1).
        forwarded_allow_ips=forwarded_allow_ips,
        proxy_headers=True,
        server_header=False,
        log_config=_log_config(log_level, access_log),
        access_log=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        timeout_keep_alive=KEEP_ALIVE_S,
        lifespan="off",
    )
    # uvicorn re-raises the signal it shut down on once it is done; a no-op handler makes that a normal
    # return (the CLI's own handler would report an interrupted command).
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(ValueError, OSError):
            signal.signal(sig, lambda signum, frame: None)
    if workers > 1:
        os.environ[CONFIG_ENV] = config.to_env()
        uvicorn.run("mirror.http.app:app_from_env", factory=True, workers=workers, **options)
        return
    uvicorn.Server(uvicorn.Config(create_app(config), **options)).run()
