"""The delta store: one folder of typed Parquet per day of INSEE API changes, merged over the snapshot on read.

Layout (see docs/ARCHITECTURE.md):

    DATA_DIR/deltas/<YYYY-MM-DD>/<table>.parquet   one file per table of DELTA_TABLES, always all five
                                                    (possibly empty), with the typed schema of the base
                                                    view (derived columns included) plus the bookkeeping
                                                    columns `_delta_day` (DATE) and `_delta_seq` (BIGINT,
                                                    a counter that grows with every day written).
    DATA_DIR/.deltas-staging/                       days being written; swapped in by rename.
    DATA_DIR/deltas-merged/<n>/                     merged version n of the days (`compact`), per table:
        <table>.parquet                             "base": the winning rows of the older days
        <table>.recent.parquet                      "recent": the winning rows of the later days (final
                                                    for their keys: they shadow the base rows)
        manifest.json                               the days (and their files) it was computed from
    DATA_DIR/deltas-merged/.staging-*               a version being written; renamed to <n> when complete.

A day is written into the staging folder, then renamed over `deltas/<day>` (the previous version of the
day, if any, is moved aside first and deleted after), so a crash never leaves a half-written day visible;
`recover()` finishes or undoes an interrupted swap. Writing the same day again replaces it: re-applying a
day changes nothing.

Merge rules: among delta rows of a key, the greatest dateDernierTraitement wins (a NULL one lowest), then the
latest fetch (`_delta_seq`); a key present in the deltas replaces the snapshot row; history views replace
all periods of such a unit by the periods of its kept delta version. Delta days before the snapshot's
coverage are ignored and deleted by `prune()` (a newer monthly stock supersedes them).

`compact()` applies these rules once per new set of days, not at query time: the catalog's base views
(`merged_view_sql`, SQL in sql/deltas/) are "snapshot ANTI JOIN merged keys, UNION ALL the merged rows", by
absolute path to one merged version, so filters and projections (partition pruning on departement) still
reach the snapshot scan. A new day is appended to the previous version's small recent files (the base is
hard-linked; the recent files are folded into it past `RECENT_RATIO`); `mirror.catalog.build.rebuild` compacts
first, so every rebuild reads merged data matching the days on disk.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

if TYPE_CHECKING:
    import pyarrow as pa

from mirror.core.config import open_duckdb
from mirror.core.datadir import current_snapshot_path, fsync_dir, grace_elapsed, read_state
from mirror.core.faults import crash_point
from mirror.core.schema import (
    BUSINESS_KEYS,
    DELTA_TABLES,
    GEOCODED_ADDRESS_COLUMNS,
    GEOLOCATION_COLUMNS,
    HISTORY_OF,
    LAST_PROCESSED,
    STATE_COLUMNS,
    STOCK_FILES_BY_KEY,
)
from mirror.core.sql import escape, ident, literal, render
from mirror.core.typed import prepare_connection, typed_select_sql

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


# ------------------------------------------------------------------------------------------------
# Writing a day
# ------------------------------------------------------------------------------------------------


def _string_table(table: str, rows: list[dict]) -> pa.Table:
    """All-VARCHAR Arrow table of stock-like string rows ("" -> NULL, as DuckDB reads an empty CSV field)."""
    import pyarrow as pa  # with numpy, 0.2 s of import: for the writers only
    import pyarrow.compute as pc

    columns = list(STOCK_FILES_BY_KEY[table].columns)
    raw = pa.Table.from_pylist(rows, schema=pa.schema([(c, pa.string()) for c in columns]))
    null = pa.scalar(None, pa.string())
    return pa.table({c: pc.if_else(pc.equal(raw[c], ""), null, raw[c]) for c in columns})


def write_typed_rows(
    con: duckdb.DuckDBPyConnection, table: str, rows: list[dict], name: str, prepare: bool = True
) -> None:
    """Creates the table `name` on `con` holding `rows` (stock-like string rows) typed exactly like the
    snapshot: by the loader's own typing SQL (mirror.core.typed.typed_select_sql), derived columns included."""
    raw = f"{name}_raw"
    if prepare:  # registers the loader's UDF and lookup tables (once per connection is enough)
        prepare_connection(con)
    con.register(raw, _string_table(table, rows))
    try:
        types = {c: "VARCHAR" for c in STOCK_FILES_BY_KEY[table].columns}
        # Any row order: write_day sorts the rows by key.
        typed = typed_select_sql(table, raw, types, keep_order=False)
        con.execute(f"CREATE OR REPLACE TABLE {name} AS {typed}")
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
        order = ", ".join(f'"{k}"' for k in BUSINESS_KEYS[table])
        # One row per key and day (a record paged twice is kept once): the views rely on it.
        if table in LAST_PROCESSED:
            source = f'SELECT * FROM {name} QUALIFY row_number() OVER (PARTITION BY {order} ORDER BY "{LAST_PROCESSED[table]}" DESC NULLS LAST) = 1'
        else:
            source = f"SELECT DISTINCT * FROM {name}"
        path = stage / f"{table}.parquet"
        con.execute(
            f"COPY (SELECT *, DATE '{day.isoformat()}' AS _delta_day, CAST({int(seq)} AS BIGINT) AS _delta_seq "
            f"FROM ({source}) ORDER BY {order}) TO {literal(path)} (FORMAT parquet, COMPRESSION zstd)"
        )
    crash_point("delta-before-swap")
    target = day_dir(data_dir, day)
    target.parent.mkdir(parents=True, exist_ok=True)
    old = stage_root / f"{day.isoformat()}-{os.getpid()}.old"
    if target.exists():
        os.rename(target, old)
    crash_point("delta-mid-swap")
    os.rename(stage, target)
    if old.exists():
        shutil.rmtree(old)
    fsync_dir(target.parent)
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
    con = open_duckdb()
    try:
        for table in ("unites_legales", "etablissements"):
            folder = Path(snapshot_dir) / table
            files = [p for p in folder.rglob("*.parquet")] if folder.is_dir() else []
            if not files:
                continue
            col = LAST_PROCESSED[table]
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
# Compaction: one merged version of the delta days per table
# ------------------------------------------------------------------------------------------------

