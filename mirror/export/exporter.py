"""`mirror export`: filtered bulk exports of the catalog to CSV, TSV, Parquet, JSON Lines, Excel, GeoJSON or XML.

How a query is built: a *source* exposes, for one level (établissement or unité légale), every
column a user may ask for or filter on: the base view's columns, the other level's columns
(through one join), and libellés next to codes (through joins on the `ref_*` tables and the
lookup views of `sql/views/30_export.sql`). Only the joins a given export needs are added. The
WHERE clause comes from `mirror.export.filters` with bound parameters.

By default the source reads the `*_diffusibles` views (personal data of partially diffusible
units masked); `include_non_diffusible=True` reads the raw views. A query that needs none of the
établissement columns masked by the natural-person rule (the enseignes and dénomination usuelle, whose
rule needs the unit's catégorie juridique, hence a join with every unit) reads the établissements from
`etablissements_masques_adresse` instead: the same view without that one rule, so the same rows and
values for every column the query reads, and no join (`Source.select_sql`).

Rows come ordered by the level's identifier (siret / siren), or by `--sort` then the identifier: the
same command on the same mirror gives the same bytes. Writing is streamed: DuckDB COPY for CSV, TSV
and Parquet, Arrow record batches for the other formats (mirror.export.formats: one table of formats).
Where the bytes go (a `.part` renamed onto a regular file, a device written in place, outputs refused
inside the data directory) is `mirror.export.output`'s; every query of an export runs on the
locked-down connection of `mirror.export.sandbox`, never on the caller's.
"""

from __future__ import annotations

import contextlib
import gc
import json
import re
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb

from mirror.core.errors import BadInput, MirrorError, NotFound
from mirror.core.faults import crash_after_rows
from mirror.core.schema import MASKED_ETABLISSEMENT_PERSON_COLUMNS
from mirror.core.sql import render_cached
from mirror.export.filters import Filters, WhereClause, build_where, check_near_siret
from mirror.export.formats import FORMATS, delimiter_for, format_for
from mirror.export.output import Output, commit, discard, is_write_error, plan_output, prepare, write_error
from mirror.export.sandbox import data_dir_of, sandboxed

XLSX_CREATED = datetime(1980, 1, 1, tzinfo=UTC)
EXCEL_MAX_ROWS = 1_048_575  # data rows per sheet (Excel's 1,048,576 rows minus the header)
BATCH_ROWS = 65_536

NON_DIFFUSIBLE_WARNING = (
    "Warning: --include-non-diffusible exports the personal data of partially diffusible (statut P) "
    "units and établissements. The law forbids using it for prospection and rediffusing it; "
    "keep it for your own administrative use."
)

# Joins, by alias. {E} is the alias holding the établissement columns, {U} the unit's.
_LIBELLE_JOINS = {
    "la_e": "LEFT JOIN libelles_activites la_e ON la_e.nomenclature = {E}.nomenclatureActivitePrincipaleEtablissement"
    " AND la_e.code = {E}.activitePrincipaleEtablissement",
    "n25_e": "LEFT JOIN ref_naf_2025 n25_e ON n25_e.code = {E}.activitePrincipaleNAF25Etablissement",
    "te_e": "LEFT JOIN ref_tranches_effectifs te_e ON te_e.code = {E}.trancheEffectifsEtablissement",
    "com": "LEFT JOIN libelles_communes com ON com.code = {E}.codeCommuneEtablissement",
    "dep": "LEFT JOIN ref_departements dep ON dep.code = {E}.departement",
    "reg": "LEFT JOIN ref_regions reg ON reg.code = {E}.region",
    "epc": "LEFT JOIN ref_epci epc ON epc.code = {E}.epci",
    "cj": "LEFT JOIN ref_categories_juridiques cj ON cj.code = {U}.categorieJuridiqueUniteLegale",
    "la_u": "LEFT JOIN libelles_activites la_u ON la_u.nomenclature = {U}.nomenclatureActivitePrincipaleUniteLegale"
    " AND la_u.code = {U}.activitePrincipaleUniteLegale",
    "n25_u": "LEFT JOIN ref_naf_2025 n25_u ON n25_u.code = {U}.activitePrincipaleNAF25UniteLegale",
    "te_u": "LEFT JOIN ref_tranches_effectifs te_u ON te_u.code = {U}.trancheEffectifsUniteLegale",
}
# The intra-community VAT number, computed from the SIREN (sql/export/numero_tva.sql); asked by --columns.
TVA_COLUMN = "numero_tva_intracommunautaire"
# Libellé columns: name -> (expression, join alias).
LIBELLES = {
    "libelleActivitePrincipaleEtablissement": ("la_e.libelle", "la_e"),
    "sectionActivitePrincipaleEtablissement": ("la_e.section", "la_e"),
    "libelleActivitePrincipaleNAF25Etablissement": ("n25_e.libelle", "n25_e"),
    "sectionActivitePrincipaleNAF25Etablissement": ("n25_e.section", "n25_e"),
    "libelleTrancheEffectifsEtablissement": ("te_e.intitule", "te_e"),
    "libelleCommune": ("com.libelle", "com"),
    "libelleDepartement": ("dep.nom", "dep"),
    "libelleRegion": ("reg.nom", "reg"),
    "libelleEpci": ("epc.nom", "epc"),
    "libelleCategorieJuridiqueUniteLegale": ("cj.libelle", "cj"),
    "libelleActivitePrincipaleUniteLegale": ("la_u.libelle", "la_u"),
    "sectionActivitePrincipaleUniteLegale": ("la_u.section", "la_u"),
    "libelleActivitePrincipaleNAF25UniteLegale": ("n25_u.libelle", "n25_u"),
    "libelleTrancheEffectifsUniteLegale": ("te_u.intitule", "te_u"),
}


