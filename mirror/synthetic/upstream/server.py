"""The combined local upstream (SYNTHETIC data): ONE ThreadingHTTPServer on 127.0.0.1 serving

- a data.gouv.fr-like dataset API and the stock files (mirror.synthetic.upstream.datagouv) at `{base}`, and
- an INSEE API Sirene 3.11 look-alike over a daily change stream (mirror.synthetic.upstream.insee over
  mirror.synthetic.upstream.changes) at `{base}/api-sirene/3.11`.

Used by `mirror demo-upstream`, `make demo` (mirror.synthetic.demo) and the end-to-end tests of `mirror sync`.
The stock of `month` is generated once into `data/<month>/` (mirror.synthetic.generate) and reused.
"""

from __future__ import annotations

import errno
import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from mirror.core.errors import MirrorError
from mirror.synthetic.upstream import UpstreamServer

INSEE_PREFIX = "/api-sirene/3.11"
DEFAULT_API_KEY = "demo-key"


def prepare_stock(data: Path, month: str, scale: int, seed: int = 0, geolocation: bool = False) -> Path:
    """The folder of the generated stock of `month` (generated on first use, then cached); `geolocation`:
    with the geolocation file (served as data.gouv.fr's geolocation dataset)."""
    from mirror.synthetic.generate import generate_stock

    folder = Path(data) / month
    marker = folder / ".generated.json"
    wanted = {"month": month, "scale": scale, "seed": seed} | ({"geolocation": True} if geolocation else {})
    if marker.is_file() and json.loads(marker.read_text()) == wanted:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    generate_stock(
        folder, month=month, scale=scale, seed=seed, fmt="zip", layout="current", geolocation=geolocation
    )
    marker.write_text(json.dumps(wanted))
    return folder


@dataclass
class Upstream:
    """A running combined upstream; `close()` stops it."""

    server: UpstreamServer
    base_url: str
    datagouv: object  # mirror.synthetic.upstream.datagouv.DatagouvUpstream
    insee: object  # mirror.synthetic.upstream.insee app
    changes: object  # mirror.synthetic.upstream.changes.DailyChanges
    month: str

    @property
    def datagouv_url(self) -> str:
        return self.base_url

    @property
    def insee_url(self) -> str:
        return self.base_url + INSEE_PREFIX

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _bind(host: str, port: int) -> UpstreamServer:
    """The listening server (its handler is set once the apps exist); a busy port is a one-line error."""
    try:
        return UpstreamServer((host, port), BaseHTTPRequestHandler)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise MirrorError(
                f"port {port} on {host} is already in use (choose another with --port)"
            ) from exc
        raise MirrorError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc


def start(
    data: Path,
    month: str,
    scale: int = 2000,
    seed: int = 0,
    today: date | None = None,
    api_key: str = DEFAULT_API_KEY,
    port: int = 0,
    host: str = "127.0.0.1",
    before: Sequence = (),
    geolocation: bool = False,
    **insee_options,
) -> Upstream:
    """Generates (or reuses) the stock of `month`, then serves both upstreams on one server.

    `today`: the INSEE-like API's current date (days before it are published; default the 6th of `month`).
    `insee_options` go to the INSEE-like app (test knobs: throttle_every, retry_after, fail_next, down,
    mass_treatment); `before`: extra apps offered each request first (tests); `geolocation`: serve the
    geolocation file too (prepare_stock).
    """
    from mirror.synthetic.upstream.changes import DailyChanges
    from mirror.synthetic.upstream.datagouv import DatagouvUpstream
    from mirror.synthetic.upstream.insee import InseeApp, make_insee_handler

    # Bound first, so a busy port fails in one line before minutes of generation at a large scale.
    server = _bind(host, port)
    try:
        folder = prepare_stock(data, month, scale, seed, geolocation)
        changes = DailyChanges(folder, month, seed=seed)
        today = today or (date.fromisoformat(month + "-01") + timedelta(days=5))
        datagouv = DatagouvUpstream({month: folder}, published=month)
        insee = InseeApp(changes, prefix=INSEE_PREFIX, api_key=api_key, today=today, **insee_options)
    except BaseException:
        server.server_close()
        raise
    # make_insee_handler = mirror.synthetic.upstream.make_handler + POST (the INSEE search form variant)
    server.RequestHandlerClass = make_insee_handler([*before, insee, datagouv])
    threading.Thread(target=server.serve_forever, name="demo-upstream", daemon=True).start()
    bound_host, bound_port = server.server_address[:2]
    return Upstream(server, f"http://{bound_host}:{bound_port}", datagouv, insee, changes, month)


def run_forever(
    data: Path,
    port: int,
    scale: int,
    month: str,
    seed: int,
    today: date | None,
    api_key: str,
    echo: Callable[[str], None] = print,
) -> None:
    """`mirror demo-upstream`: serves until Ctrl-C."""
    import time

    echo(f"Generating (or reusing) the SYNTHETIC {month} stock, scale {scale}, in {data} ...")
    up = start(
        Path(data), month, scale=scale, seed=seed, today=today, api_key=api_key, port=port, geolocation=True
    )
    echo("SYNTHETIC Sirene upstream running (generated data, not the real register):")
    echo(f"  data.gouv.fr-like: {up.datagouv_url}")
    echo(f"  INSEE-like API:    {up.insee_url}  (key: {api_key})")
    echo(
        f"  try: INSEE_API_KEY={api_key} mirror sync --datagouv-url {up.datagouv_url} "
        f"--insee-url {up.insee_url} --rate 6000 --data-dir ./data/demo/mirror"
    )
    echo("Ctrl-C to stop.")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        up.close()