MERGED_ROW_GROUP = 20_000  # small row groups: a lookup by key or département reads little
# A superseded merged version stays for mirror.core.datadir.grace_seconds() (readers holding an older catalog
# may still read it), measured so that a clock jump cannot shorten it; the two newest are always kept.
# Sort order of each merged base file (row-group statistics then prune lookups and département filters;
# the small recent files are left unsorted).
MERGED_ORDER = {
    "unites_legales": ("siren",),
    "etablissements": ("departement", "siret"),
    "unites_legales_historique": ("siren", "dateDebut"),
    "etablissements_historique": ("siret", "dateDebut"),
    "liens_succession": BUSINESS_KEYS["liens_succession"],
}
# Which delta row wins per key (first after this ORDER BY): the templates' historical rule.
_RANK = {
    "unites_legales": "coalesce(dateDernierTraitementUniteLegale, TIMESTAMP '0001-01-01') DESC, _delta_seq DESC",
    "etablissements": "coalesce(dateDernierTraitementEtablissement, TIMESTAMP '0001-01-01') DESC, _delta_seq DESC",
    "liens_succession": "dateDernierTraitementLienSuccession DESC NULLS LAST, _delta_seq DESC",
}
_MANIFEST = "manifest.json"


def has_deltas(data_dir: Path, since: date | None = None) -> bool:
    return any(since is None or d >= since for d in list_days(data_dir))


def merged_root(data_dir: Path) -> Path:
    return Path(data_dir) / "deltas-merged"


def merged_versions(data_dir: Path) -> list[Path]:
    """The complete merged versions (folders named by a number), oldest first."""
    root = merged_root(data_dir)
    if not root.is_dir():
        return []
    return sorted((p for p in root.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name))


