"""DATA_DIR/current.json: the mirror's current state for any Parquet reader (polars, pandas, Spark, Trino...).

The catalog's views merge the monthly snapshot with the applied delta days; a reader of the Parquet files
alone would see the snapshot without the days. `current.json` names, per table, the immutable Parquet
files of that merge as *layers*, oldest first, and the one rule that combines them:

    rows(table) = for each layer L: the rows of L's `files` whose key is in none of the `keys` files of
                  the layers after L; only the table's `columns` (the merged files carry two bookkeeping
                  columns, `_delta_day` and `_delta_seq`, that are not part of the table)

Keys compare NULL-safely (liens_succession's dateLienSuccession may be NULL). A table whose `key` is null
(the siret index `etablissements_departements`) is the plain concatenation of its layers. Paths are
relative to DATA_DIR (the folder can be copied to object storage as it is). A layer may carry `hive`:
its files sit in `<root>/<column>=<value>/` folders whose values are strings (`__HIVE_DEFAULT_PARTITION__`
is NULL), the column is not stored in the files.

The layers are exactly what the catalog's base views read (sql/deltas/<table>.sql): the snapshot, the
merged version's base file and its recent file (mirror.deltas.store). Why a manifest and not a rewritten
"current" copy: a copy of every table per day costs the size of the register (gigabytes) in a day's time
budget, while the merged files are small, already written by the day's compaction, and never rewritten.
Why not Delta Lake or Iceberg: Spark needs their Maven jars at run time (no offline install from PyPI), so
the one reader a cluster has could not read them here.

Publication: `prepare` (on the connection building the new catalog) writes the reference tables as Parquet
once per reference version (`ref-parquet/<version>/`, staged then renamed; copied from the machine's cache
entry of that version when there is one) and returns the manifest;
`publish` replaces current.json in one os.replace right after the catalog's own switch. A reader sees the
state before or after a day, never a mix.

Grace rule: every file a manifest names stays at least MIRROR_GRACE_SECONDS (1 h) after the switch that
replaced that manifest, so a reader that opened the previous current.json just before a switch keeps its
files for a read shorter than that. Snapshot folders and merged delta versions follow their own retention
(mirror.load.publish.apply_retention, mirror.deltas.store), which already keeps superseded ones for the
grace; `sweep` applies the same rule to the ref-parquet/<version> folders, the only files of the layout
that current.json alone names. A crash between the catalog's switch and current.json's leaves the previous
manifest (still readable: its files are kept as above); `stale` tells the next writer
(mirror.catalog.build.prepare_writer), which publishes the catalog's state again.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime
from pathlib import Path

import duckdb

from mirror.core import ref_cache
from mirror.core.datadir import (
    CURRENT_NAME,
    REF_PARQUET,
    STAGING_PREFIX,
    SUPERSEDED_NAME,
    TRASH_PREFIX,
    fsync_dir,
    grace_elapsed,
    write_json_atomic,
)
from mirror.core.errors import MirrorError
from mirror.core.schema import BUSINESS_KEYS, DELTA_TABLES, HISTORY_OF, SIRET_INDEX, STOCK_FILES
from mirror.core.sql import ident, literal, render

FORMAT = "sirene-mirror-current"
VERSION = 1
DELTA_COLUMNS = ("_delta_day", "_delta_seq")
TABLES = tuple(f.key for f in STOCK_FILES)


def current_path(data_dir: Path) -> Path:
    return Path(data_dir) / CURRENT_NAME


def read(data_dir: Path) -> dict:
    """The published manifest of DATA_DIR (MirrorError when there is none or it is unreadable)."""
    path = current_path(data_dir)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MirrorError(
            f"no {CURRENT_NAME} in {data_dir}: run `mirror catalog` (or `mirror load` / `mirror sync`) first"
        ) from None
    except (OSError, ValueError) as exc:
        raise MirrorError(f"cannot read {path}: {exc}") from exc
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise MirrorError(f"{path} is not a {FORMAT} manifest of version {VERSION}: run `mirror catalog`")
    return manifest


def _rel(path: Path, data_dir: Path) -> str:
    """`path` relative to DATA_DIR (absolute when it lies elsewhere)."""
    try:
        return path.resolve().relative_to(data_dir.resolve()).as_posix()
    except ValueError:
        return str(path.resolve())


def _snapshot_layer(snapshot_dir: Path, data_dir: Path, table: str) -> dict:
    folder = snapshot_dir / table
    if table == "etablissements":
        files = sorted(folder.glob("*/*.parquet"))
        return {
            "name": "snapshot",
            "files": [_rel(p, data_dir) for p in files],
            "hive": {"root": _rel(folder, data_dir), "columns": {"departement": "string"}},
        }
    return {"name": "snapshot", "files": [_rel(p, data_dir) for p in sorted(folder.glob("*.parquet"))]}


def _delta_layers(merged: Path, data_dir: Path, table: str) -> list[dict]:
    keys_of = HISTORY_OF.get(table, table)
    return [
        {
            "name": name,
            "files": [_rel(merged / f"{table}{suffix}", data_dir)],
            "keys": [_rel(merged / f"{keys_of}{suffix}", data_dir)],
        }
        for name, suffix in (("merged", ".parquet"), ("recent", ".recent.parquet"))
    ]


def _file_columns(con: duckdb.DuckDBPyConnection, data_dir: Path, layer: dict) -> set[str]:
    """Columns of a layer's files (its hive columns included)."""
    if not layer["files"]:
        return set()
    first = Path(layer["files"][0])
    first = first if first.is_absolute() else Path(data_dir) / first
    present = set(con.sql(f"SELECT * FROM read_parquet({literal(first)}) LIMIT 0").columns)
    return present | set((layer.get("hive") or {}).get("columns", {}))


