"""A warm `python -m mirror` for the tests' CLI runs (conftest.run_mirror): a fork server.

The suite runs the real CLI as a subprocess about 600 times; 0.3 to 0.5 s of CPU of each run was the
interpreter importing click, DuckDB, pyarrow, numpy and sqlglot, a third of the suite's CPU. This server
imports them once, then forks one process per run. The forked process is a real process running the real
program: `runpy` runs `mirror/__main__.py` as `python -m mirror` does (same sys.argv, same __main__),
with the run's environment, working directory, stdin, stdout and stderr, and it exits through the
interpreter's observable exit steps (_exit); its exit code, or the signal that killed it, is the run's.
What it does not re-prove is the program's own start-up (its imports, the hidden pandas): the wheel
test (tests/test_packaging.py) and the import probes (tests/test_program_imports.py) start real
interpreters, and so do the tests that signal or pause a run (they use subprocess.Popen).

Fork safety: the server holds no thread when it forks. `import duckdb` opens a default connection with a
thread pool, closed here before serving (DuckDB's state is not fork-safe with live threads: duckdb-python
issue #292); pyarrow's jemalloc background thread and OpenBLAS's pool are off in the server's environment
(set by conftest); the server checks /proc/self/task before each fork.

Protocol, over a Unix socket, one connection per run: the client sends a length-prefixed JSON request
(argv, env, cwd) with three file descriptors (stdin, stdout, stderr) attached; the server answers two
lines, the run's pid, then its return code (as subprocess gives it: negative for a signal).
"""

from __future__ import annotations

import atexit
import gc
import importlib
import json
import os
import pkgutil
import runpy
import selectors
import signal
import socket
import struct
import sys
import threading

HEADER = struct.Struct("!I")


def warm() -> None:
    """Imports what the CLI's commands import (the whole package), as the program does: pandas hidden."""
    from mirror.core.unused_imports import hide_pandas

    hide_pandas()
    import duckdb

    import mirror

    for module in pkgutil.walk_packages(mirror.__path__, "mirror."):
        if module.name != "mirror.__main__":
            importlib.import_module(module.name)
    duckdb.default_connection().close()  # joins the thread pool `import duckdb` started
    gc.freeze()  # the runs' collections skip the server's objects (and leave their pages shared)


def _threads() -> int:
    return len(os.listdir("/proc/self/task"))


def _receive(conn: socket.socket) -> tuple[dict, list[int]]:
    data, fds, _flags, _addr = socket.recv_fds(conn, 1 << 16, 3)
    while len(data) < HEADER.size or len(data) < HEADER.size + HEADER.unpack_from(data)[0]:
        more = conn.recv(1 << 16)
        if not more:
            raise EOFError("the client closed the connection mid-request")
        data += more
    (length,) = HEADER.unpack_from(data)
    return json.loads(data[HEADER.size : HEADER.size + length]), fds


def _become_the_run(request: dict, fds: list[int]) -> None:
    """In the forked process: the run's descriptors, environment and directory, then `python -m mirror`,
    then the interpreter's exit (see _exit). Never returns: whatever fails here ends this process, never
    goes back into the server's loop."""
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
    for fd in fds:
        if fd > 2:
            os.close(fd)
    try:
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.argv = ["-m", *request["args"]]  # runpy puts the module's path first, as `python -m`
        sys.path[0] = request["cwd"]  # `python -m` puts the working directory first
        runpy.run_module("mirror", run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as stop:
        code = _exit_code(stop.code)
    except KeyboardInterrupt:
        sys.excepthook(*sys.exc_info())
        code = -signal.SIGINT
    except BaseException:  # noqa: BLE001 - what the interpreter does with an uncaught exception
        sys.excepthook(*sys.exc_info())
        code = 1
    _exit(code)


def _exit_code(value) -> int:
    """The process status of `sys.exit(value)`, printing a non-integer value as the interpreter does."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value & 0xFF
    print(value, file=sys.stderr)
    return 1


def _exit(code: int) -> None:
    """The interpreter's exit steps that a program can observe: non-daemon threads joined, atexit handlers
    (weakref.finalize and tempfile clean-ups among them), garbage collected, stdio flushed. Then os._exit:
    the last step of a normal exit, tearing down every module of this big process, only touches memory
    shared with the server, and copying it cost 0.2 s a run. An interrupted run (KeyboardInterrupt not
    handled) dies of SIGINT, as the interpreter makes it."""
    threading._shutdown()
    atexit._run_exitfuncs()
    gc.collect()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    if code < 0:
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    os._exit(code)


def _handle(conn: socket.socket) -> tuple[dict, list[int]]:
    """In a child of the server: forks the run, reports its pid and its return code, and exits. Returns
    only in the run (the grandchild), with its request and descriptors."""
    try:
        request, fds = _receive(conn)
        pid = os.fork()
        if pid == 0:
            conn.close()
            return request, fds
        for fd in fds:
            os.close(fd)  # the client sees EOF on its files' writers when the run ends
        conn.sendall(f"{pid}\n".encode())
        _, status = os.waitpid(pid, 0)
        conn.sendall(f"{os.waitstatus_to_exitcode(status)}\n".encode())
    except BaseException:  # noqa: BLE001 - a handler never returns into the server's loop
        os._exit(1)
    os._exit(0)


def serve(path: str) -> None:
    warm()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    print("ready", flush=True)  # the client waits for this line on the server's stdout
    events = selectors.DefaultSelector()
    events.register(listener, selectors.EVENT_READ)
    events.register(sys.stdin, selectors.EVENT_READ)  # EOF: the test process is gone
    while True:
        for key, _ in events.select():
            if key.fileobj is sys.stdin:
                if not os.read(sys.stdin.fileno(), 1):
                    return
                continue
            conn, _ = listener.accept()
            if _threads() != 1:
                conn.close()
                raise RuntimeError(f"the fork server holds {_threads()} threads: forking is unsafe")
            if os.fork() == 0:
                listener.close()
                events.close()
                # only the run comes back from _handle; its SystemExit ends this interpreter
                _become_the_run(*_handle(conn))
            conn.close()
        while True:  # reap the finished handlers
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break


if __name__ == "__main__":
    serve(sys.argv[1])
