"""The data directory's layout, state.json, the writer lock, atomic publication and retention.

Layout of DATA_DIR (absolute, see mirror.config.resolve_data_dir):

    sirene.duckdb                  the catalog (views + small ref tables), replaced atomically (mirror.catalog)
    state.json                     plain JSON dict, written atomically; "snapshot" = the current snapshot
    .lock                          writer lock (fcntl.flock); holds the holder's pid/command/start time
    snapshots/<YYYY-MM>/           one immutable folder per stock month (<YYYY-MM>.<n> for the n-th reload
                                   of a month whose previous copy was still in use; see publish())
    snapshots/.building-<m>-<pid>/ a snapshot being built (deleted by the next writer if left over)

Only one writer at a time (`writer_lock`); readers never take a lock and never see a half-switched
state: a snapshot folder is complete before the catalog points at it, and the catalog file is
replaced in one `os.replace`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import socket
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from mirror.errors import MirrorError

STATE_NAME = "state.json"
LOCK_NAME = ".lock"
SNAPSHOTS = "snapshots"
BUILDING_PREFIX = ".building-"
CRASH_ENV = "MIRROR_CRASH_AT"
PAUSE_ENV = "MIRROR_PAUSE_AT"
DEFAULT_KEEP = 2

SNAPSHOT_DIR_RE = re.compile(r"^(\d{4}-\d{2})(?:\.(\d+))?$")
MONTH_RE = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


def snapshots_dir(data_dir: Path) -> Path:
    return data_dir / SNAPSHOTS


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ------------------------------------------------------------------------------------------------
# Crash injection (tests): MIRROR_CRASH_AT=<stage> makes the process die abruptly at that stage.
# ------------------------------------------------------------------------------------------------


def crash_point(stage: str) -> None:
    """Exit abruptly (no cleanup, like a kill -9) when $MIRROR_CRASH_AT names this stage; pause (60 s, for
    interrupt tests) when $MIRROR_PAUSE_AT names it."""
    if os.environ.get(PAUSE_ENV) == stage:
        sys.stderr.write(f"[paused at {stage}]\n")
        sys.stderr.flush()
        time.sleep(60)
    if os.environ.get(CRASH_ENV) == stage:
        sys.stdout.flush()
        sys.stderr.write(f"[crash injected at {stage}]\n")
        sys.stderr.flush()
        os._exit(86)


# ------------------------------------------------------------------------------------------------
# state.json
# ------------------------------------------------------------------------------------------------


def read_state(data_dir: Path) -> dict:
    """The state dict ({} when there is no mirror yet)."""
    path = data_dir / STATE_NAME
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise MirrorError(f"cannot read {path}: {exc}") from exc


def write_state(data_dir: Path, state: dict) -> None:
    """Writes state.json atomically (temp file, fsync, os.replace)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / STATE_NAME
    tmp = path.with_name(f"{STATE_NAME}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(state, fh, indent=2, sort_keys=True, default=str)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(data_dir)


def update_state(data_dir: Path, **changes) -> dict:
    """Read-modify-write of state.json (call it while holding the writer lock); returns the new state."""
    state = read_state(data_dir)
    state.update(changes)
    write_state(data_dir, state)
    return state


def current_snapshot(data_dir: Path) -> dict | None:
    """state["snapshot"]: {"month", "dir", "loaded_at", "rows", "max_date_dernier_traitement", ...} or None."""
    return read_state(data_dir).get("snapshot")


def current_snapshot_path(data_dir: Path) -> Path | None:
    snap = current_snapshot(data_dir)
    return snapshots_dir(data_dir) / snap["dir"] if snap else None


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# ------------------------------------------------------------------------------------------------
# Writer lock
# ------------------------------------------------------------------------------------------------

_held: dict[str, int] = {}  # lock path -> re-entrance depth in this process


@contextlib.contextmanager
def writer_lock(data_dir: Path, command: str):
    """One writer at a time on DATA_DIR (fcntl.flock on DATA_DIR/.lock, never blocks: fails at once).

    Re-entrant within a process, so `mirror sync` can hold it and call load_snapshot. The lock file
    records the holder (pid, command, host, start time) for the error message of the next writer.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / LOCK_NAME
    key = str(path)
    if key in _held:
        _held[key] += 1
        try:
            yield
        finally:
            _held[key] -= 1
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            holder = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
        except ValueError:
            holder = {}
        os.close(fd)
        who = (
            f"pid {holder.get('pid', '?')} (`{holder.get('command', '?')}`, since {holder.get('since', '?')})"
            if holder
            else "another process"
        )
        raise MirrorError(f"another mirror writer is running on {data_dir}: {who}; try again later") from None
    info = {"pid": os.getpid(), "command": command, "host": socket.gethostname(), "since": utc_now()}
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(info).encode(), 0)
    _held[key] = 1
    try:
        yield
    finally:
        del _held[key]
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


# ------------------------------------------------------------------------------------------------
# Building, publication, retention
# ------------------------------------------------------------------------------------------------


def clean_leftovers(data_dir: Path) -> list[str]:
    """Deletes what an interrupted writer left (.building-* folders, catalog/state temp files).

    Call it only while holding the writer lock. Returns the names removed.
    """
    removed = []
    snaps = snapshots_dir(data_dir)
    if snaps.is_dir():
        for p in snaps.iterdir():
            if p.name.startswith(BUILDING_PREFIX):
                shutil.rmtree(p, ignore_errors=True)
                removed.append(f"{SNAPSHOTS}/{p.name}")
    if data_dir.is_dir():
        for p in data_dir.iterdir():
            stem = p.name.split(".tmp-")[0]
            if ".tmp-" in p.name and (stem in ("sirene.duckdb", STATE_NAME) or stem.startswith(".ref-")):
                with contextlib.suppress(OSError):
                    p.unlink()
                removed.append(p.name)
    return removed


def new_build_dir(data_dir: Path, month: str | None) -> Path:
    path = snapshots_dir(data_dir) / f"{BUILDING_PREFIX}{month or 'auto'}-{os.getpid()}"
    path.mkdir(parents=True)
    return path


def published_dirs(data_dir: Path) -> list[tuple[str, int, Path]]:
    """Published snapshot folders as (month, generation, path), oldest first."""
    snaps = snapshots_dir(data_dir)
    out = []
    if snaps.is_dir():
        for p in snaps.iterdir():
            m = SNAPSHOT_DIR_RE.match(p.name)
            if m and p.is_dir():
                out.append((m.group(1), int(m.group(2) or 1), p))
    return sorted(out, key=lambda t: (t[0], t[1]))


def free_snapshot_name(data_dir: Path, month: str) -> str:
    """`<month>` if free, else `<month>.<n>` (a reload of a month whose folder is still in use)."""
    taken = {p.name for _, _, p in published_dirs(data_dir)}
    if month not in taken:
        return month
    n = 2
    while f"{month}.{n}" in taken:
        n += 1
    return f"{month}.{n}"


def publish(
    data_dir: Path, build_dir: Path, month: str, snapshot_info: dict, keep: int = DEFAULT_KEEP
) -> dict:
    """Makes a complete, validated build the current snapshot, atomically for readers.

    Order: rename the build folder to snapshots/<name> (complete before anything points at it);
    rebuild the catalog into a temp file and os.replace it (the switch readers see); write
    state.json atomically; only then delete snapshots beyond `keep` months (and the old copy of a
    reloaded month). A crash at any point leaves the previous snapshot queryable; a re-run finishes.
    """
    from mirror import catalog  # local import: catalog imports this module

    name = free_snapshot_name(data_dir, month)
    target = snapshots_dir(data_dir) / name
    crash_point("before-rename")
    os.rename(build_dir, target)
    _fsync_dir(snapshots_dir(data_dir))
    crash_point("after-rename")
    state = read_state(data_dir)
    previous = state.get("snapshot")
    snapshot = dict(snapshot_info, month=month, dir=name, loaded_at=utc_now())
    catalog.rebuild(data_dir, snapshot_dir=target)
    crash_point("after-catalog")
    state["snapshot"] = snapshot
    if previous and previous.get("dir") != name:
        history = [h for h in state.get("previous_snapshots", []) if h.get("dir") != previous.get("dir")]
        history.insert(0, {k: previous.get(k) for k in ("month", "dir", "loaded_at", "rows")})
        state["previous_snapshots"] = history[:10]
    write_state(data_dir, state)
    crash_point("after-state")
    removed = apply_retention(data_dir, keep)
    return {"snapshot": snapshot, "removed": removed}


def apply_retention(data_dir: Path, keep: int = DEFAULT_KEEP) -> list[str]:
    """Keeps the current snapshot plus the newest copy of the (keep - 1) most recent other months.

    Deletes every other published folder, including older copies of the current month. Call it
    only while holding the writer lock, after the catalog and state.json point at the current one.
    """
    keep = max(1, keep)
    current = current_snapshot(data_dir)
    if not current:
        return []
    newest_per_month: dict[str, Path] = {}
    for month, _gen, path in published_dirs(data_dir):  # ascending: the last copy of a month wins
        newest_per_month[month] = path
    others = sorted((m for m in newest_per_month if m != current["month"]), reverse=True)[: keep - 1]
    kept = {current["dir"]} | {newest_per_month[m].name for m in others}
    removed = []
    for _month, _gen, path in published_dirs(data_dir):
        if path.name not in kept:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path.name)
    return removed


def dir_size(path: Path) -> int:
    """Bytes on disk under a path (0 if absent)."""
    total = 0
    if path.is_file():
        return path.stat().st_size
    for root, _dirs, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.stat(os.path.join(root, f)).st_size
    return total
