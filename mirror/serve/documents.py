"""API Entreprise documents (v2, v3, v4) rebuilt from the mirror, one at a time or in bulk.

The documents themselves are built by the SQL views of `sql/views/2*.sql` (one row per siren / siret, a JSON
column in API Entreprise's key order); this module only picks the right view and row and tells the truth
about errors, with API Entreprise's HTTP status and error bodies:

- 422: not a SIREN / SIRET (length, digits, Luhn with the La Poste exception; mirror.core.identifiers);
- 301: a SIREN closed as a doublon (StockDoublons): the body names the replacing SIREN;
- 404: unknown to the mirror;
- 451: not diffusible (`is_diffusible`: a unit P, or an établissement P or of a unit P) without
  `non_diffusables=True` (v2 and the v3/v4 protected documents alike). The `/diffusibles/` documents
  (`diffusibles=True`, v3/v4) answer 200 with the protected fields as "[ND]".

    from mirror.serve.documents import get_document
    status, doc = get_document("./data", "418166096", fmt="v2")

Data held as "[ND]" by INSEE's open files stays "[ND]": nothing is ever reconstructed.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from string import Template
from typing import TYPE_CHECKING

from mirror.core.changes import historised_columns
from mirror.core.identifiers import is_valid_siren, is_valid_siret
from mirror.core.sql import SQL_DIR, private_cursor, render_cached
from mirror.core.sql import ident as sql_ident

if TYPE_CHECKING:  # DuckDB and pyarrow are imported where used: a lookup answered by the store needs neither
    import duckdb
    import pyarrow as pa

FORMATS = ("v2", "v3", "v4")

# Exit codes of `mirror get` per HTTP status (1 is a missing mirror or another MirrorError).
EXIT_CODES = {200: 0, 422: 2, 404: 3, 451: 4, 301: 5}

_API = "https://entreprise.api.gouv.fr"
_NOT_FOUND_V2 = (
    "Le siret ou siren indiqué n'existe pas, n'est pas connu ou ne comporte aucune information pour cet appel"
)
_NOT_FOUND_V3 = (
    "Le ou les paramètre(s) d'entrée n'existent pas, ne sont pas connus, ou ne comportent aucune information "
    "pour cet appel. Veuillez vérifier que votre recherche est couverte par le périmètre de l'API."
)


# ------------------------------------------------------------------------------------------------
# Error bodies (reference api-entreprise-json.md section 12)
# ------------------------------------------------------------------------------------------------


def error_document(status: int, fmt: str, kind: str, replacing_siren: str | None = None) -> dict:
    """API Entreprise's error body for an HTTP status, in the v2 (strings) or v3/v4 (JSON:API-like) model.

    `kind` is "siren" or "siret" (the parameter the error is about).
    """
    label = kind.upper()
    if status == 422:
        detail = f"Le numéro de {kind} n'est pas correctement formatté"
        if fmt == "v2":
            return {"errors": [detail], "gateway_error": False}
        code = "00301" if kind == "siren" else "00302"
        return {
            "errors": [
                {
                    "code": code,
                    "title": "Entité non traitable",
                    "detail": detail,
                    "source": {"parameter": kind},
                    "meta": {},
                }
            ]
        }
    if status == 404:
        if fmt == "v2":
            return {"errors": [_NOT_FOUND_V2], "gateway_error": True}
        return {
            "errors": [
                {
                    "code": "01003",
                    "title": "Entité non trouvée",
                    "detail": _NOT_FOUND_V3,
                    "source": None,
                    "meta": {"provider": "INSEE"},
                }
            ]
        }
    if status == 451:
        detail = f"Le {label} est non diffusable, pour y accéder référez-vous à notre documentation."
        if fmt == "v2":
            return {"errors": [detail], "gateway_error": True}
        return {
            "errors": [
                {
                    "code": "01005",
                    "title": "Indisponible pour des raisons légales",
                    "detail": detail,
                    "source": None,
                    "meta": {"provider": "INSEE"},
                }
            ]
        }
    if status == 301:
        what = "Unité légale" if kind == "siren" else "Établissement d'une unité légale"
        detail = f"{what} fermée pour cause de doublon ; SIREN valide : {replacing_siren}"
        if fmt == "v2":
            return {"errors": [detail], "gateway_error": False}
        location = f"{_API}/{fmt}/insee/sirene/unites_legales/{replacing_siren}"
        return {
            "errors": [
                {
                    "code": "01301",
                    "title": "Redirection (doublon)",
                    "detail": detail,
                    "source": {"parameter": kind},
                    "meta": {"provider": "INSEE", "siren": replacing_siren, "location": location},
                }
            ]
        }
    raise ValueError(f"no error body for HTTP {status}")


# ------------------------------------------------------------------------------------------------
# Identifiers and diffusion decisions
# ------------------------------------------------------------------------------------------------


def normalize_identifier(identifier: str) -> str:
    """Removes spaces (and non-breaking spaces) people paste from documents: '418 166 096' -> '418166096'."""
    return "".join(str(identifier).split()).replace("\u00a0", "").replace("\u202f", "")


def identifier_kind(identifier: str) -> str | None:
    """'siren' or 'siret' when the identifier is a valid one (length, digits, Luhn), else None."""
    if len(identifier) == 9 and is_valid_siren(identifier):
        return "siren"
    if len(identifier) == 14 and is_valid_siret(identifier):
        return "siret"
    return None


def _guess_kind(identifier: str) -> str:
    """The parameter an invalid identifier was meant to be (for the 422 body)."""
    return "siret" if len(identifier) > 9 else "siren"


def is_diffusible(statut: str | None, statut_unite_legale: str | None = None) -> bool:
    """THE diffusion rule of every path (get, batch, export's JSON Lines, search documents, serve): an answer
    is diffusible when everything it carries is. A unit's answer carries the unit: its statutDiffusion must
    be 'O'. An établissement's answer carries the établissement and its unit (the unit's names, in v3/v4
    `unite_legale` and in the v2 address line l1): both must be 'O' (an établissement whose unit is
    unknown to the mirror carries no unit data: its own statut decides). 'P' (and the obsolete 'N', and an
    unknown statut) is not diffusible. README "Diffusion rules"; the SQL form is DIFFUSIBLE_SQL."""
    return statut == "O" and statut_unite_legale in (None, "O")


# is_diffusible in SQL, for the paths that decide over whole tables (mirror.export.batch statuses):
# {statut} and {statut_ul} are column expressions written by the package (never user input).
DIFFUSIBLE_SQL = "(coalesce({statut} = 'O', false) AND coalesce({statut_ul}, 'O') = 'O')"


def _blocked(
    fmt: str, kind: str, diffusibles: bool, non_diffusables: bool, statut: str | None, statut_ul: str | None
) -> bool:
    """True when the answer is 451: a document that is not diffusible (is_diffusible), asked for without
    the option that allows it (v2 non_diffusables=true; v3/v4 the /diffusibles/ variant or the protected
    documents with their [ND] masks)."""
    if non_diffusables or (diffusibles and fmt != "v2"):
        return False
    return not is_diffusible(statut, statut_ul if kind == "siret" else None)


def _check_args(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")


# ------------------------------------------------------------------------------------------------
# Single lookups
# ------------------------------------------------------------------------------------------------


def _connect(source) -> tuple[duckdb.DuckDBPyConnection, bool]:
    """(connection, owned): an open DuckDB connection, or the catalog of a data directory opened read-only."""
    import duckdb

    if isinstance(source, duckdb.DuckDBPyConnection):
        return source, False
    from mirror.catalog.build import connect
    from mirror.core.config import resolve_data_dir

    return connect(resolve_data_dir(source), read_only=True), True


class _ViewSource:
    """Answers from the catalog's document views (any format; v2 only here)."""

    def __init__(self, con):
        self.con = con

    def replacing(self, siren: str) -> str | None:
        row = self.con.execute(render_cached("documents/replacing_siren.sql"), [siren]).fetchone()
        return row[0] if row else None

    def siege_siret(self, siren: str) -> str | None:
        """The siret of the unit's siège (siren + nicSiegeUniteLegale), None when the unit is unknown."""
        row = self.con.execute(render_cached("documents/siege_siret.sql"), [siren]).fetchone()
        return row[0] if row else None

    def document_row(self, fmt, kind, ident, diffusibles, non_diffusables):
        return _document_row(self.con, fmt, kind, ident, diffusibles, non_diffusables)


