"""The delta store: one folder of typed Parquet per day of INSEE API changes, merged over the snapshot on read.

Layout (see docs/ARCHITECTURE.md):

    DATA_DIR/deltas/<YYYY-MM-DD>/<table>.parquet   one file per table of DELTA_TABLES, always all five
                                                    (possibly empty), with the typed schema of the base
                                                    view (derived columns included) plus the bookkeeping
                                                    columns `_delta_day` (DATE) and `_delta_seq` (BIGINT,
                                                    a counter that grows with every day written).
    DATA_DIR/.deltas-staging/                       days being written; swapped in by rename.

A day is written into the staging folder, then renamed over `deltas/<day>` (the previous version of the
day, if any, is moved aside first and deleted after), so a crash never leaves a half-written day visible;
`recover()` finishes or undoes an interrupted swap. Writing the same day again replaces it: re-applying a
day changes nothing.

The catalog's base views become "latest version per key over snapshot + deltas" (`merged_view_sql`, SQL in
sql/deltas/): among delta rows, the greatest dateDernierTraitement wins, then the latest fetch (`_delta_seq`);
a key present in the deltas replaces the snapshot row (an anti-join of the small delta key set, so partition
pruning on the snapshot still works); history views replace all periods of such a unit by the periods of its
kept delta version. Delta days before the snapshot's coverage are ignored by the views and deleted by
`prune()` (a newer monthly stock supersedes them).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from mirror.config import SQL_DIR
from mirror.schema import STOCK_FILES_BY_KEY

DELTA_TABLES = (
    "unites_legales",
    "etablissements",
    "unites_legales_historique",
    "etablissements_historique",
    "liens_succession",
)
# Business key of each table (history tables: the unit whose periods are replaced as a whole).
KEYS = {
    "unites_legales": ("siren",),
    "etablissements": ("siret",),
    "unites_legales_historique": ("siren",),
    "etablissements_historique": ("siret",),
    "liens_succession": (
        "siretEtablissementPredecesseur",
        "siretEtablissementSuccesseur",
        "dateLienSuccession",
    ),
}
DDT = {
    "unites_legales": "dateDernierTraitementUniteLegale",
    "etablissements": "dateDernierTraitementEtablissement",
    "liens_succession": "dateDernierTraitementLienSuccession",
}
# History tables follow the version kept in their base table.
HISTORY_OF = {"unites_legales_historique": "unites_legales", "etablissements_historique": "etablissements"}
BOOKKEEPING = ("_delta_day", "_delta_seq")
DELTA_SQL_DIR = SQL_DIR / "deltas"
_DAY_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def deltas_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "deltas"


def staging_dir(data_dir: Path) -> Path:
    return Path(data_dir) / ".deltas-staging"


def day_dir(data_dir: Path, day: date) -> Path:
    return deltas_dir(data_dir) / day.isoformat()


def list_days(data_dir: Path) -> list[date]:
    """The delta days present on disk, oldest first."""
    root = deltas_dir(data_dir)
    if not root.is_dir():
        return []
    return sorted(date.fromisoformat(p.name) for p in root.iterdir() if p.is_dir() and _DAY_RE.match(p.name))


def delta_glob(data_dir: Path, table: str) -> str:
    """Glob of every day's file of `table` (absolute, for read_parquet)."""
    return str(deltas_dir(data_dir).resolve() / "*" / f"{table}.parquet")


# ------------------------------------------------------------------------------------------------
# Writing a day
# ------------------------------------------------------------------------------------------------


def _string_table(table: str, rows: list[dict]) -> pa.Table:
    """All-VARCHAR Arrow table of stock-like string rows ("" -> NULL, as DuckDB reads an empty CSV field)."""
    columns = list(STOCK_FILES_BY_KEY[table].columns)
    raw = pa.Table.from_pylist(rows, schema=pa.schema([(c, pa.string()) for c in columns]))
    null = pa.scalar(None, pa.string())
    return pa.table({c: pc.if_else(pc.equal(raw[c], ""), null, raw[c]) for c in columns})


