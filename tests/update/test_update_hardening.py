"""`mirror update` under bad upstream answers, endless waits, signals, a full disk and a wrong watermark:
one line on stderr, a non-zero exit, and the mirror as it was (real CLI runs, real HTTP on 127.0.0.1)."""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from conftest import REPO, caller_env, run_mirror

from mirror.core.config import INSEE_KEY_HEADER
from mirror.synthetic.upstream import send_bytes, server

MONTH = "2026-10"
SCALE = 800
SEED = 9
KEY = server.DEFAULT_API_KEY
ENV = {"INSEE_API_KEY": KEY}
PASSTHROUGH = "X-Test-Passthrough"


class Tamper:
    """Offered each request before the INSEE-like app: while `mode` is set, a search on `path` gets the
    real answer (fetched again with a passthrough header) changed by `mode`, or `mode`'s fixed body."""

    def __init__(self):
        self.mode = None
        self.path = "/siren"
        self.base = ""
        self.hits = 0

    def handle(self, handler) -> bool:
        parts = urlsplit(handler.path)
        if self.mode is None or handler.headers.get(PASSTHROUGH) or handler.command != "GET":
            return False
        if parts.path != server.INSEE_PREFIX + self.path:
            return False
        self.hits += 1
        real = requests.get(
            self.base + handler.path, headers={INSEE_KEY_HEADER: KEY, PASSTHROUGH: "1"}, timeout=30
        ).json()
        body = self.mode(real)
        send_bytes(handler, 200, json.dumps(body).encode(), "application/json;charset=utf-8")
        return True