def _code_of(alias: str) -> str:
    """The code column a libellé join looks up (`<alias>.code = {E}.<column>`)."""
    return re.search(r"\.code = \{[EU]\}\.(\w+)", _LIBELLE_JOINS[alias]).group(1)


# Code column -> the libellés of its value, in LIBELLES' order.
LIBELLES_OF: dict[str, list[str]] = {}
for _name, (_expr, _alias) in LIBELLES.items():
    LIBELLES_OF.setdefault(_code_of(_alias), []).append(_name)


def add_libelles(columns: list[str]) -> list[str]:
    """`columns` with, right after each code column, the libellés of its code (--with-libelles)."""
    out: list[str] = []
    for c in columns:
        out += [c, *(lib for lib in LIBELLES_OF.get(c, ()) if lib not in columns and lib not in out)]
    return list(dict.fromkeys(out))


# etablissements_diffusibles without its natural-person rule (sql/views/20_diffusibles.sql).
ADDRESS_MASKED_VIEW = "etablissements_masques_adresse"


@dataclass
class Lighter:
    """The source's établissements read from ADDRESS_MASKED_VIEW, for queries needing no column of `needs_full`."""

    base: str | None  # the source's FROM with that view (level etablissement), else None
    joins: dict[str, str]  # alias -> its JOIN with that view (the siège at level unite-legale)
    needs_full: frozenset[str]  # columns only etablissements_diffusibles masks right


@dataclass
class Column:
    name: str
    expr: str
    alias: str | None  # the join it needs (None: the base view)
    origin: str  # for --list-columns


@dataclass
class Source:
    """Everything an export at one level can select or filter on."""

    level: str
    et_view: str
    ul_view: str
    base: str  # "<view> <alias>"
    key: str  # siret or siren
    columns: dict[str, Column]
    default_columns: list[str]
    joins: dict[str, tuple[str, str | None]]  # alias -> (JOIN sql, alias it depends on)
    lighter: Lighter | None = None

    def resolve(self, names: list[str]) -> list[str]:
        """Canonical column names for user-typed names (case-insensitive); unknown names are an error."""
        by_lower = {n.lower(): n for n in self.columns}
        out, unknown = [], []
        for n in names:
            c = by_lower.get(n.strip().lower())
            (out if c else unknown).append(c or n)
        if unknown:
            raise BadInput(
                f"unknown column(s): {', '.join(unknown)} (see `mirror export --list-columns --level {self.level}`)"
            )
        return out

    def select_sql(self, needed: set[str] | list[str]) -> str:
        """SELECT exposing the `needed` columns under their names, with only the joins they need."""
        needed = [c for c in self.columns if c in set(needed)]
        aliases: list[str] = []

        def need(alias: str | None):
            if alias is None or alias in aliases:
                return
            need(self.joins[alias][1])
            aliases.append(alias)

        for c in needed:
            need(self.columns[c].alias)
        order = list(self.joins)
        aliases.sort(key=order.index)
        select = ", ".join(f'{self.columns[c].expr} AS "{c}"' for c in needed) or "1 AS _none"
        base, join_sql = self.base, {a: self.joins[a][0] for a in aliases}
        light = self.lighter
        if light is not None and not light.needs_full.intersection(needed):
            base = light.base or base
            join_sql.update((a, sql) for a, sql in light.joins.items() if a in join_sql)
        joins = " ".join(join_sql[a] for a in aliases)
        return f"SELECT {select} FROM {base} {joins}".rstrip()


