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


def _empty(spark, entry: dict):
    """An empty relation with the table's columns and types (a layer without files)."""
    cols = ", ".join(
        f"CAST(NULL AS {exp.DataType.build(entry['types'][c], dialect='duckdb').sql('spark')}) AS `{c}`"
        for c in entry["columns"]
    )
    return spark.sql(f"SELECT {cols} WHERE false")


def _layer(spark, root: str, entry: dict, layer: dict):
    from pyspark.sql.types import StringType, StructField, StructType

    files = [_join(root, f) for f in layer["files"]]
    if not files:
        return _empty(spark, entry)
    hive = layer.get("hive")
    if not hive:
        return spark.read.parquet(*files)
    # Partition values are strings ('01', '2A', '99'); Spark would infer integers from the folder names.
    schema = spark.read.parquet(files[0]).schema
    fields = [*schema.fields, *(StructField(c, StringType(), True) for c in hive["columns"])]
    return spark.read.schema(StructType(fields)).option("basePath", _join(root, hive["root"])).parquet(*files)


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
        spark.read.parquet(_join(root, ref["file"])).createOrReplaceTempView(name)
        names.append(name)
    for name, sql in dialects.view_statements(manifest, "spark"):
        spark.sql(sql)
        names.append(name)
    return names