class _StoreSource:
    """Answers from the lookup store (v3, v4), inside one read transaction the caller opened."""

    def __init__(self, store):
        self.store = store

    def replacing(self, siren: str) -> str | None:
        return self.store.replacing(siren)

    def siege_siret(self, siren: str) -> str | None:
        unit = self.store.unit(siren)
        return unit[1] if unit else None

    def document_row(self, fmt, kind, ident, diffusibles, non_diffusables):
        if kind == "siren":
            found = self.store.unit(ident)
            if found is None:
                return None
            statut, _siege, variants = found
            statut_ul = None
        else:
            found = self.store.etablissement(ident)
            if found is None:
                return None
            statut, statut_ul, variants = found
        document = variants.get(fmt + "d") if diffusibles else None
        document = document or variants.get(fmt)
        return None if document is None else (statut, statut_ul, document)


def get_document(
    source: duckdb.DuckDBPyConnection | str | os.PathLike,
    identifier: str,
    fmt: str = "v3",
    diffusibles: bool = False,
    non_diffusables: bool = False,
    siege: bool = False,
    follow_doublons: bool = False,
    as_of: date | None = None,
) -> tuple[int, dict]:
    """The API Entreprise answer for one SIREN or SIRET: (HTTP status, JSON body as a dict).

    source: a data directory, or an open DuckDB connection on the catalog. With a data directory, v3 and
    v4 come from the lookup store (mirror.lookup.store) when it is current, else (and for v2) from the
    catalog's views, opened read-only and closed; both give the same bodies. fmt: "v2" (SIREN ->
    /v2/entreprises, SIRET -> /v2/etablissements), "v3" or "v4" (SIREN -> unites_legales, SIRET ->
    etablissements). diffusibles: the v3/v4 /diffusibles/ variant (ignored by v2). non_diffusables: v2's
    non_diffusables=true (and access to the v3/v4 protected documents of P units). siege: for a SIREN, the
    document of its siège (v3/v4 /unites_legales/{siren}/siege_social; v2: the /v2/etablissements document
    of the siège). follow_doublons: for a SIREN closed as a doublon, answer the replacing unit's document
    with meta.redirect_from_siren set (v3/v4; v2 has no such field) instead of 301. as_of: the document
    as it stood that day (a data directory only; see point_in_time): 404 for a unit created later.
    """
    _check_args(fmt)
    ident = normalize_identifier(identifier)
    kind = identifier_kind(ident)
    if kind is None:
        return 422, error_document(422, fmt, _guess_kind(ident))
    if siege and kind == "siret":
        return 422, error_document(422, fmt, "siren")
    args = (ident, kind, fmt, diffusibles, non_diffusables, siege, follow_doublons)
    if as_of is not None:  # the views over that day's rows (the store holds today's documents only)
        stored = _stored_rows(source, ident[:9])
        con, owned = _connect(source)
        try:
            if stored is None:
                replacing = _ViewSource(con).replacing(ident[:9])
                sirens = [ident[:9], *([replacing] if replacing else [])]
            else:
                sirens = list(stored[1])
            with point_in_time(con, sirens, as_of, stored) as cur:
                return _answer(_ViewSource(cur), *args)
        finally:
            if owned:
                con.close()
    if fmt != "v2" and isinstance(source, str | os.PathLike) and os.fspath(source):
        from mirror.lookup.store import open_store

        store = open_store(source)
        if store is not None:
            answer = _answer_from_store(store, args)
            if answer is not None:
                return answer
    con, owned = _connect(source)
    try:
        return _answer(_ViewSource(con), *args)
    finally:
        if owned:
            con.close()