def source_views(include_non_diffusible: bool) -> tuple[str, str]:
    """(établissements view, unités légales view) an export reads."""
    if include_non_diffusible:
        return "etablissements", "unites_legales"
    return "etablissements_diffusibles", "unites_legales_diffusibles"


def _view_columns(con: duckdb.DuckDBPyConnection, view: str) -> list[str]:
    try:
        return [r[0] for r in con.execute(f'DESCRIBE "{view}"').fetchall()]
    except duckdb.CatalogException:
        raise MirrorError(
            f"the catalog has no view {view!r}: rebuild it with the current version (`mirror load` / `mirror sync`)"
        ) from None


def _address_masked_view(con: duckdb.DuckDBPyConnection, et_cols: list[str]) -> str | None:
    """ADDRESS_MASKED_VIEW when the catalog has it with the columns of etablissements_diffusibles (a
    catalog built by an older version has not: its exports read etablissements_diffusibles only)."""
    try:
        cols = [r[0] for r in con.execute(f'DESCRIBE "{ADDRESS_MASKED_VIEW}"').fetchall()]
    except duckdb.CatalogException:
        return None
    return ADDRESS_MASKED_VIEW if cols == et_cols else None


def build_source(con: duckdb.DuckDBPyConnection, level: str, include_non_diffusible: bool = False) -> Source:
    et_view, ul_view = source_views(include_non_diffusible)
    et_cols = _view_columns(con, et_view)
    ul_cols = _view_columns(con, ul_view)
    light_view = None if include_non_diffusible else _address_masked_view(con, et_cols)
    lighter = None
    columns: dict[str, Column] = {}
    if level == "etablissement":
        E, U = "e", "u"
        base, key = f'"{et_view}" e', "siret"
        joins: dict[str, tuple[str, str | None]] = {
            "u": (f'LEFT JOIN "{ul_view}" u ON u.siren = e.siren', None)
        }
        for c in et_cols:
            columns[c] = Column(c, f'e."{c}"', None, et_view)
        for c in ul_cols:
            if c not in columns:
                columns[c] = Column(c, f'u."{c}"', "u", f"{ul_view} (the établissement's unit)")
        default = list(et_cols)
        if light_view:
            lighter = Lighter(f'"{light_view}" e', {}, frozenset())
    elif level == "unite-legale":
        E, U = "s", "u"
        base, key = f'"{ul_view}" u', "siren"
        joins = {"s": (f'LEFT JOIN "{et_view}" s ON s.siret = u.siren || u.nicSiegeUniteLegale', None)}
        for c in ul_cols:
            columns[c] = Column(c, f'u."{c}"', None, ul_view)
        for c in et_cols:
            if c not in columns:
                columns[c] = Column(c, f's."{c}"', "s", f"{et_view} (the unit's siège)")
        default = list(ul_cols)
        if light_view:
            siege = f'LEFT JOIN "{light_view}" s ON s.siret = u.siren || u.nicSiegeUniteLegale'
            lighter = Lighter(None, {"s": siege}, frozenset())
    else:
        raise BadInput(f"invalid level {level!r} (expected etablissement or unite-legale)")
    for alias, sql in _LIBELLE_JOINS.items():
        parent = E if "{E}" in sql else U
        joins[alias] = (sql.format(E=E, U=U), parent if parent in joins else None)
    for name, (expr, alias) in LIBELLES.items():
        columns[name] = Column(name, expr, alias, "libellé (ref tables)")
    siren = "e.siren" if level == "etablissement" else "u.siren"
    columns[TVA_COLUMN] = Column(TVA_COLUMN, f"({render_cached('export/numero_tva.sql', siren=siren)})", None,
                                 "computed from the SIREN (FR + key + SIREN)")  # fmt: skip
    if lighter is not None:
        lighter.needs_full = frozenset(MASKED_ETABLISSEMENT_PERSON_COLUMNS).intersection(et_cols)
    return Source(level, et_view, ul_view, base, key, columns, default, joins, lighter)


@dataclass
class Query:
    sql: str
    params: list
    columns: list[str]
    # The same rows' count, from a source reading only the filter's columns (no join or view the output
    # columns alone need); None: count `sql`.
    count_sql: str | None = None


