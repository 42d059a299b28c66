"""Shared fixtures: real generated stock files, real CLI subprocesses."""

from __future__ import annotations

import fcntl
import json
import locale
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest

from mirror.core.config import CACHE_DIR_ENV, LOOKUP_STORE_ENV, NICE_ENV, THREADS_ENV

REPO = Path(__file__).resolve().parent.parent

# The tests' temporary folders go to a RAM file system when the machine has one with room to spare: the
# writers fsync every file and folder they publish (tens of ms each on this machine's disk), which made a
# third of the suite's time; what the tests prove (a crash at any point, a full or read-only file system)
# does not depend on the medium. MIRROR_TEST_TMPFS=0, or an explicit --basetemp, keeps the default.
_RAM_TMP = Path("/dev/shm")
_RAM_TMP_MIN_FREE = 8 * 2**30


def _tmp_root() -> str | None:
    """The RAM file system when it may be used (see _ram_basetemp), else the default temporary folder."""
    if os.environ.get("MIRROR_TEST_TMPFS", "1") != "0" and os.access(_RAM_TMP, os.W_OK):
        return str(_RAM_TMP)
    return None


def _ram_basetemp() -> Path | None:
    if _tmp_root() is None or shutil.disk_usage(_RAM_TMP).free < _RAM_TMP_MIN_FREE:
        return None
    return _RAM_TMP / f"sirene-mirror-tests-{os.getpid()}"  # one per run: parallel runs never share it


# DuckDB's threads per xdist worker: its default, one per core in every worker, oversubscribes the cores
# (2 workers x 2 threads on this 2-core machine: make test 6m57 -> 6m18 with every connection at one thread,
# user CPU 12% less). Set for the workers' own processes and their CLI runs (mirror_env); a test that needs several
# threads sets MIRROR_THREADS itself. A run without xdist keeps DuckDB's default.
WORKER_THREADS: str | None = None


