"""The lookup store, read side: DATA_DIR/lookup.sqlite answers one SIREN or SIRET in well under a millisecond.

The store holds, per unité légale and per établissement, the v3 and v4 API Entreprise documents exactly as
the SQL document views (sql/views/23_*, 24_*) produced them, zstd-compressed with a dictionary trained on
the mirror's own documents (mirror.lookup.build writes it). It is keyed, so a lookup is one B-tree probe
and a 5 µs decompression instead of decoding whole Parquet row groups through a 20-join view. It holds,
the same way, the INSEE API Sirene 3.11 record of each key (sql/insee/*.sql, every period: `mirror serve`'s
/api-sirene/3.11 lookups cut it to a `date=` in Python, mirror.lookup.insee.at_date).

A blob holds the variants of one key as lines `<variant>\\t<json>`: `v3`, `v4` (the protected documents)
and `v3d`, `v4d` (the /diffusibles/ ones) only where they differ, i.e. for partially diffusible resources;
elsewhere the /diffusibles/ document is the protected one (its links point to the protected routes).

The store is an answer only when it is current: its `token` (snapshot folder, load time, applied delta
days) must equal state.json's. One exception keeps lookups fast while a writer works: a writer that
publishes a new state (an update day, a new snapshot) records in state.json the token of the state it
replaces and who it is (`lookup_grace`); while that writer still holds the lock, a store holding exactly
that previous state keeps answering (one state behind, for the seconds of a day's refresh or the minutes
of a monthly build). Otherwise (a crash between the catalog switch and the store update, a store left
behind) `begin()` is False and callers answer from the views. A reader reads the token and the rows in
one SQLite read transaction, so one answer never mixes two states.

This module imports only the standard library and zstandard: `mirror get` must not pay for DuckDB, pyarrow
or numpy when the store answers.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
from pathlib import Path

import zstandard

from mirror.core.datadir import (
    LOOKUP_BUILDING_PREFIX,
    LOOKUP_STORE_NAME,
    STATE_NAME,
    building_pid,
    held_lock,
    lock_holder_alive,
)

STORE_NAME = LOOKUP_STORE_NAME  # a link to the current store file (core.datadir.LOOKUP_FILE_PREFIX)
GRACE_FIELD = "lookup_grace"  # state.json: {token, pid, since} of the state a working writer replaced
# 2: the search index's filter columns, search_etablissements and search_geo; 3: INSEE records; 4: the
# rows of each SIREN for point-in-time documents; 5: search_names (the ranking over the text columns alone);
# 6: search_nom, search_enseignes and search_exact (the ranking in two tiers, exact names by key)
FORMAT_VERSION = "6"
VARIANTS = ("v3", "v3d", "v4", "v4d")
# The base views whose rows lookup_rows keeps per SIREN for point-in-time documents (sql/lookup/store_rows.sql
# writes them in this order; mirror.serve.documents.point_in_time rebuilds one TEMP table per name).
ROW_TABLES = ("unites_legales", "unites_legales_historique", "etablissements", "etablissements_historique")
# The zstd dictionaries of the store (lookup_meta `dictionary_<level>`), one per kind of compressed blob.
LEVELS = ("unites_legales", "etablissements", "insee_unites_legales", "insee_etablissements", "rows")
INSEE_TABLES = {"siren": "lookup_insee_unites_legales", "siret": "lookup_insee_etablissements"}
# How long a reader waits for a writer's lock before falling back to the views. A store in WAL mode (every
# store built since the link layout, core.datadir.LOOKUP_FILE_PREFIX) never makes readers wait for a daily
# update's commit; a store built before it (rollback journal) locks them out while the commit writes its
# pages and syncs them (about 100 ms at 100,000 units).
READ_BUSY_MS = 2000


def store_path(data_dir: Path) -> Path:
    return Path(data_dir) / STORE_NAME


def state_token(state: dict) -> dict:
    """What the store must have been built from to answer for this state.json: the snapshot folder and
    its load time (a reload of a month gets a new folder), the applied delta days and the sequence number
    of the last applied one (a day fetched again keeps its date but gets a new number)."""
    snap = state.get("snapshot") or {}
    try:
        seq = int(state.get("delta_seq") or 0)
    except (TypeError, ValueError):
        seq = None  # a broken state.json: never equal to a store's token
    return {
        "snapshot": snap.get("dir"),
        "loaded_at": snap.get("loaded_at"),
        "deltas": list(state.get("deltas") or []),
        "delta_seq": seq,
    }


def grace_entry(data_dir: Path, replaced_state: dict) -> dict | None:
    """What a writer that holds the lock stores in state.json's GRACE_FIELD when it publishes the state
    that replaces `replaced_state`: the replaced state's token and the writer's lock record."""
    holder = held_lock(data_dir)
    if holder is None or not isinstance(replaced_state.get("snapshot"), dict):
        return None
    return {"token": state_token(replaced_state), "pid": holder["pid"], "since": holder["since"]}


def encode_variants(variants: dict[str, str]) -> bytes:
    """The text a blob compresses: one `<variant>\\t<json>` line per variant (JSON text holds no raw
    newline or tab: the views' json_object escapes them)."""
    return "".join(f"{name}\t{text}\n" for name, text in variants.items()).encode()


def decode_variants(data: bytes) -> dict[str, str]:
    out = {}
    for line in data.decode().split("\n"):
        if line:
            name, _, text = line.partition("\t")
            out[name] = text
    return out


class _StateCache:
    """state.json's token and grace entry, re-read only when the file changes (a stat per lookup, not a
    JSON parse)."""

    def __init__(self, data_dir: Path):
        self.path = Path(data_dir) / STATE_NAME
        self._key = None
        self._token = None
        self._grace = None

    def token(self) -> dict | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        if key != self._key:
            try:
                state = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return None
            valid = isinstance(state, dict) and isinstance(state.get("snapshot"), dict)
            grace = state.get(GRACE_FIELD) if valid else None
            if not (
                isinstance(grace, dict)
                and isinstance(grace.get("token"), dict)
                and isinstance(grace.get("pid"), int)
                and isinstance(grace.get("since"), str)
            ):
                grace = None
            self._key, self._token, self._grace = key, state_token(state) if valid else None, grace
        return self._token

    def grace(self) -> dict | None:
        """The grace entry of the state token() last read (call token() first)."""
        return self._grace


def _open_on_read_only_media(path: Path) -> sqlite3.Connection | None:
    """A store in WAL mode on a read-only file system with no -shm file (a clean close removes it): SQLite
    cannot open it read-only there, but no writer can be at work either, and without a -wal file every
    committed page is in the database file, so it is read as immutable (no locks, no WAL). Anywhere else
    (a reader without write access to a writable data directory) immutable reads could meet a writer's
    checkpoint: None, the open's own error stands and the views answer."""
    target = os.path.realpath(path)
    if not os.statvfs(os.path.dirname(target)).f_flag & os.ST_RDONLY or os.path.exists(target + "-wal"):
        return None
    return sqlite3.connect(f"{Path(target).as_uri()}?immutable=1", uri=True, isolation_level=None)


class LookupStore:
    """A read-only handle on DATA_DIR/lookup.sqlite. Not shared between threads (open one per thread)."""

    def __init__(self, data_dir: Path):
        self.data_dir = Path(data_dir)
        self.path = store_path(self.data_dir)
        st = os.stat(self.path)  # FileNotFoundError when there is no store
        self._identity = (st.st_ino, st.st_dev)
        self.db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, isolation_level=None)
        self.busy_ms = None
        try:
            self.set_busy_timeout(READ_BUSY_MS)
            meta = dict(self.db.execute("SELECT name, value FROM lookup_meta").fetchall())
        except sqlite3.OperationalError:
            self.db.close()
            immutable = _open_on_read_only_media(self.path)
            if immutable is None:
                raise
            self.db = immutable
            meta = dict(self.db.execute("SELECT name, value FROM lookup_meta").fetchall())
        if meta.get("format_version") != FORMAT_VERSION:
            self.db.close()
            raise sqlite3.DatabaseError(f"lookup store format {meta.get('format_version')!r}")
        self._dctx = {
            level: zstandard.ZstdDecompressor(
                dict_data=zstandard.ZstdCompressionDict(meta[f"dictionary_{level}"])
            )
            for level in LEVELS
        }
        # {base view: from_json structure} of lookup_rows (mirror.lookup.build._rows_structure)
        self.rows_structure = json.loads(meta["rows_structure"])
        self._state = _StateCache(self.data_dir)
        self._token_text = self._token = None
        self.lagging = False  # the last begin() answered from the previous state, a writer at work

    def close(self) -> None:
        self.db.close()

    def set_busy_timeout(self, ms: int) -> None:
        """How long a read waits for a writer's commit holding the lock (READ_BUSY_MS by default; a server's
        event loop, which serves every other request meanwhile, waits less)."""
        if ms != self.busy_ms:
            self.db.execute(f"PRAGMA busy_timeout = {int(ms)}")
            self.busy_ms = ms

    def replaced(self) -> bool:
        """True when DATA_DIR/lookup.sqlite is now another file (a monthly rebuild was switched in)."""
        try:
            st = os.stat(self.path)
        except OSError:
            return True
        return (st.st_ino, st.st_dev) != self._identity

    def begin(self) -> bool:
        """Starts a read transaction and tells whether the store may answer (current, or one state behind
        while the writer that moved on brings it up, see the module docstring; `lagging` tells which);
        call end() after reading."""
        self.db.execute("BEGIN")
        try:
            (token,) = self.db.execute("SELECT value FROM lookup_meta WHERE name = 'token'").fetchone()
            if token != self._token_text:  # parsed once per state, not per lookup
                self._token_text, self._token = token, json.loads(token)
            current = self._token == self._state.token()  # the writer stores json.dumps(state_token)
            self.lagging = False
            if not current:
                grace = self._state.grace()
                self.lagging = current = (
                    grace is not None
                    and self._token == grace["token"]
                    and lock_holder_alive(self.data_dir, grace["pid"], grace["since"])
                )
        except BaseException:
            self.db.execute("COMMIT")
            raise
        if not current:
            self.db.execute("COMMIT")
        return current

    def end(self) -> None:
        self.db.execute("COMMIT")

    def read(self, fn, current_only: bool = False):
        """fn(self) inside one read transaction when the store may answer now (begin()), else None; None too
        when the read fails (still locked by a writer's commit past the busy timeout, a damaged row) or, with
        `current_only`, when the store is one state behind: the callers answer from the views then."""
        try:
            if not self.begin():
                return None
        except sqlite3.Error:
            return None
        try:
            if current_only and self.lagging:
                return None
            return fn(self)
        except (sqlite3.Error, zstandard.ZstdError, UnicodeDecodeError):
            return None
        finally:
            with contextlib.suppress(sqlite3.Error):
                self.end()

    def _variants(self, level: str, blob: bytes | None) -> dict[str, str]:
        return decode_variants(self._dctx[level].decompress(blob)) if blob is not None else {}

    def unit(self, siren: str) -> tuple[str | None, str | None, dict[str, str]] | None:
        """(statut de diffusion, siège SIRET, {variant: document}) of a SIREN, or None when unknown."""
        row = self.db.execute(
            "SELECT statut, siege, documents FROM lookup_unites_legales WHERE siren = ?", [siren]
        ).fetchone()
        return None if row is None else (row[0], row[1], self._variants("unites_legales", row[2]))

    def etablissement(self, siret: str) -> tuple[str | None, str | None, dict[str, str]] | None:
        """(statut de diffusion, statut of its unit, {variant: document}) of a SIRET, or None when unknown."""
        row = self.db.execute(
            "SELECT statut, statut_ul, documents FROM lookup_etablissements WHERE siret = ?", [siret]
        ).fetchone()
        return None if row is None else (row[0], row[1], self._variants("etablissements", row[2]))

    def insee(self, kind: str, key: str) -> str | None:
        """The INSEE API Sirene 3.11 record (JSON text, every period: mirror.lookup.insee cuts it to a day) of
        a SIREN (kind "siren") or SIRET ("siret"), or None when unknown."""
        row = self.db.execute(f"SELECT record FROM {INSEE_TABLES[kind]} WHERE key = ?", [key]).fetchone()
        return None if row is None else self._dctx[f"insee_{_LEVEL_OF[kind]}"].decompress(row[0]).decode()

    def unit_rows(self, siren: str) -> dict[str, str]:
        """{base view: JSON array of its rows} of a SIREN: its unité légale, its établissements and their
        historique periods (sql/lookup/store_rows.sql); {} when the mirror has none."""
        row = self.db.execute("SELECT rows FROM lookup_rows WHERE siren = ?", [siren]).fetchone()
        return {} if row is None else decode_variants(self._dctx["rows"].decompress(row[0]))

    def replacing(self, siren: str) -> str | None:
        """The SIREN that replaces a SIREN closed as a doublon (StockDoublons), else None."""
        row = self.db.execute("SELECT replacing FROM lookup_doublons WHERE siren = ?", [siren]).fetchone()
        return row[0] if row else None


