"""Builds the company search index (SQLite FTS5) of DATA_DIR/lookup.sqlite from the DuckDB catalog.

The store code (mirror.lookup.store / build) owns the SQLite connection and its transaction; this module only
creates its tables and writes rows, it never begins or commits:

    create_schema(db)                       search_fts (FTS5, what matches), search_nom and
                                            search_enseignes (FTS5 of its names, of the text of units
                                            with enseignes: what ranks),
                                            search_exact (exact-name keys), search_vocab (fts5vocab),
                                            search_units, search_etablissements
    index_units(db, con)                    every unité légale of the catalog
    index_units(db, con, sirens="changed")  re-indexes exactly the sirens of the DuckDB relation `changed`
                                            (one VARCHAR column `siren`); units gone from the catalog vanish

What is indexed and how is in sql/lookup/search_schema.sql and sql/lookup/search_units.sql (the texts come
from the *_diffusibles views: '[ND]' stays unsearchable, a partially diffusible natural person has no name
text). Reading is mirror.lookup.search.
"""

from __future__ import annotations

import queue
import sqlite3
import threading

import duckdb

from mirror.core.schema import opted_out_person
from mirror.core.sql import ident, render
from mirror.lookup.search import exact_keys

BATCH_ROWS = 50_000
# Columns of a search_units.sql row: the first FTS_COLUMNS go to search_fts, id + the rest to search_units.
FTS_COLUMNS = 15
_FTS_NAMES = (
    "nom, enseignes, departement, code_postal, naf, etat, commune, region, epci, section, tranche, categorie, "
    "nature, flags"
)
_UNIT_NAMES = (
    "id, siren, nom_complet, sigle, siret_siege, code_postal, commune, departement, activite_principale, "
    "etat_administratif, categorie_juridique, tranche_effectif_salarie, etablissements_ouverts, etablissements, "
    "section, categorie_entreprise, flags"
)
_ET_NAMES = "id, siege, etat, code_postal, commune, departement, region, epci, latitude, longitude"

_INSERT_FTS = f"INSERT INTO search_fts(rowid, {_FTS_NAMES}) VALUES ({', '.join('?' * FTS_COLUMNS)})"
# The ranking indexes (contentless): search_nom the first text column, search_enseignes both for the rows
# with enseignes (`_has_enseignes`, `trim(enseignes) <> ''` in SQL: the same test). Removing a row from one
# takes the values it indexed ('delete'), read from search_fts before that row changes. search_exact holds
# the exact-name keys of search_units' names (mirror.lookup.search.exact_keys).
_INSERT_NOM = "INSERT INTO search_nom(rowid, nom) VALUES (?, ?)"
_DELETE_NOM = "INSERT INTO search_nom(search_nom, rowid, nom) VALUES ('delete', ?, ?)"
_FILL_NOM = "INSERT INTO search_nom(rowid, nom) SELECT rowid, nom FROM search_fts"
_INSERT_ENSEIGNES = "INSERT INTO search_enseignes(rowid, nom, enseignes) VALUES (?, ?, ?)"
_DELETE_ENSEIGNES = (
    "INSERT INTO search_enseignes(search_enseignes, rowid, nom, enseignes) VALUES ('delete', ?, ?, ?)"
)
_FILL_ENSEIGNES = (
    "INSERT INTO search_enseignes(rowid, nom, enseignes) "
    "SELECT rowid, nom, enseignes FROM search_fts WHERE trim(enseignes) <> ''"
)
_SELECT_TEXT = "SELECT rowid, nom, enseignes FROM search_fts WHERE rowid = ?"
_INSERT_EXACT = "INSERT OR IGNORE INTO search_exact(key, id) VALUES (?, ?)"
_DELETE_EXACT = "DELETE FROM search_exact WHERE key = ? AND id = ?"
_SELECT_EXACT = "SELECT nom_complet, sigle FROM search_units WHERE id = ?"
_SELECT_FTS = f"SELECT {_FTS_NAMES} FROM search_fts WHERE rowid = ?"
_SELECT_UNIT = f"SELECT {_UNIT_NAMES} FROM search_units WHERE id = ?"
_INSERT_UNIT = f"INSERT INTO search_units({_UNIT_NAMES}) VALUES ({', '.join('?' * 17)})"
_INSERT_ET = f"INSERT INTO search_etablissements({_ET_NAMES}) VALUES ({', '.join('?' * 10)})"
_INSERT_GEO = "INSERT INTO search_geo(id, min_lat, max_lat, min_lon, max_lon) VALUES (?, ?, ?, ?, ?)"
# A unit's établissement rows: sirets siren * 100000 + nic (an R*Tree is probed by id one id at a time).
_UNIT_ETS = "SELECT id FROM search_etablissements WHERE id BETWEEN ? * 100000 AND ? * 100000 + 99999"
_DELETE_ETS = "DELETE FROM search_etablissements WHERE id BETWEEN ? * 100000 AND ? * 100000 + 99999"