def resolve_near(con, source: Source, f: Filters) -> tuple[float, float] | None:
    """The centre of a radius search: --near, or the coordinates of --near-siret."""
    if f.near is not None and f.near_siret is not None:
        raise BadInput("use either --near or --near-siret, not both")
    if f.near is not None:
        return f.near
    if f.near_siret is None:
        return None  # an empty --near-siret is checked (and refused) below
    siret = check_near_siret(f.near_siret)
    # The coordinates' masks are the établissement rule's: no need for the unit join.
    view = ADDRESS_MASKED_VIEW if source.lighter is not None else source.et_view
    row = con.execute(f'SELECT latitude, longitude FROM "{view}" WHERE siret = ?', [siret]).fetchone()
    if row is None:
        raise NotFound(f"--near-siret {siret}: no such établissement in the mirror")
    if row[0] is None or row[1] is None:
        raise NotFound(f"--near-siret {siret}: this établissement has no (public) coordinates")
    return float(row[0]), float(row[1])


def order_by(source: Source, sort: list[str] | None = None) -> tuple[str, list[str]]:
    """(ORDER BY clause, the columns it reads): the `--sort` columns (`-name`: descending; NULLs last),
    then the level's identifier, which makes the order total: the same export gives the same bytes."""
    keys: list[tuple[str, str]] = []
    for name in sort or ():
        name = name.strip()
        desc = name.startswith("-")
        (column,) = source.resolve([name[1:] if desc else name])
        keys.append((column, "DESC" if desc else "ASC"))
    if source.key not in (c for c, _ in keys):
        keys.append((source.key, "ASC"))
    clause = ", ".join(f'"{c}" {direction} NULLS LAST' for c, direction in dict(keys).items())
    return f"ORDER BY {clause}", [c for c, _ in keys]


def build_query(
    con,
    source: Source,
    f: Filters,
    columns: list[str] | None = None,
    extra: list[str] = (),
    sort: list[str] | None = None,
) -> Query:
    """The export's SELECT (columns in the requested order, rows in `order_by`'s) and its parameters."""
    out = source.resolve(columns) if columns else list(source.default_columns)
    where: WhereClause = build_where(f, source.level, set(source.columns), resolve_near(con, source, f))
    order, order_columns = order_by(source, sort)
    needed = set(out) | set(where.columns) | set(extra) | set(order_columns)
    select = ", ".join(f'"{c}"' for c in dict.fromkeys([*out, *extra]))
    sql = f"SELECT {select} FROM ({source.select_sql(needed)}) AS src WHERE {where.sql} {order}"
    count_sql = f"SELECT count(*) FROM ({source.select_sql(where.columns)}) AS src WHERE {where.sql}"
    return Query(sql, where.params, out, count_sql)


def count_rows(con, query: Query) -> int:
    sql = query.count_sql or f"SELECT count(*) FROM ({query.sql}) AS q"
    return con.execute(sql, query.params).fetchone()[0]


# ------------------------------------------------------------------------------------------
# Writers
# ------------------------------------------------------------------------------------------


def progress_bar(total: int | None, progress: bool, unit: str = "rows"):
    from tqdm import tqdm

    disable = not progress or not sys.stderr.isatty()
    fmt = "{l_bar}{bar}| [{elapsed}<{remaining}]" if unit == "%" else None
    return tqdm(
        total=total, unit=unit, unit_scale=True, disable=disable, file=sys.stderr, leave=False, bar_format=fmt
    )


@dataclass
class _Job:
    """What a writer gets besides the connection and the query (one signature for the table's writers)."""

    plan: Output
    fmt: str
    level: str
    total: int | None  # the query's row count (None for the COPY formats, which do not need it)
    delimiter: str = ","
    split_sheets: bool = False
    source: Source | None = None
    document: str = "v3"
    diffusibles: bool = True
    progress: bool = False
    skipped: int = 0  # GeoJSON: rows without coordinates
    skipped_documents: dict[int, int] | None = None  # JSON Lines: HTTP status -> documents not written