# Point in time: each table versioned by a historique, with its historique, key and creation date.
AS_OF_TABLES = {
    "unites_legales": ("unites_legales_historique", "siren", "dateCreationUniteLegale"),
    "etablissements": ("etablissements_historique", "siret", "dateCreationEtablissement"),
}


def _stored_rows(source, siren: str) -> tuple[dict[str, str], dict[str, dict[str, str]]] | None:
    """For a data directory whose lookup store is current: (the from_json structure of each base view,
    {SIREN: {base view: JSON array of its rows}}) of `siren` and of the unit replacing it when it is a
    doublon, read in one store transaction; None when only the catalog can say (point_in_time scans it)."""
    if not isinstance(source, str | os.PathLike) or not os.fspath(source):
        return None
    from mirror.lookup.store import open_store

    store = open_store(source)
    if store is None:
        return None

    def read(s):
        replacing = s.replacing(siren)
        return s.rows_structure, {x: s.unit_rows(x) for x in dict.fromkeys([siren, replacing]) if x}

    return store.read(read, current_only=True)


@contextlib.contextmanager
def point_in_time(
    con: duckdb.DuckDBPyConnection,
    sirens: list[str],
    day: date,
    stored: tuple[dict[str, str], dict[str, dict[str, str]]] | None = None,
):
    """A private cursor of the catalog `con` whose TEMP views, named like the four base views the document
    views read, give the units `sirens` and their établissements as they stood on `day` (the rule per
    variable: sql/documents/as_of_current.sql); the document views on it answer for that day. The day and
    the SIRENs are bound values, never SQL text. stored: those units' rows as the lookup store keeps them
    (_stored_rows), read instead of scanning the catalog's Parquet tables (the same rows: one SIREN costs
    the same at any scale). The day's rows are views over the TEMP tables as_of_source_*, not tables:
    one document query binds them, where creating four tables cost 15 ms."""
    cur = private_cursor(con)
    try:
        cur.execute("CREATE TEMP TABLE as_of_day AS SELECT CAST(? AS DATE) AS day", [day])
        if stored is None:
            _as_of_sources_from_catalog(cur, sirens)
        else:
            from mirror.lookup.store import ROW_TABLES

            structure, units = stored
            for table in ROW_TABLES:
                arrays = [rows[table][1:-1] for rows in units.values() if rows.get(table, "[]") != "[]"]
                cur.execute(
                    render_cached("documents/as_of_source_rows.sql", name=sql_ident(f"as_of_source_{table}")),
                    ["[" + ",".join(arrays) + "]", structure[table]],
                )
        for table, (historique, key, created) in AS_OF_TABLES.items():
            replace = ", ".join(
                f"CASE WHEN v.{sql_ident(key)} IS NULL THEN c.{sql_ident(c)} ELSE v.{sql_ident(c)} END AS {sql_ident(c)}"
                for c in historised_columns(historique)
            )
            select = render_cached(
                "documents/as_of_current.sql",
                source=sql_ident(f"as_of_source_{table}"),
                historique=sql_ident(f"as_of_source_{historique}"),
                key=sql_ident(key),
                created=sql_ident(created),
                replace=replace,
            )
            cur.execute(f"CREATE TEMP VIEW {sql_ident(table)} AS {select}")
            select = render_cached(
                "documents/as_of_historique.sql", source=sql_ident(f"as_of_source_{historique}")
            )
            cur.execute(f"CREATE TEMP VIEW {sql_ident(historique)} AS {select}")
        yield cur
    finally:
        cur.close()