def tree(path: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for root, _dirs, files in os.walk(path):
        for name in files:
            p = Path(root, name)
            if name != ".lock":
                st = p.stat()
                out[str(p.relative_to(path))] = (st.st_size, st.st_mtime_ns)
    return out


def lock_is_free(data_dir: Path) -> bool:
    fd = os.open(data_dir / ".lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def update(data_dir: Path, up, *extra: str, env: dict | None = None, quiet: bool = True, timeout: float = 60):
    args = ["update", "--insee-url", up.insee_url, "--rate", "100000", *(["-q"] if quiet else []), *extra]
    return run_mirror(*args, data_dir=data_dir, env={**ENV, **(env or {})}, timeout=timeout)


def error_lines(stderr: str) -> list[str]:
    """stderr without the fault-injection markers."""
    return [li for li in stderr.splitlines() if li.strip() and not li.startswith("[paused at")]


@pytest.fixture(scope="module")
def upstream(tmp_path_factory):
    data = tmp_path_factory.mktemp("upstream")
    tamper = Tamper()
    up = server.start(data, MONTH, scale=SCALE, seed=SEED, today=date(2026, 10, 3), before=[tamper])
    tamper.base = up.base_url
    up.tamper = tamper
    yield up
    up.close()


@pytest.fixture(scope="module")
def template(upstream, tmp_path_factory) -> Path:
    """A mirror synced through 2 Oct (watermark 3 Oct): the malformed-answer tests share it unchanged."""
    mirror = tmp_path_factory.mktemp("template") / "mirror"
    result = run_mirror(
        "sync",
        "--datagouv-url",
        upstream.datagouv_url,
        "--insee-url",
        upstream.insee_url,
        "--rate",
        "100000",
        "-q",
        data_dir=mirror,
        env=ENV,
    )
    assert result.returncode == 0, result.stderr
    return mirror


@pytest.fixture
def upstream_reset(upstream):
    """The shared upstream with its knobs back to normal after the test."""
    yield upstream
    upstream.tamper.mode = None
    upstream.insee.today = date(2026, 10, 3)
    upstream.insee.down = False
    upstream.insee.throttle_every = 0
    upstream.insee.retry_after = 1


def own_copy(template: Path, tmp_path: Path) -> Path:
    """A private copy of the template mirror with its catalog re-pointed at the copy."""
    mirror = tmp_path / "mirror"
    shutil.copytree(template, mirror, symlinks=True)
    result = run_mirror("catalog", data_dir=mirror)
    assert result.returncode == 0, result.stderr
    return mirror


def a_unit(mirror: Path) -> str:
    import duckdb

    con = duckdb.connect(str(mirror / "sirene.duckdb"), read_only=True)
    try:
        return con.execute("SELECT siren FROM unites_legales ORDER BY siren LIMIT 1 OFFSET 7").fetchone()[0]
    finally:
        con.close()


def first_record(key: str, change):
    def mode(real):
        real[key][0] = change(real[key][0])
        return real

    return mode


def _set(rec, field, value):
    rec[field] = value
    return rec


MALFORMED = {
    # a 200 with only a header (total 40): not "no change that day"
    "header-only": (
        "/siret",
        lambda real: {"header": {"statut": 200, "message": "OK", "total": 40, "debut": 0, "nombre": 0}},
        "no etablissements array",
    ),
    "empty-object": ("/siret", lambda real: {}, "no header object"),
    "short-siren": (
        "/siren",
        lambda real: {"header": {**real["header"], "total": 1}, "unitesLegales": [{"siren": "123"}]},
        "siren '123' is not a SIREN",
    ),
    "yesterday": (
        "/siren",
        first_record("unitesLegales", lambda r: _set(r, "dateDernierTraitementUniteLegale", "yesterday")),
        "'yesterday' is not a timestamp",
    ),
    "string-for-object": (
        "/siret",
        first_record("etablissements", lambda r: _set(r, "adresseEtablissement", "12 RUE DE LA PAIX")),
        "adresseEtablissement is '12 RUE DE LA PAIX', not an object",
    ),
    "list-for-object": (
        "/siren",
        first_record("unitesLegales", lambda r: _set(r, "periodesUniteLegale", [["A"]])),
        "periodesUniteLegale[0] is ['A'], not an object",
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_answer_fails_the_day_and_changes_nothing(template, upstream_reset, case):
    up = upstream_reset
    path, mode, reason = MALFORMED[case]
    siren = a_unit(template)
    before_get = run_mirror("get", siren, data_dir=template)
    assert before_get.returncode == 0, before_get.stderr
    before = tree(template)
    state = (template / "state.json").read_bytes()

    up.insee.today = date(2026, 10, 4)  # 2 Oct (the overlap) and 3 Oct to fetch
    up.tamper.path, up.tamper.mode = path, mode
    result = update(template, up)

    assert result.returncode != 0
    lines = error_lines(result.stderr)
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "malformed" in lines[0] and reason in lines[0], lines[0]
    assert f"{path}?q=dateDernierTraitement" in lines[0] and "2026-10-02 not applied" in lines[0]
    assert KEY not in result.stderr + result.stdout
    assert up.tamper.hits >= 1
    assert (template / "state.json").read_bytes() == state
    assert tree(template) == before  # deltas/, deltas-merged/, the catalog: nothing moved
    assert lock_is_free(template)
    after_get = run_mirror("get", siren, data_dir=template)
    assert after_get.returncode == 0 and after_get.stdout == before_get.stdout


@pytest.mark.slow
def test_watermark_in_the_future_is_an_error(template, upstream_reset, tmp_path):
    mirror = own_copy(template, tmp_path)
    state = json.loads((mirror / "state.json").read_text())
    state["delta_watermark"] = "2027-01-15T00:00:00"
    (mirror / "state.json").write_text(json.dumps(state))
    before = tree(mirror)
    result = update(mirror, upstream_reset)
    assert result.returncode != 0
    lines = error_lines(result.stderr)
    assert len(lines) == 1 and "delta_watermark 2027-01-15T00:00:00 is after the last day" in lines[0], lines
    assert tree(mirror) == before


def test_huge_retry_after_is_capped_and_the_budget_ends_the_run(template, upstream_reset):
    up = upstream_reset
    up.insee.throttle_every, up.insee.retry_after = 1, 86400  # every call: 429, come back tomorrow
    before = tree(template)
    t0 = time.monotonic()
    result = update(
        template, up, quiet=False, env={"MIRROR_MAX_RETRY_AFTER": "0.2", "MIRROR_RETRY_BUDGET": "0.5"}
    )
    assert time.monotonic() - t0 < 20
    assert result.returncode == 1
    lines = error_lines(result.stderr)
    assert lines[:2] == [
        "INSEE API: HTTP 429 on /informations, waiting 0.2 s (retry 1/8)",
        "INSEE API: HTTP 429 on /informations, waiting 0.2 s (retry 2/8)",
    ], lines
    assert len(lines) == 3 and "unavailable on /informations" in lines[2] and "retry budget" in lines[2]
    assert tree(template) == before
    assert lock_is_free(template)


@pytest.mark.slow
def test_permanent_503_ends_within_the_budget_with_one_line(template, upstream_reset):
    upstream_reset.insee.down = True
    t0 = time.monotonic()
    result = update(template, upstream_reset, env={"MIRROR_RETRY_BUDGET": "3"})
    assert time.monotonic() - t0 < 20
    assert result.returncode == 1
    lines = error_lines(result.stderr)
    # Each retry on one line with its wait, also with -q (a cron log shows why the run is slow), then the
    # one-line error.
    assert lines[:-1] and all(
        re.match(r"INSEE API: HTTP 503 on /informations, waiting [\d.]+ s", li) for li in lines[:-1]
    ), lines
    assert "INSEE API unavailable" in lines[-1] and "HTTP 503" in lines[-1], lines
    assert lock_is_free(template)


def test_unreachable_api_shows_each_retry_and_max_wait_bounds_the_total(template, tmp_path):
    """Nothing listens on the INSEE URL: each retry is one line with its wait, and `--max-wait` bounds the
    whole run (the default would retry for about three minutes)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"  # closed again: connections are refused
    t0 = time.monotonic()
    result = run_mirror(
        "update", "--insee-url", dead, "-q", "--max-wait", "4", data_dir=template, env=ENV, timeout=60
    )
    elapsed = time.monotonic() - t0
    assert result.returncode == 1, result.stderr
    lines = error_lines(result.stderr)
    retries = lines[:-1]
    assert retries and all(
        re.fullmatch(r"INSEE API: connection error \(ConnectionError\) on /informations, waiting [\d.]+ s "
                     r"\(retry \d/8\)", li) for li in retries
    ), lines  # fmt: skip
    assert lines[-1].startswith("Error: INSEE API unavailable on /informations") and "--max-wait" in lines[-1]
    assert "retry budget 4.0 s" in lines[-1], lines[-1]
    assert elapsed < 4 + 15, elapsed  # the waits stay within --max-wait (plus start-up time)


def test_bad_wait_settings_are_one_line(template, upstream_reset):
    result = update(template, upstream_reset, env={"MIRROR_RETRY_BUDGET": "ten minutes"})
    assert result.returncode == 2
    assert error_lines(result.stderr) == [
        "Error: MIRROR_RETRY_BUDGET must be a number of seconds, got 'ten minutes'"
    ]


def _popen_update(mirror: Path, up, env: dict) -> subprocess.Popen:
    full = caller_env()
    full.update({"MIRROR_DATA_DIR": str(mirror), **ENV, **env})
    return subprocess.Popen(
        [sys.executable, "-m", "mirror", "update", "--insee-url", up.insee_url, "--rate", "100000", "-q"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=full,
        cwd=REPO,
    )


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_during_update_is_one_line_and_keeps_the_days_applied(template, upstream_reset, tmp_path, sig):
    up = upstream_reset
    mirror = own_copy(template, tmp_path)
    up.insee.today = date(2026, 10, 5)  # 2 (overlap), 3 and 4 Oct to fetch
    proc = _popen_update(mirror, up, {"MIRROR_PAUSE_AT": "fetch-2026-10-03"})
    try:
        line = proc.stderr.readline()
        assert line.startswith("[paused at fetch-2026-10-03]"), line
        proc.send_signal(sig)
        _out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + sig
    lines = error_lines(err)
    assert len(lines) == 1 and "Traceback" not in err, err
    assert f"interrupted by {sig.name}: days applied so far are kept, the mirror is consistent" in lines[0]
    state = json.loads((mirror / "state.json").read_text())
    assert state["deltas"] == ["2026-10-01", "2026-10-02"]  # 2 Oct re-applied, 3 Oct not written
    assert state["delta_watermark"] == "2026-10-03T00:00:00"
    assert not (mirror / "deltas" / "2026-10-03").exists()
    assert lock_is_free(mirror)
    siren = a_unit(mirror)
    assert run_mirror("get", siren, data_dir=mirror).returncode == 0
    again = update(mirror, up)
    assert again.returncode == 0, again.stderr
    assert json.loads((mirror / "state.json").read_text())["delta_watermark"] == "2026-10-05T00:00:00"


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_full_disk_during_update_is_one_line(template, upstream_reset, tmp_path):
    fs = tmp_path / "fs"
    fs.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(fs)]).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        mirror = own_copy(template, fs)
        filler = fs / "filler"
        with open(filler, "wb") as fh:  # fill the device to the last block
            try:
                while True:
                    fh.write(b"\0" * 65536)
                    fh.flush()
            except OSError:
                pass
        os.truncate(filler, filler.stat().st_size - 8192)  # room for the lock file's record, no more
        upstream_reset.insee.today = date(2026, 10, 4)
        state = (mirror / "state.json").read_bytes()
        result = update(mirror, upstream_reset)
        assert result.returncode == 1
        lines = error_lines(result.stderr)
        assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
        assert "no space left on the device" in lines[0] and "days applied so far are kept" in lines[0]
        assert (mirror / "state.json").read_bytes() == state
        assert lock_is_free(mirror)
        filler.unlink()
        again = update(mirror, upstream_reset)
        assert again.returncode == 0, again.stderr
    finally:
        subprocess.run(["umount", "-l", str(fs)])
