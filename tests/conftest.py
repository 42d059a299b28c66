"""Shared fixtures: real generated stock files, real CLI subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mirror.core.config import LOOKUP_STORE_ENV

REPO = Path(__file__).resolve().parent.parent


def run_mirror(
    *args: str,
    data_dir: Path | None = None,
    env: dict | None = None,
    cwd: Path | None = None,
    timeout: float = 300,
    input: str | None = None,
) -> subprocess.CompletedProcess:
    """Runs the real `mirror` CLI in a subprocess (python -m mirror) and returns the completed process."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MIRROR_") and k != "INSEE_API_KEY"}
    full_env[LOOKUP_STORE_ENV] = os.environ.get(LOOKUP_STORE_ENV, "off")  # see lookup_store_off
    if data_dir is not None:
        full_env["MIRROR_DATA_DIR"] = str(data_dir)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "mirror", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd or REPO,
        timeout=timeout,
        input=input,
    )


@pytest.fixture(autouse=True)
def lookup_store_off(request, monkeypatch):
    """Writers build and refresh DATA_DIR/lookup.sqlite by default; most tests are about something else, so
    it is off for them (in-process and in the CLI runs of run_mirror) unless the test is marked
    `lookup_store`. tests/lookup prove that the store answers exactly what the views answer."""
    monkeypatch.setenv(LOOKUP_STORE_ENV, "on" if request.node.get_closest_marker("lookup_store") else "off")


@pytest.fixture(scope="session")
def stock_dir(tmp_path_factory) -> Path:
    """A small generated monthly stock (current layout, zipped CSV), shared by the whole session."""
    from mirror.synthetic.generate import generate_stock

    out = tmp_path_factory.mktemp("stock")
    generate_stock(out, month="2026-10", scale=3000, seed=7, fmt="zip", layout="current")
    return out