def _as_of_sources_from_catalog(cur: duckdb.DuckDBPyConnection, sirens: list[str]) -> None:
    """point_in_time's as_of_source_* TEMP tables, scanned from the catalog: the rows of the units `sirens`
    and of their établissements (only the département partitions that hold them)."""
    sirens = sorted(set(sirens))
    deps = {
        row[0]
        for siren in sirens
        for row in cur.execute(
            "SELECT DISTINCT departement FROM etablissements_departements WHERE siret >= ? AND siret < ?",
            [siren, siren + ":"],
        ).fetchall()
    }
    known = sorted(d for d in deps if d is not None)
    partitions = [f"departement IN ({', '.join('?' * len(known))})"] if known else []
    if None in deps:
        partitions.append("departement IS NULL")
    (db,) = cur.execute("SELECT current_database()").fetchone()
    sources = render_cached(
        "documents/as_of_sources.sql",
        db=sql_ident(db),
        sirens=", ".join("?" * len(sirens)),
        departements=" OR ".join(partitions) or "false",
    )
    for statement in filter(str.strip, sources.split(";")):
        cur.execute(statement, sirens + (known if "departement" in statement else []))


def get_successions(data_dir: str | os.PathLike, siret: str, fmt: str = "v3") -> tuple[int, dict]:
    """(status, body) of `/etablissements/{siret}/successions`: the liens de succession where the siret is
    the predecessor or the successor, one read-only catalog connection (one state of the mirror).

    200 `{"data": {"predecesseurs": [...], "successeurs": [...]}, "links": {}, "meta": {}}`, each link
    `{siret, date_succession, transfert_siege, continuite_economique}` (the shape of API Entreprise's public
    staging payloads, github.com/etalab/siade_staging_data, api_entreprise_v3_insee_successions); 404 when the
    mirror knows neither
    the établissement nor a link naming it; 422 for a malformed SIRET."""
    from mirror.catalog.build import connect

    siret = normalize_identifier(siret)
    if identifier_kind(siret) != "siret":
        return 422, error_document(422, fmt, "siret")
    con = connect(Path(data_dir), read_only=True)
    try:
        rows = con.execute(render_cached("documents/successions.sql"), [siret]).fetchall()
    finally:
        con.close()
    out: dict[str, list] = {"predecesseurs": [], "successeurs": []}
    known = False
    for direction, other, day, transfert, continuite, row_known in rows:
        if direction is None:
            known = bool(row_known)
            continue
        key = "predecesseurs" if direction == "predecesseur" else "successeurs"
        out[key].append(
            {
                "siret": other,
                "date_succession": day,
                "transfert_siege": transfert,
                "continuite_economique": continuite,
            }
        )
    if not known and not out["predecesseurs"] and not out["successeurs"]:
        return 404, error_document(404, fmt, "siret")
    return 200, {"data": out, "links": {}, "meta": {}}