def write_typed_rows(
    con: duckdb.DuckDBPyConnection, table: str, rows: list[dict], name: str, prepare: bool = True
) -> None:
    """Creates the table `name` on `con` holding `rows` (stock-like string rows) typed exactly like the
    snapshot: by the loader's own typing SQL (mirror.load.typed_select_sql), derived columns included."""
    from mirror import load

    raw = f"{name}_raw"
    if prepare:  # registers the loader's UDF and lookup tables (once per connection is enough)
        load.prepare_connection(con)
    con.register(raw, _string_table(table, rows))
    try:
        types = {c: "VARCHAR" for c in STOCK_FILES_BY_KEY[table].columns}
        con.execute(f"CREATE OR REPLACE TABLE {name} AS {load.typed_select_sql(table, raw, types)}")
    finally:
        con.unregister(raw)


def write_day(
    data_dir: Path, day: date, seq: int, con: duckdb.DuckDBPyConnection, typed: dict[str, str]
) -> Path:
    """Publishes the day `day` from the typed tables `typed` {table: table name on con}, atomically.

    Every table of DELTA_TABLES is written (empty if absent from `typed`). Replaces a previous version of
    the same day. Returns the day folder.
    """
    recover(data_dir)
    stage_root = staging_dir(data_dir)
    stage_root.mkdir(parents=True, exist_ok=True)
    stage = stage_root / f"{day.isoformat()}-{os.getpid()}"
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir()
    for table in DELTA_TABLES:
        name = typed.get(table)
        if name is None:  # an empty file with the right schema, so every day has all five files
            write_typed_rows(con, table, [], f"empty_{table}", prepare=False)
            name = f"empty_{table}"
        order = ", ".join(f'"{k}"' for k in KEYS[table])
        # One row per key and day (a record paged twice is kept once): the views rely on it.
        if table in DDT:
            source = f'SELECT * FROM {name} QUALIFY row_number() OVER (PARTITION BY {order} ORDER BY "{DDT[table]}" DESC NULLS LAST) = 1'
        else:
            source = f"SELECT DISTINCT * FROM {name}"
        path = stage / f"{table}.parquet"
        con.execute(
            f"COPY (SELECT *, DATE '{day.isoformat()}' AS _delta_day, CAST({int(seq)} AS BIGINT) AS _delta_seq "
            f"FROM ({source}) ORDER BY {order}) TO '{_sql_str(path)}' (FORMAT parquet, COMPRESSION zstd)"
        )
    _crash_point("delta-before-swap")
    target = day_dir(data_dir, day)
    target.parent.mkdir(parents=True, exist_ok=True)
    old = stage_root / f"{day.isoformat()}-{os.getpid()}.old"
    if target.exists():
        os.rename(target, old)
    _crash_point("delta-mid-swap")
    os.rename(stage, target)
    if old.exists():
        shutil.rmtree(old)
    _fsync_dir(target.parent)
    return target


def recover(data_dir: Path) -> None:
    """Finishes or undoes a day swap interrupted by a crash, and removes leftover staging folders."""
    stage_root = staging_dir(data_dir)
    if not stage_root.is_dir():
        return
    for entry in sorted(stage_root.iterdir()):
        if entry.name.endswith(".old"):
            day = entry.name.split("-")[:3]
            target = deltas_dir(data_dir) / "-".join(day)
            if not target.exists():  # crashed between the two renames: put the previous version back
                target.parent.mkdir(parents=True, exist_ok=True)
                os.rename(entry, target)
                continue
        shutil.rmtree(entry, ignore_errors=True)


def remove_days(data_dir: Path, days: Iterable[date]) -> list[date]:
    """Deletes the given delta days (each folder is renamed out of sight first, then deleted)."""
    removed = []
    stage_root = staging_dir(data_dir)
    for day in days:
        target = day_dir(data_dir, day)
        if target.exists():
            stage_root.mkdir(parents=True, exist_ok=True)
            trash = stage_root / f"{day.isoformat()}-{os.getpid()}.trash"
            os.rename(target, trash)
            shutil.rmtree(trash, ignore_errors=True)
            removed.append(day)
    return removed


def prune(data_dir: Path, coverage: datetime) -> list[date]:
    """Deletes the delta days a snapshot already contains: every day before the coverage's day."""
    return remove_days(data_dir, [d for d in list_days(data_dir) if d < coverage.date()])


# ------------------------------------------------------------------------------------------------
# Snapshot coverage
# ------------------------------------------------------------------------------------------------


def month_start(month: str) -> datetime:
    return datetime.strptime(month + "-01", "%Y-%m-%d")


