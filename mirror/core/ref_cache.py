"""Data derived from the reference files (sql/ref), derived once per machine instead of once per process.

Every writer process derived the same tables again from sql/ref: the commune lookups of the typing SQL
(mirror.core.typed.prepare_connection: 0.15-0.35 s a process, most of a small update's start) and every
fresh data directory its DuckDB template of the ref tables (mirror.catalog.build). They are written once
into the cache directory, `$MIRROR_CACHE_DIR` (`off`: no cache), else `$XDG_CACHE_HOME/sirene-mirror`,
else `~/.cache/sirene-mirror`, as entries named by what they derive from (`key`): the package's version of
the deriving code and files, the DuckDB version. A changed file or release gets a new entry; older entries
of the same name are removed.

An entry is a folder, published complete (written under a temporary name, then renamed): a reader never
sees half an entry, and two processes writing the same one both end with a complete one; what a
killed writer left is removed by the next one to publish. A cache that
cannot be written or read is skipped: the callers derive the data in place, with the same result.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from mirror.core.config import CACHE_DIR_ENV

CACHE_OFF = "off"
STALE_SECONDS = 3600  # a temporary entry folder older than this was left by a killed writer


def cache_dir() -> Path | None:
    """The cache directory (see the module doc); None when $MIRROR_CACHE_DIR is `off`."""
    raw = os.environ.get(CACHE_DIR_ENV, "")
    if raw.strip().lower() == CACHE_OFF:
        return None
    if raw:
        return Path(raw).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "sirene-mirror"


def key_of(paths: Iterable[Path], *texts: str) -> str:
    """A key of the files `paths` (name, size, modification time) and of `texts` (source code, versions)."""
    h = hashlib.sha1()
    for p in sorted(paths):
        st = p.stat()
        h.update(f"{p.name}:{st.st_size}:{st.st_mtime_ns};".encode())
    for text in texts:
        h.update(b"\0" + text.encode())
    return h.hexdigest()[:16]


def entry(name: str, key: str, write: Callable[[Path], None]) -> Path | None:
    """The folder of the cache entry `name`-`key`, filled by `write(folder)` when it is not there yet;
    None when there is no usable cache (off, or not writable): the caller derives in place."""
    root = cache_dir()
    if root is None:
        return None
    folder = root / f"{name}-{key}"
    if folder.is_dir():
        return folder
    tmp = None
    try:
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root))
        write(tmp)
        try:
            os.rename(tmp, folder)
        except OSError:
            if not folder.is_dir():  # not another process publishing the same entry first
                raise
        else:
            tmp = None
            for old in root.glob(f"{name}-*"):
                if old != folder and old.is_dir():
                    shutil.rmtree(old, ignore_errors=True)
            for left in root.glob(f".{name}-*"):  # a writer killed mid-entry; an hour: never one at work
                if time.time() - left.stat().st_mtime > STALE_SECONDS:
                    shutil.rmtree(left, ignore_errors=True)
    except OSError:
        return None
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return folder if folder.is_dir() else None
