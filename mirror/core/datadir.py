"""The data directory's layout, state.json, the writer lock and the cleaning of an interrupted writer's
leftovers (publication and retention of snapshots: mirror.load.publish).

Layout of DATA_DIR (absolute, see mirror.core.config.resolve_data_dir):

    sirene.duckdb                  the catalog (views + small ref tables), replaced atomically (mirror.catalog.build)
    state.json                     plain JSON dict, written atomically; "snapshot" = the current snapshot
    .lock                          writer lock (fcntl.flock); holds the holder's pid/command/start time
    snapshots/<YYYY-MM>/           one immutable folder per stock month (<YYYY-MM>.<n> for the n-th reload
                                   of a month whose previous copy was still in use; see publish())
    snapshots/.building-<m>-<pid>/ a snapshot being built (deleted by the next writer if left over)
    state.json.pending             the state a publication is switching to (mirror.load.publish)
    current.json                   the current state for any Parquet reader (mirror.catalog.current)
    ref-parquet/<version>/         the reference tables as Parquet, one folder per reference version
                                   (`.staging-*` being written, `.trash-*` being deleted: leftovers)
    <folder>/.superseded.json      when a snapshot folder or merged delta version stopped being current

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
import time
from datetime import UTC, datetime
from pathlib import Path

from mirror.core.errors import BadInput, MirrorError, WriterBusy
from mirror.core.faults import crash_point

STATE_NAME = "state.json"
PENDING_NAME = "state.json.pending"
CURRENT_NAME = "current.json"
REF_PARQUET = "ref-parquet"
STAGING_PREFIX = ".staging-"  # a ref-parquet version being written
TRASH_PREFIX = ".trash-"  # a folder renamed out of sight to be deleted
LOCK_NAME = ".lock"
SNAPSHOTS = "snapshots"
BUILDING_PREFIX = ".building-"
LOOKUP_BUILDING_PREFIX = ".lookup-building-"  # a lookup store being built (mirror.lookup.build)
# DATA_DIR/lookup.sqlite is a symbolic link to the current store file, LOOKUP_FILE_PREFIX<n>.sqlite: each
# whole build gets its own file name, so that SQLite's -wal and -shm files (named after the file a link
# resolves to) never outlive their database under the same name (mirror.lookup.build._switch_in).
LOOKUP_STORE_NAME = "lookup.sqlite"
LOOKUP_FILE_PREFIX = "lookup-"
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")

SNAPSHOT_DIR_RE = re.compile(r"^(\d{4}-\d{2})(?:\.(\d+))?$")
MONTH_RE = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


def snapshots_dir(data_dir: Path) -> Path:
    return data_dir / SNAPSHOTS


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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
    write_json_atomic(data_dir / STATE_NAME, state)


def write_json_atomic(path: Path, value: dict) -> None:
    """Writes a JSON file in one step for readers and crashes: `<name>.tmp-<pid>` (a leftover the next
    writer removes, see clean_leftovers), fsync, os.replace, fsync of the folder."""
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(value, fh, indent=2, sort_keys=True, default=str)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        crash_point(f"before-replace-{path.name}")
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise MirrorError(f"cannot write {path}: {exc.strerror or exc}") from exc
    fsync_dir(path.parent)


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


def fsync_dir(path: Path) -> None:
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
_held_info: dict[str, dict] = {}  # lock path -> what this process wrote into it


def held_lock(data_dir: Path) -> dict | None:
    """What this process wrote into DATA_DIR/.lock (pid, command, host, since) while it holds the writer
    lock, else None: a writer hands it to readers so they can tell it is still at work (lock_holder_alive)."""
    info = _held_info.get(str(Path(data_dir) / LOCK_NAME))
    return dict(info) if info is not None else None


def lock_holder_alive(data_dir: Path, pid: int, since: str) -> bool:
    """Whether the writer that recorded (pid, since) still holds DATA_DIR/.lock: the lock file still names
    it (a writer truncates it when it lets go, the next one rewrites it) and the process exists (a killed
    writer leaves its record behind but no process). Readers call this without taking the lock."""
    try:
        holder = json.loads((Path(data_dir) / LOCK_NAME).read_bytes() or b"{}")
    except (OSError, ValueError):
        return False
    if not isinstance(holder, dict) or holder.get("pid") != pid or holder.get("since") != since:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def writer_at_work(data_dir: Path) -> bool:
    """Whether a live writer holds DATA_DIR/.lock now (the record it wrote there names a process that
    exists): a reader that combines two sources published one after the other (the catalog, then the lookup
    store) checks this before and after reading, so that no publication falls in between."""
    try:
        holder = json.loads((Path(data_dir) / LOCK_NAME).read_bytes() or b"{}")
    except (OSError, ValueError):
        return False
    if not isinstance(holder, dict) or not isinstance(holder.get("pid"), int):
        return False
    return lock_holder_alive(data_dir, holder["pid"], holder.get("since"))


@contextlib.contextmanager
def writer_lock(data_dir: Path, command: str, wait_seconds: float = 0):
    """One writer at a time on DATA_DIR (fcntl.flock on DATA_DIR/.lock; fails at once, or after waiting up
    to `wait_seconds` for the holder to let go).

    Re-entrant within a process, so `mirror sync` can hold it and call load_snapshot. The lock file
    records the holder (pid, command, host, start time) for the error message of the next writer.
    """
    path = data_dir / LOCK_NAME
    key = str(path)
    if key in _held:
        _held[key] += 1
        try:
            yield
        finally:
            _held[key] -= 1
        return
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:  # a read-only or unwritable data directory: a writer can do nothing there
        raise MirrorError(f"cannot write into {data_dir}: {exc.strerror or exc}") from exc
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() < deadline:
                time.sleep(0.5)
                continue
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
        raise WriterBusy(f"another mirror writer is running on {data_dir}: {who}; try again later") from None
    info = {"pid": os.getpid(), "command": command, "host": socket.gethostname(), "since": utc_now()}
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
    except OSError as exc:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
        raise MirrorError(f"cannot write into {data_dir}: {exc.strerror or exc}") from exc
    _held[key] = 1
    _held_info[key] = info
    try:
        yield
    finally:
        del _held[key]
        del _held_info[key]
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


# ------------------------------------------------------------------------------------------------
# Building, publication, retention
# ------------------------------------------------------------------------------------------------


def building_pid(path: Path) -> int | None:
    """The pid of the live process (this one included) building the lookup store file `path`
    (LOOKUP_BUILDING_PREFIX<pid>.sqlite), or None when that process is gone: a leftover."""
    try:
        pid = int(path.name[len(LOOKUP_BUILDING_PREFIX) :].split(".")[0])
        os.kill(pid, 0)
    except (ValueError, ProcessLookupError):
        return None
    except PermissionError:  # another user's live process
        return pid
    return pid


def store_files(data_dir: Path) -> set[str]:
    """The names of the lookup store's files that DATA_DIR/lookup.sqlite currently uses: the file it links
    to and that file's SQLite side files; a plain lookup.sqlite (stores built before the link) and its
    side files (its -journal can be a hot journal SQLite needs)."""
    link = Path(data_dir) / LOOKUP_STORE_NAME
    target = os.readlink(link) if link.is_symlink() else LOOKUP_STORE_NAME
    return {target, *(target + suffix for suffix in SQLITE_SIDE_FILES)}


def clean_leftovers(data_dir: Path) -> list[str]:
    """Deletes what an interrupted writer left (.building-* folders, lookup stores being built, store files
    DATA_DIR/lookup.sqlite no longer links to,
    catalog/state/current.json temp files and the catalog's DuckDB .wal, e.g. `sirene.duckdb.tmp-<pid>.wal`
    of a killed update, ref-parquet versions being written or deleted).

    Call it only while holding the writer lock. Returns the names removed.
    """
    removed = []
    for folder, prefixes in ((SNAPSHOTS, (BUILDING_PREFIX,)), (REF_PARQUET, (STAGING_PREFIX, TRASH_PREFIX))):
        root = data_dir / folder
        if root.is_dir():
            for p in root.iterdir():
                if p.name.startswith(prefixes):
                    shutil.rmtree(p, ignore_errors=True)
                    removed.append(f"{folder}/{p.name}")
    if data_dir.is_dir():
        current_store = store_files(data_dir)
        for p in data_dir.iterdir():
            if p.name.startswith(LOOKUP_BUILDING_PREFIX):
                if building_pid(p) is not None:  # a live background build (mirror.lookup.build)
                    continue
                with contextlib.suppress(OSError):
                    p.unlink()
                removed.append(p.name)
                continue
            store_file = p.name.startswith(LOOKUP_FILE_PREFIX) and ".sqlite" in p.name
            if (store_file or p.name.startswith(LOOKUP_STORE_NAME + "-")) and p.name not in current_store:
                with contextlib.suppress(OSError):
                    p.unlink()
                removed.append(p.name)
                continue
            stem = p.name.split(".tmp-")[0]
            if ".tmp-" in p.name and (
                stem in ("sirene.duckdb", STATE_NAME, PENDING_NAME, CURRENT_NAME) or stem.startswith(".ref-")
            ):
                with contextlib.suppress(OSError):
                    p.unlink()
                removed.append(p.name)
    return removed


# ------------------------------------------------------------------------------------------------
# Grace period of superseded folders (readers cannot be enumerated)
# ------------------------------------------------------------------------------------------------

GRACE_ENV = "MIRROR_GRACE_SECONDS"
DEFAULT_GRACE_SECONDS = 3600
SUPERSEDED_NAME = ".superseded.json"
_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def grace_seconds() -> float:
    """How long a superseded snapshot folder or merged delta version stays for readers that opened the
    catalog before it was superseded ($MIRROR_GRACE_SECONDS, default one hour)."""
    raw = os.environ.get(GRACE_ENV)
    if raw is None or raw == "":
        return DEFAULT_GRACE_SECONDS
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise BadInput(f"invalid {GRACE_ENV}={raw!r}: expected a number of seconds >= 0")
    return value


def _boot_id() -> str | None:
    try:
        return _BOOT_ID.read_text(encoding="ascii").strip() or None
    except OSError:
        return None


def mark_superseded(folder: Path) -> None:
    """Records, once, when `folder` stopped being what the catalog reads: wall time, time.monotonic()
    and the boot id. Call it under the writer lock."""
    marker = folder / SUPERSEDED_NAME
    if marker.is_file():
        return
    record = {"wall": time.time(), "monotonic": time.monotonic(), "boot_id": _boot_id(), "at": utc_now()}
    with contextlib.suppress(OSError):
        write_json_atomic(marker, record)


def superseded_for(folder: Path) -> float | None:
    """Seconds since `folder` was marked superseded (None when not marked).

    Measured so that a wall-clock jump cannot shorten it: on the same boot (same boot id), the difference
    of time.monotonic() (CLOCK_MONOTONIC, system-wide and never set by NTP or an operator); after a reboot
    no reader of the previous boot survives, so the wall difference is enough (a backwards jump only
    lengthens it); an unreadable record counts as just marked (kept one more grace)."""
    try:
        record = json.loads((folder / SUPERSEDED_NAME).read_text(encoding="utf-8"))
        wall, mono, boot = float(record["wall"]), float(record["monotonic"]), record.get("boot_id")
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError, KeyError):
        return 0.0
    current = _boot_id()
    if boot and current and boot == current:
        return max(0.0, time.monotonic() - mono)
    return max(0.0, time.time() - wall)


def grace_elapsed(folder: Path) -> bool:
    """Whether a superseded `folder` may be deleted: marked (now, if it was not) for at least the grace."""
    mark_superseded(folder)
    age = superseded_for(folder)
    return age is not None and age >= grace_seconds()


def dir_size(path: Path) -> int:
    """Bytes on disk under a path (0 if absent); a link inside counts as a link (DATA_DIR/lookup.sqlite: its
    store file is counted once, as itself)."""
    total = 0
    if path.is_file():
        return path.stat().st_size
    for root, _dirs, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, f)).st_size
    return total