def next_month_start(month: str) -> datetime:
    start = month_start(month)
    return (start + timedelta(days=32)).replace(day=1)


def snapshot_coverage(snapshot_dir: Path, month: str) -> datetime:
    """Instant up to which the snapshot of `month` holds every change.

    A regular stock of month M is the register at the end of M-1: coverage = M-01 00:00. A stock published
    mid-month (INSEE did it on 2025-12-16) holds changes processed during M: coverage = its greatest
    dateDernierTraitement within M.
    """
    start, end = month_start(month), next_month_start(month)
    best = start
    con = duckdb.connect()
    try:
        for table in ("unites_legales", "etablissements"):
            folder = Path(snapshot_dir) / table
            files = [p for p in folder.rglob("*.parquet")] if folder.is_dir() else []
            if not files:
                continue
            col = DDT[table]
            (value,) = con.execute(
                f'SELECT max("{col}") FROM read_parquet(?, union_by_name=true) '
                f'WHERE "{col}" >= ? AND "{col}" < ?',
                [[str(p) for p in files], start, end],
            ).fetchone()
            if value is not None and value > best:
                best = value
    finally:
        con.close()
    return best


# ------------------------------------------------------------------------------------------------
# Merge on read (catalog)
# ------------------------------------------------------------------------------------------------


def has_deltas(data_dir: Path, since: date | None = None) -> bool:
    return any(since is None or d >= since for d in list_days(data_dir))


def merged_view_sql(data_dir: Path, table: str, snapshot_select: str, coverage: datetime | None) -> str:
    """The SELECT of base view `table` over its snapshot SELECT and the delta files.

    Returns `snapshot_select` unchanged when no delta day at or after the coverage's day exists (or for
    tables without deltas, e.g. doublons).
    """
    if table not in DELTA_TABLES:
        return snapshot_select
    since = coverage.date() if coverage else None
    if not has_deltas(data_dir, since):
        return snapshot_select
    text = (DELTA_SQL_DIR / f"{table}.sql").read_text(encoding="utf-8")
    template = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))
    base = HISTORY_OF.get(table, table)
    return (
        (
            template.replace("{snapshot}", f"({snapshot_select})")
            .replace("{deltas}", _sql_str(delta_glob(data_dir, table)))
            .replace("{base_deltas}", _sql_str(delta_glob(data_dir, base)))
            .replace("{since}", (since or date(1, 1, 1)).isoformat())
        )
        .strip()
        .rstrip(";")
    )


_CREATE_RE = re.compile(
    r"^(?P<head>.*?CREATE\s+OR\s+REPLACE\s+VIEW\s+\S+\s+AS)\s+(?P<select>.*?);?\s*$", re.S | re.I
)


def coverage_for(data_dir: Path, snapshot_dir: Path) -> datetime | None:
    """Coverage of the snapshot in `snapshot_dir`: the one `mirror update` recorded for that folder, else
    the 1st of its month (the folder name starts with YYYY-MM)."""
    from mirror import snapshot

    recorded = snapshot.read_state(Path(data_dir)).get("delta_coverage") or {}
    if recorded.get("dir") == Path(snapshot_dir).name and recorded.get("coverage"):
        return datetime.fromisoformat(recorded["coverage"])
    match = re.match(r"^(\d{4}-\d{2})", Path(snapshot_dir).name)
    return month_start(match.group(1)) if match else None


def merge_create_view(data_dir: Path, table: str, create_sql: str, snapshot_dir: Path) -> str:
    """Rewrites the loader's `CREATE OR REPLACE VIEW <table> AS <select>` into the merge over the deltas
    (unchanged when there is no delta to merge)."""
    match = _CREATE_RE.match(create_sql)
    if table not in DELTA_TABLES or not match or not deltas_dir(data_dir).is_dir():
        return create_sql
    select = match.group("select")
    merged = merged_view_sql(data_dir, table, select, coverage_for(data_dir, snapshot_dir))
    if merged == select:
        return create_sql
    return f"{match.group('head')}\n{merged};"


# ------------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------------


def _sql_str(value) -> str:
    return str(value).replace("'", "''")


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _crash_point(stage: str) -> None:
    """Test hook: dies abruptly at `stage` when $MIRROR_CRASH_AT names it (the loader's mechanism)."""
    from mirror.snapshot import crash_point

    crash_point(stage)