_LEVEL_OF = {"siren": "unites_legales", "siret": "etablissements"}
_OPEN = threading.local()  # SQLite handles are per thread


def open_store(data_dir: Path) -> LookupStore | None:
    """This thread's handle on a data directory's store (reopened after a monthly switch), or None when
    there is no readable store."""
    key = os.fspath(data_dir)  # no resolve(): a lookup must not pay a realpath
    handles = _OPEN.__dict__.setdefault("handles", {})
    store = handles.get(key)
    if store is not None and not store.replaced():
        return store
    if store is not None:
        store.close()
        handles.pop(key, None)
    try:
        store = LookupStore(Path(data_dir))
    except (OSError, sqlite3.Error, KeyError, zstandard.ZstdError):
        return None
    handles[key] = store
    return store


def background_builder(data_dir: Path, besides: int | None = None) -> int | None:
    """The pid of a live process (other than `besides`) building this data directory's store aside (a
    background build, mirror.lookup.build.build_beside_writers), else None."""
    for path in Path(data_dir).glob(f"{LOOKUP_BUILDING_PREFIX}*.sqlite"):
        if (pid := building_pid(path)) is not None and pid != besides:
            return pid
    return None


def describe(data_dir: Path) -> dict:
    """What `mirror status` shows of the store: its path, whether it exists and is current, when it was
    built and how long that took, whether it is in WAL mode, the pid of a build at work beside the writers."""
    path = store_path(data_dir)
    out = {
        "path": str(path),
        "exists": path.is_file(),
        "current": False,
        "built_at": None,
        "build_seconds": None,
        "lagging": False,
        "wal": False,  # False: a store built before WAL mode, whose readers pause during an update's commit
        "building_pid": background_builder(data_dir),
    }
    if not out["exists"]:
        return out
    try:
        store = LookupStore(Path(data_dir))
    except (OSError, sqlite3.Error, KeyError, zstandard.ZstdError):
        return out
    try:
        meta = dict(
            store.db.execute(
                "SELECT name, value FROM lookup_meta WHERE name IN ('built_at', 'build_seconds')"
            )
        )
        out.update(built_at=meta.get("built_at"), build_seconds=meta.get("build_seconds"))
        out["wal"] = store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        answers = store.begin()
        out["current"] = answers and not store.lagging
        out["lagging"] = store.lagging  # one state behind while a writer brings it up
        if answers:
            store.end()
    except sqlite3.Error:
        pass
    finally:
        store.close()
    return out