def _since(coverage: datetime | None) -> date:
    return coverage.date() if coverage else date(1, 1, 1)


def _sources(data_dir: Path, coverage: datetime | None) -> dict:
    """What a merged version is computed from: the coverage's day and every delta day since, each day
    identified by its files (a re-applied day is a new folder, hence new inodes and times)."""
    since = _since(coverage)
    days = {}
    for day in list_days(data_dir):
        if day >= since:
            folder = day_dir(data_dir, day)
            stats = [(folder / f"{t}.parquet").stat() for t in DELTA_TABLES]
            days[day.isoformat()] = [[s.st_ino, s.st_size, s.st_mtime_ns] for s in stats]
    return {"since": since.isoformat(), "days": days}


def _read_manifest(version: Path) -> dict | None:
    try:
        return json.loads((version / _MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def merged_version(data_dir: Path, coverage: datetime | None) -> Path | None:
    """The newest merged version if it was computed from the delta days now on disk (None otherwise, or
    when no delta day at or after the coverage's day exists)."""
    sources = _sources(data_dir, coverage)
    versions = merged_versions(data_dir)
    if not sources["days"] or not versions:
        return None
    manifest = _read_manifest(versions[-1]) or {}
    return versions[-1] if manifest.get("sources") == sources else None


def compact(data_dir: Path, coverage: datetime | None) -> Path | None:
    """Merges the delta days at or after the coverage's day into the rows the views add over the snapshot
    (see sql/deltas/compact_*.sql). Returns the merged version folder, or None when there is no delta day
    to merge (the views are then the plain snapshot).

    A version holds two files per table, each with at most one row per key (histories: the periods of
    one kept version per unit): `<table>.parquet` (the "base", the merge of older days, sorted) and
    `<table>.recent.parquet` (the merge of the later days against the base, so a recent row is the final
    winner and shadows the base row of its key).

    When the only change since the previous version is new days (a daily update), the new version is
    built from the previous one (`_append`): the base files are hard-linked, and each recent file gets the
    rows of the new days that win their key; when the recent files have outgrown RECENT_RATIO of the base,
    they are first folded into it. Otherwise (a day re-applied or removed, a new coverage) the version is
    recomputed from the day files (`_recompute`): the recent files only when the base's days are
    unchanged, else the base from every day but the newest (re-fetched by the next run's overlap) too.

    Nothing to do when the newest version already matches the days on disk. Otherwise a new version
    `deltas-merged/<n+1>/` is written in a staging folder then renamed (never half-visible); the previous
    version is kept for readers of the previous catalog, older ones are deleted once superseded for the
    grace period (mirror.core.datadir.grace_elapsed). Call it under the writer lock, then rebuild the catalog (mirror.catalog.build.rebuild
    does both).
    """
    data_dir = Path(data_dir)
    recover(data_dir)
    sources = _sources(data_dir, coverage)
    versions = merged_versions(data_dir)
    if not sources["days"]:
        _cleanup(data_dir, keep=set(versions[-1:]))
        return None
    current = merged_version(data_dir, coverage)
    if current is not None:
        _cleanup(data_dir, keep={current, *versions[-2:]})
        return current
    root = merged_root(data_dir)
    root.mkdir(parents=True, exist_ok=True)
    for leftover in root.glob(".staging-*"):  # an interrupted compaction
        shutil.rmtree(leftover, ignore_errors=True)
    number = int(versions[-1].name) + 1 if versions else 1
    stage = root / f".staging-{number}-{os.getpid()}"
    stage.mkdir()
    con = open_duckdb()
    try:
        previous = versions[-1] if versions else None
        added = _added_days(previous, sources)
        if added:  # only new days since the previous version: fold the recent files if due, then append
            base_days, rows = _append(con, data_dir, previous, added, stage)
        else:
            base_days, rows = _recompute(con, data_dir, previous, sources, stage)
    finally:
        con.close()
    manifest = {"sources": sources, "base_days": base_days, "recent_rows": rows, "base_rows": _rows(stage)}
    manifest["created"] = datetime.now().isoformat(timespec="seconds")
    (stage / _MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    fsync_dir(stage)
    crash_point("compact-before-swap")
    target = root / str(number)
    os.rename(stage, target)
    fsync_dir(root)
    _cleanup(data_dir, keep={target, *versions[-1:]})
    return target


# The recent files are folded into the base when their rows outgrow this share of the base's rows: a new
# day costs about the size of the recent files, a fold about the size of both.
RECENT_RATIO = 0.25


def _day_files(data_dir: Path, days: list[str]) -> dict[str, list[str]]:
    return {
        t: [str(day_dir(data_dir, date.fromisoformat(d)) / f"{t}.parquet") for d in days]
        for t in DELTA_TABLES
    }


def _added_days(previous: Path | None, sources: dict) -> list[str] | None:
    """The days added since the previous version when that is the only change (same coverage, each of its
    days unchanged on disk, at least one new day), else None."""
    manifest = _read_manifest(previous) if previous else None
    if not manifest or manifest.get("sources", {}).get("since") != sources["since"]:
        return None
    if "base_days" not in manifest or "recent_rows" not in manifest or "base_rows" not in manifest:
        return None
    old = manifest["sources"]["days"]
    if any(sources["days"].get(d) != stats for d, stats in old.items()):
        return None
    added = [d for d in sources["days"] if d not in old]
    return added or None


def _append(
    con, data_dir: Path, previous: Path, added: list[str], stage: Path
) -> tuple[list[str], dict[str, int]]:
    """Writes the version of the previous version's days plus `added` into `stage`: the base files are
    linked (or, when the recent files outgrew RECENT_RATIO of the base, the previous base and recent files
    folded together), then each recent file gets the rows of the added days that win their key."""
    manifest = _read_manifest(previous)
    fold = sum(manifest["recent_rows"].values()) > RECENT_RATIO * sum(manifest["base_rows"].values())
    base_days = list(manifest["sources"]["days"]) if fold else manifest["base_days"]
    new_files = _day_files(data_dir, added)
    rows = {}
    for table in DELTA_TABLES:  # base tables first: a history follows the winners of its base table
        base = stage / f"{table}.parquet"
        if fold:
            _fold_table(con, table, previous, base)
        else:
            _link(previous / f"{table}.parquet", base)
        recent = None if fold else previous / f"{table}.recent.parquet"
        rows[table] = _append_table(
            con, table, new_files[table], recent, base, stage / f"{table}.recent.parquet"
        )
        crash_point(f"compact-{table}")
    return base_days, rows


def _recompute(
    con, data_dir: Path, previous: Path | None, sources: dict, stage: Path
) -> tuple[list[str], dict[str, int]]:
    """Writes the version of the days in `sources` into `stage` from the day files: the recent files from
    the days after the previous version's base when that base still holds (its days unchanged), else the
    base from every day but the newest (re-fetched by the next run's overlap) and the recent from that."""
    days = list(sources["days"])
    files = _day_files(data_dir, days)
    base_days = _reusable_base(previous, sources)
    if base_days is not None:  # the previous base still holds: link it
        for table in DELTA_TABLES:
            _link(previous / f"{table}.parquet", stage / f"{table}.parquet")
    else:
        base_days = days[:-1]
        for table in DELTA_TABLES:  # base tables first: the histories follow their staged winners
            _compact_table(con, table, files[table], base_days, None, stage, f"{table}.parquet")
            crash_point(f"compact-{table}")
    recent_days = [d for d in days if d not in base_days]
    rows = {}
    for table in DELTA_TABLES:
        base = stage / f"{table}.parquet"
        rows[table] = _compact_table(
            con, table, files[table], recent_days, base, stage, f"{table}.recent.parquet"
        )
    crash_point("compact-recent")
    return base_days, rows


def _reusable_base(previous: Path | None, sources: dict) -> list[str] | None:
    """The days of the previous version's base if it can be reused as is (same coverage, each of its days
    unchanged on disk), else None. (Its size is not checked here: the next new day folds it if due.)"""
    manifest = _read_manifest(previous) if previous else None
    if not manifest or manifest.get("sources", {}).get("since") != sources["since"]:
        return None
    base_days = manifest.get("base_days")
    if not base_days:
        return None
    old = manifest["sources"]["days"]
    if any(sources["days"].get(d) != old.get(d) for d in base_days):
        return None
    return base_days


def _rows(stage: Path) -> dict[str, int]:
    con = open_duckdb()
    try:
        return {
            t: con.execute(
                f"SELECT num_rows FROM parquet_file_metadata('{escape(stage / t)}.parquet')"
            ).fetchone()[0]
            for t in DELTA_TABLES
        }
    finally:
        con.close()


def _link(source: Path, target: Path) -> None:
    """Hard-links an immutable merged file into the next version (copies it where links are impossible)."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def _compact_table(
    con: duckdb.DuckDBPyConnection,
    table: str,
    files: list[str],
    days: list[str],
    base: Path | None,
    stage: Path,
    name: str,
) -> int:
    """Writes stage/<name>: the merge of the rows of `days` in `files` (plus, for the recent files, the
    rows of `base` whose key is in those days), sorted by MERGED_ORDER, zstd. Returns its row count."""
    listing = _listing(files)
    in_days = f"_delta_day IN ({', '.join(f'DATE {d!r}' for d in days)})" if days else "false"
    # The base files are sorted (row-group statistics prune lookups and département filters); the recent
    # files are small and left in merge order.
    order = "" if base else "ORDER BY " + ", ".join(f'"{c}"' for c in MERGED_ORDER[table])
    values = {"files": listing, "in_days": in_days, "order_by": order}
    values["base"] = _file_or_empty(base, listing)
    if table in HISTORY_OF:
        (key,) = BUSINESS_KEYS[table]
        winners = HISTORY_OF[table] + (".recent.parquet" if base else ".parquet")
        values.update(winners=f"{literal(stage / winners)}", key=f'"{key}"')
        template = "compact_history.sql"
    else:
        keys = BUSINESS_KEYS[table]
        values.update(
            keys=", ".join(f'"{k}"' for k in keys),
            rank=_RANK[table],
            join_w=_key_equality(table, "d", "w"),
            join_r=_key_equality(table, "b", "r"),
        )
        template = "compact_latest.sql"
    return _write(con, render(f"deltas/{template}", **values), stage / name)


def _listing(files: list[str]) -> str:
    """A SQL list of file paths, for read_parquet."""
    return "[" + ", ".join(f"{literal(f)}" for f in files) + "]"


def _file_or_empty(path: Path | None, listing: str) -> str:
    """The relation of the merged file `path`, or an empty one shaped like the day files in `listing`."""
    if path:
        return f"read_parquet({literal(path)})"
    return f"(SELECT * FROM read_parquet({listing}, union_by_name = true) WHERE false)"


def _write(con: duckdb.DuckDBPyConnection, select: str, path: Path) -> int:
    """Writes the rows of `select` to the merged file `path` (zstd, small row groups); returns their count."""
    con.execute(
        f"COPY ({select}) TO {literal(path)} "
        f"(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {MERGED_ROW_GROUP})"
    )
    (n,) = con.execute(f"SELECT num_rows FROM parquet_file_metadata({literal(path)})").fetchone()
    return n


def _key_equality(table: str, left: str, right: str) -> str:
    """NULL-safe equality of the keys of `table` between the aliases `left` and `right`."""
    return " AND ".join(f'{left}."{k}" IS NOT DISTINCT FROM {right}."{k}"' for k in BUSINESS_KEYS[table])


def _append_table(
    con: duckdb.DuckDBPyConnection,
    table: str,
    new_files: list[str],
    recent: Path | None,
    base: Path,
    target: Path,
) -> int:
    """Writes `target`, the recent file of `table` after the new days `new_files`: the previous recent
    rows (`recent`, None for none) whose key the new days did not win, plus the winning new rows
    (sql/deltas/append_*.sql). The winners of a base table stay in the temp table `wins_<table>` of `con`
    for its history table. Returns the row count."""
    listing = _listing(new_files)
    previous = _file_or_empty(recent, listing)
    if table in HISTORY_OF:
        (key,) = BUSINESS_KEYS[table]
        values = {"new": listing, "recent": previous, "wins": f"wins_{HISTORY_OF[table]}", "key": f'"{key}"'}
        return _write(con, render("deltas/append_history.sql", **values), target)
    values = {
        "new": listing,
        "recent": previous,
        "base": escape(base),
        "keys": ", ".join(f'"{k}"' for k in BUSINESS_KEYS[table]),
        "rank": _RANK[table],
        "ddt": f'"{LAST_PROCESSED[table]}"',
        "join_k": _key_equality(table, "o", "k"),
        "join_w": _key_equality(table, "n", "w"),
    }
    wins = render("deltas/append_wins.sql", **values)
    con.execute(f"CREATE OR REPLACE TEMP TABLE wins_{table} AS {wins}")
    values.update(wins=f"wins_{table}", join_rw=_key_equality(table, "r", "w"))
    return _write(con, render("deltas/append_latest.sql", **values), target)


def _fold_table(con: duckdb.DuckDBPyConnection, table: str, previous: Path, target: Path) -> int:
    """Writes `target`, the base file of `table` with the previous version's recent rows folded in
    (sql/deltas/fold_*.sql), sorted by MERGED_ORDER. Returns the row count."""
    values = {
        "base": escape(previous / f"{table}.parquet"),
        "recent": escape(previous / f"{table}.recent.parquet"),
        "order": ", ".join(f'"{c}"' for c in MERGED_ORDER[table]),
    }
    if table in HISTORY_OF:
        (key,) = BUSINESS_KEYS[table]
        values.update(key=f'"{key}"', base_recent=escape(previous / f"{HISTORY_OF[table]}.recent.parquet"))
        return _write(con, render("deltas/fold_history.sql", **values), target)
    values.update(
        keys=", ".join(f'"{k}"' for k in BUSINESS_KEYS[table]), join_br=_key_equality(table, "b", "r")
    )
    return _write(con, render("deltas/fold_latest.sql", **values), target)


def _cleanup(data_dir: Path, keep: set[Path]) -> None:
    """Deletes the merged versions outside `keep` superseded for longer than the grace period (renamed out of
    sight first), and leftovers of interrupted deletions. A version is marked superseded the first time a
    newer one exists beside it (datadir.mark_superseded: monotonic clock, so a wall-clock jump does not
    delete it early)."""
    root = merged_root(data_dir)
    if not root.is_dir():
        return
    for leftover in root.glob(".trash-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    versions = merged_versions(data_dir)
    for older in versions[:-1]:
        if older in keep or not grace_elapsed(older):
            continue
        trash = root / f".trash-{older.name}-{os.getpid()}"
        os.rename(older, trash)
        shutil.rmtree(trash, ignore_errors=True)


# ------------------------------------------------------------------------------------------------
# Merge on read (catalog)
# ------------------------------------------------------------------------------------------------


def merged_view_sql(table: str, snapshot_select: str, merged: Path | None) -> str:
    """The SELECT of base view `table`: its snapshot SELECT with the rows of the merged version `merged`
    (mirror.deltas.store.compact) replacing the snapshot's rows of the same keys.

    Returns `snapshot_select` unchanged when `merged` is None (no delta to merge) or for tables without
    deltas (e.g. doublons).
    """
    if table not in DELTA_TABLES or merged is None:
        return snapshot_select
    merged = Path(merged).resolve()
    base = HISTORY_OF.get(table, table)
    return render(
        f"deltas/{table}.sql",
        **{
            "snapshot": f"({snapshot_select})",
            "merged": escape(merged / f"{table}.parquet"),
            "recent": escape(merged / f"{table}.recent.parquet"),
            "base_merged": escape(merged / f"{base}.parquet"),
            "base_recent": escape(merged / f"{base}.recent.parquet"),
        },
    )


def coverage_for(data_dir: Path, snapshot_dir: Path) -> datetime | None:
    """Coverage of the snapshot in `snapshot_dir`: the one `mirror update` recorded for that folder, else
    the 1st of its month (the folder name starts with YYYY-MM)."""
    recorded = read_state(Path(data_dir)).get("delta_coverage") or {}
    if recorded.get("dir") == Path(snapshot_dir).name and recorded.get("coverage"):
        return datetime.fromisoformat(recorded["coverage"])
    match = re.match(r"^(\d{4}-\d{2})", Path(snapshot_dir).name)
    return month_start(match.group(1)) if match else None


def compact_for(data_dir: Path, snapshot_dir: Path | None = None) -> Path | None:
    """The merged version a catalog over `snapshot_dir` (default: the current snapshot) must read: the
    delta days at or after that snapshot's coverage, compacted first when missing or stale."""
    if snapshot_dir is None:
        snapshot_dir = current_snapshot_path(Path(data_dir))
        if snapshot_dir is None:
            return None
    return compact(data_dir, coverage_for(data_dir, snapshot_dir))


def has_geolocation(con: duckdb.DuckDBPyConnection, snapshot_select: str) -> bool:
    """Whether the établissements' snapshot SELECT has the geolocation file's columns."""
    columns = con.sql(f"SELECT * FROM ({snapshot_select}) LIMIT 0").columns
    return set(GEOLOCATION_COLUMNS) <= set(columns)


def carry_geolocation_sql(day_table: str, snapshot_select: str) -> str:
    """The SELECT of the day's typed établissements `day_table` with the snapshot's geolocation carried
    over where their geocoded address is the snapshot's (sql/deltas/carry_geolocation.sql; the rule:
    mirror.core.schema.GEOCODED_ADDRESS_COLUMNS). For a snapshot loaded with the geolocation file."""
    return render(
        "deltas/carry_geolocation.sql",
        day=day_table,
        snapshot=f"({snapshot_select})",
        address=", ".join(f"s.{ident(c)}" for c in GEOCODED_ADDRESS_COLUMNS),
        same_address=" AND ".join(
            f"s.{ident(c)} IS NOT DISTINCT FROM d.{ident(c)}" for c in GEOCODED_ADDRESS_COLUMNS
        ),
    )


def previous_state_sql(
    table: str, day_table: str, snapshot_select: str, merged: Path | None, columns: Iterable[str]
) -> str:
    """The SELECT counting the new, closed and changed units of the day in `day_table` against base view
    `table` as it is before the day: its snapshot SELECT merged with the merged version `merged` (None: no
    delta), restricted to the day's keys first (sql/deltas/count_day.sql). A unit is changed when one of
    `columns` (mirror.update.run compares the dateDernierTraitement) differs from its previous version."""
    (key,) = BUSINESS_KEYS[table]
    state, closed = STATE_COLUMNS[table]
    snapshot = f"({snapshot_select})"
    empty = f"(SELECT * FROM {snapshot} WHERE false)"
    merged = Path(merged).resolve() if merged else None
    quoted = [f'"{c}"' for c in columns] or [f'"{key}"']

    def values(alias: str) -> str:
        return f"ROW({', '.join(f'{alias}.{c}' for c in quoted)})"

    return render(
        "deltas/count_day.sql",
        **{
            "day": day_table,
            "key": f'"{key}"',
            "state": f'"{state}"',
            "closed": closed,
            "snapshot": snapshot,
            "merged": f"read_parquet('{escape(merged / f'{table}.parquet')}')" if merged else empty,
            "recent": f"read_parquet('{escape(merged / f'{table}.recent.parquet')}')" if merged else empty,
            **{f"values_{a}": values(a) for a in "drms"},
        },
    )