def get_document_from_store(
    data_dir: str | os.PathLike,
    identifier: str,
    fmt: str = "v3",
    diffusibles: bool = False,
    siege: bool = False,
    busy_ms: int | None = None,
    as_text: bool = False,
) -> tuple[int, dict | str] | None:
    """get_document's v3/v4 answer from the lookup store alone, or None when only the views can answer (v2,
    a malformed identifier, no store, a store not current, locked by a writer past `busy_ms` (default
    READ_BUSY_MS) or damaged). For callers that must not wait on DuckDB (the HTTP server's event loop).
    as_text: a 200 body is the stored JSON text, not parsed: the store keeps each document in the compact
    form json.dumps(ensure_ascii=False, separators=(",", ":")) gives (the HTTP server sends it as it is)."""
    from mirror.lookup.store import READ_BUSY_MS, open_store

    _check_args(fmt)
    ident = normalize_identifier(identifier)
    kind = identifier_kind(ident)
    if fmt == "v2" or kind is None or (siege and kind == "siret"):
        return None
    store = open_store(data_dir)
    if store is None:
        return None
    store.set_busy_timeout(READ_BUSY_MS if busy_ms is None else busy_ms)
    return _answer_from_store(store, (ident, kind, fmt, diffusibles, False, siege, False), as_text)


def _answer_from_store(store, args, as_text: bool = False) -> tuple[int, dict | str] | None:
    """The store's answer, or None when it cannot give one now (not current; still locked by a writer's
    commit after READ_BUSY_MS; a damaged row): the views answer then, with the same documents."""
    return store.read(lambda s: _answer(_StoreSource(s), *args, as_text=as_text))


