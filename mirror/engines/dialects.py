"""The mirror's catalog (base views, diffusion views, document views, export views) in another SQL dialect.

Source: the current-state layout (DATA_DIR/current.json, mirror.catalog.current) and the sql/ files. Each
table's layers become relations named `<table>__<layer>` (`unites_legales__snapshot`, `__merged`,
`__recent`), the reference tables keep their `ref_*` names. The base views are the layer rule in portable
SQL (sql/engines/layer.sql, shadowed.sql); the views of sql/views/*.sql are parsed as DuckDB SQL by
sqlglot, their stars expanded from the layout's column lists (`* EXCLUDE`, `* REPLACE` and the column
order of DuckDB), then rewritten where a DuckDB construct has no spelling sqlglot knows in the target:

- Spark: `json_object` builds a struct (`named_struct`), and the documents' JSON columns are that struct
  through `to_json` with null fields kept (DuckDB's json_object keeps them); `'[]'::JSON` is `array()`;
  the Unix time of a Paris local time (`epoch(x AT TIME ZONE 'Europe/Paris')`) is
  `make_timestamp(..., 'Europe/Paris')`, which takes the earlier (summer-time) instant of an ambiguous
  autumn time, so the v2 correction for that case (a `timezone(...)` test) is its plain branch.
- BigQuery: REGEXP_REPLACE replaces every match (DuckDB's 'g' flag).
- Every dialect but DuckDB: `concat_ws` skips NULL arguments as DuckDB's does (sqlglot would wrap each
  argument in COALESCE(x, ''), keeping the separators of missing parts).

What is checked: every dialect's output parses again (sqlglot); DuckDB's and Spark's run and give the
catalog's rows (tests/engines). Trino, PostgreSQL and BigQuery are checked for parse validity only.
"""

from __future__ import annotations

from pathlib import Path

import sqlglot
from sqlglot import exp
from sqlglot.optimizer.qualify import qualify
from sqlglot.schema import MappingSchema

from mirror.catalog import current
from mirror.catalog.build import views_sql
from mirror.core.errors import BadInput, MirrorError
from mirror.core.schema import HISTORY_OF, KEY_COLUMNS
from mirror.core.sql import ident, render

DIALECTS = ("duckdb", "spark", "trino", "postgres", "bigquery")
# Views whose JSON columns are API documents (text JSON in every engine); other views' json_object
# columns are building blocks, kept as structs in Spark until a document nests them.
_DOCUMENT_PREFIX = "documents_"
_PARIS = "Europe/Paris"


def relation(table: str, layer: str) -> str:
    """Name of a table's layer relation (`unites_legales__snapshot`)."""
    return f"{table}__{layer}"


def _check_dialect(dialect: str) -> None:
    if dialect not in DIALECTS:
        raise BadInput(f"unknown dialect {dialect!r} (expected one of {', '.join(DIALECTS)})")


# ------------------------------------------------------------------------------------------------
# Base views: the layer rule
# ------------------------------------------------------------------------------------------------


def base_view_sql(table: str, entry: dict) -> str:
    """The portable (DuckDB-parsable) SELECT of base view `table` over its layer relations."""
    layers = entry["layers"]
    keys = entry.get("key")
    keys_of = HISTORY_OF.get(table, table)
    not_null = set(KEY_COLUMNS.get(keys_of, ()))
    branches = []
    for i, layer in enumerate(layers):
        missing = set(layer.get("missing", ()))
        cols = ", ".join(
            f"CAST(NULL AS {entry['types'][c]}) AS {ident(c)}" if c in missing else f"l.{ident(c)}"
            for c in entry["columns"]
        )
        conditions = []
        if keys:
            equal = " AND ".join(
                f"l.{ident(k)} = k.{ident(k)}"
                if k in not_null
                else f"l.{ident(k)} IS NOT DISTINCT FROM k.{ident(k)}"
                for k in keys
            )
            for later in layers[i + 1 :]:
                conditions.append(
                    render("engines/shadowed.sql", keys=ident(relation(keys_of, later["name"])), equal=equal)
                )
        shadowed = ("\nWHERE " + "\n  AND ".join(conditions)) if conditions else ""
        branches.append(
            render(
                "engines/layer.sql",
                columns=cols,
                relation=ident(relation(table, layer["name"])),
                shadowed=shadowed,
            )
        )
    return "\nUNION ALL\n".join(branches)


# ------------------------------------------------------------------------------------------------
# Dialect rewrites
# ------------------------------------------------------------------------------------------------


def _strip_timestamp_cast(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.Cast) and node.to.this in (
        exp.DataType.Type.TIMESTAMP,
        exp.DataType.Type.TIMESTAMPNTZ,
    ):
        return node.this
    return node


def _is_paris(node: exp.Expression) -> bool:
    zone = node.args.get("zone")
    return isinstance(zone, exp.Literal) and zone.this == _PARIS


