"""Where an export writes, so that it never clobbers what `-o` points at.

- A new or regular file is written as `<target>.part` beside it and renamed onto it once complete
  (an interrupted export leaves the previous file, never a truncated one).
- A symlink is followed: `<target>` is the resolved file, the link itself stays.
- A character device or a FIFO (`/dev/null`, `/dev/stdout`, a named pipe) is never renamed over: the
  export is written to a private temporary file, then its bytes are copied into the device, and a
  write error there (`/dev/full`) is reported. A temporary file rather than streaming because DuckDB
  COPY (CSV, Parquet) cannot write to a device and xlsxwriter needs a file it can seek in; one path
  for every format keeps the errors the same. A block device or a socket is refused.
- `-` is standard output: written like a device (the finished file's bytes are copied to file
  descriptor 1, so an export that fails writes nothing there).
- An output inside the data directory, or the same file as an input (`batch X -o X`), is refused.
- xlsxwriter's temporary files (and DuckDB's spill files) live in `<part>.tmp/` beside the output and
  are removed with it; a leftover `.part` or `.part.tmp/` of a killed run is removed by the next
  export to the same output.

`write_error` turns the I/O failures of any writer (OSError, DuckDB IOException, xlsxwriter's
FileCreateError) into one line.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

import duckdb

from mirror.core.errors import BadInput, MirrorError, OutputClosed
from mirror.export.formats import is_stdout

COPY_CHUNK = 1 << 20


@dataclass
class Output:
    path: Path  # as the user gave it
    target: Path  # the file finally written (symlinks resolved)
    special: bool  # a character device or FIFO, written in place
    part: Path  # where the writers write
    scratch: Path | None = None  # private folder holding `part` for a special target
    fd: int | None = None  # standard output (`-o -`): written to this file descriptor

    @property
    def shown(self) -> str:
        """The output in messages."""
        return "standard output" if self.fd is not None else str(self.path)

    @property
    def tmpdir(self) -> Path:
        """xlsxwriter's and DuckDB's temporary files, beside the output (swept with the `.part`)."""
        return self.part.with_name(self.part.name + ".tmp")


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def plan_output(out: Path, data_dir: Path | None = None, inputs: tuple[Path, ...] = ()) -> Output:
    """Checks the output path and decides how it is written (nothing is created yet)."""
    if is_stdout(out):
        return Output(Path("-"), Path("/dev/stdout"), True, Path(), None, fd=1)
    out = Path(out).absolute()
    try:  # followed through links: /dev/stdout -> /proc/self/fd/1 -> a pipe whose "path" cannot be resolved
        followed = os.stat(out).st_mode
    except OSError:
        followed = None
    if followed is not None and (stat.S_ISFIFO(followed) or stat.S_ISCHR(followed)):
        return Output(out, out, True, Path(), None)
    target = Path(os.path.realpath(out))
    if target.is_dir():
        raise BadInput(f"{out} is a folder; give a file name")
    if not target.parent.is_dir():
        raise BadInput(f"output folder {target.parent} does not exist")
    if data_dir is not None:
        data = Path(os.path.realpath(data_dir))
        if _inside(target, data):
            raise BadInput(f"refusing to write {out} inside the mirror's data directory {data}")
    for source in inputs:
        source = Path(source)
        same = Path(os.path.realpath(source)) == target
        if not same and source.exists() and target.exists():
            same = os.path.samefile(source, target)
        if same:
            raise BadInput(f"refusing to write {out}: it is the input file {source}")
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise write_error(exc, out) from None
    if mode is not None and (stat.S_ISBLK(mode) or stat.S_ISSOCK(mode)):
        raise BadInput(
            f"refusing to write {out}: it is a {'block device' if stat.S_ISBLK(mode) else 'socket'}"
        )
    special = mode is not None and not stat.S_ISREG(mode)
    if special:
        return Output(out, target, True, Path(), None)
    return Output(out, target, False, target.with_name(target.name + ".part"))


def prepare(plan: Output) -> None:
    """Clears a killed run's leftovers and, for a special target, creates the private temporary file's folder."""
    if plan.special:
        plan.scratch = Path(tempfile.mkdtemp(prefix="mirror-output-"))
        plan.part = plan.scratch / plan.target.name
        return
    part = plan.part
    if part.is_dir() and not part.is_symlink():
        raise BadInput(f"{part} exists and is a folder: remove it or choose another output file")
    try:
        if part.is_symlink() or part.is_file():
            part.unlink()  # a leftover (never followed: a link there is removed, not written through)
        elif part.exists():
            raise BadInput(
                f"{part} exists and is not a regular file: remove it or choose another output file"
            )
        tmp = plan.tmpdir
        if tmp.is_symlink() or tmp.is_file():
            tmp.unlink()
        elif tmp.is_dir():
            shutil.rmtree(tmp)
    except OSError as exc:
        raise write_error(exc, plan.shown) from None


def commit(plan: Output) -> None:
    """Puts the finished `part` in place: a rename, or a copy of its bytes into the device / FIFO."""
    try:
        if not plan.special:
            os.replace(plan.part, plan.target)
            return
        if plan.fd is not None:
            fd = os.dup(plan.fd)
        else:  # O_WRONLY without O_CREAT / O_TRUNC: a device is written, never created or replaced.
            fd = os.open(plan.target, os.O_WRONLY | getattr(os, "O_CLOEXEC", 0))
        with open(plan.part, "rb") as src, open(fd, "wb", buffering=0) as dst:
            while chunk := src.read(COPY_CHUNK):
                view = memoryview(chunk)
                while view:
                    view = view[dst.write(view) :]
    except OSError as exc:
        raise write_error(exc, plan.shown) from None


def discard(plan: Output) -> None:
    """Removes everything the export created but the output itself."""
    if plan.special:
        if plan.scratch is not None:
            shutil.rmtree(plan.scratch, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            plan.part.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        if plan.tmpdir.is_dir() and not plan.tmpdir.is_symlink():
            shutil.rmtree(plan.tmpdir, ignore_errors=True)


_REASONS = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "read-only file system",
    errno.ENOENT: "no such file or directory",
    errno.ENOTDIR: "a parent is not a folder",
    errno.EISDIR: "is a folder",
    errno.EFBIG: "file too large",
    errno.EIO: "input/output error",
    errno.ENXIO: "no reader on the other end",
    errno.EPIPE: "the reader closed the pipe",
}
_MESSAGES = (
    ("no space left on device", "no space left on device"),
    ("disk quota", "disk quota exceeded"),
    ("permission denied", "permission denied"),
    ("read-only file system", "read-only file system"),
    ("no such file or directory", "no such file or directory"),
    ("file system operations are disabled", "this path is not writable by the export"),
)


def write_error(exc: BaseException, path: Path | str) -> MirrorError:
    """One line for a failed write of `path`, whichever layer raised it."""
    cause: BaseException | None = exc
    for _ in range(8):  # xlsxwriter's FileCreateError wraps the OSError
        if cause is None:
            break
        if isinstance(cause, OSError) and cause.errno == errno.EPIPE:
            return OutputClosed(f"cannot write {path}: {_REASONS[errno.EPIPE]}")
        if isinstance(cause, OSError) and cause.errno in _REASONS:
            return MirrorError(f"cannot write {path}: {_REASONS[cause.errno]}")
        wrapped = cause.args[0] if cause.args and isinstance(cause.args[0], BaseException) else None
        cause = cause.__cause__ or cause.__context__ or wrapped
    text = str(exc).lower()
    if "broken pipe" in text:  # DuckDB's IOException of a COPY to a closed pipe
        return OutputClosed(f"cannot write {path}: {_REASONS[errno.EPIPE]}")
    for needle, reason in _MESSAGES:
        if needle in text:
            return MirrorError(f"cannot write {path}: {reason}")
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return MirrorError(f"cannot write {path}: {first}")


def is_write_error(exc: BaseException) -> bool:
    """Whether a writer's exception is an I/O failure (mapped by write_error), not a bug."""
    if isinstance(exc, (OSError, duckdb.IOException, duckdb.PermissionException)):
        return True
    try:
        from xlsxwriter.exceptions import FileCreateError
    except ImportError:  # pragma: no cover
        return False
    return isinstance(exc, FileCreateError)
