"""What changed, and when: `changes(data_dir, since, until)` lists, one row per changed variable, what the
daily INSEE changes applied between two days, and the monthly stocks loaded then, did to the units and
établissements of the mirror.

Between consecutive versions of a key (the snapshot row, then each delta day's row, ranked as the merge
rules rank them) each compared variable whose value differs gives a row: identifier, level, kind (creation,
cessation / fermeture, reactivation, siege, name, activity, address, effectif, categorie_juridique,
diffusion, other), field, old and new values (as text), effective date (the period's dateDebut for the
variables INSEE historises, the creation date for a creation), processing date (dateDernierTraitement),
source and day. The compared variables are the stock file's, but keys and bookkeeping (dates of treatment,
number of periods, dateDebut itself, the mirror's derived columns). SQL in sql/changes/.

A lien de succession a day brings (absent from the snapshot and the earlier days) gives two `succession`
rows, one for the predecessor (field siretEtablissementSuccesseur) and one for the successor (field
siretEtablissementPredecesseur), dated by the link (sql/changes/successions.sql).

Across monthly stocks: each snapshot's folder holds the comparison of the state it replaced with the one
it published (mirror.load.stock_changes: units and établissements that left the register, doublons,
creations and field changes the days did not report); its rows have source "stock", and a variable masked
in the current views is masked in them too.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa

from mirror.catalog.build import connect, snapshot_select
from mirror.core.changes import (
    COLUMNS,
    KINDS,
    STOCK_CHANGES_FILE,
    TABLES,
    compared_columns,
    historised_columns,
    rows_sql,
)
from mirror.core.config import open_duckdb
from mirror.core.datadir import current_snapshot_path, read_state, snapshots_dir
from mirror.core.errors import BadInput
from mirror.core.schema import LAST_PROCESSED, MASKABLE_COLUMNS
from mirror.core.sql import ident, literal, private_cursor, render
from mirror.deltas.store import coverage_for, day_dir, list_days

SOURCES = (
    "daily",
    "stock",
)  # the delta days; the comparisons of the monthly stocks (mirror.load.stock_changes)
__all__ = ["COLUMNS", "KINDS", "changes", "compared_columns", "format_of", "write"]


def changes(
    data_dir: Path,
    since: date,
    until: date | None = None,
    ids: list[str] | None = None,
    kinds: list[str] | None = None,
    fields: list[str] | None = None,
    con: duckdb.DuckDBPyConnection | None = None,
    sources: tuple[str, ...] = SOURCES,
) -> pa.Table:
    """The changes applied by the delta days from `since` to `until` (inclusive; default: the last day) and
    those the monthly stocks published in that range brought (source "stock", day = the snapshot's
    coverage), as an Arrow table of COLUMNS ordered by day, identifier, level, field. ids: SIRENs (a unit
    and all its établissements) and/or SIRETs; kinds: among KINDS; fields: variable names; sources: among
    SOURCES. `con`: an open catalog connection (else one is opened on data_dir and closed)."""
    until = until or date.max
    if until < since:
        raise BadInput(f"--until {until.isoformat()} is before --since {since.isoformat()}")
    unknown = sorted(set(kinds or ()) - set(KINDS))
    if unknown:
        raise BadInput(f"unknown change kind {unknown[0]!r} (kinds: {', '.join(KINDS)})")
    known_fields = {c for t in TABLES for c in compared_columns(t)}
    bad = sorted(set(fields or ()) - known_fields)
    if bad:
        raise BadInput(
            f"unknown field {bad[0]!r}: fields are the stock files' variables (`mirror export --list-columns`)"
        )
    if con is None:
        con = connect(Path(data_dir), read_only=True)
        try:
            return changes(data_dir, since, until, ids, kinds, fields, con, sources)
        finally:
            con.close()
    con = private_cursor(con)  # private: the registered identifiers never reach the caller's connection
    days = _days_over_snapshot(Path(data_dir)) if "daily" in sources else []
    if ids is not None:
        con.register("_changes_ids", pa.table({"id": pa.array(sorted(set(ids)), pa.string())}))
    parts, args = [], []
    for table, (key, level, created, historique) in TABLES.items():
        files = [day_dir(Path(data_dir), d) / f"{table}.parquet" for d in days]
        if not files:
            continue
        historised = set(historised_columns(historique))
        columns = compared_columns(table)
        wanted = [c for c in columns if not fields or c in fields] or columns[:1]
        if ids is None:
            id_query = "SELECT k FROM touched"
        elif key == "siren":
            id_query = "SELECT id FROM _changes_ids WHERE length(id) = 9"
        else:
            id_query = "SELECT id FROM _changes_ids WHERE length(id) = 14 UNION ALL SELECT siret FROM versions WHERE siren IN (SELECT id FROM _changes_ids WHERE length(id) = 9)"
        parts.append(
            render(
                "changes/changes.sql",
                snapshot=f"({snapshot_select(con, data_dir, table)})",
                days=f"read_parquet([{', '.join(literal(f) for f in files)}], union_by_name = true)",
                key=ident(key),
                processed=ident(LAST_PROCESSED[table]),
                created=ident(created),
                lags=", ".join(
                    f"lag({ident(c)}) OVER w AS {ident('_prev_' + c)}, "
                    f"last_value({ident(c)}) OVER whole AS {ident('_last_' + c)}"
                    for c in wanted
                ),
                unpivot=", ".join(
                    f"{{'field': {literal(c)}, 'old': CAST({ident('_prev_' + c)} AS VARCHAR), "
                    f"'new': CAST({ident(c)} AS VARCHAR), 'historised': {'true' if c in historised else 'false'}, "
                    f"'masked': CAST({ident('_last_' + c)} AS VARCHAR) = '[ND]'}}"
                    for c in wanted
                ),
                ids=id_query,
                rows=rows_sql(level, wanted[0], "daily"),
            )
        )
        args += [since, until, since, until]
    links = [day_dir(Path(data_dir), d) / "liens_succession.parquet" for d in days]
    if links:
        parts.append(
            render(
                "changes/successions.sql",
                snapshot=f"({snapshot_select(con, data_dir, 'liens_succession')})",
                days=f"read_parquet([{', '.join(literal(f) for f in links)}], union_by_name = true)",
                ids=_ids_condition(ids is not None),
            )
        )
        args += [since, until]
    stock_files = [literal(f) for f in stock_changes_files(Path(data_dir))] if "stock" in sources else []
    if stock_files:
        parts.append(_stock_part(stock_files, ids is not None))
        args += [since, until]
    if not parts:
        return con.execute(render("changes/empty.sql")).to_arrow_table()
    sql = " UNION ALL ".join(f"({p})" for p in parts)
    where, filter_args = [], []
    if kinds:
        where.append("list_contains(?, kind)")
        filter_args.append(sorted(kinds))
    if fields:
        where.append("(field IS NULL OR list_contains(?, field))")
        filter_args.append(sorted(fields))
    query = f"SELECT * FROM ({sql}) {'WHERE ' + ' AND '.join(where) if where else ''} ORDER BY day, identifier, level DESC, field NULLS FIRST"
    return con.execute(query, args + filter_args).to_arrow_table()


def _days_over_snapshot(data_dir: Path) -> list[date]:
    """The delta days the views merge over the current snapshot: those at or after its coverage (days
    before it, still on disk between a load and the next update's prune, are in the snapshot already)."""
    folder = current_snapshot_path(data_dir)
    coverage = coverage_for(data_dir, folder) if folder is not None else None
    return [d for d in list_days(data_dir) if coverage is None or d >= coverage.date()]


def stock_changes_files(data_dir: Path) -> list[Path]:
    """The comparisons of each published snapshot with the state it replaced (mirror.load.stock_changes):
    the current snapshot's and those of the previous snapshots still on disk, oldest first."""
    state = read_state(data_dir)
    entries = [*reversed(state.get("previous_snapshots") or []), state.get("snapshot") or {}]
    files = [
        snapshots_dir(data_dir) / str(e.get("dir")) / STOCK_CHANGES_FILE for e in entries if e.get("dir")
    ]
    return [f for f in files if f.is_file()]


def snapshot_changes(data_dir: Path, snapshot: str, ids: list[str]) -> pa.Table:
    """The stock rows (COLUMNS) of snapshot folder `snapshot` for the SIRENs / SIRETs `ids` (a unit with all
    its établissements), masked as the current views are: what a watchlist receives after the sync that
    loaded it. No comparison file (the first snapshot, or one loaded before comparisons existed): none."""
    path = snapshots_dir(Path(data_dir)) / snapshot / STOCK_CHANGES_FILE
    con = connect(Path(data_dir), read_only=True)
    try:
        if not path.is_file():
            return con.execute(render("changes/empty.sql")).to_arrow_table()
        con.register("_changes_ids", pa.table({"id": pa.array(sorted(set(ids)), pa.string())}))
        query = f"SELECT * FROM ({_stock_part([literal(path)], True)}) ORDER BY identifier, level DESC, field NULLS FIRST"
        return con.execute(query, [date.min, date.max]).to_arrow_table()
    finally:
        con.close()


def _stock_part(files: list[str], by_ids: bool) -> str:
    """The stock rows of [?, ?] (sql/changes/stock_read.sql), masked as the current views are."""
    checks = {}
    for table in TABLES:
        maskable = [c for c in compared_columns(table) if c in MASKABLE_COLUMNS[table]]
        checks[table] = ", ".join(
            f"{{'field': {literal(c)}, 'masked': CAST({ident(c)} AS VARCHAR) = '[ND]'}}" for c in maskable
        )
        checks[f"{table}_fields"] = "[" + ", ".join(literal(c) for c in maskable) + "]"
    return render("changes/stock_read.sql", files=", ".join(files), ids=_ids_condition(by_ids), **checks)


def _ids_condition(by_ids: bool) -> str:
    """The condition keeping the rows of the registered `_changes_ids` (a SIRET, or a SIREN for a unit and
    all its établissements); `true` for every row."""
    if not by_ids:
        return "true"
    return "(identifier IN (SELECT id FROM _changes_ids) OR left(identifier, 9) IN (SELECT id FROM _changes_ids))"


FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}


def format_of(path: Path) -> str:
    """The output format of a changes file from its extension (one line naming the choices otherwise)."""
    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise BadInput(
            f"{path}: the changes are written as .csv, .jsonl or .parquet (from the file's extension)"
        )
    return fmt


def write(table: pa.Table, path: Path, fmt: str) -> None:
    """Writes the changes to `path` (a private temporary file of the caller: it renames it into place)."""
    con = open_duckdb()
    try:
        con.register("changes_table", table)
        options = {"csv": "FORMAT csv, HEADER", "jsonl": "FORMAT json", "parquet": "FORMAT parquet"}[fmt]
        con.execute(f"COPY changes_table TO {literal(path)} ({options})")
    finally:
        con.close()