def _answer(
    src, ident, kind, fmt, diffusibles, non_diffusables, siege, follow_doublons, as_text: bool = False
) -> tuple[int, dict | str]:
    """get_document's decisions (301, 404, 451, 200) over one source of rows (as_text: a 200 body left as
    its JSON text; not with follow_doublons, which edits the document)."""
    replacing = src.replacing(ident[:9])
    if replacing is not None:
        if follow_doublons and kind == "siren" and replacing != ident:
            status, doc = _answer(src, replacing, "siren", fmt, diffusibles, non_diffusables, siege, False)
            if status == 200 and fmt != "v2" and not siege:
                doc["meta"]["redirect_from_siren"] = ident
            return status, doc
        return 301, error_document(301, fmt, kind, replacing)
    if siege:  # the siège's établissement document, looked up by its siret (one partition, not all)
        siret = src.siege_siret(ident)
        row = src.document_row(fmt, "siret", siret, diffusibles, non_diffusables) if siret else None
    else:
        row = src.document_row(fmt, kind, ident, diffusibles, non_diffusables)
    if row is None:
        return 404, error_document(404, fmt, kind)
    if siege:
        kind = "siret"  # the diffusion decision and its 451 body are about the siège établissement
    statut, statut_ul, document = row
    if _blocked(fmt, kind, diffusibles, non_diffusables, statut, statut_ul):
        return 451, error_document(451, fmt, kind)
    return 200, document if as_text else json.loads(document)


def _partition_hint(con: duckdb.DuckDBPyConnection, siret: str) -> tuple[str, list] | None:
    """An extra WHERE naming the département(s) of `siret` (read from the small etablissements_departements
    index), so that DuckDB opens that partition only instead of every partition file; None when the
    siret is unknown to the mirror."""
    deps = [
        r[0]
        for r in con.execute(
            "SELECT DISTINCT departement FROM etablissements_departements WHERE siret = ?", [siret]
        ).fetchall()
    ]
    if not deps:
        return None
    known = [d for d in deps if d is not None]
    conditions = [f"departement IN ({', '.join('?' * len(known))})"] if known else []
    if len(known) < len(deps):
        conditions.append("departement IS NULL")
    return f" AND ({' OR '.join(conditions)})", known


def _document_row(
    con: duckdb.DuckDBPyConnection, fmt: str, kind: str, ident: str, diffusibles: bool, non_diffusables: bool
) -> tuple | None:
    """(statut_diffusion, statut_diffusion of the unit or None, document JSON) of one siren / siret, or None."""
    if fmt == "v2":
        view = "documents_v2_entreprises" if kind == "siren" else "documents_v2_etablissements"
        column = "document_non_diffusables" if kind == "siren" and non_diffusables else "document"
        where, args = "", []
    else:
        view = f"documents_{fmt}_{'unites_legales' if kind == 'siren' else 'etablissements'}"
        column, where, args = "document", " AND diffusibles = ?", [diffusibles]
    statut_ul = "statut_diffusion_unite_legale" if kind == "siret" else "NULL"
    hint = _partition_hint(con, ident) if kind == "siret" else ("", [])
    if hint is None:
        return None
    from mirror.catalog.build import lookup_planning

    with lookup_planning(con):
        return con.execute(
            f"SELECT statut_diffusion, {statut_ul}, {column} FROM {view} WHERE {kind} = ?{hint[0]}{where}",
            [ident, *hint[1], *args],
        ).fetchone()


# ------------------------------------------------------------------------------------------------
# Bulk
# ------------------------------------------------------------------------------------------------