def _write_copy(con, query: Query, job: _Job) -> int:
    """CSV / TSV / Parquet through DuckDB COPY (streaming, parallel); a thread polls the query's progress.

    `con` is a sandbox connection: its progress bar is already enabled (silently) and its settings locked.
    """
    part, progress = job.plan.part, job.progress
    if FORMATS[job.fmt].delimiter is not None:
        options = "FORMAT csv, HEADER true, DELIMITER ?, QUOTE '\"', ESCAPE '\"'"
        option_params = [job.delimiter]
    else:
        options, option_params = "FORMAT parquet, COMPRESSION zstd", []
    # DuckDB numbers the target's "?" first, then the query's, then the options'. USE_TMP_FILE false:
    # the file is already our own `.part`, and the sandbox allows writing that one path only.
    sql = f"COPY ({query.sql}) TO ? ({options}, USE_TMP_FILE false)"
    bar = progress_bar(100, progress, unit="%")
    done = threading.Event()

    def poll():
        last = 0.0
        while not done.wait(0.2):
            p = con.query_progress()
            if p is not None and p > last:
                bar.update(p - last)
                last = p

    watcher = threading.Thread(target=poll, daemon=True)
    if not bar.disable:
        watcher.start()
    try:
        result = con.execute(sql, [str(part), *query.params, *option_params]).fetchone()
    finally:
        done.set()
        if watcher.is_alive():
            watcher.join()
        bar.close()
    return int(result[0]) if result else 0


def _batches(con, query: Query, extra_sql: str | None = None):
    return con.execute(extra_sql or query.sql, query.params).to_arrow_reader(BATCH_ROWS)


def _json_default(value):
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _write_geojson(con, query: Query, job: _Job) -> int:
    """FeatureCollection of points; rows without coordinates are skipped and counted (`job.skipped`)."""
    props = [c for c in query.columns if c not in ("latitude", "longitude")]
    written = skipped = 0
    with open(job.plan.part, "w", encoding="utf-8") as fh, progress_bar(job.total, job.progress) as bar:
        fh.write('{"type": "FeatureCollection", "features": [\n')
        for batch in _batches(con, query):
            data = batch.to_pydict()
            lats, lons = data["latitude"], data["longitude"]
            for i in range(batch.num_rows):
                if lats[i] is None or lons[i] is None:
                    skipped += 1
                    continue
                feature = {
                    "type": "Feature",
                    "geometry": {"type": "Point", "coordinates": [lons[i], lats[i]]},
                    "properties": {c: data[c][i] for c in props},
                }
                fh.write(
                    (",\n" if written else "")
                    + json.dumps(feature, ensure_ascii=False, default=_json_default)
                )
                written += 1
            bar.update(batch.num_rows)
            crash_after_rows(written)
        fh.write("\n]}\n")
    job.skipped = skipped
    return written


# XML: <root> holding one <row> element per row, one child element per non-NULL column, named after it.
XML_ELEMENTS = {
    "etablissement": ("etablissements", "etablissement"),
    "unite-legale": ("unitesLegales", "uniteLegale"),
}
XML_SLICE_ROWS = 4096
_XML_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*\Z")
# Characters XML 1.0 cannot hold (even escaped): replaced by U+FFFD.
_XML_FORBIDDEN = "[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]"
_XML_ESCAPES = (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ("\r", "&#13;"))


def _xml_tags(name: str) -> tuple[str, str]:
    """(opening, closing) tag of a column: `<name>`, or `<field name="...">` for a name XML cannot take."""
    if _XML_NAME.match(name) and not name.lower().startswith("xml"):
        return f"<{name}>", f"</{name}>"
    quoted = name
    for char, entity in (*_XML_ESCAPES, ('"', "&quot;")):
        quoted = quoted.replace(char, entity)
    return f'<field name="{quoted}">', "</field>"


def _xml_text(column):
    """The escaped text of an Arrow column (NULL stays NULL), in Arrow compute, not row by row: dates and
    timestamps ISO 8601 (xs:date, xs:dateTime), booleans true/false, numbers as DuckDB's CSV writes them."""
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = column.type
    if pa.types.is_timestamp(kind):
        try:
            return pc.strftime(pc.cast(column, pa.timestamp("s", kind.tz)), "%Y-%m-%dT%H:%M:%S")
        except pa.ArrowInvalid:  # sub-second values: keep them
            return pc.replace_substring(pc.cast(column, pa.string()), " ", "T", max_replacements=1)
    plain = (pa.types.is_integer, pa.types.is_floating, pa.types.is_decimal, pa.types.is_boolean)
    if any(test(kind) for test in plain) or pa.types.is_date(kind) or pa.types.is_time(kind):
        return pc.cast(column, pa.string())  # digits, signs, dots, dashes, colons: nothing to escape
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        try:  # an enum (dictionary), a blob...
            column = pc.cast(column, pa.string())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # nested types: their Python text
            column = pa.array([None if v is None else str(v) for v in column.to_pylist()], pa.string())
    column = pc.replace_substring_regex(column, _XML_FORBIDDEN, "\ufffd")
    for char, entity in _XML_ESCAPES:
        column = pc.replace_substring(column, char, entity)
    return column


