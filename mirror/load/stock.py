"""Monthly stock files -> a typed, partitioned Parquet snapshot, published atomically.

`load_snapshot(data_dir, paths, month=None, force=False, progress=False, keep=2)` is the whole job
behind `mirror load`: find the six files among `paths` (by name), read them (zipped CSV, plain CSV or
INSEE Parquet, any layout: columns are read by name), type them with the shared typing SQL, write
`DATA_DIR/snapshots/.building-<month>-<pid>/<table>/...parquet`, validate, and publish
(mirror.load.publish: rename, catalog switch, state.json, retention).

The typing SQL is shared with the daily updates (mirror.core.typed).
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import re
import shutil
import signal
import sys
import threading
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb

from mirror.core import datadir as snap
from mirror.core.config import tuned_connection
from mirror.core.errors import BadInput, IntegrityError, MirrorError
from mirror.core.faults import crash_point
from mirror.core.schema import (
    GEOLOCALISATION,
    KEY_COLUMNS,
    LAYOUTS,
    SIRET_INDEX,
    SORT_KEYS,
    STOCK_FILES,
    StockFile,
)
from mirror.core.sql import ident, literal, render
from mirror.core.typed import (
    geolocated_select_sql,
    geolocation_select_sql,
    prepare_connection,
    typed_select_sql,
)
from mirror.load import publish
from mirror.lookup import build as lookup_build

ROW_GROUP_SIZE = 100_000
MIN_SHARE_OF_PREVIOUS = 0.98
FRESHNESS_DAYS = 7  # max dateDernierTraitement must be >= (1st of the stock month - 7 days)
LINE_MISMATCH_TOLERANCE = 1e-4  # CSV physical lines vs records read (multi-line fields are legal)
_MONTH_IN_NAME = re.compile(r"(?<!\d)((?:19|20)\d{2})-(0[1-9]|1[0-2])(?:-\d{2})?(?!\d)")


# ------------------------------------------------------------------------------------------------
# Finding and reading the stock files
# ------------------------------------------------------------------------------------------------

# The six stock files, and the optional seventh input: INSEE's geolocation file (mirror.core.schema).
INPUT_FILES = (*STOCK_FILES, GEOLOCALISATION)
_FILE_RE = re.compile(
    r"^(?:.*[^A-Za-z])?(" + "|".join(f.name for f in INPUT_FILES) + r")_utf8\.(zip|parquet|csv)$",
    re.IGNORECASE,
)
_CANONICAL = {f.name.lower(): f for f in INPUT_FILES}


@dataclass
class Source:
    stock: StockFile
    path: Path
    fmt: str  # zip | parquet | csv
    columns: list[str] = field(default_factory=list)
    layout: str | None = None
    source_rows: int | None = (
        None  # rows of the source as counted independently (Parquet metadata, CSV lines)
    )


def find_sources(paths: list[Path]) -> tuple[dict[str, Source], list[str]]:
    """Which given file is which stock file (by name: `<Name>_utf8.zip|parquet|csv`, optionally with a
    dated prefix). Folders are scanned (not recursively). Parquet wins over zip when both are present.
    The geolocation file, when given, is found under the key "geolocalisation" (its absence is no warning:
    it is an optional input of its own, not one of the six stock files)."""
    warnings: list[str] = []
    candidates: list[Path] = []
    for p in paths:
        p = Path(p).expanduser()
        if p.is_dir():
            candidates += sorted(c for c in p.iterdir() if c.is_file())
        elif p.is_file():
            candidates.append(p)
        else:
            raise MirrorError(f"no such file or folder: {p}")
    found: dict[str, Source] = {}
    for c in candidates:
        m = _FILE_RE.match(c.name)
        if not m:
            if any(c.name == p.name for p in map(Path, paths)):
                raise MirrorError(
                    f"{c.name}: not a Sirene stock file name (expected e.g. StockEtablissement_utf8.zip)"
                )
            continue
        stock = _CANONICAL[m.group(1).lower()]
        fmt = m.group(2).lower()
        prev = found.get(stock.key)
        if prev:
            rank = {"parquet": 0, "zip": 1, "csv": 2}
            if rank[fmt] == rank[prev.fmt]:
                raise MirrorError(f"two files for {stock.name}: {prev.path} and {c}; give only one")
            keep, drop = (c, prev.path) if rank[fmt] < rank[prev.fmt] else (prev.path, c)
            warnings.append(f"{stock.name}: using {keep.name}, ignoring {drop.name}")
            if keep == prev.path:
                continue
        found[stock.key] = Source(stock, c.resolve(), fmt)
    for stock in STOCK_FILES:
        if stock.key not in found:
            if stock.required:
                raise MirrorError(
                    f"{stock.name} is missing: give {stock.zip_name} or {stock.parquet_name} (file or folder)"
                )
            warnings.append(f"{stock.name} not found: the `{stock.key}` view will be empty")
    return found, warnings


def month_from_names(sources: dict[str, Source]) -> str | None:
    """A YYYY-MM found in the file names, else in their folder names (e.g. downloads/2026-10/). The
    geolocation file's name is not used: it is published around the 21st, under a month of its own."""
    for attr in ("name", "parent"):
        months = set()
        for s in sources.values():
            if s.stock is GEOLOCALISATION:
                continue
            text = s.path.name if attr == "name" else s.path.parent.name
            m = _MONTH_IN_NAME.search(text)
            if m:
                months.add(f"{m.group(1)}-{m.group(2)}")
        if len(months) == 1:
            return months.pop()
    return None


