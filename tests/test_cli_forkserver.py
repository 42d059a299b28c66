"""The tests' warm CLI runner (tests/cli_forkserver.py, behind conftest.run_mirror) answers exactly what a
fresh `python -m mirror` process answers: same return code, stdout and stderr, for successes, usage
errors, errors of the program, a crash at a named stage, stdin input, `-o /dev/stdout` and a timeout."""

from __future__ import annotations

import subprocess

import pytest
from conftest import run_mirror


def _both(monkeypatch, *args, **kwargs) -> tuple[subprocess.CompletedProcess, subprocess.CompletedProcess]:
    monkeypatch.delenv("MIRROR_TEST_FORKSERVER", raising=False)
    forked = run_mirror(*args, **kwargs)
    with monkeypatch.context() as fresh_processes:
        fresh_processes.setenv("MIRROR_TEST_FORKSERVER", "0")
        fresh = run_mirror(*args, **kwargs)
    return forked, fresh


def _case(name: str, loaded: dict, tmp) -> tuple[tuple, dict]:
    return {
        "help": (("--help",), {}),
        "usage-error": (("get",), {}),
        "no-mirror": (("status",), {"data_dir": tmp / "nothing"}),
        "get": (("get", "--format", "v3", "--compact", loaded["siren"]), {"data_dir": loaded["data"]}),
        "unknown-siren": (("get", "000000000"), {"data_dir": loaded["data"]}),
        "batch-stdin": (
            ("batch", "-", "-o", "-", "-q"),
            {"data_dir": loaded["data"], "input": f"{loaded['siren']}\n123\n\n"},
        ),
        "dev-stdout": (
            ("export", "-q", "-o", "/dev/stdout", "--columns", "siret", "--limit", "5"),
            {"data_dir": loaded["data"]},
        ),
        "crash": (
            ("load", str(loaded["stock"]), "-q"),
            {"data_dir": tmp / "crashed", "env": {"MIRROR_CRASH_AT": "build"}},
        ),
    }[name]


@pytest.fixture(scope="module")
def loaded(loaded_stock, stock_dir):
    from mirror.catalog.build import connect

    con = connect(loaded_stock)
    (siren,) = con.execute("SELECT min(siren) FROM unites_legales").fetchone()
    con.close()
    return {"data": loaded_stock, "siren": siren, "stock": stock_dir}


@pytest.mark.parametrize(
    "name", ["help", "usage-error", "no-mirror", "get", "unknown-siren", "batch-stdin", "dev-stdout", "crash"]
)
def test_a_forked_run_answers_what_a_fresh_process_answers(name, loaded, tmp_path, monkeypatch):
    args, kwargs = _case(name, loaded, tmp_path)
    forked, fresh = _both(monkeypatch, *args, **kwargs)
    assert (forked.returncode, forked.stdout, forked.stderr) == (fresh.returncode, fresh.stdout, fresh.stderr)
    assert forked.args == fresh.args
    assert forked.stdout or forked.stderr  # every case says something


@pytest.mark.slow
def test_a_run_past_its_timeout_is_killed_as_subprocess_kills_it(loaded, tmp_path):
    """A load paused at its build: TimeoutExpired with what it wrote, and the run is gone (its lock free:
    the next load completes)."""
    data = tmp_path / "data"
    with pytest.raises(subprocess.TimeoutExpired) as stopped:
        run_mirror(
            "load", str(loaded["stock"]), "-q", data_dir=data, env={"MIRROR_PAUSE_AT": "build"}, timeout=3
        )
    assert "[paused at build]" in stopped.value.stderr
    done = run_mirror("load", str(loaded["stock"]), "-q", data_dir=data, timeout=120)
    assert done.returncode == 0, done.stderr