def _spark_paris_epoch(value: exp.Expression) -> exp.Expression:
    """Unix time of the Paris local time `value` (a DATE or a TIMESTAMP without time zone), in Spark."""
    parts = [
        exp.Anonymous(this=f, expressions=[value.copy()])
        for f in ("year", "month", "day", "hour", "minute", "second")
    ]
    made = exp.Anonymous(this="make_timestamp", expressions=[*parts, exp.Literal.string(_PARIS)])
    return exp.cast(made, exp.DataType.build("BIGINT"))


def _spark(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.JSONObject):
        args = []
        for kv in node.expressions:
            args += [kv.this, kv.expression.transform(_spark)]  # a replaced node's children are not visited
        return exp.Anonymous(this="named_struct", expressions=args)
    if isinstance(node, exp.Cast) and node.to.this == exp.DataType.Type.JSON:
        if isinstance(node.this, exp.Literal) and node.this.this == "[]":
            return exp.Anonymous(this="array", expressions=[])
        raise MirrorError(f"no Spark spelling for {node.sql('duckdb')}")
    if isinstance(node, exp.TimeToUnix) and isinstance(node.this, exp.AtTimeZone) and _is_paris(node.this):
        return _spark_paris_epoch(_strip_timestamp_cast(node.this.this).transform(_spark))
    if isinstance(node, exp.Case) and any(
        isinstance(f, exp.Anonymous) and f.name.lower() == "timezone"
        for i in node.args.get("ifs", [])
        for f in i.find_all(exp.Anonymous)
    ):
        return node.args["default"].transform(_spark)
    return node


def _bigquery(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.RegexpReplace) and node.args.get("modifiers") is not None:
        node.set("modifiers", None)
    return node


def _is_json(node: exp.Expression) -> bool:
    if isinstance(node, exp.JSONObject):
        return True
    if isinstance(node, exp.Case):
        branches = [i.args.get("true") for i in node.args.get("ifs", [])] + [node.args.get("default")]
        return all(b is not None and _is_json(b) for b in branches)
    return False


def _spark_documents(select: exp.Select) -> None:
    """The JSON columns of a document view as text: to_json of their struct, null fields kept."""
    for projection in select.expressions:
        value = projection.this if isinstance(projection, exp.Alias) else projection
        if _is_json(value):
            options = exp.Anonymous(
                this="map", expressions=[exp.Literal.string("ignoreNullFields"), exp.Literal.string("false")]
            )
            value.replace(exp.Anonymous(this="to_json", expressions=[value.copy(), options]))


def _concat_ws(node: exp.Expression) -> exp.Expression:
    """DuckDB's concat_ws skips NULL arguments, as Spark's, Trino's and PostgreSQL's do; sqlglot reads it as
    NULL-to-'' (COALESCE around every argument), which keeps the separators of NULL parts."""
    if isinstance(node, exp.ConcatWs) and node.args.get("coalesce"):
        node.set("coalesce", None)
    return node


def _rewrite(query: exp.Expression, dialect: str, name: str) -> exp.Expression:
    if dialect != "duckdb":
        query = query.transform(_concat_ws)
    if dialect == "spark":
        if name.startswith(_DOCUMENT_PREFIX) and isinstance(query, exp.Select):
            _spark_documents(query)
        return query.transform(_spark)
    if dialect == "bigquery":
        return query.transform(_bigquery)
    return query


# ------------------------------------------------------------------------------------------------
# The catalog
# ------------------------------------------------------------------------------------------------


def _create_view(name: str, body: str, dialect: str) -> str:
    temporary = "TEMPORARY " if dialect == "spark" else ""
    quoted = exp.to_identifier(name, quoted=True).sql(dialect)
    return f"CREATE OR REPLACE {temporary}VIEW {quoted} AS\n{body}"


def _transpile(sql: str, dialect: str) -> str:
    (out,) = sqlglot.transpile(sql, read="duckdb", write=dialect, pretty=True)
    return out


