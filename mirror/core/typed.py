"""The typing SQL shared by the monthly load and the daily updates, so that snapshot rows and delta rows
are typed by the same code.

`typed_relation(con, table_key, source)` / `typed_select_sql(table_key, source, source_types)` turn any
relation whose columns carry INSEE's names (all VARCHAR as in the CSV, or INSEE's Parquet types; missing
columns become NULL) into the rows of the base view `table_key`, derived columns included (`departement`,
`region`, `epci`, `latitude`, `longitude`, `coordonneesMasquees` for etablissements). SQL in
sql/catalog/typed_etablissements.sql and sql/catalog/commune_geo.sql.
"""

from __future__ import annotations

import functools
import shutil
from pathlib import Path

import duckdb

from mirror.core.config import open_duckdb
from mirror.core.geo import LAMBERT_93, OVERSEAS_EPSG
from mirror.core.schema import (
    DERIVED_COLUMNS,
    GEOLOCATION_COLUMNS,
    PAD_WIDTHS,
    STOCK_FILES_BY_KEY,
    typed_column_type,
)
from mirror.core.sql import REF_DIR, SQL_DIR, escape, ident, literal, render


def base_columns(table_key: str) -> dict[str, str]:
    """Column -> type of the base view `table_key` (INSEE columns of the current layout, then derived; for
    etablissements also the GEOLOCATION_COLUMNS, which a snapshot has only when the geolocation file was
    loaded with it)."""
    cols = {c: typed_column_type(table_key, c) for c in STOCK_FILES_BY_KEY[table_key].columns}
    if table_key == "etablissements":
        cols.update(DERIVED_COLUMNS)
        cols.update(GEOLOCATION_COLUMNS)
    return cols


# ------------------------------------------------------------------------------------------------
# Typing
# ------------------------------------------------------------------------------------------------


def epsg_sql(code: str) -> str:
    """SQL expression: EPSG of the Lambert columns for commune code `code` (mirror.core.geo's table)."""
    from mirror.core.projection import PARAMS as PROJECTIONS  # numpy: only where rows are typed

    overseas = " ".join(f"WHEN '{k}' THEN {v}" for k, v in OVERSEAS_EPSG.items() if v in PROJECTIONS)
    return (
        f"CASE WHEN {code} IS NULL OR left({code}, 2) = '99' THEN NULL "
        f"WHEN left({code}, 2) IN ('97', '98') THEN CASE left({code}, 3) {overseas} END "
        f"ELSE {LAMBERT_93} END"
    )


def _wgs84_udf(x, y, epsg):
    """Vectorised (Arrow) UDF: projected coordinates + their EPSG -> STRUCT(lat, lon) in WGS84."""
    import numpy as np
    import pyarrow as pa

    from mirror.core.projection import to_wgs84

    xs = np.asarray(x.to_numpy(zero_copy_only=False), dtype="float64")
    ys = np.asarray(y.to_numpy(zero_copy_only=False), dtype="float64")
    codes = np.asarray(epsg.fill_null(0).to_numpy(zero_copy_only=False), dtype="int64")
    n = len(xs)
    lat = np.full(n, np.nan)
    lon = np.full(n, np.nan)
    ok = np.isfinite(xs) & np.isfinite(ys) & (codes > 0)
    for e in np.unique(codes[ok]):
        sel = ok & (codes == e)
        lat[sel], lon[sel] = to_wgs84(xs[sel], ys[sel], int(e))
    bad = ~(np.isfinite(lat) & np.isfinite(lon) & (np.abs(lat) <= 90) & (np.abs(lon) <= 180))
    lat[bad] = np.nan
    lon[bad] = np.nan
    return pa.StructArray.from_arrays(
        [pa.array(lat, mask=bad), pa.array(lon, mask=bad)], names=["lat", "lon"], mask=pa.array(bad)
    )


# The tables of sql/catalog/commune_geo.sql, on every connection that types rows.
COMMUNE_TABLES = (
    "_mirror_commune_geo",
    "_mirror_departements",
    "_mirror_commune_lists",
    "_mirror_departement_lists",
)
_PREPARED = "mirror_typing_prepared"  # a session variable, set last: this connection is prepared


