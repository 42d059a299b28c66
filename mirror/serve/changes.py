"""What changed, and when: `changes(data_dir, since, until)` lists, one row per changed variable, what the
daily INSEE changes applied between two days did to the units and établissements of the mirror.

Between consecutive versions of a key (the snapshot row, then each delta day's row, ranked as the merge
rules rank them) each compared variable whose value differs gives a row: identifier, level, kind (creation,
cessation / fermeture, reactivation, siege, name, activity, address, effectif, categorie_juridique,
diffusion, other), field, old and new values (as text), effective date (the period's dateDebut for the
variables INSEE historises, the creation date for a creation), processing date (dateDernierTraitement),
source and day. The compared variables are the stock file's, but keys and bookkeeping (dates of treatment,
number of periods, dateDebut itself, the mirror's derived columns). SQL in sql/changes/.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa

from mirror.catalog.build import connect, snapshot_select
from mirror.core.errors import BadInput
from mirror.core.schema import LAST_PROCESSED, STOCK_FILES_BY_KEY
from mirror.core.sql import ident, literal, render
from mirror.deltas.store import day_dir, list_days
from mirror.serve.documents import historised_columns

KINDS = (
    "creation", "cessation", "fermeture", "reactivation", "siege", "name", "activity", "address", "effectif",
    "categorie_juridique", "diffusion", "other",
)  # fmt: skip
COLUMNS = (
    "identifier", "level", "kind", "field", "old_value", "new_value", "effective_date", "processing_date",
    "source", "day",
)  # fmt: skip
# table: (key, level, creation date, historique)
_TABLES = {
    "unites_legales": ("siren", "unite_legale", "dateCreationUniteLegale", "unites_legales_historique"),
    "etablissements": ("siret", "etablissement", "dateCreationEtablissement", "etablissements_historique"),
}
_NOT_COMPARED = {"siren", "nic", "siret", "dateDebut"}


def compared_columns(table: str) -> list[str]:
    """The variables whose changes are reported: the stock file's, but keys and bookkeeping."""
    return [
        c
        for c in STOCK_FILES_BY_KEY[table].columns
        if c not in _NOT_COMPARED and not c.startswith(("dateDernierTraitement", "nombrePeriodes"))
    ]


def changes(
    data_dir: Path,
    since: date,
    until: date | None = None,
    ids: list[str] | None = None,
    kinds: list[str] | None = None,
    fields: list[str] | None = None,
    con: duckdb.DuckDBPyConnection | None = None,
) -> pa.Table:
    """The changes applied by the delta days from `since` to `until` (inclusive; default: the last day), as
    an Arrow table of COLUMNS ordered by day, identifier, level, field. ids: SIRENs (a unit and all its
    établissements) and/or SIRETs; kinds: among KINDS; fields: variable names. `con`: an open catalog
    connection (else one is opened on data_dir and closed)."""
    until = until or date.max
    if until < since:
        raise BadInput(f"--until {until.isoformat()} is before --since {since.isoformat()}")
    unknown = sorted(set(kinds or ()) - set(KINDS))
    if unknown:
        raise BadInput(f"unknown change kind {unknown[0]!r} (kinds: {', '.join(KINDS)})")
    known_fields = {c for t in _TABLES for c in compared_columns(t)}
    bad = sorted(set(fields or ()) - known_fields)
    if bad:
        raise BadInput(
            f"unknown field {bad[0]!r}: fields are the stock files' variables (`mirror export --list-columns`)"
        )
    if con is None:
        con = connect(Path(data_dir), read_only=True)
        try:
            return changes(data_dir, since, until, ids, kinds, fields, con)
        finally:
            con.close()
    con = con.cursor()  # private: the registered identifiers never reach the caller's connection
    days = list_days(Path(data_dir))
    if ids is not None:
        con.register("_changes_ids", pa.table({"id": pa.array(sorted(set(ids)), pa.string())}))
    parts, args = [], []
    for table, (key, level, created, historique) in _TABLES.items():
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
                level=level,
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
                first=wanted[0],
                ids=id_query,
                kinds=render("changes/field_kinds.sql"),
            )
        )
        args += [since, until, since, until]
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
    con = duckdb.connect()
    try:
        con.register("changes_table", table)
        options = {"csv": "FORMAT csv, HEADER", "jsonl": "FORMAT json", "parquet": "FORMAT parquet"}[fmt]
        con.execute(f"COPY changes_table TO {literal(path)} ({options})")
    finally:
        con.close()
