"""The second wall behind `--where`: exports run on a DuckDB instance that cannot reach other files.

`where.py` refuses any table function or file access, but a parser gap must not be enough to read a
file again. So an export or a batch opens its own in-memory DuckDB instance, ATTACHes the caller's
catalog read-only, and before running anything sets `allowed_directories` (the data directory the
views read, and a private spill folder), `allowed_paths` (the files the export writes),
`enable_external_access = false` and `lock_configuration = true`: from then on DuckDB itself refuses
read_text('/etc/passwd'), a COPY elsewhere, ATTACH, INSTALL/LOAD, and any SET that would undo this.

These settings are per database instance (they cannot be undone once set), which is why the caller's
connection is never touched: a cursor of it would share its instance. DuckDB's allowed-directory
check compares paths after normalising `..`.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import duckdb

from mirror.core.config import open_duckdb
from mirror.core.errors import MirrorError
from mirror.core.sql import literal

# Settings copied from the caller's connection so an export behaves (and performs) the same.
_COPIED_SETTINGS = ("threads", "memory_limit")


def catalog_of(con: duckdb.DuckDBPyConnection) -> tuple[str, Path]:
    """(database name, absolute path) of the connection's current database: the mirror's catalog."""
    row = con.execute(
        "SELECT database_name, path FROM duckdb_databases() WHERE database_name = current_database()"
    ).fetchone()
    if row is None or not row[1]:
        raise MirrorError("exports read the mirror's catalog file; this connection has none")
    return row[0], Path(row[1]).absolute()


def data_dir_of(con: duckdb.DuckDBPyConnection) -> Path | None:
    """The data directory of the catalog `con` reads (None for an in-memory database)."""
    try:
        return catalog_of(con)[1].parent
    except MirrorError:
        return None


class SandboxConnection:
    """The sandbox's connection. DuckDB's USE is per connection and a cursor is a new connection of the
    same instance, so `cursor()` puts each cursor in the catalog too (mirror.serve.documents uses one)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, database: str):
        self._con = con
        self._use = f'USE "{database.replace(chr(34), chr(34) * 2)}"'

    def cursor(self) -> duckdb.DuckDBPyConnection:
        cur = self._con.cursor()
        cur.execute(self._use)
        return cur

    def __getattr__(self, name: str):
        return getattr(self._con, name)


def _dir(path: Path) -> str:
    return str(path).rstrip("/") + "/"


@contextlib.contextmanager
def sandboxed(
    con: duckdb.DuckDBPyConnection, writable: list[Path] | tuple[Path, ...] = (), spill: Path | None = None
) -> Iterator[SandboxConnection]:
    """A connection to the same catalog that can read only the data directory and write only `writable`.

    `spill`: DuckDB's temporary folder (created; the caller removes it), e.g. beside the output so that
    a killed run's leftovers are swept by the next export; by default a private folder in $TMPDIR.
    """
    name, catalog = catalog_of(con)
    data_dir = catalog.parent
    settings = {s: con.execute("SELECT current_setting(?)", [s]).fetchone()[0] for s in _COPIED_SETTINGS}
    own_spill = spill is None
    if spill is None:
        spill = Path(tempfile.mkdtemp(prefix="mirror-export-"))
    else:
        spill.mkdir(parents=True, exist_ok=True)
    directories = sorted({_dir(data_dir), _dir(data_dir.resolve()), _dir(spill)})
    paths = sorted({str(p) for w in writable for p in (Path(w).absolute(), Path(w).resolve())})
    sb = open_duckdb()
    try:
        sb.execute("SET allowed_directories = ?", [directories])
        sb.execute("SET allowed_paths = ?", [paths])
        sb.execute("SET temp_directory = ?", [str(spill)])
        for key, value in settings.items():
            sb.execute(f"SET {key} = ?", [value])
        sb.execute("SET enable_external_access = false")
        sb.execute("SET autoinstall_known_extensions = false")
        sb.execute("SET autoload_known_extensions = false")
        # The catalog path is the mirror's own (never a user value); ATTACH takes no parameter.
        quoted = '"' + name.replace('"', '""') + '"'
        sb.execute(f"ATTACH {literal(catalog)} AS {quoted} (READ_ONLY)")
        sb.execute(f"USE {quoted}")
        sb.execute("SET parquet_metadata_cache = true")
        # The exporters' progress bar polls query_progress(): enabled here, before the lock.
        sb.execute("SET enable_progress_bar = true")
        sb.execute("SET enable_progress_bar_print = false")
        sb.execute("SET lock_configuration = true")
    except duckdb.Error as exc:
        sb.close()
        if own_spill:
            shutil.rmtree(spill, ignore_errors=True)
        raise MirrorError(f"cannot open the catalog {catalog}: {str(exc).splitlines()[0]}") from None
    try:
        yield SandboxConnection(sb, name)
    finally:
        sb.close()
        if own_spill:
            shutil.rmtree(spill, ignore_errors=True)
