"""The mirror's tables and views in an Apache Spark session: `register(spark, data_dir)`.

It reads DATA_DIR/current.json (mirror.catalog.current) through Spark itself, so `data_dir` may be a local
folder or a folder copied to object storage (`s3a://bucket/sirene`, `abfss://...`, `hdfs://...`): every
path of the manifest is relative to it. Each layer of each table becomes the temporary view
`<table>__<layer>` over its Parquet files, each reference table a temporary view `ref_*`, then the base
views and every view of sql/views are created as temporary views from their Spark transpilation
(mirror.engines.dialects). pyspark is not a dependency of the package: the caller brings its session.
"""

from __future__ import annotations

import json
from pathlib import Path

from sqlglot import exp

from mirror.catalog import current
from mirror.core.errors import MirrorError
from mirror.engines import dialects


def _join(root: str, rel: str) -> str:
    return rel if rel.startswith("/") or "://" in rel else f"{root}/{rel}"


def read_manifest(spark, data_dir: str | Path) -> dict:
    """current.json of `data_dir`: from the local file system, or through Spark for a remote URI."""
    root = str(data_dir).rstrip("/")
    if "://" not in root:
        return current.read(Path(root))
    rows = spark.read.text(f"{root}/{current.CURRENT_NAME}", wholetext=True).collect()
    if not rows:
        raise MirrorError(f"no {current.CURRENT_NAME} in {root}")
    manifest = json.loads(rows[0][0])
    if manifest.get("format") != current.FORMAT or manifest.get("version") != current.VERSION:
        raise MirrorError(
            f"{root}/{current.CURRENT_NAME} is not a {current.FORMAT} manifest of version {current.VERSION}"
        )
    return manifest


# DuckDB writes its TIMESTAMP (no time zone) as a Parquet timestamp not adjusted to UTC: Spark's TIMESTAMP_NTZ.
_SPARK_TYPES = {"TIMESTAMP": "TIMESTAMP_NTZ"}


def spark_type(duckdb_type: str) -> str:
    """The Spark SQL type of a DuckDB column type of the layout."""
    return _SPARK_TYPES.get(duckdb_type.upper()) or exp.DataType.build(duckdb_type, dialect="duckdb").sql(
        "spark"
    )


def _schema(columns: list[str], types: dict[str, str]) -> str:
    """A Spark DDL schema: the files are read with it, so Spark infers nothing (no job per relation)."""
    return ", ".join(f"`{c}` {spark_type(types[c])}" for c in columns)


def _layer(spark, root: str, entry: dict, layer: dict):
    files = [_join(root, f) for f in layer["files"]]
    missing = set(layer.get("missing", ()))
    hive = (layer.get("hive") or {}).get("columns", {})
    stored = [c for c in entry["columns"] if c not in missing]
    if not files:
        return spark.createDataFrame([], _schema(stored, entry["types"]))
    reader = spark.read.schema(_schema(stored, entry["types"]))
    if hive:  # partition values are strings ('01', '2A', '99'), as the schema says
        reader = reader.option("basePath", _join(root, layer["hive"]["root"]))
    return reader.parquet(*files)


def register(spark, data_dir: str | Path) -> list[str]:
    """Registers every table and view of the mirror at `data_dir` in the SparkSession `spark` (temporary
    views of the session). Returns the names of the tables and views, in creation order."""
    root = str(data_dir).rstrip("/")
    manifest = read_manifest(spark, root)
    for table, entry in manifest["tables"].items():
        for layer in entry["layers"]:
            _layer(spark, root, entry, layer).createOrReplaceTempView(dialects.relation(table, layer["name"]))
    names = []
    for name, ref in manifest["ref"].items():
        reader = spark.read.schema(_schema(ref["columns"], ref["types"])) if "types" in ref else spark.read
        reader.parquet(_join(root, ref["file"])).createOrReplaceTempView(name)
        names.append(name)
    for name, sql in dialects.view_statements(manifest, "spark"):
        spark.sql(sql)
        names.append(name)
    return names