def prepare_connection(con: duckdb.DuckDBPyConnection) -> None:
    """Registers what the typing SQL needs on `con` (idempotent): the UDF mirror_wgs84 and the commune /
    département lookups of sql/catalog/commune_geo.sql (the macros, the four TEMP tables, read from the
    machine's cache entry when there is one, the session variables, the UDFs mirror_commune_*)."""
    from duckdb import sqltypes as T

    if con.execute(f"SELECT getvariable('{_PREPARED}')").fetchone()[0]:
        return
    con.execute(render("catalog/commune_macros.sql"))
    cached = commune_cache()
    try:
        if cached is None:
            raise FileNotFoundError
        con.execute(render("catalog/commune_cached.sql", folder=escape(cached)))
    except (OSError, duckdb.Error):  # no entry, or a damaged one (any error reading it): derived here
        if cached is not None:  # and written again by the next process
            shutil.rmtree(cached, ignore_errors=True)
            commune_cache.cache_clear()
        con.execute(render("catalog/commune_geo.sql", ref_dir=escape(REF_DIR)))
    con.execute(render("catalog/commune_variables.sql"))
    # UDFs belong to the database, not to the connection: a cursor of a prepared connection has them.
    wgs84 = duckdb.struct_type({"lat": T.DOUBLE, "lon": T.DOUBLE})
    udfs = [("mirror_wgs84", _wgs84_udf, [T.DOUBLE, T.DOUBLE, T.INTEGER], wgs84)]
    udfs += [
        (f"mirror_commune_{name}", _taking(values), [T.INTEGER], T.VARCHAR) for name, values in _lists(con)
    ]
    for name, fn, args, returns in udfs:
        try:
            con.create_function(
                name, fn, args, returns, type="arrow", null_handling="special", side_effects=False
            )
        except (duckdb.NotImplementedException, duckdb.CatalogException):  # it exists (this connection's
            pass  # database has it: created by this connection or one of its cursors)
    con.execute(f"SET VARIABLE {_PREPARED} = true")


@functools.cache
def commune_cache() -> Path | None:
    """The folder of the machine's cache entry (mirror.core.ref_cache) holding the four tables of
    sql/catalog/commune_geo.sql as Parquet files, derived first when missing; None without a cache."""
    from mirror.core import ref_cache

    sources = [SQL_DIR / "catalog" / f for f in ("commune_macros.sql", "commune_geo.sql")]
    key = ref_cache.key_of(
        [REF_DIR / "communes.csv.gz", REF_DIR / "departements.csv", *sources], duckdb.__version__
    )

    def write(folder: Path) -> None:
        con = open_duckdb()
        try:
            con.execute(render("catalog/commune_macros.sql"))
            con.execute(render("catalog/commune_geo.sql", ref_dir=escape(REF_DIR)))
            for name in COMMUNE_TABLES:
                con.execute(f"COPY {ident(name)} TO {literal(folder / f'{name}.parquet')} (FORMAT parquet)")
        finally:
            con.close()

    return ref_cache.entry("commune-lookups", key, write)


_LISTS: list = []  # the commune lists as Arrow arrays, read from the first connection prepared


def _lists(con: duckdb.DuckDBPyConnection) -> list[tuple[str, object]]:
    """(name, values) of the commune lists (_mirror_commune_lists), read once per process: every connection
    gets the same (one source: commune_geo.sql over sql/ref)."""
    if not _LISTS:
        table = con.execute(render("catalog/commune_lists.sql")).to_arrow_table()
        _LISTS[:] = [(name, table.column(name)[0].values) for name in COMMUNE_LOOKUPS]  # threads: same
    return list(_LISTS)


# The commune lookups of prepare_connection: mirror_commune_<name>(key) for each, key from mirror_commune_key.
COMMUNE_LOOKUPS = ("departement", "region", "epci")


def _taking(values):
    """Vectorised (Arrow) UDF: key (0-based, NULL for none) -> values[key]: a commune list of
    sql/catalog/commune_geo.sql read once, where a list in a session variable is copied for every chunk."""
    import pyarrow as pa
    import pyarrow.compute as pc

    def take(keys):
        taken = pc.take(values, keys)
        return taken.combine_chunks() if isinstance(taken, pa.ChunkedArray) else taken

    return take


def _typed_expr(table_key: str, col: str, source_types: dict[str, str]) -> str:
    target = typed_column_type(table_key, col)
    if col not in source_types:
        return f"CAST(NULL AS {target}) AS {ident(col)}"
    src = source_types[col].upper()
    if target == "VARCHAR":
        if src == "VARCHAR":
            expr = f"nullif({ident(col)}, '')"
        else:
            expr = f"CAST({ident(col)} AS VARCHAR)"
            if col in PAD_WIDTHS:  # integer identifiers from some Parquet releases: restore the zeros
                w = PAD_WIDTHS[col]
                expr = f"CASE WHEN length({expr}) < {w} THEN lpad({expr}, {w}, '0') ELSE {expr} END"
    elif src == target:
        expr = ident(col)
    else:
        expr = f"TRY_CAST({ident(col)} AS {target})"
    return f"{expr} AS {ident(col)}"


# The commune / département lookups of sql/catalog/typed_etablissements.sql, in its two forms (keep_order).
_LIST_LOOKUPS = {
    "commune_departement": "mirror_commune_departement(_ck - 1)",
    "commune_region": "mirror_commune_region(_ck - 1)",
    "commune_epci": "mirror_commune_epci(_ck - 1)",
    "departement_code": "getvariable('mirror_departement_code')[_dk]",
    "departement_region": "getvariable('mirror_departement_region')[_dk]",
    "lookup_joins": "",
}
_JOIN_LOOKUPS = {
    "commune_departement": "_g.departement",
    "commune_region": "_g.region",
    "commune_epci": "_g.epci",
    "departement_code": "_d.code",
    "departement_region": "_d.region",
    "lookup_joins": " LEFT JOIN _mirror_commune_geo _g ON _g.key = keyed._ck - 1"
    " LEFT JOIN _mirror_departements _d ON _d.key = keyed._dk - 1",
}


