"""The lookup store, write side: built with each snapshot, kept current by every applied delta day.

`refresh(data_dir)` brings DATA_DIR/lookup.sqlite to the state state.json describes (call it while holding
the writer lock, after the catalog was switched to that state):

- same snapshot, new delta days: one SQLite transaction deletes and re-derives the unités légales and
  établissements of the SIRENs those days touched (their documents come from the catalog's document views,
  the single source of document truth) and re-indexes them for search. Readers keep the previous state
  until the commit, and are never locked out by it (WAL mode); a crash rolls the transaction back and the
  next run redoes it.
- anything else (first build, a new snapshot, a day removed): a full build into
  DATA_DIR/.lookup-building-<pid>.sqlite, renamed to a store file of its own (lookup-<n>.sqlite) and
  switched in by replacing the link DATA_DIR/lookup.sqlite in one os.replace. Until then lookups answer
  from the views (the store's token no longer matches state.json).

Documents are compressed one key at a time with a zstd dictionary trained on a sample of the mirror's own
documents (stored in the file), so an update rewrites one row per key and a read decompresses 2-5 KB.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import queue
import random
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import duckdb
import zstandard

from mirror.catalog.build import connect, restricted
from mirror.core.config import lookup_store_enabled, open_duckdb, store_build_mode
from mirror.core.datadir import (
    LOOKUP_BUILDING_PREFIX,
    LOOKUP_FILE_PREFIX,
    SQLITE_SIDE_FILES,
    fsync_dir,
    read_state,
    store_files,
    update_state,
    writer_lock,
)
from mirror.core.errors import MirrorError, WriterBusy, first_line
from mirror.core.faults import crash_point
from mirror.core.sql import ident, literal, render
from mirror.deltas.store import day_dir
from mirror.lookup import insee, search_index
from mirror.lookup.store import (
    FORMAT_VERSION,
    GRACE_FIELD,
    INSEE_TABLES,
    ROW_TABLES,
    VARIANTS,
    background_builder,
    decode_variants,
    encode_variants,
    state_token,
    store_path,
)

FORMATS = ("v3", "v4")  # v2, API Entreprise's retired version, is answered by the views
DICT_BYTES = 400_000
DICT_SAMPLES = 4_000
LEVEL = 9  # full builds: the smallest blobs (165 B per établissement at 1 M units against 198 B at 6)
# Bytes the -wal file is cut back to once checkpointed: without a limit it keeps its largest size.
WAL_SIZE_LIMIT = 64 * 2**20
DAY_LEVEL = 3  # update days: 8x faster to compress; the few rows a day rewrites are 10-15 % larger
_DELTA_TABLES_WITH_SIREN = (
    "unites_legales",
    "etablissements",
    "unites_legales_historique",
    "etablissements_historique",
)
_SCHEMA = """
CREATE TABLE lookup_meta (name TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE lookup_unites_legales (siren TEXT PRIMARY KEY, statut TEXT, siege TEXT, documents BLOB) WITHOUT ROWID;
CREATE TABLE lookup_etablissements (siret TEXT PRIMARY KEY, statut TEXT, statut_ul TEXT, documents BLOB) WITHOUT ROWID;
CREATE TABLE lookup_doublons (siren TEXT PRIMARY KEY, replacing TEXT) WITHOUT ROWID;
CREATE TABLE lookup_insee_unites_legales (key TEXT PRIMARY KEY, record BLOB) WITHOUT ROWID;
CREATE TABLE lookup_insee_etablissements (key TEXT PRIMARY KEY, record BLOB) WITHOUT ROWID;
CREATE TABLE lookup_rows (siren TEXT PRIMARY KEY, rows BLOB) WITHOUT ROWID;
"""


def _store_token(path: Path) -> dict | None:
    """The token of an existing store, None when there is none or it cannot be read."""
    if not path.is_file():
        return None
    try:
        db = sqlite3.connect(path)
        try:
            row = db.execute("SELECT value FROM lookup_meta WHERE name = 'token'").fetchone()
            version = db.execute("SELECT value FROM lookup_meta WHERE name = 'format_version'").fetchone()
        finally:
            db.close()
    except sqlite3.Error:
        return None
    if row is None or version is None or version[0] != FORMAT_VERSION:
        return None
    return json.loads(row[0])


def maintain(data_dir: Path, progress: Callable[[str], None] | None = None) -> str | None:
    """refresh() for the writers (load, update, sync) once their state is published: a failure does not
    undo their work, lookups then answer from the views. A whole new store is built in a detached `mirror
    store` instead when core.config.store_build_mode says "background" (a large mirror). Returns a note for
    the user, or None."""
    if not lookup_store_enabled():
        return None
    t0 = time.monotonic()
    try:
        what, _have, _wanted, units = _plan(data_dir)
        if what == "full" and store_build_mode(units) == "background":
            return start_background_build(data_dir)
        done = refresh(data_dir, progress)
    except (MirrorError, duckdb.Error, sqlite3.Error, zstandard.ZstdError, OSError) as exc:
        first = first_line(exc)
        with contextlib.suppress(MirrorError):  # the views answer from now on, not the previous state
            update_state(data_dir, **{GRACE_FIELD: None})
        return (
            f"Lookup store not updated ({first}): lookups answer from the views until `mirror store` succeeds"
        )
    if done == "built":
        size = store_path(data_dir).stat().st_size
        return f"Lookup store built in {time.monotonic() - t0:.1f}s ({size / 1e6:,.0f} MB)."
    return None


def plan(data_dir: Path) -> str:
    """What refresh() would do now: "current", "days" (apply the delta days the store lacks) or "full"."""
    return _plan(data_dir)[0]


def _plan(data_dir: Path) -> tuple[str, dict | None, dict | None, int | None]:
    """(plan, the store's token, the token state.json wants, the snapshot's number of units)."""
    state = read_state(Path(data_dir))
    if not state.get("snapshot"):
        return "current", None, None, None
    units = (state["snapshot"].get("rows") or {}).get("unites_legales")
    wanted = state_token(state)
    have = _store_token(store_path(data_dir))
    if have == wanted:
        return "current", have, wanted, units
    return ("days" if _catches_up(have, wanted) else "full"), have, wanted, units


def _catches_up(have: dict | None, wanted: dict) -> bool:
    """Whether a store built for `have` reaches `wanted` by applying delta days (same snapshot load)."""
    return (
        have is not None
        and have["snapshot"] == wanted["snapshot"]
        and have["loaded_at"] == wanted["loaded_at"]
        and set(have["deltas"]) <= set(wanted["deltas"])
    )


def refresh(data_dir: Path, progress: Callable[[str], None] | None = None) -> str:
    """Makes the store current for state.json; returns what was done ("current", "updated", "built")."""
    data_dir = Path(data_dir)
    what, have, wanted, _units = _plan(data_dir)
    if what == "current":
        return "current"
    con = connect(data_dir, read_only=True)
    try:
        if what == "days":
            _apply_days(con, data_dir, store_path(data_dir), have, wanted)
            return "updated"
        build(con, data_dir, wanted, progress)
        return "built"
    finally:
        con.close()


# ------------------------------------------------------------------------------------------------
# Background builds: a whole store built beside the writers, switched in under the writer lock
# ------------------------------------------------------------------------------------------------

BUILD_LOG = "lookup-build.log"  # DATA_DIR/lookup-build.log: what the background builds printed
SWITCH_WAIT_SECONDS = 3600  # how long a background build waits for the writer lock to switch its store in
BUILD_ATTEMPTS = 3  # a new snapshot published during a build makes it start again, at most this often
_STARTED: list = []  # the builders this process started and has not reaped yet (no zombie outlives a run)


def start_background_build(data_dir: Path) -> str:
    """Starts a detached `mirror store` on `data_dir` (unless one is at work), its output appended to
    DATA_DIR/lookup-build.log; returns the note for the user. The build does not hold the writer lock (the
    caller's runs on, later days apply meanwhile); the store it builds is switched in under the lock and
    brought to the days applied since (build_beside_writers)."""
    import subprocess
    import sys

    data_dir = Path(data_dir)
    _STARTED[:] = [child for child in _STARTED if child.poll() is None]
    pid = background_builder(data_dir)
    if pid is None:
        log = open(data_dir / BUILD_LOG, "ab")  # noqa: SIM115 (handed to the child)
        try:
            log.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} mirror store\n".encode())
            log.flush()
            child = subprocess.Popen(
                [sys.executable, "-m", "mirror", "store", "--data-dir", str(data_dir)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # not killed with the writer's terminal or process group
                close_fds=True,  # the writer lock stays the writer's
            )
        finally:
            log.close()
        _STARTED.append(child)
        pid = child.pid
        # its file names it at once: the next maintain() of this run must not start a second build
        (data_dir / f"{LOOKUP_BUILDING_PREFIX}{pid}.sqlite").touch()
    return (
        f"Lookup store: being built in the background (pid {pid}, log {data_dir / BUILD_LOG}); "
        "lookups answer from the views until it is switched in (`mirror status` tells)."
    )


def build_beside_writers(
    data_dir: Path, progress: Callable[[str], None] | None = None, rebuild: bool = False
) -> str:
    """A whole store for the current state, built without the writer lock (writers go on meanwhile), then
    switched in under it: as it is when no writer moved on, brought to the delta days applied meanwhile, or
    built again when a new snapshot was published meanwhile (at most BUILD_ATTEMPTS times). Returns what
    was done ("current", "built"). rebuild: build even when the store is current."""
    data_dir = Path(data_dir)
    if (other := background_builder(data_dir, besides=os.getpid())) is not None:
        raise WriterBusy(
            f"the lookup store is already being built by pid {other} (log {data_dir / BUILD_LOG}); "
            "try again once it is done"
        )
    for _attempt in range(BUILD_ATTEMPTS):
        token = state_token(read_state(data_dir))
        con = connect(data_dir, read_only=True)
        try:
            tmp = _build_aside(con, data_dir, token, progress)
        finally:
            con.close()
        try:
            crash_point("lookup-built-aside")
            with writer_lock(data_dir, "mirror store (switch)", wait_seconds=SWITCH_WAIT_SECONDS):
                state = read_state(data_dir)
                wanted = state_token(state)
                if not rebuild and _store_token(store_path(data_dir)) == wanted:
                    return "current"  # a writer built it meanwhile
                if token == wanted or _catches_up(token, wanted):
                    if token != wanted:  # the days applied meanwhile, before anyone reads it
                        con = connect(data_dir, read_only=True)
                        try:
                            _apply_days(con, data_dir, tmp, token, wanted)
                        finally:
                            con.close()
                    _switch_in(tmp, data_dir)
                    return "built"
        finally:
            tmp.unlink(missing_ok=True)
    raise MirrorError(
        f"the mirror published {BUILD_ATTEMPTS} snapshots during the lookup store's builds: run `mirror store` again"
    )


# ------------------------------------------------------------------------------------------------
# Documents of a set of SIRENs (a streaming pass per level, so memory is bounded at any scale)
# ------------------------------------------------------------------------------------------------

BATCH_ROWS = 20_000


def _batches(con: duckdb.DuckDBPyConnection, sql: str, args: list | dict):
    """The rows of `sql` as Arrow record batches, streamed; DuckDB computes the next batches on a thread
    while the caller compresses and writes the current one (at most two batches wait)."""
    reader = con.execute(sql, args).to_arrow_reader(BATCH_ROWS)
    ready: queue.Queue = queue.Queue(maxsize=2)
    stop = threading.Event()
    done = object()

    def produce():
        try:
            for batch in reader:
                while not stop.is_set():
                    try:
                        ready.put(batch, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            ready.put(done)
        except BaseException as exc:  # handed to the consumer, raised there
            ready.put(exc)

    worker = threading.Thread(target=produce, name="lookup-store-batches", daemon=True)
    worker.start()
    try:
        while (item := ready.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        if worker.is_alive():
            con.interrupt()
        worker.join()


def _arrow_blobs(v3, v4):
    """The uncompressed blobs of a batch (the lines of mirror.lookup.store.encode_variants, built in Arrow:
    the documents never become Python strings)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    return pc.binary_join_element_wise("v3\t", v3, "\nv4\t", v4, "\n", "").cast(pa.binary())


def _compressor(dictionary: zstandard.ZstdCompressionDict, level: int = LEVEL) -> zstandard.ZstdCompressor:
    return zstandard.ZstdCompressor(
        level=level, dict_data=dictionary, write_checksum=False, write_dict_id=False
    )


_LEVELS = {
    # level: (table, SQL of the protected rows, SQL of the kept /diffusibles/ rows, width of the row)
    "unites_legales": ("lookup_unites_legales", "lookup/store_unites_legales.sql",
                       "lookup/store_unites_legales_diffusibles.sql"),
    "etablissements": ("lookup_etablissements", "lookup/store_etablissements.sql",
                       "lookup/store_etablissements_diffusibles.sql"),
}  # fmt: skip


def _write_level(
    con: duckdb.DuckDBPyConnection,
    db: sqlite3.Connection,
    level: str,
    dictionary: zstandard.ZstdCompressionDict | None,
    progress: Callable[[str], None] | None = None,
    zstd_level: int = LEVEL,
) -> tuple[zstandard.ZstdCompressionDict, int]:
    """Inserts the rows of one level of the catalog `con` (the whole mirror, or a restricted catalog holding
    the units an update day touched), in key order within each batch (fewer
    B-tree pages touched); trains the level's dictionary on the first batch when none is given. Returns
    (dictionary, rows written)."""
    table, protected_sql, diffusibles_sql = _LEVELS[level]
    cctx = _compressor(dictionary, zstd_level) if dictionary is not None else None
    written = 0
    for batch in _batches(con, render(protected_sql), []):
        blobs = _arrow_blobs(batch.column("document_v3"), batch.column("document_v4")).to_pylist()
        if cctx is None:
            dictionary = _train(blobs)
            cctx = _compressor(dictionary)
        # zstd compresses the batch on every core while DuckDB computes the next one.
        compressed = cctx.multi_compress_to_buffer(blobs, threads=-1)
        heads = [batch.column(i).to_pylist() for i in range(3)]
        rows = sorted(zip(*heads, (segment.tobytes() for segment in compressed), strict=True))
        db.executemany(f"INSERT OR REPLACE INTO {table} VALUES (?, ?, ?, ?)", rows)
        written += batch.num_rows
        if progress is not None:
            progress(f"lookup store: {written:,} {level.replace('_', ' ')}")
    if dictionary is None:  # nothing to write
        dictionary = _train([])
        cctx = _compressor(dictionary)
    dctx = zstandard.ZstdDecompressor(dict_data=dictionary)
    key_column = "siren" if level == "unites_legales" else "siret"
    for batch in _batches(con, render(diffusibles_sql), []):
        updates = []
        for key, v3d, v4d in zip(*(c.to_pylist() for c in batch.columns), strict=True):
            found = db.execute(f"SELECT documents FROM {table} WHERE {key_column} = ?", [key]).fetchone()
            if found is None or found[0] is None:
                continue
            variants = decode_variants(dctx.decompress(found[0]))
            variants.update({k: v for k, v in (("v3d", v3d), ("v4d", v4d)) if v is not None})
            ordered = {k: variants[k] for k in VARIANTS if k in variants}
            updates.append((cctx.compress(encode_variants(ordered)), key))
        db.executemany(f"UPDATE {table} SET documents = ? WHERE {key_column} = ?", updates)
    return dictionary, written


def _write_insee(
    con: duckdb.DuckDBPyConnection,
    db: sqlite3.Connection,
    kind: str,
    dictionary: zstandard.ZstdCompressionDict | None,
    progress: Callable[[str], None] | None = None,
    zstd_level: int = LEVEL,
) -> zstandard.ZstdCompressionDict:
    """Inserts the INSEE API Sirene records (mirror.lookup.insee: sql/insee/*.sql, every period, no date)
    of every unit (kind "siren") or établissement ("siret") of the catalog `con`, as _write_level does the
    documents; returns the dictionary (trained on the first batch when none is given)."""
    table = INSEE_TABLES[kind]
    batches = _batches(con, insee.all_records_sql(kind), {"date": None})
    label = f"INSEE records ({kind})"
    return _write_keyed_blobs(db, table, batches, dictionary, zstd_level, progress, label)


def _write_keyed_blobs(
    db: sqlite3.Connection,
    table: str,
    batches,
    dictionary: zstandard.ZstdCompressionDict | None,
    zstd_level: int,
    progress: Callable[[str], None] | None,
    label: str,
) -> zstandard.ZstdCompressionDict:
    """Inserts the (key, text) rows of the Arrow `batches` into the store table `table` (key, blob), each
    text compressed with `dictionary` (trained on the first batch when None); returns the dictionary."""
    import pyarrow as pa

    cctx = _compressor(dictionary, zstd_level) if dictionary is not None else None
    written = 0
    for batch in batches:
        blobs = batch.column(1).cast(pa.binary()).to_pylist()
        if cctx is None:
            dictionary = _train(blobs)
            cctx = _compressor(dictionary)
        # zstd compresses the batch on every core while DuckDB computes the next one.
        compressed = cctx.multi_compress_to_buffer(blobs, threads=-1)
        rows = sorted(zip(batch.column(0).to_pylist(), (c.tobytes() for c in compressed), strict=True))
        db.executemany(f"INSERT OR REPLACE INTO {table} VALUES (?, ?)", rows)
        written += batch.num_rows
        if progress is not None:
            progress(f"lookup store: {written:,} {label}")
    return dictionary if dictionary is not None else _train([])


ROWS_PER_RANGE = 500_000  # units per store_rows.sql query of a full build: bounded list aggregates


def _write_rows(
    con: duckdb.DuckDBPyConnection,
    db: sqlite3.Connection,
    dictionary: zstandard.ZstdCompressionDict | None,
    progress: Callable[[str], None] | None = None,
    zstd_level: int = LEVEL,
) -> zstandard.ZstdCompressionDict:
    """Inserts, per SIREN of the catalog `con`, its current rows and historique periods (the four base views)
    as the compressed lines `<table>\t<JSON array>`: what mirror.serve.documents.point_in_time needs for a
    `--date` document without scanning the Parquet tables. A large mirror is read in SIREN ranges of about
    ROWS_PER_RANGE units, so that the list aggregates stay bounded. Returns the dictionary (trained on the
    first batch when none is given)."""
    (units,) = con.execute("SELECT count(*) FROM unites_legales").fetchone()
    ranges = max(1, -(-units // ROWS_PER_RANGE))
    bounds = [""]
    if ranges > 1:
        cuts = [i / ranges for i in range(1, ranges)]
        (quantiles,) = con.execute(render("lookup/store_rows_bounds.sql"), [cuts]).fetchone()
        bounds += sorted(set(quantiles))
    bounds.append("\uffff")  # above any SIREN
    batches = (
        batch
        for low, high in zip(bounds, bounds[1:], strict=False)
        for batch in _batches(con, render("lookup/store_rows.sql"), {"low": low, "high": high})
    )
    label = "units' rows for point-in-time documents"
    return _write_keyed_blobs(db, "lookup_rows", batches, dictionary, zstd_level, progress, label)


def _rows_structure(con: duckdb.DuckDBPyConnection) -> str:
    """{base view: from_json structure of a list of its rows} as JSON: the column names and types the rows
    of lookup_rows were written with."""
    return json.dumps(
        {
            table: con.execute(render("lookup/store_rows_structure.sql", table=ident(table))).fetchone()[0]
            for table in ROW_TABLES
        }
    )


def _write_doublons(con: duckdb.DuckDBPyConnection, db: sqlite3.Connection) -> None:
    db.execute("DELETE FROM lookup_doublons")
    db.executemany(
        "INSERT INTO lookup_doublons VALUES (?, ?)",
        con.execute(render("lookup/store_doublons.sql")).fetchall(),
    )


def _set_meta(db: sqlite3.Connection, **values) -> None:
    db.executemany("INSERT OR REPLACE INTO lookup_meta VALUES (?, ?)", list(values.items()))


def _train(samples: list[bytes]) -> zstandard.ZstdCompressionDict:
    """A zstd dictionary trained on a deterministic sample of the first batch's blobs, about 1/40 of the
    sample's size (at most DICT_BYTES), precomputed for LEVEL so each compression does not reload it."""
    if len(samples) > DICT_SAMPLES:
        samples = random.Random(0).sample(samples, DICT_SAMPLES)
    total = sum(map(len, samples))
    dictionary = None
    if len(samples) >= 100:
        with contextlib.suppress(zstandard.ZstdError):
            # Fixed COVER parameters: the default search over k and d took 8x longer for 0.5 % smaller blobs.
            size = max(16_384, min(DICT_BYTES, total // 40))
            dictionary = zstandard.train_dictionary(size, samples, k=1000, d=8)
    if dictionary is None:  # too little to train on (a tiny mirror): the content itself is the dictionary
        content = b"".join(samples)[-DICT_BYTES:] or b"{}"
        dictionary = zstandard.ZstdCompressionDict(content, dict_type=zstandard.DICT_TYPE_RAWCONTENT)
    dictionary.precompute_compress(level=LEVEL)
    return dictionary


# ------------------------------------------------------------------------------------------------
# Full build
# ------------------------------------------------------------------------------------------------


def build(
    con: duckdb.DuckDBPyConnection,
    data_dir: Path,
    token: dict,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Builds the whole store aside from the catalog `con`, then switches it in (_switch_in)."""
    return _switch_in(_build_aside(con, data_dir, token, progress), data_dir)


def _build_aside(
    con: duckdb.DuckDBPyConnection,
    data_dir: Path,
    token: dict,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """The whole store for `token`, from the catalog `con`, in DATA_DIR/.lookup-building-<pid>.sqlite (read
    by nobody, removed on failure); returns its path."""
    t0 = time.monotonic()
    tmp = data_dir / f"{LOOKUP_BUILDING_PREFIX}{os.getpid()}.sqlite"
    for suffix in SQLITE_SIDE_FILES:
        tmp.with_name(tmp.name + suffix).unlink(missing_ok=True)
    if tmp.exists():  # emptied, not removed: the file names this build to other processes throughout
        os.truncate(tmp, 0)
    db = sqlite3.connect(tmp, isolation_level=None)
    try:
        db.execute("PRAGMA page_size = 8192")
        db.execute("PRAGMA journal_mode = OFF")  # a build file nobody reads until it is complete
        db.execute("PRAGMA synchronous = OFF")
        db.executescript(_SCHEMA)
        search_index.create_schema(db)
        db.execute("BEGIN")
        dict_ul, _ = _write_level(con, db, "unites_legales", None, progress)
        dict_et, _ = _write_level(con, db, "etablissements", None, progress)
        t_insee = time.monotonic()
        dict_insee = {kind: _write_insee(con, db, kind, None, progress) for kind in INSEE_TABLES}
        insee_seconds = time.monotonic() - t_insee
        t_rows = time.monotonic()
        dict_rows = _write_rows(con, db, None, progress)
        rows_seconds = time.monotonic() - t_rows
        _write_doublons(con, db)
        if progress is not None:
            progress("lookup store: search index")
        search_index.index_units(db, con)
        _set_meta(
            db,
            format_version=FORMAT_VERSION,
            token=json.dumps(token, sort_keys=True),
            dictionary_unites_legales=dict_ul.as_bytes(),
            dictionary_etablissements=dict_et.as_bytes(),
            dictionary_insee_unites_legales=dict_insee["siren"].as_bytes(),
            dictionary_insee_etablissements=dict_insee["siret"].as_bytes(),
            dictionary_rows=dict_rows.as_bytes(),
            rows_structure=_rows_structure(con),
            insee_seconds=round(insee_seconds, 1),
            rows_seconds=round(rows_seconds, 1),
            built_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            build_seconds=round(time.monotonic() - t0, 1),
        )
        db.execute("COMMIT")
        crash_point("lookup-before-switch")
        # WAL: a daily update's commit appends to the -wal file while readers go on reading, where a rollback
        # journal locked them out for its whole write-out (a p99 of 100 ms under load, docs/BENCHMARKS.md)
        db.execute("PRAGMA journal_mode = WAL")
    except BaseException:
        db.close()
        tmp.unlink(missing_ok=True)
        raise
    db.close()
    return tmp


def _switch_in(tmp: Path, data_dir: Path) -> Path:
    """Makes the built store `tmp` the one DATA_DIR/lookup.sqlite links to, durably: `tmp` gets a file name
    of its own (lookup-<n>.sqlite), then the link is replaced in one rename. Readers holding the previous
    file keep reading it (mirror.lookup.store reopens on the next lookup); it is removed with its side
    files. A database in WAL mode must never be replaced under its own name: its -wal and -shm files,
    named after it and still open in the readers, would be read as the new database's."""
    link = store_path(data_dir)
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    for n in itertools.count(time.time_ns()):
        name = f"{LOOKUP_FILE_PREFIX}{n}.sqlite"
        if not (data_dir / name).exists():
            break
    os.rename(tmp, data_dir / name)
    staged = data_dir / f"{LOOKUP_BUILDING_PREFIX}{os.getpid()}.link"
    staged.unlink(missing_ok=True)
    os.symlink(name, staged)
    previous = store_files(data_dir)  # before the switch: the files the link names now
    os.replace(staged, link)
    fsync_dir(data_dir)
    for old in previous - store_files(data_dir) - {link.name}:
        (data_dir / old).unlink(missing_ok=True)
    return link


# ------------------------------------------------------------------------------------------------
# Delta days
# ------------------------------------------------------------------------------------------------


def _touched(data_dir: Path, have: dict, wanted: dict) -> tuple:
    """(units, sirets) the delta days applied after the store's state changed, as Arrow tables."""
    seq = int(have.get("delta_seq") or 0)
    out = []
    for tables, sql in (
        (("unites_legales", "unites_legales_historique"), "lookup/touched_units.sql"),
        (("etablissements", "etablissements_historique"), "lookup/touched_etablissements.sql"),
    ):
        files = [day_dir(data_dir, _day(d)) / f"{t}.parquet" for d in wanted["deltas"] for t in tables]
        files = [f for f in files if f.is_file()]
        con = open_duckdb()
        try:
            if files:
                listed = "[" + ", ".join(literal(f) for f in files) + "]"
                out.append(con.execute(render(sql, files=listed), [seq]).to_arrow_table())
            else:
                column = "siren" if tables[0] == "unites_legales" else "siret"
                out.append(
                    con.execute(f"SELECT NULL::VARCHAR AS {ident(column)} WHERE false").to_arrow_table()
                )
        finally:
            con.close()
    return tuple(out)


def _apply_days(con: duckdb.DuckDBPyConnection, data_dir: Path, path: Path, have: dict, wanted: dict) -> None:
    """Re-derives, in one transaction, what the days applied after the store's state touched: the units
    whose rows changed (their document and every établissement document, which nests the unit), the
    établissements whose rows changed, and the search rows of all their units. The documents come from
    restricted catalogs (the same views over base views holding only those units)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    units, sirets = _touched(data_dir, have, wanted)
    unit_of_siret = pc.utf8_slice_codeunits(sirets.column("siret").combine_chunks(), 0, 9)
    affected = pa.table({"siren": pa.concat_arrays([units.column("siren").combine_chunks(), unit_of_siret])})
    search = restricted(data_dir, affected)
    try:
        docs = restricted(data_dir, units, sirets, rows_from=search)  # a subset of search's rows
    except BaseException:
        search.close()
        raise
    try:
        rewritten = sorted({r[0] for r in docs.execute("SELECT siren FROM unites_legales").fetchall()})
        unit_keys = units.column("siren").to_pylist()
        db = sqlite3.connect(path, isolation_level=None, timeout=60)
        try:
            db.execute("PRAGMA cache_size = -1000000")  # the whole transaction in memory
            db.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}")  # the -wal file, once checkpointed
            meta = dict(db.execute("SELECT name, value FROM lookup_meta").fetchall())
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany("DELETE FROM lookup_unites_legales WHERE siren = ?", [(s,) for s in rewritten])
                db.executemany(
                    "DELETE FROM lookup_insee_unites_legales WHERE key = ?", [(s,) for s in rewritten]
                )
                for table, key in (
                    ("lookup_etablissements", "siret"),
                    ("lookup_insee_etablissements", "key"),
                ):
                    db.executemany(
                        f"DELETE FROM {table} WHERE {key} >= ? AND {key} < ?",
                        [(s, s + ":") for s in unit_keys],
                    )
                    db.executemany(
                        f"DELETE FROM {table} WHERE {key} = ?",
                        [(s,) for s in sirets.column("siret").to_pylist()],
                    )
                for level in _LEVELS:
                    _write_level(docs, db, level, _day_dictionary(meta, level), zstd_level=DAY_LEVEL)
                for kind, level in (("siren", "insee_unites_legales"), ("siret", "insee_etablissements")):
                    _write_insee(docs, db, kind, _day_dictionary(meta, level), zstd_level=DAY_LEVEL)
                # every row of the affected units (the `search` catalog holds all their établissements)
                db.executemany(
                    "DELETE FROM lookup_rows WHERE siren = ?",
                    [(s,) for s in set(affected.column("siren").to_pylist())],
                )
                _write_rows(search, db, _day_dictionary(meta, "rows"), zstd_level=DAY_LEVEL)
                _write_doublons(con, db)
                search_index.index_units(db, search, sirens="restricted_units")
                _set_meta(db, token=json.dumps(wanted, sort_keys=True))
                crash_point("lookup-before-commit")
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        finally:
            db.close()
    finally:
        docs.close()
        search.close()


def _day_dictionary(meta: dict, level: str) -> zstandard.ZstdCompressionDict:
    """The full build's dictionary of a level, prepared for the update days' compression level."""
    dictionary = zstandard.ZstdCompressionDict(meta[f"dictionary_{level}"])
    dictionary.precompute_compress(level=DAY_LEVEL)
    return dictionary


def _day(text: str) -> date:
    return date.fromisoformat(text)