# The ref tables' (columns, types) per reference version, described once per process (a sync's every day).
_REF_DESCRIBED: dict[str, dict[str, list[tuple[str, str]]]] = {}


def _write_ref_parquet(con: duckdb.DuckDBPyConnection, names: list[str], folder: Path) -> None:
    for name in names:
        con.execute(
            f"COPY (SELECT * FROM {ident(name)}) TO {literal(folder / f'{name}.parquet')} "
            "(FORMAT parquet, COMPRESSION zstd)"
        )


def _ref_tables(con: duckdb.DuckDBPyConnection, data_dir: Path, version: str) -> dict[str, dict]:
    """The catalog's ref_* tables as Parquet files in ref-parquet/<version>/ (written when missing: copied
    from the machine's cache entry of that version, mirror.core.ref_cache, else written from `con`)."""
    names = [r[0] for r in con.execute(render("catalog/ref_tables.sql")).fetchall()]
    root = Path(data_dir) / REF_PARQUET
    folder = root / version
    if not folder.is_dir():
        stage = root / f"{STAGING_PREFIX}{version}-{os.getpid()}"
        shutil.rmtree(stage, ignore_errors=True)
        root.mkdir(parents=True, exist_ok=True)
        cached = ref_cache.entry("ref-parquet", version, lambda f: _write_ref_parquet(con, names, f))
        wanted = {f"{name}.parquet" for name in names}
        try:
            if cached is None or not wanted <= {p.name for p in cached.iterdir()}:
                raise FileNotFoundError(f"no complete cache entry for {version}")
            shutil.copytree(cached, stage, ignore=lambda _d, files: [f for f in files if f not in wanted])
        except OSError:  # no cache, an entry that lacks a table or vanished during the copy
            shutil.rmtree(stage, ignore_errors=True)
            stage.mkdir()
            _write_ref_parquet(con, names, stage)
        fsync_dir(stage)
        os.rename(stage, folder)
        fsync_dir(root)
    described = _REF_DESCRIBED.get(version)
    if described is None or set(described) != set(names):
        described = {n: [tuple(r[:2]) for r in con.execute(f"DESCRIBE {ident(n)}").fetchall()] for n in names}
        _REF_DESCRIBED[version] = described
    return {
        name: {
            "file": _rel(folder / f"{name}.parquet", data_dir),
            "columns": [c for c, _t in described[name]],
            "types": dict(described[name]),
        }
        for name in names
    }


