"""INSEE API Sirene 3.11 records built by SQL from a catalog's base views and history, and cut to a day.

The records (`uniteLegale`, `etablissement`, `lienSuccession` in the OpenAPI key order, nulls kept) are the
output of sql/insee/*.sql, the inverse of mirror.core.insee_records (the INSEE JSON -> stock rows conversion
of `mirror update`). One definition serves every path: `mirror serve`'s searches and its lookups when the
lookup store cannot answer (`records`, here over the catalog's views), and the lookup store itself
(mirror.lookup.build runs the same files over every key, or over the keys a delta day touched, without a
date). `at_date` applies the files' `date=` rule to a stored record in Python: a period is kept when its
dateDebut <= day <= dateFin (a missing bound is open); tests/lookup/test_insee_store.py checks it gives what
the SQL gives, for every key of a mirror.
"""

from __future__ import annotations

from datetime import date

from mirror.core import insee_records as R
from mirror.core.schema import ND, STOCK_FILES_BY_KEY, typed_column_type
from mirror.core.sql import ident, render_cached

PERIODS = {"siren": "periodesUniteLegale", "siret": "periodesEtablissement"}


# ------------------------------------------------------------------------------------------------
# JSON field expressions (the ${...} lists of sql/insee/*.sql), generated once from
# mirror.core.insee_records' field lists and mirror.core.schema's types
# ------------------------------------------------------------------------------------------------
def _value(alias: str, table: str, name: str, columns) -> str:
    """The SQL of one field's JSON value as the API writes it (records.to_json): text as is, booleans,
    dates YYYY-MM-DD, timestamps with milliseconds, years as text, nombrePeriodes as a number, Lambert
    coordinates as text or the mask [ND]; NULL for the CNIL fields and fields the table does not hold."""
    if name in R.CNIL_FIELDS or name not in columns:
        return "NULL"
    col = f"{alias}.{ident(name)}"
    kind = typed_column_type(table, name)
    if kind == "DATE":
        return f"strftime({col}, '%Y-%m-%d')"
    if kind == "TIMESTAMP":
        return f"strftime({col}, '%Y-%m-%dT%H:%M:%S.%g')"
    if kind == "SMALLINT":
        return col if name in R.INT_FIELDS else f"CAST({col} AS VARCHAR)"
    if kind == "DOUBLE":
        return f"CASE WHEN {alias}.coordonneesMasquees THEN '{ND}' ELSE CAST({col} AS VARCHAR) END"
    return col


def _object(alias: str, table: str, names, columns=None) -> str:
    columns = set(columns if columns is not None else STOCK_FILES_BY_KEY[table].columns)
    return ", ".join(f"'{n}', {_value(alias, table, n, columns)}" for n in names)


def _row_period(alias: str, table: str, names) -> str:
    columns = set(STOCK_FILES_BY_KEY[table].columns) - {"dateFin"}
    return _object(alias, table, names, columns)


_FIELDS: dict[str, dict[str, str]] = {}


def fields(kind: str) -> dict[str, str]:
    if kind not in _FIELDS:
        if kind == "siren":
            _FIELDS[kind] = {
                "top": _object("u", "unites_legales", R.UL_TOP),
                "period": _object("h", "unites_legales_historique", R.UL_PERIOD),
                "row_period": _row_period("u", "unites_legales", R.UL_PERIOD),
            }
        elif kind == "siret":
            _FIELDS[kind] = {
                "top": _object("e", "etablissements", R.ET_TOP),
                "unit": _object("j", "unites_legales", R.UL_IN_ETAB),
                "adresse": _object("e", "etablissements", R.ADRESSE),
                "adresse2": _object("e", "etablissements", R.ADRESSE2),
                "period": _object("h", "etablissements_historique", R.ET_PERIOD),
                "row_period": _row_period("e", "etablissements", R.ET_PERIOD),
            }
        else:
            _FIELDS[kind] = {"lien": _object("l", "liens_succession", R.LIEN_FIELDS)}
    return _FIELDS[kind]