def view_statements(manifest: dict, dialect: str) -> list[tuple[str, str]]:
    """(name, CREATE VIEW statement) of every base view then every sql/views view, in `dialect`, over the
    layer relations and ref_* tables of `manifest`."""
    _check_dialect(dialect)
    schema: dict[str, dict[str, str]] = {}
    out = []
    for table, entry in manifest["tables"].items():
        out.append((table, _create_view(table, _transpile(base_view_sql(table, entry), dialect), dialect)))
        schema[table] = {c: entry["types"][c] for c in entry["columns"]}
    for name, ref in manifest["ref"].items():
        schema[name] = {c: "VARCHAR" for c in ref["columns"]}
    spelling = {n.lower(): n for cols in schema.values() for n in cols}
    for path, sql in views_sql(schema.get("etablissements", ())):
        for statement in sqlglot.parse(sql, read="duckdb"):
            if not isinstance(statement, exp.Create) or statement.kind != "VIEW":
                raise MirrorError(f"sql/views/{path.name}: only CREATE VIEW statements can be transpiled")
            name = statement.this.name
            query = statement.expression
            # qualify folds unquoted names to lower case (DuckDB's names are case-insensitive): the
            # spelling of the sql/ files and of the layout is put back afterwards.
            spelling.update({i.name.lower(): i.name for i in query.find_all(exp.Identifier)})
            try:
                query = qualify(
                    query,
                    schema=MappingSchema(schema, dialect="duckdb"),
                    dialect="duckdb",
                    expand_stars=True,
                    validate_qualify_columns=False,
                    quote_identifiers=False,
                )
            except sqlglot.errors.SqlglotError as exc:
                raise MirrorError(f"sql/views/{path.name}: view {name}: {exc}") from exc
            for identifier in query.find_all(exp.Identifier):
                identifier.set("this", spelling.get(identifier.name.lower(), identifier.name))
                identifier.set("quoted", True)
            schema[name] = {c: "VARCHAR" for c in query.named_selects}
            query = _rewrite(query, dialect, name)
            out.append((name, _create_view(name, query.sql(dialect, pretty=True), dialect)))
    return out


def source_statements(manifest: dict, data_dir: Path | str, dialect: str) -> list[str]:
    """What defines the layer relations and ref tables: DuckDB and Spark SQL over the files (absolute
    under `data_dir`), else a comment listing each relation's files (external tables to create)."""
    _check_dialect(dialect)
    root = str(data_dir).rstrip("/")

    def path(rel: str) -> str:
        return rel if rel.startswith("/") or "://" in rel else f"{root}/{rel}"

    out = []
    if dialect == "spark":
        out.append("SET spark.sql.sources.partitionColumnTypeInference.enabled = false")
    for table, entry in manifest["tables"].items():
        for layer in entry["layers"]:
            name = relation(table, layer["name"])
            files = [path(f) for f in layer["files"]]
            hive = layer.get("hive")
            if dialect == "duckdb":
                listing = "[" + ", ".join(sqlglot.exp.Literal.string(f).sql("duckdb") for f in files) + "]"
                options = (
                    ", hive_partitioning = true, hive_types = {'departement': 'VARCHAR'}" if hive else ""
                )
                out.append(
                    f"CREATE OR REPLACE VIEW {ident(name)} AS SELECT * FROM read_parquet({listing}{options})"
                )
            elif dialect == "spark":
                target = (
                    path(hive["root"])
                    if hive
                    else (files[0] if len(files) == 1 else path(str(Path(layer["files"][0]).parent)))
                )
                out.append(
                    f"CREATE OR REPLACE TEMPORARY VIEW `{name}` USING parquet OPTIONS (path = "
                    f"{exp.Literal.string(target).sql('spark')})"
                )
            else:
                out.append(
                    f"-- {name}: Parquet files {', '.join(files)}"
                    + (" (hive partitions: departement)" if hive else "")
                )
    for name, ref in manifest["ref"].items():
        file = path(ref["file"])
        if dialect == "duckdb":
            out.append(
                f"CREATE OR REPLACE VIEW {ident(name)} AS SELECT * FROM read_parquet({exp.Literal.string(file).sql('duckdb')})"
            )
        elif dialect == "spark":
            out.append(
                f"CREATE OR REPLACE TEMPORARY VIEW `{name}` USING parquet OPTIONS (path = {exp.Literal.string(file).sql('spark')})"
            )
        else:
            out.append(f"-- {name}: Parquet file {file}")
    return out


def catalog_script(data_dir: Path | str, dialect: str, manifest: dict | None = None) -> str:
    """The whole catalog as one script in `dialect` (what `mirror views --dialect` prints)."""
    _check_dialect(dialect)
    manifest = manifest if manifest is not None else current.read(Path(data_dir))
    header = [
        f"-- Sirene Mirror catalog in the {dialect} dialect, over the current state published in {current.CURRENT_NAME}",
        f"-- (snapshot {manifest['snapshot']}, merged delta version {manifest['merged']}, {len(manifest['days'])} delta days).",
        "-- Rule of the layers: " + manifest["rule"] + ".",
    ]
    sources = source_statements(manifest, data_dir, dialect)
    if dialect not in ("duckdb", "spark"):
        header.append(
            "-- Create each relation below as an external table over its Parquet files, then run the views."
        )
    statements = [s for s in sources if not s.startswith("--")] + [
        sql for _n, sql in view_statements(manifest, dialect)
    ]
    comments = [s for s in sources if s.startswith("--")]
    return "\n".join(header + comments) + "\n\n" + ";\n\n".join(statements) + ";\n"