def statements(path: str) -> list[str]:
    """The statements of a SQLite script sql/<path>, one by one (sqlite3's executescript would COMMIT first,
    and the caller owns the transaction)."""
    out, current = [], ""
    for line in render(path).splitlines():
        current += line + "\n"
        if sqlite3.complete_statement(current):
            out.append(current.strip())
            current = ""
    if current.strip():
        out.append(current.strip())
    return out


def create_schema(db: sqlite3.Connection) -> None:
    """Creates the search tables (sql/lookup/search_schema.sql) in `db`."""
    for statement in statements("lookup/search_schema.sql"):
        db.execute(statement)


def _batches(con: duckdb.DuckDBPyConnection, sql: str, out: queue.Queue, stop: threading.Event) -> None:
    """Producer thread: fetches the query's rows in batches into `out`, then None (or the exception);
    gives up as soon as `stop` is set (the consumer failed)."""

    def put(item) -> bool:
        while not stop.is_set():
            try:
                out.put(item, timeout=0.1)
                return True
            except queue.Full:
                pass
        return False

    try:
        cur = con.execute(sql)
        while rows := cur.fetchmany(BATCH_ROWS):
            if not put(rows):
                return
        put(None)
    except BaseException as exc:  # handed to the consumer, which re-raises it
        put(exc)


def _stream(con: duckdb.DuckDBPyConnection, sql: str, consume) -> None:
    """Runs `sql` on `con` and hands its rows to `consume` batch by batch (DuckDB fetches the next batch on a
    thread while SQLite inserts the current one), so memory stays bounded."""
    pending: queue.Queue = queue.Queue(maxsize=2)
    stop = threading.Event()
    producer = threading.Thread(
        target=_batches, args=(con, sql, pending, stop), name="search-index", daemon=True
    )
    producer.start()
    try:
        while (rows := pending.get()) is not None:
            if isinstance(rows, BaseException):
                raise rows
            consume(rows)
    except BaseException:
        stop.set()  # the producer stops at its next batch; a query still running is interrupted
        if producer.is_alive():
            con.interrupt()
        raise
    finally:
        stop.set()
        producer.join()