def _write_xml(con, query: Query, job: _Job) -> int:
    """Streamed XML (no document tree in memory): one line per row, built per record batch in Arrow."""
    import pyarrow.compute as pc

    root, row = XML_ELEMENTS.get(job.level, ("rows", "row"))
    tags = [_xml_tags(c) for c in query.columns]
    written = 0
    with open(job.plan.part, "w", encoding="utf-8") as fh, progress_bar(job.total, job.progress) as bar:
        fh.write(f'<?xml version="1.0" encoding="UTF-8"?>\n<{root}>\n')
        for batch in _batches(con, query):
            for first in range(0, batch.num_rows, XML_SLICE_ROWS):  # slices: small intermediate arrays
                rows = batch.slice(first, XML_SLICE_ROWS)
                cells = [
                    pc.fill_null(
                        pc.binary_join_element_wise(opening, _xml_text(rows.column(i)), closing, ""), ""
                    )
                    for i, (opening, closing) in enumerate(tags)
                ]
                lines = pc.binary_join_element_wise(f"<{row}>", *cells, f"</{row}>\n", "")
                fh.write("".join(lines.to_pylist()))
                written += rows.num_rows
                bar.update(rows.num_rows)
            crash_after_rows(written)
        fh.write(f"</{root}>\n")
    return written


def _write_xlsx(con, query: Query, job: _Job) -> int:
    """Excel through xlsxwriter's constant-memory mode; one sheet per EXCEL_MAX_ROWS rows when split.

    xlsxwriter's temporary files (one per sheet, as large as the sheet) go to `tmpdir` beside the
    output rather than $TMPDIR, so they are on the output's disk and removed with the `.part`.
    """
    import xlsxwriter

    part, tmpdir, total, progress = job.plan.part, job.plan.tmpdir / "xlsx", job.total or 0, job.progress
    if total > EXCEL_MAX_ROWS and not job.split_sheets:
        raise BadInput(
            f"{total:,} rows exceed Excel's limit of {EXCEL_MAX_ROWS:,} rows per sheet: "
            "add --split-sheets, or export to CSV or Parquet"
        )
    options = {
        "constant_memory": True,
        "strings_to_numbers": False,
        "strings_to_formulas": False,
        "strings_to_urls": False,
        "tmpdir": str(tmpdir),
    }
    tmpdir.mkdir(parents=True, exist_ok=True)
    workbook = xlsxwriter.Workbook(str(part), options)
    # A fixed creation date (xlsxwriter's default is now), as its zip entries have: the same export gives
    # the same bytes.
    workbook.set_properties({"created": XLSX_CREATED})
    date_fmt = workbook.add_format({"num_format": "yyyy-mm-dd"})
    ts_fmt = workbook.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})
    bold = workbook.add_format({"bold": True})
    state = {"sheet": None, "row": 0, "n": 0}

    def new_sheet():
        state["n"] += 1
        sheet = workbook.add_worksheet("export" if state["n"] == 1 else f"export_{state['n']}")
        sheet.write_row(0, 0, query.columns, bold)
        sheet.freeze_panes(1, 0)
        state["sheet"], state["row"] = sheet, 0

    def write_cell(sheet, r, c, v):
        if v is None:
            return
        if isinstance(v, str):
            sheet.write_string(r, c, v)
        elif isinstance(v, bool):
            sheet.write_boolean(r, c, v)
        elif isinstance(v, (int, float)):
            sheet.write_number(r, c, v)
        elif isinstance(v, datetime):
            if 1900 <= v.year <= 9999:
                sheet.write_datetime(r, c, v, ts_fmt)
            else:
                sheet.write_string(r, c, v.isoformat(sep=" "))
        elif isinstance(v, date):
            if 1900 <= v.year <= 9999:
                sheet.write_datetime(r, c, v, date_fmt)
            else:
                sheet.write_string(r, c, v.isoformat())
        else:
            sheet.write_string(r, c, str(v))

    written = 0
    try:
        new_sheet()
        with progress_bar(total, progress) as bar:
            for batch in _batches(con, query):
                cols = [batch.column(i).to_pylist() for i in range(batch.num_columns)]
                for i in range(batch.num_rows):
                    if state["row"] >= EXCEL_MAX_ROWS:
                        new_sheet()
                    state["row"] += 1
                    r, sheet = state["row"], state["sheet"]
                    for c, values in enumerate(cols):
                        write_cell(sheet, r, c, values[i])
                    written += 1
                bar.update(batch.num_rows)
                crash_after_rows(written)
    finally:
        _close_workbook(workbook)
    return written