def typed_select_sql(
    table_key: str, source: str, source_types: dict[str, str], keep_order: bool = True
) -> str:
    """SELECT turning `source` (table/view name or parenthesised query with INSEE column names) into the
    typed rows of base view `table_key`. `source_types`: column -> DuckDB type of the source columns.

    Known columns are cast to mirror.core.schema.typed_column_type (dates/timestamps/numbers with TRY_CAST:
    junk becomes NULL, never an error; empty strings become NULL; integer identifiers re-padded);
    columns absent from the source are NULL; columns unknown to us are kept, after the known ones.
    For etablissements, the derived columns are computed (needs prepare_connection(con)); `keep_order`
    False lets them come from joins, binding in milliseconds instead of ~0.3 s, the rows then in any order.
    """
    stock = STOCK_FILES_BY_KEY[table_key]
    known = list(stock.columns)
    extras = [
        c
        for c in source_types
        if c not in known and c not in DERIVED_COLUMNS and c not in GEOLOCATION_COLUMNS
    ]
    typed = ", ".join(_typed_expr(table_key, c, source_types) for c in known)
    extra_cols = "".join(f", {ident(c)}" for c in extras)
    if table_key != "etablissements":
        return f"SELECT {typed}{extra_cols} FROM {source}"

    def raw(col: str) -> str:
        return f"CAST({ident(col)} AS VARCHAR)" if col in source_types else "CAST(NULL AS VARCHAR)"

    masked = (
        f"coalesce({raw('coordonneeLambertAbscisseEtablissement')} = '[ND]', false)"
        f" OR coalesce({raw('coordonneeLambertOrdonneeEtablissement')} = '[ND]', false)"
    )
    return render(
        "catalog/typed_etablissements.sql",
        typed_columns=typed,
        masked_test=masked,
        extra_columns=extra_cols,
        source=source,
        epsg=epsg_sql("codeCommuneEtablissement"),
        typed_names=", ".join(ident(c) for c in known),
        extra_names=extra_cols,
        **(_LIST_LOOKUPS if keep_order else _JOIN_LOOKUPS),
    )


def typed_relation(con: duckdb.DuckDBPyConnection, table_key: str, source: str) -> duckdb.DuckDBPyRelation:
    """The typed rows of base view `table_key` from `source` (a table/view name or a parenthesised
    query on `con`, columns named as INSEE's, e.g. all VARCHAR string rows). See typed_select_sql."""
    prepare_connection(con)
    rel = con.sql(f"SELECT * FROM {source} LIMIT 0")
    source_types = {c: str(t) for c, t in zip(rel.columns, rel.types, strict=True)}
    return con.sql(typed_select_sql(table_key, source, source_types))


def geolocation_select_sql(source: str, source_types: dict[str, str]) -> str:
    """SELECT of the geolocation file's rows as the load joins them (sql/catalog/typed_geolocalisation.sql):
    siret, latitude, longitude (WGS84), qualiteXY, iris, qpv, one row per siret. `source_types`: column ->
    DuckDB type of the source (columns are read by name; absent ones are NULL). Needs prepare_connection."""

    def text(col: str) -> str:
        if col not in source_types:
            return "CAST(NULL AS VARCHAR)"
        return f"nullif(trim(CAST({ident(col)} AS VARCHAR)), '')"

    def number(col: str) -> str:
        return f"TRY_CAST({text(col)} AS DOUBLE)"

    projected = (
        f"mirror_wgs84({number('x')}, {number('y')}, TRY_CAST({text('epsg')} AS INTEGER))"
        if {"x", "y", "epsg"} <= set(source_types)
        else "CAST(NULL AS STRUCT(lat DOUBLE, lon DOUBLE))"
    )
    qpv = "plg_qp24" if "plg_qp24" in source_types else "plg_qp"
    return render(
        "catalog/typed_geolocalisation.sql",
        source=source,
        latitude=number("y_latitude"),
        longitude=number("x_longitude"),
        projected=projected,
        qualite=text("qualite_xy"),
        iris_local=text("plg_iris"),
        commune=text("plg_code_commune"),
        qpv=text(qpv),
    )


def geolocated_select_sql(typed: str, geolocation: str) -> str:
    """The typed établissements `typed` (a SELECT) joined with the geolocation rows `geolocation` (a table
    name or parenthesised SELECT of geolocation_select_sql): sql/catalog/geolocated_etablissements.sql."""
    return render("catalog/geolocated_etablissements.sql", typed=typed, geolocalisation=geolocation)