def pytest_configure(config):
    global WORKER_THREADS
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 0)
    if hasattr(config, "workerinput") and workers:
        WORKER_THREADS = str(max(1, (os.cpu_count() or 1) // workers))
        os.environ[THREADS_ENV] = WORKER_THREADS
    if hasattr(config, "workerinput"):  # xdist workers get the run's folders from the main process
        return
    if not os.environ.get(CACHE_DIR_ENV):
        # The data derived from sql/ref once per machine (mirror.core.ref_cache): once per run here, in a
        # folder of the run (the first users derive it, the others read it), never the user's ~/.cache.
        config._mirror_cache_dir = Path(tempfile.mkdtemp(prefix="sirene-mirror-cache-", dir=_tmp_root()))
        os.environ[CACHE_DIR_ENV] = str(config._mirror_cache_dir)
    if config.option.basetemp:
        return
    basetemp = _ram_basetemp()
    if basetemp is not None:
        config.option.basetemp = str(basetemp)
        config._mirror_ram_basetemp = basetemp


# Whole files in the slow tier: each builds its own loaded world per module (and per xdist worker), or runs
# the CLI as a subprocess in most of its tests, so even its quick assertions cost seconds. `make test-fast`
# (the quick tier, <= 60 s) keeps the in-process tests over the session-shared mirrors; `make test` runs
# everything. A file moves out of this list once its world is shared (built_once) and its tests are quick.
SLOW_FILES = {
    "tests/catalog/test_catalog.py",
    "tests/deltas/test_deltas.py",
    "tests/engines/test_current.py",
    "tests/export/test_batch.py",
    "tests/export/test_diffusion_paths.py",
    "tests/export/test_hardening.py",
    "tests/export/test_shell_outputs.py",
    "tests/export/test_tva.py",
    "tests/export/test_valid_identifiers.py",
    "tests/http/test_app.py",
    "tests/http/test_entreprise.py",
    "tests/http/test_insee.py",
    "tests/load/test_load.py",
    "tests/load/test_readers.py",
    "tests/serve/test_documents.py",
    "tests/serve/test_point_in_time.py",
    "tests/test_cli_errors.py",
    "tests/update/test_update_hardening.py",
}


# Files of long single tests, sent to the workers first: the last test of a run leaves the other worker
# idle until it ends (tests/watch, last in collection order, kept one worker alone for 20 s).
FIRST_FILES = ("tests/watch/test_watch.py", "tests/test_pipeline.py", "tests/lookup/test_store.py")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.nodeid.split("::", 1)[0] in SLOW_FILES:
            item.add_marker(pytest.mark.slow)
    items.sort(key=lambda item: item.nodeid.split("::", 1)[0] not in FIRST_FILES)  # stable


def pytest_unconfigure(config):
    _stop_forkserver()
    for folder in (getattr(config, "_mirror_ram_basetemp", None), getattr(config, "_mirror_cache_dir", None)):
        if folder is not None:  # RAM is not a disk: nothing of a finished run stays there
            shutil.rmtree(folder, ignore_errors=True)


# Test files whose tests all run on one xdist worker under `make test` (`--dist loadgroup`), so that their
# session- and module-scoped fixtures are built once per run: the Spark tests share one SparkSession (a JVM
# start costs ~20 s and 1 GB); the others build a module world of 7 to 20 s that every worker running one of
# their tests built again. Grouped by file path here, because pytest-xdist's own `xdist_group` mark stopped
# working with pytest 9.2 (pytest-xdist issue #1386: the group suffix it appends to node ids is lost).
ONE_WORKER_FILES = {
    "tests/engines/test_spark.py": "spark",
    "tests/load/test_stock_changes.py": "stock-changes",
    "tests/update/test_update_hardening.py": "update-hardening",
    "tests/http/test_app.py": "http-app",
    "tests/load/test_geolocation.py": "geolocation",
    "tests/http/test_insee_query.py": "insee-query",
    "tests/export/test_filters.py": "export-filters",
    "tests/export/test_export.py": "export",
    "tests/lookup/test_search.py": "search",
}


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """`--dist loadgroup`: xdist's load-group scheduler, with the groups of ONE_WORKER_FILES."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    class FileGroups(LoadGroupScheduling):
        def _split_scope(self, nodeid: str) -> str:
            group = ONE_WORKER_FILES.get(nodeid.split("::", 1)[0])
            return f"@{group}" if group else super()._split_scope(nodeid)

    return FileGroups(config, log)


def caller_env(insee_key: bool = False) -> dict:
    """os.environ without the caller's MIRROR_* settings (the run's MIRROR_CACHE_DIR kept, see
    pytest_configure) and, unless `insee_key`, without INSEE_API_KEY."""
    return {
        k: v
        for k, v in os.environ.items()
        if (not k.startswith("MIRROR_") or k == CACHE_DIR_ENV) and (insee_key or k != "INSEE_API_KEY")
    }


def mirror_env(data_dir: Path | None = None, env: dict | None = None) -> dict:
    """The environment of a CLI run of the tests (run_mirror): no MIRROR_* or key of the caller's."""
    full_env = caller_env()
    full_env[LOOKUP_STORE_ENV] = os.environ.get(LOOKUP_STORE_ENV, "off")  # see lookup_store_off
    # Writers at the test worker's priority: niced (their default), they would lose the CPU to the other
    # workers' in-process tests while their own test waits (test_cli_errors proves the default niceness).
    full_env[NICE_ENV] = "0"
    if WORKER_THREADS is not None:
        full_env[THREADS_ENV] = WORKER_THREADS
    if data_dir is not None:
        full_env["MIRROR_DATA_DIR"] = str(data_dir)
    full_env.update(env or {})
    return full_env


def run_mirror(
    *args: str,
    data_dir: Path | None = None,
    env: dict | None = None,
    cwd: Path | None = None,
    timeout: float = 300,
    input: str | None = None,
) -> subprocess.CompletedProcess:
    """Runs the real `mirror` CLI in a subprocess (python -m mirror) and returns the completed process:
    forked from a warm interpreter (tests/cli_forkserver.py) unless MIRROR_TEST_FORKSERVER=0."""
    argv = [sys.executable, "-m", "mirror", *args]
    full_env, where = mirror_env(data_dir, env), str(cwd or REPO)
    if os.environ.get("MIRROR_TEST_FORKSERVER", "1") == "0" or not hasattr(socket, "send_fds"):
        return subprocess.run(
            argv, capture_output=True, text=True, env=full_env, cwd=where, timeout=timeout, input=input
        )
    return _run_forked(argv, full_env, where, timeout, input)


_forkserver_lock = threading.Lock()
_forkserver: tuple[subprocess.Popen, str] | None = None


def _forkserver_path() -> str:
    """The socket of this test process's fork server, started on first use (one per xdist worker)."""
    global _forkserver
    with _forkserver_lock:
        if _forkserver is None or _forkserver[0].poll() is not None:
            path = os.path.join(tempfile.mkdtemp(prefix="mirror-cli-"), "fork.sock")
            # no thread may run in the server when it forks (see tests/cli_forkserver.py)
            env = {
                **caller_env(),
                "OPENBLAS_NUM_THREADS": "1",
                "JE_ARROW_MALLOC_CONF": "background_thread:false",
            }
            proc = subprocess.Popen(
                [sys.executable, str(REPO / "tests" / "cli_forkserver.py"), path],
                stdin=subprocess.PIPE,  # the server ends when this process (its stdin's writer) is gone
                stdout=subprocess.PIPE,
                env=env,
                cwd=REPO,
            )
            if proc.stdout.readline().strip() != b"ready":
                raise RuntimeError(f"the CLI fork server did not start (exit {proc.wait()})")
            _forkserver = (proc, path)
        return _forkserver[1]


def _stop_forkserver() -> None:
    if _forkserver is not None:
        _forkserver[0].stdin.close()
        _forkserver[0].wait(timeout=30)
        shutil.rmtree(os.path.dirname(_forkserver[1]), ignore_errors=True)


def _run_forked(argv: list[str], env: dict, cwd: str, timeout: float, input: str | None):
    """run_mirror through the fork server: what subprocess.run(capture_output=True, text=True) returns."""
    from cli_forkserver import HEADER

    encoding = locale.getpreferredencoding(False)

    def text(data: bytes) -> str:  # subprocess's text mode: locale encoding, universal newlines
        return data.decode(encoding).replace("\r\n", "\n").replace("\r", "\n")

    request = json.dumps({"args": argv[3:], "env": env, "cwd": cwd}).encode()
    # pipes, as subprocess gives them (a program may open /dev/stdout, which on a file would be another
    # offset), read and written by threads as subprocess.communicate does
    stdin_r, stdin_w = os.pipe() if input is not None else (os.open(os.devnull, os.O_RDONLY), None)
    (out_r, out_w), (err_r, err_w) = os.pipe(), os.pipe()
    captured: dict[int, bytes] = {}

    def drain(fd: int) -> None:
        with open(fd, "rb") as pipe:
            captured[fd] = pipe.read()

    readers = [threading.Thread(target=drain, args=(fd,), daemon=True) for fd in (out_r, err_r)]
    for reader in readers:
        reader.start()
    if stdin_w is not None:
        threading.Thread(target=_feed, args=(stdin_w, input.encode(encoding)), daemon=True).start()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        try:
            conn.connect(_forkserver_path())
            socket.send_fds(conn, [HEADER.pack(len(request))], [stdin_r, out_w, err_w])
        finally:
            for fd in (stdin_r, out_w, err_w):  # the run holds them now
                os.close(fd)
        conn.sendall(request)
        conn.settimeout(timeout)
        answers = conn.makefile("rb")
        pid = None
        try:
            pid = int(answers.readline())
            code = answers.readline()
        except TimeoutError:
            if pid is None:  # the server never forked it: nothing was written
                raise subprocess.TimeoutExpired(argv, timeout, "", "") from None
            os.kill(pid, signal.SIGKILL)
            for reader in readers:
                reader.join()
            raise subprocess.TimeoutExpired(
                argv, timeout, text(captured[out_r]), text(captured[err_r])
            ) from None
    for reader in readers:
        reader.join()
    if not code.strip():
        raise RuntimeError("the CLI fork server ended during a run")
    return subprocess.CompletedProcess(argv, int(code), text(captured[out_r]), text(captured[err_r]))


def _feed(fd: int, data: bytes) -> None:
    with open(fd, "wb") as pipe:
        try:
            pipe.write(data)
        except BrokenPipeError:  # the run did not read all its input
            pass


@pytest.fixture(autouse=True)
def lookup_store_off(request, monkeypatch):
    """Writers build and refresh DATA_DIR/lookup.sqlite by default; most tests are about something else, so
    it is off for them (in-process and in the CLI runs of run_mirror) unless the test is marked
    `lookup_store`. tests/lookup prove that the store answers exactly what the views answer."""
    monkeypatch.setenv(LOOKUP_STORE_ENV, "on" if request.node.get_closest_marker("lookup_store") else "off")


def mount_tmpfs(path: Path, size: str) -> None:
    """A tmpfs of `size` mounted at `path` (the tests run as root here); skips the test where it cannot be."""
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
    )
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.decode(errors='replace').strip()[:80]})")


def umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


def built_once(tmp_path_factory, name: str, build) -> Path:
    """The folder `name`, built by `build(folder)` once per test run whichever xdist worker asks first (the
    others wait on a file lock, then reuse it). Its users only read it: a test that writes takes a copy."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):  # workers' folders are <run's basetemp>/popen-gwN
        base = base.parent
    shared = base / "built-once"
    shared.mkdir(exist_ok=True)
    folder, done = shared / name, shared / f"{name}.complete"
    with open(shared / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            build(folder)
            done.touch()
    return folder


@pytest.fixture(scope="session")
def stock_dir(tmp_path_factory) -> Path:
    """A small generated monthly stock (2026-10, 3,000 units, seed 7, current layout, zipped CSV), shared by
    the whole run."""
    from mirror.synthetic.generate import generate_stock

    def build(out: Path) -> None:
        generate_stock(out, month="2026-10", scale=3000, seed=7, fmt="zip", layout="current")

    return built_once(tmp_path_factory, "stock", build)


@pytest.fixture(scope="session")
def loaded_stock(stock_dir, tmp_path_factory) -> Path:
    """The data directory of `stock_dir` loaded by the real loader (month 2026-10), with its lookup store,
    shared by the whole run: read it only (a test that writes copies it with `private_mirror`)."""
    from mirror.load.stock import load_snapshot

    def build(root: Path) -> None:
        with pytest.MonkeyPatch.context() as mp:  # runs inside whichever test asks first
            mp.setenv(LOOKUP_STORE_ENV, "on")
            load_snapshot(root / "data", [stock_dir], month="2026-10", force=True)

    return built_once(tmp_path_factory, "loaded-stock", build) / "data"


def private_mirror(source: Path, data: Path) -> Path:
    """A private, writable copy of the mirror `source` at `data`, its catalog rebuilt for the copy's paths
    (the catalog names the snapshot's Parquet files by absolute path)."""
    from mirror.catalog import build as catalog
    from mirror.deltas import store as deltas

    shutil.copytree(source, data, symlinks=True)
    catalog.rebuild(data, deltas.compact_for(data))
    return data