def _close_workbook(workbook) -> None:
    """Closes (writes) the workbook. On a write error (a full disk) xlsxwriter leaves its ZipFile open in
    the failed frames, and its __del__ would print a second error at exit: those frames are cleared
    here, with the unraisable-exception hook silenced while the ZipFile is collected."""
    try:
        workbook.close()
    except Exception as exc:
        hook = sys.unraisablehook
        sys.unraisablehook = lambda _unraisable: None
        try:
            seen: BaseException | None = exc
            for _ in range(8):  # FileCreateError wraps the OSError raised in the frame holding the ZipFile
                if seen is None:
                    break
                traceback.clear_frames(seen.__traceback__)
                seen = seen.__context__ or (
                    seen.args[0] if seen.args and isinstance(seen.args[0], BaseException) else None
                )
            gc.collect()
        finally:
            sys.unraisablehook = hook
        raise


def _write_jsonl(con, query: Query, job: _Job) -> int:
    """The API Entreprise documents (v2/v3/v4) of the matching rows, one JSON per line (mirror.serve.documents)."""
    source, document, diffusibles = job.source, job.document, job.diffusibles
    if source is None:
        raise MirrorError("JSON Lines needs the export source")
    skipped = job.skipped_documents if job.skipped_documents is not None else {}
    try:
        from mirror.serve.documents import iter_documents
    except ImportError:
        raise MirrorError("JSON Lines needs mirror.serve.documents, which this installation lacks") from None
    ids = con.sql(f'SELECT "{source.key}" AS id FROM ({query.sql}) AS q', params=query.params)
    written = 0
    with open(job.plan.part, "w", encoding="utf-8") as fh, progress_bar(job.total, job.progress) as bar:
        docs = iter_documents(
            con, ids, fmt=document, diffusibles=diffusibles, non_diffusables=not diffusibles, as_text=True
        )
        for _ident, status, text in docs:
            bar.update(1)
            if status != 200:
                skipped[status] = skipped.get(status, 0) + 1
                continue
            fh.write(text.rstrip("\n") + "\n")
            written += 1
            crash_after_rows(written)
    return written


def check_delimiter(delimiter: str) -> None:
    if len(delimiter) != 1 or delimiter in '"\r\n':
        raise BadInput(f"invalid --delimiter {delimiter!r}: one character other than a quote or newline")


def check_columns(columns: list[str] | None) -> list[str] | None:
    """None: the default columns; a list naming no column (`--columns ,`) is an error, not "all"."""
    if columns is None:
        return None
    names = [c.strip() for c in columns if c and c.strip()]
    if not names:
        raise BadInput("--columns names no column (see `mirror export --list-columns`)")
    return names


@contextlib.contextmanager
def writing(
    con, out: Path, inputs: tuple[Path, ...] = ()
) -> Iterator[tuple[Output, duckdb.DuckDBPyConnection]]:
    """Plans `out` (refusals first), clears a killed run's leftovers, and opens the sandbox allowed to
    write the `.part` only; whatever the export leaves but its output is removed at the end."""
    plan = plan_output(out, data_dir_of(con), inputs)
    prepare(plan)
    try:
        spill = plan.tmpdir / "duckdb"
        try:
            spill.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise write_error(exc, plan.shown) from None
        with sandboxed(con, [plan.part], spill=spill) as sb:
            yield plan, sb
    finally:
        discard(plan)


def export_error(exc: BaseException, plan: Output) -> MirrorError:
    """One line for a writer's failure: the output's I/O error, or the query's."""
    text = str(exc)
    about_output = str(plan.part) in text or str(plan.target) in text
    if isinstance(exc, OSError) or (
        is_write_error(exc) and (about_output or not isinstance(exc, duckdb.Error))
    ):
        return write_error(exc, plan.shown)
    if isinstance(exc, duckdb.Error) and any(
        w in text.lower() for w in ("no space left", "disk quota", "read-only file system")
    ):
        return write_error(exc, plan.shown)
    first = (text.strip().splitlines() or [type(exc).__name__])[0]
    return MirrorError(f"the export failed: {first}")


