"""Fixtures of the `mirror serve` tests: one generated mirror (with its lookup store) for the session, and
real servers (`python -m mirror serve` subprocesses on 127.0.0.1) over it."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from mirror.core.config import LOOKUP_STORE_ENV


def _root_conftest():
    """tests/conftest.py as a plain module. pytest imports every folder's conftest.py as the module
    `conftest`, so once this file is loaded, `from conftest import run_mirror` (here and in any test module
    collected after this folder) finds this module: it re-exports what tests import from the root one."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "_root_conftest", Path(__file__).resolve().parents[1] / "conftest.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_root = _root_conftest()
REPO = _root.REPO
run_mirror = _root.run_mirror
built_once = _root.built_once
private_mirror = _root.private_mirror
mirror_env = _root.mirror_env
caller_env = _root.caller_env
mount_tmpfs = _root.mount_tmpfs
umount = _root.umount

CONTEXT = {"context": "tests", "object": "mirror serve", "recipient": "13002526500013"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    log: Path
    session: requests.Session = field(default_factory=requests.Session)

    def get(self, path: str, params=None, **kw) -> requests.Response:
        return self.session.get(self.url + path, params=params, allow_redirects=False, timeout=60, **kw)

    def stop(self) -> int:
        """SIGTERM, then the exit code (graceful shutdown: 0)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def server_env(store: bool = True, extra: dict | None = None) -> dict:
    env = caller_env(insee_key=True)
    env[LOOKUP_STORE_ENV] = "on" if store else "off"
    env.update(extra or {})
    return env


@contextmanager
def running_server(data_dir: Path, *args: str, store: bool = True, log_dir: Path, env: dict | None = None):
    """`python -m mirror serve` on a free port of 127.0.0.1 until the block ends (then SIGTERM)."""
    port = free_port()
    log = log_dir / f"serve-{port}.log"
    with open(log, "wb") as fh:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mirror",
                "serve",
                "--port",
                str(port),
                "--data-dir",
                str(data_dir),
                *args,
            ],
            stdout=fh,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env=server_env(store, env),
        )
    server = Server(f"http://127.0.0.1:{port}", process, log)
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise AssertionError(f"mirror serve exited {process.returncode}: {log.read_text()}")
        try:
            requests.get(server.url + "/openapi.json", timeout=2)
            break
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                process.kill()
                raise AssertionError(f"mirror serve did not start: {log.read_text()}") from None
            time.sleep(0.1)
    try:
        yield server
    finally:
        server.stop()
        server.session.close()


@pytest.fixture(scope="session")
def http_mirror(loaded_stock) -> Path:
    """The mirror the servers serve: the run's loaded generated stock, with its lookup store (tests/conftest.py
    `loaded_stock`, built once per run for every worker). Read only: a test that writes takes a
    `private_mirror` copy."""
    return loaded_stock


@pytest.fixture(scope="session")
def samples(http_mirror) -> dict:
    """Identifiers of the mirror by case: diffusible units and établissements, P ones, doublons, links."""
    from mirror.catalog.build import connect

    con = connect(http_mirror)
    try:

        def col(sql):
            return [r[0] for r in con.execute(sql).fetchall()]

        out = {
            "sirens_o": col("SELECT siren FROM unites_legales WHERE statutDiffusionUniteLegale = 'O' "
                            "AND siren NOT IN (SELECT sirenDoublon FROM doublons) ORDER BY siren LIMIT 12"),
            "sirens_p": col("SELECT siren FROM unites_legales WHERE statutDiffusionUniteLegale = 'P' "
                            "AND siren NOT IN (SELECT sirenDoublon FROM doublons) ORDER BY siren LIMIT 4"),
            "doublons": col("SELECT DISTINCT sirenDoublon FROM doublons ORDER BY 1"),
            "sirets_o": col("SELECT e.siret FROM etablissements e JOIN unites_legales u USING (siren) "
                            "WHERE e.statutDiffusionEtablissement = 'O' AND u.statutDiffusionUniteLegale = 'O' "
                            "ORDER BY e.siret LIMIT 12"),
            "sirets_p": col("SELECT siret FROM etablissements WHERE statutDiffusionEtablissement = 'P' "
                            "ORDER BY siret LIMIT 4"),
            "sirets_linked": col("SELECT siretEtablissementPredecesseur FROM liens_succession UNION "
                                 "SELECT siretEtablissementSuccesseur FROM liens_succession ORDER BY 1 LIMIT 8"),
            "all_sirets": col("SELECT siret FROM etablissements ORDER BY siret"),
        }  # fmt: skip
    finally:
        con.close()
    assert out["sirens_o"] and out["sirens_p"] and out["doublons"] and out["sirets_linked"], out
    return out


@pytest.fixture(scope="session")
def server(http_mirror, tmp_path_factory):
    """The session's server over http_mirror, answering v3/v4 from the lookup store."""
    with running_server(http_mirror, store=True, log_dir=tmp_path_factory.mktemp("serve-logs")) as srv:
        yield srv