def detect_layout(stock: StockFile, columns: list[str]) -> tuple[str | None, list[str], list[str]]:
    """(newest layout whose columns are all present, current columns missing, unknown extra columns)."""
    present = set(columns)
    known = set(stock.columns)
    extra = [c for c in columns if c not in known]
    missing = [c for c in stock.columns if c not in present]
    for layout in reversed(LAYOUTS):
        if set(stock.header(layout)) <= present:
            return layout, missing, extra
    return None, missing, extra


# A header line longer than this is not a Sirene header (the widest, 3.11 établissements, is ~1.4 KB).
MAX_HEADER_BYTES = 1 << 20


def _read_header_line(line: bytes, name: str, delimiter: str = ",") -> list[str]:
    """The CSV header of `name` from its first line: BadInput for an empty file or a line that is no header
    (no newline in the first megabyte, a field over the csv module's limit, undecodable bytes)."""
    if not line.strip():
        raise BadInput(f"{name}: empty CSV (no header line)")
    if len(line) > MAX_HEADER_BYTES:
        raise BadInput(f"{name}: the first line is over {MAX_HEADER_BYTES >> 20} MB: not a Sirene CSV header")
    try:
        text = line.decode("utf-8-sig").rstrip("\r\n")
        header = next(csv.reader(io.StringIO(text), delimiter=delimiter, quotechar='"'), None)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise BadInput(f"{name}: unreadable CSV header ({exc})") from exc
    if not header:
        raise BadInput(f"{name}: empty CSV (no header line)")
    return header