def _identifier_table(identifiers) -> pa.Table:
    """(pos, id) Arrow table from a list/iterable of strings, a pyarrow array/table or a DuckDB relation."""
    import duckdb
    import pyarrow as pa

    if isinstance(identifiers, duckdb.DuckDBPyRelation):
        identifiers = identifiers.arrow()
    if isinstance(identifiers, pa.Table | pa.RecordBatchReader):
        table = identifiers.read_all() if isinstance(identifiers, pa.RecordBatchReader) else identifiers
        identifiers = table.column(0)
    if isinstance(identifiers, pa.ChunkedArray | pa.Array):
        ids = [normalize_identifier(x) if x is not None else "" for x in identifiers.to_pylist()]
    else:
        ids = [normalize_identifier(x) if x is not None else "" for x in identifiers]
    return pa.table({"pos": pa.array(range(len(ids)), pa.int64()), "id": pa.array(ids, pa.string())})


def iter_documents(
    con: duckdb.DuckDBPyConnection,
    identifiers,
    fmt: str = "v3",
    diffusibles: bool = False,
    non_diffusables: bool = False,
    siege: bool = False,
    as_text: bool = False,
    batch_size: int = 50_000,
    with_diffusion: bool = False,
) -> Iterator[tuple]:
    """Yields (identifier, HTTP status, document) for many SIRENs and/or SIRETs, in input order (duplicates kept).

    One SQL query joins the whole list with the document views (no query per identifier). identifiers: a
    list/iterable of strings, a pyarrow Array/ChunkedArray/Table (first column) or a DuckDB relation (first
    column). Errors are yielded as their error bodies (422 invalid, 301 doublon, 404 unknown, 451 non
    diffusible), never raised. as_text=True yields the documents as JSON text (JSON Lines without re-encoding;
    error bodies are encoded with json.dumps). siege=True (v3/v4) gives the siège's document for SIRENs.
    with_diffusion=True yields a fourth item: is_diffusible of the resource answered (None when there is
    none: 422, 301, 404), so that a 200 of a /diffusibles/ document still says it is partially diffusible.
    """
    _check_args(fmt)
    if siege and fmt == "v2":
        raise ValueError(
            "siege=True is for v3/v4 (v2 entreprises documents already embed etablissement_siege)"
        )
    import pyarrow.compute as pc

    ids = _identifier_table(identifiers)
    lengths = set(pc.unique(pc.utf8_length(ids.column("id"))).to_pylist())
    sirens, sirets = 9 in lengths, 14 in lengths
    cur = private_cursor(con)  # private: its TEMP tables and registration never reach the caller's connection
    try:
        cur.register("_documents_ids", ids)
        (db,) = cur.execute("SELECT current_database()").fetchone()
        script = Template(_BULK_RESTRICT.read_text(encoding="utf-8")).substitute(
            db=f'"{db}"', ids="_documents_ids", sirets_of_sieges="true" if fmt == "v2" or siege else "false"
        )
        cur.execute(script)
        sql, args = _bulk_sql("_documents_ids", fmt, diffusibles, non_diffusables, siege, sirens, sirets)
        reader = cur.execute(sql, args).to_arrow_reader(batch_size)
        for batch in reader:
            cols = batch.to_pydict()
            for ident, replacing, statut, statut_ul, document in zip(
                cols["id"],
                cols["replacing"],
                cols["statut"],
                cols["statut_ul"],
                cols["document"],
                strict=True,
            ):
                status, doc = _bulk_answer(
                    ident, fmt, diffusibles, non_diffusables, siege, replacing, statut, statut_ul, document
                )
                if as_text:
                    doc = doc if isinstance(doc, str) else json.dumps(doc, ensure_ascii=False)
                else:
                    doc = json.loads(doc) if isinstance(doc, str) else doc
                if with_diffusion:
                    found = status in (200, 451)
                    kind = "siret" if siege or len(ident) == 14 else "siren"
                    diffusible = (
                        is_diffusible(statut, statut_ul if kind == "siret" else None) if found else None
                    )
                    yield ident, status, doc, diffusible
                else:
                    yield ident, status, doc
    finally:
        cur.close()


_BULK_RESTRICT = SQL_DIR / "documents" / "bulk_restrict.sql"