def prepare(
    con: duckdb.DuckDBPyConnection,
    data_dir: Path,
    snapshot_dir: Path,
    merged: Path | None,
    ref_version: str,
) -> dict:
    """The manifest of the state a catalog being built over `snapshot_dir` and the merged delta version
    `merged` (None: no delta) reads. `con`: the connection building that catalog, its base views created
    (their columns and types are the tables'; its ref_* tables are written as Parquet when missing)."""
    data_dir = Path(data_dir)
    tables: dict[str, dict] = {}
    for table in TABLES:
        described = [r[:2] for r in con.execute(f"DESCRIBE {ident(table)}").fetchall()]
        layers = [_snapshot_layer(snapshot_dir, data_dir, table)]
        if merged is not None and table in DELTA_TABLES:
            layers += _delta_layers(merged, data_dir, table)
        for layer in layers:  # a snapshot of an older layout lacks columns the merged files have
            present = _file_columns(con, data_dir, layer)
            if missing := [c for c, _t in described if c not in present]:
                layer["missing"] = missing
        tables[table] = {
            "key": list(BUSINESS_KEYS.get(table, ())) or None,
            "columns": [c for c, _t in described],
            "types": dict(described),
            "layers": layers,
        }
    index = [
        {
            "name": "snapshot",
            "files": [_rel(p, data_dir) for p in sorted((snapshot_dir / SIRET_INDEX).glob("*.parquet"))],
        }
    ]
    if merged is not None:
        index += [
            {"name": name, "files": [_rel(merged / f"etablissements{suffix}", data_dir)]}
            for name, suffix in (("merged", ".parquet"), ("recent", ".recent.parquet"))
        ]
    index_types = {"siret": "VARCHAR", "departement": "VARCHAR"}
    tables[SIRET_INDEX] = {"key": None, "columns": list(index_types), "types": index_types, "layers": index}
    days = []
    if merged is not None:
        try:
            days = sorted(
                json.loads((merged / "manifest.json").read_text(encoding="utf-8"))["sources"]["days"]
            )
        except (OSError, ValueError, KeyError):
            days = []
    return {
        "format": FORMAT,
        "version": VERSION,
        "published": datetime.now().isoformat(timespec="seconds"),
        "snapshot": _rel(snapshot_dir, data_dir),
        "merged": _rel(merged, data_dir) if merged is not None else None,
        "days": days,
        "rule": (
            "rows(table) = for each layer L: rows of L.files whose key is in none of the keys files of the "
            "later layers (NULL-safe key equality), projected on columns; key null: concatenation of the layers"
        ),
        "tables": tables,
        "ref": _ref_tables(con, data_dir, ref_version),
    }


def publish(data_dir: Path, manifest: dict) -> Path:
    """Replaces DATA_DIR/current.json by `manifest` in one step (call it right after the catalog's switch),
    then sweeps the reference versions it no longer names (`sweep`)."""
    path = current_path(data_dir)
    write_json_atomic(path, manifest)
    sweep(data_dir, manifest)
    return path


def _ref_versions(manifest: dict) -> set[str]:
    """The ref-parquet/<version> folder names a manifest's reference files sit in."""
    return {
        Path(r["file"]).parent.name
        for r in manifest.get("ref", {}).values()
        if Path(r["file"]).parent.parent.name == REF_PARQUET
    }


def sweep(data_dir: Path, manifest: dict) -> list[str]:
    """Deletes the ref-parquet/<version> folders `manifest` (the published one) does not name, once they
    have been superseded for the grace period (datadir.grace_elapsed: marked superseded the first time a
    sweep sees them unnamed, i.e. right after the switch that dropped them). A named folder loses a mark it
    carried (a version that comes back is current again, its grace starts anew when it is dropped again).
    Renamed out of sight before the deletion, so that a half-deleted folder is never taken for a complete
    version (a leftover `.trash-*` goes with the next writer's datadir.clean_leftovers). Call it under the
    writer lock. Returns the folders deleted, relative to DATA_DIR."""
    root = Path(data_dir) / REF_PARQUET
    if not root.is_dir():
        return []
    named = _ref_versions(manifest)
    removed = []
    for folder in sorted(root.iterdir()):
        if folder.name.startswith((STAGING_PREFIX, TRASH_PREFIX)) or not folder.is_dir():
            continue
        if folder.name in named:
            (folder / SUPERSEDED_NAME).unlink(missing_ok=True)
            continue
        if not grace_elapsed(folder):
            continue
        trash = root / f"{TRASH_PREFIX}{folder.name}-{os.getpid()}"
        os.rename(folder, trash)
        shutil.rmtree(trash, ignore_errors=True)
        removed.append(f"{REF_PARQUET}/{folder.name}")
    if removed:
        fsync_dir(root)
    return removed


def stale(data_dir: Path, built: dict | None) -> bool:
    """Whether current.json does not describe the catalog whose build record is `built`
    (mirror.catalog.build.built_from: its snapshot folder and merged delta version): it is missing,
    unreadable, or a crash came between the catalog's switch and its own."""
    if not built or not built.get("snapshot"):
        return False
    try:
        manifest = read(data_dir)
    except MirrorError:
        return True
    data_dir = Path(data_dir)
    merged = manifest.get("merged")
    snapshot = (data_dir / manifest.get("snapshot", "")).resolve()
    return (Path(merged).name if merged else None) != built.get("merged") or str(snapshot) != str(
        Path(built.get("snapshot") or "").resolve()
    )