def index_units(db: sqlite3.Connection, con: duckdb.DuckDBPyConnection, sirens: str | None = None) -> int:
    """Indexes the unités légales of the catalog `con` into `db`; returns the number of units indexed.

    sirens=None: every unit (rows already in the index are removed first; the index is optimized after).
    Otherwise the name of a table or view of `con` with one VARCHAR column `siren`: the index rows of
    exactly those sirens are deleted, then the units among them that the catalog still holds are inserted.
    Their search_etablissements rows (siège and open établissements) are rewritten the same way. Rows are
    streamed, so memory stays bounded. No BEGIN / COMMIT: the caller owns the transaction.
    """
    stale: set[int] = set()  # incremental: the ids whose rows are not rewritten yet
    if sirens is None:
        restrict = "true"
        if db.execute("SELECT 1 FROM search_units LIMIT 1").fetchone():
            db.execute("DELETE FROM search_units")
            db.execute("DELETE FROM search_fts")
            for table in ("search_nom", "search_enseignes"):
                db.execute(f"INSERT INTO {table}({table}) VALUES ('delete-all')")
            db.execute("DELETE FROM search_exact")
        db.execute("DELETE FROM search_etablissements")
        db.execute("DELETE FROM search_geo")
    else:
        relation = ident(sirens)
        restrict = render("lookup/search_restrict.sql", sirens=relation)
        cur = con.execute(render("lookup/search_sirens.sql", sirens=relation))
        while ids := cur.fetchmany(BATCH_ROWS):
            stale.update(i for (i,) in ids)
        for i in sorted(stale):
            old = db.execute(_UNIT_ETS, [i, i]).fetchall()
            if old:
                db.executemany("DELETE FROM search_geo WHERE id = ?", old)
                db.execute(_DELETE_ETS, [i, i])
    count = 0

    def units(rows: list[tuple]) -> None:
        nonlocal count
        if sirens is not None:
            rows = _changed(db, rows, stale)
            # A full build fills search_nom and search_enseignes once, from search_fts.
            db.executemany(_INSERT_NOM, (r[:2] for r in rows))
            db.executemany(_INSERT_ENSEIGNES, (r[:3] for r in rows if _has_enseignes(r[2])))
        db.executemany(_INSERT_FTS, (r[:FTS_COLUMNS] for r in rows))
        db.executemany(_INSERT_UNIT, ((r[0], *r[FTS_COLUMNS:]) for r in rows))
        # search_units' nom_complet and sigle: the row's columns FTS_COLUMNS + 1 and + 2.
        db.executemany(
            _INSERT_EXACT,
            ((k, r[0]) for r in rows for k in exact_keys(r[FTS_COLUMNS + 1], r[FTS_COLUMNS + 2])),
        )
        count += len(rows)

    opted_out = opted_out_person("statutDiffusionUniteLegale", "categorieJuridiqueUniteLegale")
    _stream(con, render("lookup/search_units.sql", restrict=restrict, opted_out=opted_out), units)

    def etablissements(rows: list[tuple]) -> None:
        db.executemany(_INSERT_ET, (r[:10] for r in rows))
        # The last column: coordinates known and the unit diffusible 'O' (sql/lookup/search_etablissements.sql).
        db.executemany(_INSERT_GEO, ((r[0], r[8], r[8], r[9], r[9]) for r in rows if r[10]))

    _stream(con, render("lookup/search_etablissements.sql", restrict=restrict), etablissements)
    if sirens is None:
        db.execute(_FILL_NOM)  # from search_fts' text, once
        db.execute(_FILL_ENSEIGNES)
        for table in ("search_fts", "search_nom", "search_enseignes"):
            db.execute(f"INSERT INTO {table}({table}) VALUES ('optimize')")
    else:  # units the catalog no longer holds
        _delete_names(db, sorted(stale))
        db.executemany("DELETE FROM search_fts WHERE rowid = ?", [(i,) for i in sorted(stale)])
        db.executemany("DELETE FROM search_units WHERE id = ?", [(i,) for i in sorted(stale)])
    return count


def _changed(db: sqlite3.Connection, rows: list[tuple], stale: set[int]) -> list[tuple]:
    """The rows of an incremental re-index that differ from what the index holds, their old versions
    deleted; identical ones are left alone (an FTS5 delete re-tokenizes the old row: most rows a day
    touches keep their names, filters and display fields). Every id seen leaves `stale`."""
    out = []
    for row in rows:
        stale.discard(row[0])
        old_fts = db.execute(_SELECT_FTS, [row[0]]).fetchone()
        old_unit = db.execute(_SELECT_UNIT, [row[0]]).fetchone()
        if old_fts == tuple(row[1:FTS_COLUMNS]) and old_unit == (row[0], *row[FTS_COLUMNS:]):
            continue
        if old_fts is not None:
            _unindex_text(db, row[0], old_fts[0], old_fts[1])
            db.execute("DELETE FROM search_fts WHERE rowid = ?", [row[0]])
        if old_unit is not None:
            _delete_exact(db, row[0], old_unit[2], old_unit[3])
            db.execute("DELETE FROM search_units WHERE id = ?", [row[0]])
        out.append(row)
    return out


def _has_enseignes(enseignes: str | None) -> bool:
    """Whether search_fts' `enseignes` value goes to search_enseignes (SQL: trim(enseignes) <> '')."""
    return enseignes is not None and enseignes.strip(" ") != ""


def _unindex_text(db: sqlite3.Connection, unit: int, nom: str | None, enseignes: str | None) -> None:
    """Removes a unit's text (search_fts' values) from the ranking indexes that hold it."""
    db.execute(_DELETE_NOM, [unit, nom])
    if _has_enseignes(enseignes):
        db.execute(_DELETE_ENSEIGNES, [unit, nom, enseignes])


def _delete_names(db: sqlite3.Connection, ids: list[int]) -> None:
    """Removes the rows `ids` from search_nom, search_enseignes and search_exact, while search_fts and
    search_units still hold the text they indexed."""
    for i in ids:
        old = db.execute(_SELECT_TEXT, [i]).fetchone()
        if old is not None:
            _unindex_text(db, *old)
        names = db.execute(_SELECT_EXACT, [i]).fetchone()
        if names is not None:
            _delete_exact(db, i, *names)


def _delete_exact(db: sqlite3.Connection, unit: int, nom_complet: str | None, sigle: str | None) -> None:
    db.executemany(_DELETE_EXACT, ((k, unit) for k in exact_keys(nom_complet, sigle)))