def _extract_csv(
    src: Source, tmp_dir: Path, stop: threading.Event | None = None
) -> tuple[Path, list[str], int]:
    """Stream-decompresses the CSV member of a zip into tmp_dir; returns (path, header, physical lines).
    Gives up (MirrorError) as soon as `stop` is set."""
    tmp_dir.mkdir(parents=True, exist_ok=True)
    try:
        zf = zipfile.ZipFile(src.path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise MirrorError(f"{src.path.name}: not a readable zip file ({exc})") from exc
    with zf:
        names = [n for n in zf.namelist() if n.lower().endswith(".csv")]
        member = next(
            (n for n in names if Path(n).name == src.stock.csv_member), names[0] if len(names) == 1 else None
        )
        if member is None:
            raise MirrorError(
                f"{src.path.name}: no {src.stock.csv_member} inside (found {', '.join(names) or 'no CSV'})"
            )
        out = tmp_dir / src.stock.csv_member
        lines = 0
        first = b""
        last = b"\n"
        try:
            with zf.open(member) as fin, open(out, "wb") as fout:
                while chunk := fin.read(16 << 20):
                    if stop is not None and stop.is_set():
                        raise MirrorError(f"{src.path.name}: extraction stopped")
                    if not first:
                        first = chunk[: chunk.find(b"\n") + 1 if b"\n" in chunk else len(chunk)]
                    lines += chunk.count(b"\n")
                    last = chunk[-1:]
                    fout.write(chunk)
        except (OSError, zipfile.BadZipFile, EOFError) as exc:
            raise MirrorError(f"{src.path.name}: corrupt or truncated zip ({exc})") from exc
    if last != b"\n":
        lines += 1
    return out, _read_header_line(first, f"{src.path.name}: {member}", src.stock.delimiter), lines


def _csv_header_and_lines(path: Path, delimiter: str = ",") -> tuple[list[str], int]:
    lines = 0
    last = b"\n"
    with open(path, "rb") as fh:
        first = fh.readline(MAX_HEADER_BYTES + 1)
        fh.seek(0)
        while chunk := fh.read(16 << 20):
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    return _read_header_line(first, path.name, delimiter), lines + (last != b"\n")


def _csv_source_sql(path: Path, header: list[str], delimiter: str = ",") -> str:
    cols = "{" + ", ".join(f"{literal(c)}: 'VARCHAR'" for c in header) + "}"
    return (
        f"read_csv({literal(path)}, header = true, delim = {literal(delimiter)}, quote = '\"', escape = '\"', "
        f"auto_detect = false, columns = {cols}, strict_mode = false, null_padding = false)"
    )


# ------------------------------------------------------------------------------------------------
# The load
# ------------------------------------------------------------------------------------------------


def _connect_for_build(build_dir: Path) -> duckdb.DuckDBPyConnection:
    con = tuned_connection(build_dir / ".tmp")
    con.execute("SET preserve_insertion_order = true")
    prepare_connection(con)
    return con


def _parquet_opts(row_group_size: int | None = None, compression: str = "zstd") -> str:
    return f"FORMAT parquet, COMPRESSION {compression}, ROW_GROUP_SIZE {row_group_size or ROW_GROUP_SIZE}"


def _open_source(con, src: Source, tmp_dir: Path, extracted=None) -> tuple[str, dict[str, str], Path | None]:
    """(SQL relation, column -> type, extracted CSV to delete or None) of a source file; sets
    src.source_rows (Parquet metadata, or CSV lines minus the header) and src.columns."""
    if src.fmt == "parquet":
        try:
            rel = con.sql(f"SELECT * FROM read_parquet({literal(src.path)}) LIMIT 0")
            src.source_rows = con.sql(f"SELECT count(*) FROM read_parquet({literal(src.path)})").fetchone()[0]
        except duckdb.Error as exc:
            raise MirrorError(f"{src.path.name}: not a readable Parquet file ({exc})") from exc
        source_types = {c: str(t) for c, t in zip(rel.columns, rel.types, strict=True)}
        source_sql = f"read_parquet({literal(src.path)})"
        csv_path = None
    else:
        if src.fmt == "zip":
            csv_path, header, lines = extracted.result() if extracted else _extract_csv(src, tmp_dir)
        else:
            csv_path = src.path
            header, lines = _csv_header_and_lines(src.path, src.stock.delimiter)
        if len(set(header)) != len(header):
            raise MirrorError(f"{src.path.name}: duplicate column names in the header")
        source_types = dict.fromkeys(header, "VARCHAR")
        src.source_rows = max(lines - 1, 0)
        source_sql = _csv_source_sql(csv_path, header, src.stock.delimiter)
    src.columns = list(source_types)
    return source_sql, source_types, (csv_path if src.fmt == "zip" else None)


@contextlib.contextmanager
def _read_errors(src: Source):
    """DuckDB's errors while reading `src` as one line naming the file; its Ctrl-C as KeyboardInterrupt."""
    try:
        yield
    except duckdb.InterruptException:
        raise KeyboardInterrupt from None
    except duckdb.Error as exc:
        raise MirrorError(
            f"{src.path.name}: cannot be read as {src.stock.name}: {str(exc).splitlines()[0]}"
        ) from exc


# The temporary table of the geolocation rows joined with the établissements (one row per siret).
GEOLOCATION_TABLE = "_mirror_geolocalisation"


def _stage_geolocation(con, src: Source, tmp_dir: Path, extracted=None) -> dict[str, int]:
    """Reads the geolocation file into the temporary table GEOLOCATION_TABLE (sql/catalog/
    typed_geolocalisation.sql: WGS84 coordinates, quality, IRIS, QPV; one row per siret); returns
    {"rows": rows of the file, "sirets": distinct sirets kept}."""
    source_sql, source_types, csv_path = _open_source(con, src, tmp_dir, extracted)
    try:
        if "siret" not in source_types:
            raise MirrorError(f"{src.path.name}: column siret missing; is this really {src.stock.name}?")
        select = geolocation_select_sql(source_sql, source_types)
        with _read_errors(src):
            con.execute(f"CREATE OR REPLACE TEMP TABLE {GEOLOCATION_TABLE} AS {select}")
    finally:
        if csv_path is not None:
            csv_path.unlink(missing_ok=True)
    (sirets,) = con.sql(f"SELECT count(*) FROM {GEOLOCATION_TABLE}").fetchone()
    return {"rows": int(src.source_rows or 0), "sirets": int(sirets)}


def _write_table(
    con, src: Source, build_dir: Path, warnings: list[str], extracted=None, geolocated: bool = False
) -> int:
    """Types one stock file and writes it under build_dir/<table>/; returns the rows written.
    `extracted`: for a zip, a Future of its _extract_csv already under way (else it is extracted here).
    `geolocated`: join the établissements with GEOLOCATION_TABLE (see _stage_geolocation)."""
    key = src.stock.key
    tmp_dir = build_dir / ".tmp"
    source_sql, source_types, csv_path = _open_source(con, src, tmp_dir, extracted)
    layout, missing, extra = detect_layout(src.stock, src.columns)
    src.layout = layout
    for k in KEY_COLUMNS[src.stock.key]:
        if k not in source_types:
            raise MirrorError(f"{src.path.name}: column {k} missing; is this really {src.stock.name}?")
    if extra:
        warnings.append(f"{src.stock.name}: unknown column(s) kept as they are: {', '.join(extra)}")
    if layout is None:
        warnings.append(
            f"{src.stock.name}: unrecognised layout; missing columns set to NULL: {', '.join(missing)}"
        )
    typed = typed_select_sql(key, source_sql, source_types)
    if geolocated and key == "etablissements":
        typed = geolocated_select_sql(typed, GEOLOCATION_TABLE)
    out = build_dir / key
    sort = ", ".join(ident(c) for c in SORT_KEYS[key])
    try:
        with _read_errors(src):
            if key == "etablissements":
                written = _write_partitioned(con, typed, build_dir, sort)
            else:
                written = _write_sorted(con, typed, out, SORT_KEYS[key])
    except OSError as exc:  # pyarrow's partition writes (disk full, permissions): ArrowIOError is an OSError
        raise MirrorError(f"cannot write {key} into {build_dir}: {exc}") from exc
    finally:
        if csv_path is not None:
            csv_path.unlink(missing_ok=True)
    if src.fmt != "parquet" and src.source_rows != written:
        diff = abs(src.source_rows - written)
        msg = f"{src.stock.name}: {written} records read from {src.source_rows} CSV lines"
        if diff > max(10, src.source_rows * LINE_MISMATCH_TOLERANCE) or written > src.source_rows:
            raise MirrorError(msg + ": the CSV looks malformed")
        warnings.append(msg + " (multi-line fields?)")
        src.source_rows = written
    return written


def _row_groups_sorted(con, path: Path, column: str) -> bool:
    """True when the row groups of a Parquet file are in `column` order (each min >= the previous max),
    read from the row-group statistics only."""
    stats = con.sql(
        f"SELECT stats_min_value, stats_max_value FROM parquet_metadata({literal(path)}) "
        f"WHERE path_in_schema = {literal(column)} ORDER BY row_group_id"
    ).fetchall()
    if len(stats) <= 1 or any(mn is None or mx is None for mn, mx in stats):
        return False  # one row group (a small table: sorting it is cheap) or no statistics
    return all(stats[i][0] >= stats[i - 1][1] for i in range(1, len(stats)))


def _write_sorted(
    con, typed: str, out: Path, keys: tuple[str, ...], row_group_size: int | None = None
) -> int:
    """Writes a table in its key order. INSEE's files are already sorted by siren/siret: the source order
    is kept (preserve_insertion_order) and checked on the row-group statistics (each row group's key
    range after the previous one); only when it is not is the table rewritten with an ORDER BY (small
    tables always are). Either way a lookup by key reads one row group."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "data_0.parquet"
    opts = _parquet_opts(row_group_size)
    (written,) = con.execute(f"COPY ({typed}) TO {literal(path)} ({opts})").fetchone()
    if not _row_groups_sorted(con, path, keys[0]):
        unsorted = out / "unsorted.parquet"
        os.replace(path, unsorted)
        order = ", ".join(ident(k) for k in keys)
        con.execute(
            f"COPY (SELECT * FROM read_parquet({literal(unsorted)}) ORDER BY {order}) TO {literal(path)} ({opts})"
        )
        unsorted.unlink()
    return written


# Rows held in memory across the partition buffers of one writer before the biggest are written out early
# (bounds the load's memory at national scale: ~1 GB of Arrow data for the wide établissement rows).
MAX_BUFFERED_ROWS = 2_000_000
HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"


class _PartitionWriter:
    """Hive partitions by departement from typed Arrow batches in source order: one pyarrow ParquetWriter
    per partition (file `name` in each partition folder), a row group each time a partition has
    ROW_GROUP_SIZE rows buffered (or when the buffers hold MAX_BUFFERED_ROWS rows: the biggest are written
    first). Keeps track of the partitions that received rows out of `key` order."""

    def __init__(self, final: Path, schema, key: str, name: str):
        import pyarrow as pa

        self.final, self.key, self.name = final, key, name
        self.schema = pa.schema([f for f in schema if f.name != "departement"])
        self.writers: dict = {}
        self.buffers: dict = {}
        self.buffered: dict = {}
        self.last: dict = {}
        self.unsorted: set = set()
        self.total = 0

    def path(self, dep) -> Path:
        return self.final / f"departement={HIVE_NULL if dep is None else dep}" / self.name

    def add_batch(self, batch) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        deps = batch.column("departement")
        order = pc.sort_indices(deps, null_placement="at_end")  # a stable sort: source order kept
        runs = pc.run_end_encode(pc.take(deps, order))
        rows = pa.Table.from_batches([batch]).drop_columns(["departement"])
        start = 0
        for dep, end in zip(runs.values.to_pylist(), runs.run_ends.to_pylist(), strict=True):
            # take() copies the partition's rows into buffers of their own: a buffered partition never
            # keeps the whole batch alive (small partitions stay buffered for most of the file)
            self._append(dep, rows.take(order.slice(start, end - start)))
            start = end
        while self.total > MAX_BUFFERED_ROWS:
            self._flush(max(self.buffered, key=self.buffered.get))

    def _append(self, dep, rows) -> None:
        import pyarrow.compute as pc

        keys = rows.column(self.key)
        first, last = keys[0].as_py(), self.last.get(dep)
        if dep not in self.unsorted and (
            (first is not None and last is not None and first < last)
            or (len(keys) > 1 and not pc.all(pc.less_equal(keys[:-1], keys[1:])).as_py())
        ):
            self.unsorted.add(dep)
        self.last[dep] = keys[-1].as_py() or last
        self.buffers.setdefault(dep, []).append(rows)
        self.buffered[dep] = self.buffered.get(dep, 0) + len(rows)
        self.total += len(rows)
        if self.buffered[dep] >= ROW_GROUP_SIZE:
            self._flush(dep)

    def _flush(self, dep) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        rows = pa.concat_tables(self.buffers.pop(dep))
        self.total -= self.buffered.pop(dep)
        if dep not in self.writers:
            self.path(dep).parent.mkdir(parents=True, exist_ok=True)
            self.writers[dep] = pq.ParquetWriter(self.path(dep), self.schema, compression="zstd")
        self.writers[dep].write_table(rows, row_group_size=ROW_GROUP_SIZE)

    def close(self) -> None:
        try:
            for dep in list(self.buffers):
                self._flush(dep)
        finally:
            for writer in self.writers.values():
                writer.close()


def _write_partitioned(con, typed: str, build_dir: Path, sort: str) -> int:
    """Établissements: hive partitions by departement, each file sorted by siret, without sorting.

    DuckDB writes the typed rows in source order to one staging Parquet file (its parallel writer; the
    typing keeps INSEE's siret order), then threads split consecutive row-group ranges of it by
    departement (_PartitionWriter, one file per thread in each partition: `data_<k>.parquet`, each sorted
    by siret). A file whose rows arrived out of order (a source not sorted by siret) is re-sorted by
    DuckDB. (DuckDB's own PARTITION_BY write keeps no order and buffers ~100 partitions per thread: it
    needed a sorting pass and spilled gigabytes at national scale.)"""
    import pyarrow.parquet as pq

    staging = build_dir / ".staging-etablissements.parquet"  # read once, then deleted: LZ4 (fast) is enough
    opts = _parquet_opts(compression="lz4")
    (written,) = con.execute(f"COPY ({typed}) TO {literal(staging)} ({opts})").fetchone()
    final = build_dir / "etablissements"
    final.mkdir(parents=True, exist_ok=True)
    if not written:  # no rows at all: one empty typed file, so that the view still exists
        staging.unlink()
        (final / f"departement={HIVE_NULL}").mkdir()
        con.execute(
            f"COPY (SELECT * EXCLUDE (departement) FROM ({typed})) TO "
            f"{literal(final / f'departement={HIVE_NULL}' / 'data_0.parquet')} ({_parquet_opts()})"
        )
        return written

    threads = max(1, int(con.sql("SELECT current_setting('threads')").fetchone()[0]))
    row_groups = list(range(pq.ParquetFile(staging).num_row_groups))
    size = -(-len(row_groups) // threads)
    ranges = [row_groups[i : i + size] for i in range(0, len(row_groups), size)]
    stop = threading.Event()

    def split(k: int) -> list[Path]:
        source = pq.ParquetFile(staging)
        parts = _PartitionWriter(final, source.schema_arrow, "siret", f"data_{k}.parquet")
        try:
            for batch in source.iter_batches(ROW_GROUP_SIZE, row_groups=ranges[k], use_threads=False):
                if stop.is_set():
                    raise KeyboardInterrupt
                parts.add_batch(batch)
        finally:
            parts.close()
        return [parts.path(dep) for dep in parts.unsorted]

    def sort_file(path: Path) -> None:
        unsorted = path.with_name(path.name + ".unsorted")
        os.replace(path, unsorted)
        cur = con.cursor()
        try:
            cur.execute(
                f"COPY (SELECT * FROM read_parquet({literal(unsorted)}) ORDER BY {sort}) "
                f"TO {literal(path)} ({_parquet_opts()})"
            )
        finally:
            cur.close()
        unsorted.unlink()

    pool = ThreadPoolExecutor(max_workers=max(2, threads))
    try:  # pyarrow's take and Parquet writes release the GIL: the threads run in parallel
        unsorted = [p for paths in pool.map(split, range(len(ranges))) for p in paths]
        list(pool.map(sort_file, unsorted))  # list(): re-raises the first error
    except BaseException:
        stop.set()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    _write_siret_index(con, build_dir, staging)
    staging.unlink()
    return written


SIRET_INDEX_ROW_GROUP = 20_000


def _write_siret_index(con, build_dir: Path, staging: Path) -> None:
    """Writes the (siret, departement) index of the établissements, sorted by siret, in small row groups,
    from the staging file (already in siret order for INSEE's files: no sort; otherwise sorted).

    A lookup by siret first reads the département here (one small row group), then opens only that
    département's partition instead of every partition file (mirror.serve.documents uses it)."""
    _write_sorted(
        con,
        f"SELECT siret, departement FROM read_parquet({literal(staging)})",
        build_dir / SIRET_INDEX,
        ("siret",),
        SIRET_INDEX_ROW_GROUP,
    )


def _write_empty(con, key: str, build_dir: Path) -> None:
    """An empty, typed table for a missing optional file (so that every view exists)."""
    out = build_dir / key
    out.mkdir(parents=True, exist_ok=True)
    typed = typed_select_sql(key, "(SELECT 1 AS _none WHERE false)", {})
    con.execute(f"COPY ({typed}) TO {literal(out / 'data_0.parquet')} ({_parquet_opts()})")


def _glob(build_dir: Path, key: str) -> str:
    return literal(build_dir / key / ("*/*.parquet" if key == "etablissements" else "*.parquet"))


def _month_after(d: date) -> str:
    return f"{d.year + (d.month == 12)}-{d.month % 12 + 1:02d}"


@contextlib.contextmanager
def _interrupts():
    """Records Ctrl-C (SIGINT) while loading, so that DuckDB's wrapped forms of it ("Query interrupted",
    an error in the UDF...) surface as KeyboardInterrupt. Main thread only (signal handlers)."""
    flag = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, frame):
        flag.set()
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


def load_snapshot(
    data_dir: Path,
    paths: list[Path],
    month: str | None = None,
    force: bool = False,
    progress: bool = False,
    keep: int = publish.DEFAULT_KEEP,
) -> dict:
    """Builds, validates and publishes the snapshot of a monthly stock; returns a summary dict
    (month, month_source, snapshot_dir, rows per table, max_date_dernier_traitement, warnings,
    removed snapshots, duration_s, rows_per_s). Raises MirrorError on user errors or failed checks.

    Month: `month`, else a YYYY-MM in the file or folder names, else the month following the maximum
    dateDernierTraitementEtablissement (a stock of month M is the register on the last day of M-1).
    Checks (skipped with force=True): no duplicated SIREN / SIRET, malformed ones (not 9 / 14 digits)
    at most MAX_MALFORMED_SHARE of the rows (counts in summary["identifiers"]); row counts written ==
    source rows; at least 98 % of the current
    snapshot's unités légales and établissements; max dateDernierTraitement not older than 7 days
    before the 1st of the month; the month not older than the current snapshot's.
    """
    started = time.monotonic()
    data_dir = Path(data_dir)
    if month is not None and not snap.MONTH_RE.match(month):
        raise MirrorError(f"invalid month {month!r}: expected YYYY-MM")
    sources, warnings = find_sources([Path(p) for p in paths])
    month_source = "--month"
    if month is None and (month := month_from_names(sources)):
        month_source = "file/folder name"
    with (
        snap.writer_lock(data_dir, "mirror load " + " ".join(str(p) for p in paths)),
        _interrupts() as interrupted,
    ):
        notes = publish.prepare_writer(data_dir)
        build_dir = publish.new_build_dir(data_dir, month)
        try:
            summary = _build(data_dir, build_dir, sources, month, month_source, force, progress, warnings)
            published = publish.publish(
                data_dir,
                build_dir,
                summary["month"],
                {k: summary[k] for k in ("rows", "max_date_dernier_traitement", "layouts", "sources")},
                keep=keep,
            )
        except BaseException as exc:
            shutil.rmtree(build_dir, ignore_errors=True)
            if interrupted.is_set() and not isinstance(exc, KeyboardInterrupt):
                raise KeyboardInterrupt from None  # DuckDB reports Ctrl-C as various errors
            raise
        # The snapshot is published (lookups answer from the views meanwhile); then the lookup store.
        summary["lookup_store"] = lookup_build.maintain(data_dir)
    summary["snapshot_dir"] = str(snap.snapshots_dir(data_dir) / published["snapshot"]["dir"])
    summary["removed"] = published["removed"]
    summary["warnings"] = [*summary.get("warnings", []), *published.get("warnings", [])]
    summary["notes"] = notes
    summary["duration_s"] = round(time.monotonic() - started, 2)
    total = sum(summary["rows"].values())
    summary["rows_per_s"] = round(total / summary["duration_s"]) if summary["duration_s"] else None
    return summary


def _build(data_dir, build_dir, sources, month, month_source, force, progress, warnings) -> dict:
    from tqdm import tqdm

    con = _connect_for_build(build_dir)
    rows: dict[str, int] = {}
    timings: dict[str, float] = {}
    # The next zip is decompressed on a thread while DuckDB types and writes the current file (zlib and
    # file writes release the GIL), and the first two are decompressed side by side: the extraction hides
    # in the idle moments of the load (at most two CSVs on disk at once).
    order = [s.key for s in STOCK_FILES]
    geo_src = sources.get(GEOLOCALISATION.key)
    geolocation: dict | None = None
    stop = threading.Event()
    unzip = ThreadPoolExecutor(max_workers=2, thread_name_prefix="mirror-unzip")
    extractions = {}

    def extraction(src: Source):
        if src.stock.key not in extractions:
            extractions[src.stock.key] = unzip.submit(_extract_csv, src, build_dir / ".tmp", stop)
        return extractions[src.stock.key]

    try:
        show = progress and sys.stderr.isatty()
        bar = tqdm(total=len(STOCK_FILES), desc="load", unit="file", disable=not show, file=sys.stderr)
        for i, stock in enumerate(STOCK_FILES):
            bar.set_postfix_str(stock.name)
            src = sources.get(stock.key)
            t0 = time.monotonic()
            if src is None:
                _write_empty(con, stock.key, build_dir)
                rows[stock.key] = 0
            else:
                current = extraction(src) if src.fmt == "zip" else None
                geolocated = stock.key == "etablissements" and geo_src is not None
                if geolocated:  # read before the établissements, which are joined with it
                    geo_started = time.monotonic()
                    geo_zip = extraction(geo_src) if geo_src.fmt == "zip" else None
                    geolocation = _stage_geolocation(con, geo_src, build_dir / ".tmp", geo_zip)
                    timings[GEOLOCALISATION.key] = round(time.monotonic() - geo_started, 2)
                    t0 = time.monotonic()
                later = [sources[k] for k in order[i + 1 :] if k in sources and sources[k].fmt == "zip"]
                if later:
                    extraction(later[0])
                rows[stock.key] = _write_table(con, src, build_dir, warnings, current, geolocated)
                if geolocated:
                    con.execute(f"DROP TABLE {GEOLOCATION_TABLE}")
                    (matched,) = con.sql(
                        "SELECT count_if(qualiteXY IS NOT NULL OR iris IS NOT NULL OR qpv IS NOT NULL) "
                        f"FROM read_parquet({_glob(build_dir, stock.key)})"
                    ).fetchone()
                    geolocation["matched"] = int(matched)
                written = con.sql(
                    f"SELECT count(*) FROM read_parquet({_glob(build_dir, stock.key)})"
                ).fetchone()[0]
                if written != rows[stock.key] or (src.source_rows is not None and written != src.source_rows):
                    raise MirrorError(
                        f"{stock.name}: {written} rows written but the source has {src.source_rows}: load aborted"
                    )
            timings[stock.key] = round(time.monotonic() - t0, 2)
            bar.update(1)
            if i == 1:
                crash_point("build")
        bar.close()
        max_ddt = con.sql(
            render("load/max_date_traitement.sql", files=_glob(build_dir, "etablissements"))
        ).fetchone()[0]
        identifiers = _identifier_problems(con, build_dir, rows)
    finally:
        stop.set()
        unzip.shutdown(wait=True, cancel_futures=True)
        con.close()
    shutil.rmtree(build_dir / ".tmp", ignore_errors=True)

    if month is None:
        if max_ddt is None:
            raise MirrorError(
                "cannot infer the stock month (no dateDernierTraitementEtablissement): use --month"
            )
        month = _month_after(max_ddt.date())
        month_source = (
            f"inferred: month after the latest dateDernierTraitementEtablissement ({max_ddt:%Y-%m-%d})"
        )
    _validate(data_dir, month, month_source, rows, max_ddt, force, warnings, identifiers)
    crash_point("validated")
    return {
        "month": month,
        "month_source": month_source,
        "rows": rows,
        "timings_s": timings,
        "max_date_dernier_traitement": max_ddt.isoformat(sep="T") if max_ddt else None,
        "layouts": {k: s.layout for k, s in sources.items()},
        "sources": {k: str(s.path) for k, s in sources.items()},
        "identifiers": identifiers,
        "geolocalisation": geolocation,
        "warnings": warnings,
    }


# Identifier checks of the main files: (table, key column, digits).
IDENTIFIER_KEYS = (("unites_legales", "siren", 9), ("etablissements", "siret", 14))
# Malformed identifiers tolerated (reported, loaded) up to this share of a file's rows; duplicates never.
MAX_MALFORMED_SHARE = 1e-3


def _identifier_problems(con, build_dir: Path, rows: dict) -> dict[str, dict[str, int]]:
    """{table: {"duplicates": rows beyond the first of a key, "malformed": keys not of 9 (SIREN) or 14
    (SIRET) digits}} of the written main files (one hash aggregate per file)."""
    out = {}
    for table, key, digits in IDENTIFIER_KEYS:
        if not rows.get(table):
            out[table] = {"duplicates": 0, "malformed": 0}
            continue
        duplicates, malformed = con.sql(
            render(
                "load/identifier_problems.sql", key=ident(key), digits=digits, files=_glob(build_dir, table)
            )
        ).fetchone()
        out[table] = {"duplicates": int(duplicates), "malformed": int(malformed)}
    return out


def _identifier_checks(rows: dict, identifiers: dict, problems: list, warnings: list) -> None:
    """Duplicate keys are refused (a lookup or batch would return two rows for one identifier);
    malformed identifiers are reported, and refused beyond MAX_MALFORMED_SHARE of the rows (a handful is
    a damaged line; more means a mis-parsed file or not a Sirene stock)."""
    for table, key, digits in IDENTIFIER_KEYS:
        found = identifiers.get(table) or {}
        if found.get("duplicates"):
            problems.append(f"{table}: {found['duplicates']} duplicated {key} row(s)")
        malformed = found.get("malformed") or 0
        if malformed:
            what = f"{table}: {malformed} {key} value(s) not of {digits} digits"
            if malformed > MAX_MALFORMED_SHARE * (rows.get(table) or 0):
                problems.append(f"{what} (over {MAX_MALFORMED_SHARE:.1%} of {rows.get(table)} rows)")
            else:
                warnings.append(what + " (loaded; unreachable by `mirror get`)")


def _validate(
    data_dir: Path,
    month: str,
    month_source: str,
    rows: dict,
    max_ddt: datetime | None,
    force: bool,
    warnings: list,
    identifiers: dict | None = None,
) -> None:
    """The publication checks (see load_snapshot); failures raise IntegrityError unless `force`."""
    problems = []
    _identifier_checks(rows, identifiers or {}, problems, warnings)
    current = snap.current_snapshot(data_dir)
    if current:
        for key in ("unites_legales", "etablissements"):
            before = (current.get("rows") or {}).get(key) or 0
            if before and rows[key] < MIN_SHARE_OF_PREVIOUS * before:
                problems.append(
                    f"{key}: {rows[key]} rows, fewer than 98 % of the current snapshot's {before} "
                    f"({current['month']})"
                )
        if month < current["month"]:
            problems.append(f"stock month {month} is older than the current snapshot ({current['month']})")
    start = date(int(month[:4]), int(month[5:7]), 1)
    if max_ddt is not None and max_ddt.date() < start - timedelta(days=FRESHNESS_DAYS):
        problems.append(
            f"stale stock for {month} (month from {month_source}): latest dateDernierTraitementEtablissement "
            f"is {max_ddt:%Y-%m-%d}, expected in the last week of the previous month"
        )
    if max_ddt is not None and max_ddt.date() > start + timedelta(days=FRESHNESS_DAYS):
        warnings.append(
            f"latest dateDernierTraitementEtablissement ({max_ddt:%Y-%m-%d}) is after the month {month}"
        )
    if problems:
        if not force:
            raise IntegrityError("; ".join(problems) + " (use --force to load anyway)")
        warnings.extend(f"forced: {p}" for p in problems)