# ------------------------------------------------------------------------------------------------
# Records of a set of keys, or of every key
# ------------------------------------------------------------------------------------------------


def keys_filter(column: str, keys: list[str], prefix: str = "") -> tuple[str, dict]:
    """The condition naming `keys` in `column`, and its named parameters: an equality for one key (the
    lookups), else a range (row-group pruning on the key-sorted files) and list_contains."""
    lo, hi = min(keys), max(keys)
    if len(keys) == 1:
        return f"{column} = ${prefix}lo", {f"{prefix}lo": lo}
    return (
        f"{column} BETWEEN ${prefix}lo AND ${prefix}hi AND {column} IN (SELECT unnest(${prefix}keys))",
        {f"{prefix}lo": lo, f"{prefix}hi": hi, f"{prefix}keys": keys},
    )


def all_records_sql(kind: str) -> str:
    """The query of (key, record JSON text) for every unit (kind "siren") or établissement ("siret") of the
    catalog, without a date (bind $date to NULL): what the lookup store keeps."""
    if kind == "siren":
        return render_cached("insee/unites_legales.sql", keys_filter="true", **fields("siren"))
    return render_cached(
        "insee/etablissements.sql",
        partitions="true",
        keys_filter="true",
        units_filter="true",
        **fields("siret"),
    )


def records(con, kind: str, keys: list[str], day: date | None) -> dict[str, str]:
    """key -> record JSON text, for the SIRENs / SIRETs `keys` (sql/insee/unites_legales.sql,
    etablissements.sql), their periods cut to `day` when it is given."""
    from mirror.catalog.build import lookup_planning

    if not keys:
        return {}
    if kind == "siren":
        keys_sql, args = keys_filter("siren", keys)
        sql = render_cached("insee/unites_legales.sql", keys_filter=keys_sql, **fields("siren"))
    else:
        keys_sql, args = keys_filter("siret", keys)
        deps = [
            r[0]
            for r in con.execute(render_cached("insee/partitions.sql", keys_filter=keys_sql), args).fetchall()
        ]
        known = [d for d in deps if d is not None]
        conditions = [f"departement IN ({', '.join(f'$d{i}' for i in range(len(known)))})"] if known else []
        if len(known) < len(deps):
            conditions.append("departement IS NULL")
        partitions = "(" + (" OR ".join(conditions) or "FALSE") + ")"
        args.update({f"d{i}": d for i, d in enumerate(known)})
        units_sql, unit_args = keys_filter("siren", sorted({k[:9] for k in keys}), "u")
        args.update(unit_args)
        sql = render_cached(
            "insee/etablissements.sql", partitions=partitions, keys_filter=keys_sql, units_filter=units_sql,
            **fields("siret"),
        )  # fmt: skip
    args["date"] = day
    with lookup_planning(con):  # one key needs no join reordering nor statistics over every row group
        return dict(con.execute(sql, args).fetchall())


# ------------------------------------------------------------------------------------------------
# date= on a stored record
# ------------------------------------------------------------------------------------------------


def _day_key(text: str) -> tuple[int, str]:
    """A YYYY-MM-DD text (the files' strftime, years zero-padded to 4 digits) ordered as the DATE it names."""
    return len(text), text


def at_date(record: dict, kind: str, day: date) -> dict:
    """The record (parsed JSON of the files, without a date) with only the periods valid on `day`, in the
    same order: the `date=` rule of sql/insee/unites_legales.sql and etablissements.sql. A record without
    any period left means that the unit or établissement did not exist yet (the lookups answer 404)."""
    wanted = _day_key(day.isoformat())
    name = PERIODS[kind]
    record[name] = [
        p
        for p in record[name]
        if (p.get("dateDebut") is None or _day_key(p["dateDebut"]) <= wanted)
        and (p.get("dateFin") is None or _day_key(p["dateFin"]) >= wanted)
    ]
    return record