def _bulk_sql(
    name: str, fmt: str, diffusibles: bool, non_diffusables: bool, siege: bool, sirens: bool, sirets: bool
) -> tuple[str, list]:
    """The bulk query; only the document views of the identifier kinds present are joined (each costs a scan)."""
    if fmt == "v2":
        ul = (
            "SELECT siren AS key, statut_diffusion AS statut, NULL AS statut_ul, "
            f"{'document_non_diffusables' if non_diffusables else 'document'} AS document "
            f"FROM documents_v2_entreprises WHERE siren IN (SELECT id FROM {name})"
        )
        et = (
            "SELECT siret AS key, statut_diffusion AS statut, statut_diffusion_unite_legale AS statut_ul, document "
            f"FROM documents_v2_etablissements WHERE siret IN (SELECT id FROM {name})"
        )
        args_ul: list = []
        args_et: list = []
    else:
        ul_view = f"documents_{fmt}_sieges" if siege else f"documents_{fmt}_unites_legales"
        ul_statut_ul = "statut_diffusion_unite_legale" if siege else "NULL"
        ul = (
            f"SELECT siren AS key, statut_diffusion AS statut, {ul_statut_ul} AS statut_ul, document "
            f"FROM {ul_view} WHERE diffusibles = ? AND siren IN (SELECT id FROM {name})"
        )
        et = (
            "SELECT siret AS key, statut_diffusion AS statut, statut_diffusion_unite_legale AS statut_ul, document "
            f"FROM documents_{fmt}_etablissements WHERE diffusibles = ? AND siret IN (SELECT id FROM {name})"
        )
        args_ul, args_et = [diffusibles], [diffusibles]
    branches = [q for q, wanted in ((ul, sirens), (et, sirets)) if wanted]
    args = (args_ul if sirens else []) + (args_et if sirets else [])
    if not branches:
        branches = [
            "SELECT NULL::VARCHAR AS key, NULL::VARCHAR AS statut, NULL::VARCHAR AS statut_ul, "
            "NULL::VARCHAR AS document WHERE false"
        ]
    sql = f"""
        SELECT i.id, db.replacing, d.statut, d.statut_ul, d.document
        FROM {name} i
        LEFT JOIN (SELECT sirenDoublon, min(siren) AS replacing FROM doublons
                   WHERE sirenDoublon IN (SELECT substr(id, 1, 9) FROM {name}) GROUP BY sirenDoublon) db
               ON db.sirenDoublon = substr(i.id, 1, 9)
        LEFT JOIN ({" UNION ALL ".join(branches)}) d ON d.key = i.id
        ORDER BY i.pos
    """
    return sql, args


def _bulk_answer(ident, fmt, diffusibles, non_diffusables, siege, replacing, statut, statut_ul, document):
    kind = identifier_kind(ident)
    if kind is None:
        return 422, error_document(422, fmt, _guess_kind(ident))
    if siege and kind == "siret":
        return 422, error_document(422, fmt, "siren")
    if replacing is not None:
        return 301, error_document(301, fmt, kind, replacing)
    if document is None:
        return 404, error_document(404, fmt, kind)
    effective = "siret" if siege else kind
    if _blocked(fmt, effective, diffusibles, non_diffusables, statut, statut_ul):
        return 451, error_document(451, fmt, effective)
    return 200, document


def write_jsonl(
    con: duckdb.DuckDBPyConnection,
    identifiers,
    out: str | os.PathLike,
    fmt: str = "v3",
    diffusibles: bool = False,
    non_diffusables: bool = False,
    siege: bool = False,
    errors: bool = False,
) -> dict[int, int]:
    """Writes the documents of `identifiers` as JSON Lines to `out` (temp file, then os.replace).

    Error answers are skipped unless errors=True (then each line is the error body). Returns the count per
    HTTP status.
    """
    out = Path(out)
    tmp = out.with_name(out.name + f".part-{os.getpid()}")
    counts: dict[int, int] = {}
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            for _ident, status, text in iter_documents(
                con, identifiers, fmt, diffusibles, non_diffusables, siege, as_text=True
            ):
                counts[status] = counts.get(status, 0) + 1
                if status == 200 or errors:
                    fh.write(text)
                    fh.write("\n")
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return counts
