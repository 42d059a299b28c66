"""Packaging: the wheel carries the SQL and reference tables, and works installed outside the checkout."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def test_pyproject_lists_every_package():
    """pyproject.toml lists the packages explicitly (sql/ is mapped in as mirror.sql): none may be missing."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    found = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "mirror").rglob("__init__.py")} | {
        "mirror.sql"
    }
    assert set(config["packages"]) == found
    assert config["package-dir"] == {"mirror.sql": "sql"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(venv: Path, cwd: Path, *args: str, env: dict, timeout: float = 180) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [str(venv / "bin" / "mirror"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, f"mirror {' '.join(args)}: {result.stderr[-2000:]}"
    return result


@pytest.mark.slow
def test_wheel_installed_in_a_fresh_venv_runs_the_whole_flow(tmp_path):
    """Build the wheel, install it into a new virtual environment outside the checkout, then generate, load,
    get, export and update (against the demo upstream) from there, in a folder with no sql/ beside it."""
    dist = tmp_path / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "-w",
            str(dist),
            str(REPO),
        ],
        check=True,
        capture_output=True,
        timeout=600,
    )
    (wheel,) = dist.glob("sirene_mirror-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "mirror/sql/views/23_documents_v3.sql" in names and "mirror/sql/ref/communes.csv.gz" in names
    assert "mirror/py.typed" in names and not any(n.startswith(("tests/", "benchmarks/")) for n in names)

    venv = tmp_path / "venv"
    # No pip inside (installing it is most of a venv's creation time): the test environment's pip installs
    # into it with --python.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300)
    site = Path(
        subprocess.check_output(
            [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            text=True,
        ).strip()
    )
    # The dependencies come from the test environment (no download); the package itself only from the wheel.
    (site / "_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(venv / "bin" / "python"),
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            str(wheel),
        ],
        check=True,
        timeout=300,
    )
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MIRROR_", "PYTHON")) and k != "INSEE_API_KEY"
    }
    env["MIRROR_DATA_DIR"] = str(work / "data")
    located = subprocess.check_output(
        [str(venv / "bin" / "python"), "-c", "import mirror.core.sql as s; print(s.__file__, s.SQL_DIR)"],
        cwd=work,
        env=env,
        text=True,
    ).split()
    assert all(str(site) in p for p in located), located

    _run(
        venv,
        work,
        "generate",
        "--out",
        "stock",
        "--month",
        "2026-10",
        "--scale",
        "300",
        "--seed",
        "0",
        env=env,
    )
    _run(venv, work, "load", "stock", "--month", "2026-10", env=env)
    status = json.loads(_run(venv, work, "status", "--json", env=env).stdout)
    assert status["snapshot"]["month"] == "2026-10"
    exported = work / "out.csv"
    _run(venv, work, "export", "-o", str(exported), "--departement", "75", env=env)
    sirets = [row["siret"] for row in csv.DictReader(exported.open(encoding="utf-8"))]
    assert sirets and all(re.fullmatch(r"\d{14}", s) for s in sirets)
    document = json.loads(_run(venv, work, "get", sirets[0], env=env).stdout)
    assert document["data"]["siret"] == sirets[0]

    port = _free_port()
    upstream = subprocess.Popen(
        [str(venv / "bin" / "mirror"), "demo-upstream", "--port", str(port), "--scale", "300"]
        + ["--month", "2026-10", "--seed", "0", "--today", "2026-10-04", "--data", str(tmp_path / "up")],
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert upstream.poll() is None and time.monotonic() < deadline, "demo upstream did not start"
                time.sleep(0.2)
        update_env = {**env, "INSEE_API_KEY": "demo-key"}
        url = f"http://127.0.0.1:{port}/api-sirene/3.11"
        result = _run(venv, work, "update", "--insee-url", url, "--rate", "100000", env=update_env)
        state = json.loads((work / "data" / "state.json").read_text(encoding="utf-8"))
        assert state["deltas"][-1] == "2026-10-03", result.stdout
    finally:
        upstream.send_signal(signal.SIGINT)
        try:
            upstream.wait(timeout=20)
        except subprocess.TimeoutExpired:
            upstream.kill()