def write_output(
    con,
    query: Query,
    plan: Output,
    fmt: str,
    *,
    source: Source | None = None,
    delimiter: str = ",",
    split_sheets: bool = False,
    document: str = "v3",
    diffusibles: bool = True,
    progress: bool = False,
    level: str = "etablissement",
) -> dict:
    """Writes the query to `plan.part` and puts it in place (mirror.export.output); returns a summary.

    `con` is the sandbox connection of `writing()`.
    """
    check_delimiter(delimiter)
    spec = FORMATS.get(fmt)
    if spec is None:
        raise BadInput(f"unknown format {fmt!r}")
    writer = globals()[spec.writer]
    started = time.monotonic()
    job = _Job(plan, fmt, level, None, delimiter, split_sheets, source, document, diffusibles, progress)
    job.skipped_documents = {}
    try:
        if writer is not _write_copy:  # the other writers show a row count, and Excel checks it
            job.total = count_rows(con, query)
        rows = writer(con, query, job)
        crash_after_rows(rows, final=True)
        commit(plan)
    except MirrorError:
        raise
    except Exception as exc:
        if isinstance(exc, duckdb.Error) or is_write_error(exc):
            raise export_error(exc, plan) from None
        raise
    return {
        "path": plan.shown,
        "format": fmt,
        "rows": rows,
        "skipped_without_coordinates": job.skipped,
        "skipped_documents": job.skipped_documents,
        "seconds": round(time.monotonic() - started, 3),
    }


def _check_where_runs(con, query: Query, f: Filters) -> None:
    """A --where DuckDB cannot bind (a type mismatch, a wrong argument count) is a one-line BadInput."""
    if f.where is None:
        return
    try:
        con.execute(f"SELECT * FROM ({query.sql}) AS q LIMIT 0", query.params).fetchall()
    except duckdb.Error as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise BadInput(f"--where: DuckDB cannot run this condition ({first})") from None


def export(
    con,
    out: Path | None,
    *,
    level: str = "etablissement",
    filters: Filters | None = None,
    columns: list[str] | None = None,
    with_libelles: bool = False,
    fmt: str | None = None,
    include_non_diffusible: bool = False,
    count_only: bool = False,
    delimiter: str | None = None,
    sort: list[str] | None = None,
    split_sheets: bool = False,
    document: str = "v3",
    progress: bool = False,
) -> dict:
    """Runs one export (or only counts its rows when `count_only`); returns a summary dict.

    `con` (a catalog connection, e.g. `mirror.catalog.build.connect`) is left as it was: the export's
    queries run on a sandbox of the same catalog (mirror.export.sandbox).
    """
    f = filters or Filters()
    columns = check_columns(columns)
    if count_only:
        with sandboxed(con) as sb:
            source = build_source(sb, level, include_non_diffusible)
            cols = _selected(source, columns, with_libelles)
            query = build_query(sb, source, f, cols)
            _check_where_runs(sb, query, f)
            try:
                return {"rows": count_rows(sb, query), "level": level}
            except duckdb.Error as exc:
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise MirrorError(f"the count failed: {first}") from None
    if out is None:
        raise BadInput("give an output file (-o FILE), or --count")
    out = Path(out)
    fmt = format_for(out, fmt)
    delimiter = delimiter_for(fmt, delimiter)
    check_delimiter(delimiter)
    with writing(con, out) as (plan, sb):
        source = build_source(sb, level, include_non_diffusible)
        cols = _selected(source, columns, with_libelles)
        extra = ["latitude", "longitude"] if fmt == "geojson" else []
        if fmt == "jsonl":
            extra = [source.key]
        query = build_query(sb, source, f, cols, extra=extra, sort=sort)
        if fmt == "geojson":
            query.columns = cols + [c for c in extra if c not in cols]
        _check_where_runs(sb, query, f)
        summary = write_output(
            sb,
            query,
            plan,
            fmt,
            source=source,
            delimiter=delimiter,
            split_sheets=split_sheets,
            document=document,
            diffusibles=not include_non_diffusible,
            progress=progress,
            level=level,
        )
    summary["level"] = level
    return summary


def _selected(source: Source, columns: list[str] | None, libelles: bool) -> list[str]:
    cols = source.resolve(columns) if columns else list(source.default_columns)
    return add_libelles(cols) if libelles else cols


def list_columns(con, level: str, include_non_diffusible: bool = False) -> list[tuple[str, str]]:
    """(name, origin) of every column an export at `level` can select or use in --where."""
    source = build_source(con, level, include_non_diffusible)
    return [(c.name, c.origin) for c in source.columns.values()]
