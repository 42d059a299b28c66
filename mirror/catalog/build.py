"""The DuckDB catalog DATA_DIR/sirene.duckdb: views over the current snapshot + reference tables.

It holds ONLY views (over Parquet files, by absolute path, so it works from any working directory),
small `ref_*` tables and the one-row table `mirror_catalog_build` (what it was built from). `rebuild`
writes it into a temp file and switches it with os.replace: it is never kept open for writing, so
readers (`duckdb DATA_DIR/sirene.duckdb`, read-only or not) are never blocked by the mirror, and a reader
sees either the old catalog or the new one. A user's read-write session does lock the file for other
processes: `connect` then reads a private copy of it (`_open_read_only`).

Build order: ref tables (every sql/ref/*.csv[.gz] as `ref_<stem>`), base views from the templates
sql/catalog/<table>.sql, then every sql/views/*.sql in file-name order. The last two steps' result is kept
per machine and base-view schema (`_views_template`): a full build copies it and re-creates its base views.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import gzip
import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import duckdb

from mirror.catalog import current
from mirror.core import datadir as snap
from mirror.core import ref_cache
from mirror.core.config import catalog_path, open_duckdb
from mirror.core.errors import MirrorError, first_line
from mirror.core.schema import GEOLOCATION_COLUMNS, SIRET_INDEX, STOCK_FILES, opted_out_person
from mirror.core.sql import REF_DIR, SQL_DIR, escape, ident, idents, literal, render
from mirror.core.typed import base_columns
from mirror.deltas import store as deltas

VIEWS_SQL = SQL_DIR / "views"
TABLES = tuple(f.key for f in STOCK_FILES)
# One-row table recording what the catalog was built from (`_fingerprint`), for `rebuild(reuse=True)`.
BUILD_TABLE = "mirror_catalog_build"
# Reference columns that are numbers (everything else stays VARCHAR: codes keep their zeros).
_INTEGER_REF_COLUMNS = {"tranches_effectifs": ("de", "a")}


def connect(data_dir: Path, read_only: bool = True) -> duckdb.DuckDBPyConnection:
    """Opens the catalog (read-only by default). MirrorError when there is no mirror yet, or when a folder
    its views read is gone (a one-line error instead of DuckDB's "No files found" at the first query).

    A read-only open still works while another process holds the catalog open for writing (a read-write
    `duckdb DATA_DIR/sirene.duckdb` session takes an exclusive lock): see `_open_read_only`."""
    data_dir = Path(data_dir)
    path = catalog_path(data_dir)
    if not path.is_file():
        raise MirrorError(f"no mirror in {data_dir}: run `mirror load` or `mirror sync` first")
    if read_only:
        con = _open_read_only(path)
    else:
        try:
            con = open_duckdb(str(path), read_only=False)
        except duckdb.Error as exc:
            raise MirrorError(f"cannot open {path}: {first_line(exc)}") from exc
    try:
        _check_sources(con, data_dir)
    except BaseException:
        con.close()
        raise
    # Parquet footers parsed once per connection instead of once per query: halves a single lookup at
    # national scale. Safe because no file the catalog names is ever rewritten in place (snapshot folders
    # and merged delta versions are immutable, new data gets new paths): DuckDB does not notice a file
    # replaced under the same path while this cache holds its footer.
    con.execute("SET parquet_metadata_cache = true")
    return con


# Optimizers a single-row lookup does without: their planning work (per-column statistics merged over every
# row group of the big files, join enumeration over the ~20 joins of a document view) costs more than the
# query itself at national scale, and one row needs no join reordering (measured: v3 SIREN 48 -> 27 ms).
LOOKUP_DISABLED_OPTIMIZERS = ("statistics_propagation", "join_order")


@contextlib.contextmanager
def lookup_planning(con: duckdb.DuckDBPyConnection):
    """Disables LOOKUP_DISABLED_OPTIMIZERS on `con` for one lookup, then restores the caller's setting."""
    (before,) = con.execute("SELECT current_setting('disabled_optimizers')").fetchone()
    current = [o.strip() for o in (before or "").split(",") if o.strip()]
    wanted = current + [o for o in LOOKUP_DISABLED_OPTIMIZERS if o not in current]
    con.execute(f"SET disabled_optimizers = '{','.join(wanted)}'")
    try:
        yield
    finally:
        con.execute(f"SET disabled_optimizers = '{','.join(current)}'")


def _locked(exc: duckdb.Error) -> bool:
    return "lock" in str(exc).lower()


# A private copy of a locked catalog is taken again when the file changed while it was copied.
_COPY_ATTEMPTS = 3


def _attach_read_only(path: Path) -> duckdb.DuckDBPyConnection:
    """The DuckDB file `path`, attached read-only under its stem (the name `duckdb.connect(path)` gives it)
    and made the default, in a new in-memory instance. Not duckdb.connect(path): while a connection to a
    path is open in the process, connecting to that path again reuses its instance, which reads the file
    the path named when it was first opened (duckdb/duckdb#15912); the catalog is replaced by os.replace,
    so a long-lived process (`mirror serve`) would go on answering from the catalog it first saw."""
    con = open_duckdb()
    try:
        con.execute(f"ATTACH {literal(path)} AS {ident(path.stem)} (READ_ONLY)")
        con.execute(f"USE {ident(path.stem)}")
    except BaseException:
        con.close()
        raise
    return con


def _open_read_only(path: Path) -> duckdb.DuckDBPyConnection:
    """`path` opened read-only; when another process holds it open for writing (DuckDB's exclusive file
    lock), a private copy of it opened read-only instead.

    The copy is cheap (the catalog holds only views, small ref tables and the build record) and reads the
    same Parquet files (views name them by absolute path). It is what the file held at its last
    checkpoint: the writer's uncommitted or not yet checkpointed changes (in its .wal) are not seen. It is
    consistent when the file's size and mtime did not change during the copy and the copy opens and
    reads its build record; else it is taken again. The copy is unlinked as soon as it is open (DuckDB
    keeps its descriptor), so nothing is left behind."""
    try:
        return _attach_read_only(path)
    except duckdb.Error as exc:
        if not _locked(exc):
            raise MirrorError(f"cannot open {path}: {first_line(exc)}") from exc
        error = exc
    for _ in range(_COPY_ATTEMPTS):
        fd, name = tempfile.mkstemp(prefix="mirror-catalog-", suffix=".duckdb")
        os.close(fd)
        copy = Path(name)
        try:
            before = path.stat()
            shutil.copyfile(path, copy)
            after = path.stat()
            if (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns):
                continue
            con = _attach_read_only(copy)
            try:
                con.execute(render("catalog/build_record_read.sql")).fetchone()
            except duckdb.Error as exc:
                con.close()
                error = exc
                continue
            return con
        except (OSError, duckdb.Error) as exc:
            error = exc
        finally:
            copy.unlink(missing_ok=True)
    raise MirrorError(f"cannot open {path} (held open for writing by another process): {first_line(error)}")


def _check_sources(con: duckdb.DuckDBPyConnection, data_dir: Path) -> None:
    """MirrorError naming the first folder the catalog's views read that no longer exists (deleted by hand,
    or a catalog older than the grace period of its folders). Catalogs built before the build record named
    its snapshot are not checked."""
    try:
        row = con.execute(render("catalog/build_record_read.sql")).fetchone()
    except duckdb.Error:
        return
    if not row:
        return
    _fingerprint, merged, snapshot_dir = row
    _check_location(data_dir, snapshot_dir)
    if snapshot_dir and not Path(snapshot_dir).is_dir():
        if (snap.snapshots_dir(data_dir) / Path(snapshot_dir).name).is_dir():  # the data directory moved
            raise MirrorError(f"snapshot folder {snapshot_dir} is missing: run `mirror catalog`")
        raise MirrorError(f"snapshot folder {snapshot_dir} is missing: run `mirror load` again")
    if merged and not (deltas.merged_root(data_dir) / merged).is_dir():
        raise MirrorError(
            f"merged delta version {deltas.merged_root(data_dir) / merged} is missing: run `mirror catalog`"
        )


def built_elsewhere(data_dir: Path, snapshot_dir: str | Path | None) -> Path | None:
    """The data directory a catalog whose build record names `snapshot_dir` was built for, when it is not
    `data_dir` (None when it is, or when the record names no folder): the data directory was copied or
    moved since. Its views name their Parquet files by absolute path, so a copy would silently read the
    original's files, and a moved one fail at the first query, until the catalog is rebuilt here."""
    if not snapshot_dir:
        return None
    here = snap.snapshots_dir(Path(data_dir)).resolve()
    built_for = Path(snapshot_dir).parent
    if built_for == here:
        return None
    with contextlib.suppress(OSError):
        if built_for.exists() and os.path.samefile(built_for, here):  # the same folder by another path
            return None
    return built_for.parent


def _check_location(data_dir: Path, snapshot_dir: str) -> None:
    original = built_elsewhere(data_dir, snapshot_dir)
    if original is not None:
        raise MirrorError(
            f"{catalog_path(Path(data_dir))} was built for {original}: this data directory was copied or "
            f"moved from there and its views still read {original}; run `mirror catalog --data-dir "
            f"{data_dir}` once to point them here"
        )


def _ref_files() -> list[tuple[str, Path]]:
    """(stem, path) of the reference CSV files of sql/ref: each becomes the table ref_<stem>."""
    out = []
    for path in sorted(REF_DIR.iterdir()):
        if path.name.endswith(".csv.gz"):
            out.append((path.name[: -len(".csv.gz")], path))
        elif path.suffix == ".csv":
            out.append((path.stem, path))
    return out


def _ref_tables(con: duckdb.DuckDBPyConnection) -> None:
    for stem, path in _ref_files():
        opener = gzip.open if path.name.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8") as fh:
            cols = next(csv.reader(fh))
        ints = set(_INTEGER_REF_COLUMNS.get(stem, ())) | {c for c in cols if c.startswith("population")}
        select = ", ".join(f'TRY_CAST("{c}" AS INTEGER) AS "{c}"' if c in ints else f'"{c}"' for c in cols)
        # Our own RFC 4180 files (sql/ref/SOURCES.md): the dialect and the columns are given, so DuckDB's
        # sniffer (two thirds of the time of a data directory's first catalog build) does not run.
        columns = "{" + ", ".join(f"{literal(c)}: 'VARCHAR'" for c in cols) + "}"
        con.execute(
            f"CREATE OR REPLACE TABLE ref_{stem} AS SELECT {select} FROM read_csv({literal(path)}, header = true, "
            f"auto_detect = false, delim = ',', quote = '\"', escape = '\"', columns = {columns})"
        )


def _write_ref_tables(path: Path) -> None:
    con = open_duckdb(str(path))
    try:
        _ref_tables(con)
        con.execute("CHECKPOINT")
    finally:
        con.close()


def _check_ref_tables(path: Path) -> None:
    """Raises duckdb.Error unless `path` is a DuckDB file holding a ref table of every reference file."""
    con = open_duckdb(str(path), read_only=True)
    try:
        have = {r[0] for r in con.execute(render("catalog/ref_tables.sql")).fetchall()}
    finally:
        con.close()
    wanted = {f"ref_{stem}" for stem, _path in _ref_files()}
    if not wanted <= have:
        raise duckdb.InvalidInputException(f"{path}: no table {sorted(wanted - have)[0]}")


@functools.cache
def _ref_key() -> str:
    """What the ref tables derive from: the files of sql/ref (names, sizes, mtimes), this module (the code
    turning them into tables) and the DuckDB version; computed once per process."""
    return ref_cache.key_of([*REF_DIR.iterdir(), Path(__file__)], duckdb.__version__)


def _ref_template(data_dir: Path) -> Path:
    """A DuckDB file holding only the ref tables, DATA_DIR/.ref-<_ref_key>.duckdb, copied from the machine's
    cache entry (mirror.core.ref_cache) when missing; each rebuild starts from a copy of it."""
    key = _ref_key()
    path = data_dir / f".ref-{key}.duckdb"
    if not path.is_file():
        tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
        tmp.unlink(missing_ok=True)
        cached = ref_cache.entry("ref-tables", key, lambda folder: _write_ref_tables(folder / "ref.duckdb"))
        try:
            if cached is None:
                raise FileNotFoundError
            shutil.copyfile(cached / "ref.duckdb", tmp)
            _check_ref_tables(tmp)
        except (OSError, duckdb.Error):  # no cache, an entry that vanished or a damaged one
            if cached is not None:
                shutil.rmtree(cached, ignore_errors=True)
            tmp.unlink(missing_ok=True)
            _write_ref_tables(tmp)
        os.replace(tmp, path)
        for old in data_dir.glob(".ref-*.duckdb"):
            if old != path:
                old.unlink(missing_ok=True)
    return path


def views_sql(etablissements_columns) -> list[tuple[Path, str]]:
    """(path, SQL) of every sql/views/*.sql in file-name order, rendered for a base view `etablissements`
    with the columns `etablissements_columns`: the geolocation file's columns it has (GEOLOCATION_COLUMNS,
    present only when the file was loaded) are masked with the coordinates (sql/views/20_diffusibles.sql).
    Every reader of sql/views (the catalog, a restricted catalog, the other dialects) goes through here."""
    present = set(etablissements_columns)
    masks = "".join(
        ",\n    " + render("catalog/masked_geolocation_column.sql", column=ident(c))
        for c in GEOLOCATION_COLUMNS
        if c in present
    )
    rules = {
        "opted_out_unit": opted_out_person("statutDiffusionUniteLegale", "categorieJuridiqueUniteLegale"),
        "opted_out_etablissement": opted_out_person(
            "e.statutDiffusionEtablissement", "u.categorieJuridiqueUniteLegale"
        ),
    }
    files = sorted(VIEWS_SQL.glob("*.sql")) if VIEWS_SQL.is_dir() else []
    return [(p, render(f"views/{p.name}", geolocation_masks=masks, **rules)) for p in files]


def _create_views(con: duckdb.DuckDBPyConnection, views: list[tuple[Path, str]]) -> None:
    for view_file, sql in views:
        try:
            con.execute(sql)
        except duckdb.Error as exc:
            raise MirrorError(f"sql/views/{view_file.name}: {str(exc).splitlines()[0]}") from exc


UNUSED_TEMPLATE_SECONDS = 30 * 86400


class _NoPlaceholder(OSError):
    """A base view whose placeholder would not have its exact types: no template (ref_cache skips an
    entry whose writer raises OSError), the views are created in place."""


def _views_template(
    data_dir: Path, con: duckdb.DuckDBPyConnection, views: list[tuple[Path, str]]
) -> Path | None:
    """A DuckDB file holding the ref tables, a typed placeholder of every base view (the columns and types
    `con`'s base views have, no file: sql/catalog/placeholder_view.sql) and the `views` created over them:
    a machine cache entry (mirror.core.ref_cache) per base-view schema, written by the first full build that
    needs it (the template of a schema no full build used for UNUSED_TEMPLATE_SECONDS is removed).
    Binding the sql/views/*.sql views took 0.23 s of every full build (at any scale: a load, a copied
    data directory); copying this file and re-creating the base views, the way a daily rebuild re-points
    those of the previous catalog, takes a few milliseconds. None without a cache."""
    described = {
        name: [tuple(r[:2]) for r in con.execute(f"DESCRIBE {ident(name)}").fetchall()]
        for name in (*TABLES, SIRET_INDEX)
    }
    schema = hashlib.sha1(json.dumps(described).encode()).hexdigest()[:16]
    key = hashlib.sha1(
        "\0".join([duckdb.__version__, _ref_template(data_dir).name, *(sql for _p, sql in views)]).encode()
    ).hexdigest()[:16]

    def write(folder: Path) -> None:
        path = folder / "views.duckdb"
        shutil.copyfile(_ref_template(data_dir), path)
        template = open_duckdb(str(path))
        try:
            for name, columns in described.items():
                typed = ", ".join(f"CAST(NULL AS {kind}) AS {ident(column)}" for column, kind in columns)
                try:
                    template.execute(render("catalog/placeholder_view.sql", name=ident(name), columns=typed))
                    got = [tuple(r[:2]) for r in template.execute(f"DESCRIBE {ident(name)}").fetchall()]
                except duckdb.Error as exc:  # a type its name does not cast to
                    raise _NoPlaceholder(f"{name}: {first_line(exc)}") from exc
                if got != columns:
                    raise _NoPlaceholder(f"{name}: {got} != {columns}")
            _create_views(template, views)
            template.execute("CHECKPOINT")
        finally:
            template.close()

    entry = ref_cache.entry(f"catalog-views-{schema}", key, write)
    if entry is None:
        return None
    with contextlib.suppress(OSError):  # the templates of schemas no build used for a month go
        os.utime(entry)
        for other in entry.parent.glob("catalog-views-*"):
            if other != entry and time.time() - other.stat().st_mtime > UNUSED_TEMPLATE_SECONDS:
                shutil.rmtree(other, ignore_errors=True)
    return entry / "views.duckdb"


def _etablissements_columns(con: duckdb.DuckDBPyConnection) -> list[str]:
    return con.sql("SELECT * FROM etablissements LIMIT 0").columns


def view_columns(con: duckdb.DuckDBPyConnection, snapshot_dir: Path, table: str) -> list[str]:
    """Columns of a snapshot table in view order: INSEE columns (current layout), derived, unknown extras."""
    pattern = snapshot_dir / table / ("*/*.parquet" if table == "etablissements" else "*.parquet")
    hive = (
        ", hive_partitioning = true, hive_types = {'departement': 'VARCHAR'}"
        if table == "etablissements"
        else ""
    )
    try:
        present = con.sql(f"SELECT * FROM read_parquet({literal(pattern)}{hive}) LIMIT 0").columns
    except duckdb.Error as exc:
        raise MirrorError(f"snapshot folder {snapshot_dir} is unreadable: {first_line(exc)}") from exc
    known = list(base_columns(table))
    return [c for c in known if c in present] + [c for c in present if c not in known]


def _snapshot_select(con: duckdb.DuckDBPyConnection, snapshot_dir: Path, data_dir: Path, table: str) -> str:
    """The SELECT of base view `table` over the plain snapshot (template sql/catalog/<table>.sql)."""
    cols = idents(view_columns(con, snapshot_dir, table))
    return render(
        f"catalog/{table}.sql", snapshot=escape(snapshot_dir), columns=cols, data_dir=escape(data_dir)
    )


def snapshot_select(con: duckdb.DuckDBPyConnection, data_dir: Path, table: str) -> str:
    """The SELECT of base view `table` over the current snapshot alone (no delta merged)."""
    data_dir = Path(data_dir).resolve()
    snapshot_dir = snap.current_snapshot_path(data_dir)
    if snapshot_dir is None:
        raise MirrorError(f"no snapshot in {data_dir}: run `mirror load` or `mirror sync` first")
    if not snapshot_dir.is_dir():
        raise MirrorError(f"snapshot folder {snapshot_dir} is missing: run `mirror load` again")
    return _snapshot_select(con, snapshot_dir.resolve(), data_dir, table)


# Base views of a restricted catalog: filtered by unit, or by unit and établissement.
RESTRICTED_UNIT_TABLES = ("unites_legales", "unites_legales_historique")
RESTRICTED_ETABLISSEMENT_TABLES = ("etablissements", "etablissements_historique")


def restricted(
    data_dir: Path, units, sirets=None, rows_from: duckdb.DuckDBPyConnection | None = None
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB whose base tables hold only the units `units` with all their établissements,
    plus the établissements `sirets` (and their units), with every sql/views/*.sql view over them.

    units / sirets: Arrow tables with one VARCHAR column `siren` / `siret`. The documents of a few
    thousand units then cost those units only (a filter on the document views themselves is applied
    after the JSON of every row is built). The base rows are copied once (each source table scanned
    once), not filtered views: an update day's refresh queries them a dozen times (at 1 M units each
    query re-scanned the four tables). The catalog is attached read-only; every other table and view
    (reference tables, the siret index) is read through it: the search path resolves a name this database
    does not define in the attached catalog (a view per name, bound one by one, cost 0.35 s a catalog).
    rows_from: a restricted catalog whose base tables hold a superset of these rows (its units include
    `units` and the units of `sirets`), copied from instead of scanning the catalog's tables again."""
    import pyarrow as pa

    con = open_duckdb()
    try:
        con.execute(f"ATTACH {literal(catalog_path(Path(data_dir)))} AS catalog_source (READ_ONLY)")
        (here,) = con.execute("SELECT current_database()").fetchone()
        con.execute(f"SET search_path = {literal(f'{here}.main,catalog_source.main')}")
        if sirets is None:
            sirets = pa.table({"siret": pa.array([], pa.string())})
        for name, table in (("restricted_units", units), ("restricted_sirets", sirets)):
            con.register(f"{name}_arrow", table)
            con.execute(f"CREATE TEMP TABLE {name} AS SELECT DISTINCT * FROM {name}_arrow")
            con.unregister(f"{name}_arrow")
        for names, sql in (
            (RESTRICTED_UNIT_TABLES, "catalog/restricted_view.sql"),
            (RESTRICTED_ETABLISSEMENT_TABLES, "catalog/restricted_etablissements_view.sql"),
        ):
            for name in names:
                source = f"catalog_source.main.{ident(name)}"
                if rows_from is not None:
                    con.register(f"{name}_superset", rows_from.table(name).to_arrow_table())
                    source = ident(f"{name}_superset")
                con.execute(render(sql, name=ident(name), source=source))
                if rows_from is not None:
                    con.unregister(f"{name}_superset")
        _create_views(con, views_sql(_etablissements_columns(con)))
    except BaseException:
        con.close()
        raise
    return con


def base_view_select(
    con: duckdb.DuckDBPyConnection, snapshot_dir: Path, data_dir: Path, table: str, merged: Path | None
) -> str:
    """The SELECT of base view `table` over the snapshot folder `snapshot_dir` (absolute) merged with the
    delta version `merged` (None: none): what a catalog over them defines (mirror.load.stock_changes
    compares the one a new snapshot will have with the current catalog's)."""
    select = _snapshot_select(con, snapshot_dir, data_dir, table)
    # Daily deltas (mirror.deltas.store): when delta days newer than the snapshot exist, `merged` is their
    # merged version and the view becomes "snapshot rows not in it + its rows" (SQL in sql/deltas/).
    return deltas.merged_view_sql(table, select, merged)


def _base_views(
    con: duckdb.DuckDBPyConnection, snapshot_dir: Path, data_dir: Path, merged: Path | None = None
) -> None:
    for table in TABLES:
        select = base_view_select(con, snapshot_dir, data_dir, table, merged)
        con.execute(render("catalog/create_view.sql", name=ident(table), select=select))
    _siret_index_view(con, snapshot_dir, data_dir, merged)


def _siret_index_view(
    con: duckdb.DuckDBPyConnection, snapshot_dir: Path, data_dir: Path, merged: Path | None = None
) -> None:
    index_dir = snapshot_dir / SIRET_INDEX
    if index_dir.is_dir():
        index = f"SELECT siret, departement FROM read_parquet({literal(index_dir / '*.parquet')})"
    else:
        index = "SELECT siret, departement FROM etablissements"
    extra = ""
    if merged is not None:
        files = [
            f"{literal(merged / name)}"
            for name in ("etablissements.parquet", "etablissements.recent.parquet")
        ]
        extra = f"UNION ALL SELECT siret, departement FROM read_parquet([{', '.join(files)}])"
    sql = render(f"catalog/{SIRET_INDEX}.sql", index=index, deltas=extra)
    con.execute(sql)


def _fingerprint(snapshot_dir: Path, data_dir: Path) -> str:
    """What a catalog's content depends on besides the merged delta version: the snapshot and data paths,
    every SQL file, the reference tables (their template's name) and the DuckDB version."""
    h = hashlib.sha1(f"{snapshot_dir}\0{data_dir}\0{duckdb.__version__}\0".encode())
    h.update(_ref_template(data_dir).name.encode())
    for path in sorted(SQL_DIR.rglob("*.sql")):
        h.update(f"\0{path.relative_to(SQL_DIR)}\0".encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def fingerprint(data_dir: Path, snapshot_dir: Path) -> str:
    """The fingerprint a catalog built over `snapshot_dir` records (for a publication to check the switch)."""
    return _fingerprint(Path(snapshot_dir).resolve(), Path(data_dir).resolve())


def built_from(path: Path) -> dict | None:
    """What the catalog `path` records in its BUILD_TABLE: {"fingerprint", "merged"} (`merged`: the folder
    name of the merged delta version its base views read, None for the plain snapshot); None when the
    file is absent or unreadable. A catalog held open for writing by another process is read through a
    private copy (see _open_read_only)."""
    if not path.is_file():
        return None
    try:
        con = _open_read_only(path)
    except MirrorError:
        return None
    try:
        row = con.execute(render("catalog/build_record_read.sql")).fetchone()
    except duckdb.Error:
        return None
    finally:
        con.close()
    return {"fingerprint": row[0], "merged": row[1], "snapshot": row[2]} if row else None


def _open_with_base_views(
    path: Path, snapshot_dir: Path, data_dir: Path, merged: Path | None
) -> duckdb.DuckDBPyConnection:
    con = open_duckdb(str(path))
    try:
        _base_views(con, snapshot_dir, data_dir, merged)
    except BaseException:
        con.close()
        raise
    return con


def _full_build(
    tmp: Path, data_dir: Path, snapshot_dir: Path, merged: Path | None, template_allowed: bool = True
) -> duckdb.DuckDBPyConnection:
    """`tmp` written with the ref tables, the base views and every sql/views view, and opened: from the
    views template of these base views' schema (_views_template) when the machine has one, else built here.
    A template that cannot be opened or re-pointed (a damaged cache entry) is removed and the views built
    here."""
    shutil.copyfile(_ref_template(data_dir), tmp)
    con = _open_with_base_views(tmp, snapshot_dir, data_dir.resolve(), merged)
    try:
        views = views_sql(_etablissements_columns(con))
        template = _views_template(data_dir, con, views) if template_allowed else None
        if template is None:
            _create_views(con, views)
            return con
    except BaseException:
        con.close()
        raise
    con.close()
    Path(f"{tmp}.wal").unlink(missing_ok=True)
    try:
        shutil.copyfile(template, tmp)
        return _open_with_base_views(tmp, snapshot_dir, data_dir.resolve(), merged)
    except (OSError, duckdb.Error):
        shutil.rmtree(template.parent, ignore_errors=True)
        Path(f"{tmp}.wal").unlink(missing_ok=True)
        return _full_build(tmp, data_dir, snapshot_dir, merged, template_allowed=False)


def rebuild(
    data_dir: Path, merged: Path | None, snapshot_dir: Path | None = None, reuse: bool = False
) -> Path:
    """Re-creates DATA_DIR/sirene.duckdb for the current snapshot (state.json) or `snapshot_dir`, with the
    merged version `merged` of the delta days (mirror.deltas.store.compact_for; None: no delta).

    With `reuse` (a daily update: only the merged delta version changed), when the current catalog was
    built from the same snapshot and SQL (its BUILD_TABLE fingerprint), it is copied and only its base
    views are re-created: the dependent views name them and are bound at query time. Otherwise a full
    build (_full_build: from the machine's views template when it has one). Either way the new file
    replaces the old one atomically.

    The caller should hold the writer lock (mirror.core.datadir.writer_lock); this function does not take it.
    """
    data_dir = Path(data_dir)
    if snapshot_dir is None:
        snapshot_dir = snap.current_snapshot_path(data_dir)
        if snapshot_dir is None:
            raise MirrorError(f"no snapshot in {data_dir}: run `mirror load` or `mirror sync` first")
    if not snapshot_dir.is_dir():
        raise MirrorError(f"snapshot folder {snapshot_dir} is missing: run `mirror load` again")
    target = catalog_path(data_dir)
    fingerprint = _fingerprint(snapshot_dir.resolve(), data_dir.resolve())
    built = built_from(target) if reuse else None
    reused = (built or {}).get("fingerprint") == fingerprint
    tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    for p in (tmp, Path(f"{tmp}.wal")):
        p.unlink(missing_ok=True)
    try:
        snapshot_dir, merged = snapshot_dir.resolve(), merged and merged.resolve()
        if reused:  # the previous catalog's views; its base views re-pointed
            shutil.copyfile(target, tmp)
            con = _open_with_base_views(tmp, snapshot_dir, data_dir.resolve(), merged)
        else:
            con = _full_build(tmp, data_dir, snapshot_dir, merged)
        try:
            con.execute(
                render("catalog/build_record_write.sql"),
                [fingerprint, merged.name if merged else None, str(snapshot_dir)],
            )
            # The same state for any Parquet reader (DATA_DIR/current.json), switched right after the catalog.
            state = current.prepare(
                con, data_dir, snapshot_dir, merged, _ref_template(data_dir).stem.removeprefix(".ref-")
            )
            con.execute("CHECKPOINT")
        finally:
            con.close()
        os.replace(tmp, target)
        current.publish(data_dir, state)
    finally:
        for p in (tmp, Path(f"{tmp}.wal")):
            with contextlib.suppress(OSError):
                p.unlink()
    return target


# ------------------------------------------------------------------------------------------------
# Publication repair (mirror.load.publish writes state.json.pending before the catalog switch)
# ------------------------------------------------------------------------------------------------


def finish_publication(data_dir: Path) -> str | None:
    """Finishes or discards a publication interrupted between the catalog switch and state.json.

    state.json.pending holds the state the publication was switching to, with the fingerprint and merged
    version its catalog records. When the catalog's build record (catalog.built_from) matches them, the
    switch happened: readers already see that snapshot, so state.json is written from it. Otherwise the
    catalog still reads the old snapshot: the pending state is dropped (its folder is an unused snapshot,
    removed by retention). Returns a note for the user, None when there was nothing to do. Call it under
    the writer lock."""
    path = Path(data_dir) / snap.PENDING_NAME
    try:
        pending = json.loads(path.read_text(encoding="utf-8"))
        state, expected = pending["state"], (pending["fingerprint"], pending["merged"])
        month = state["snapshot"]["month"]
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError, KeyError):
        path.unlink(missing_ok=True)
        return "discarded an unreadable state.json.pending"
    built = built_from(catalog_path(data_dir)) or {}
    if (built.get("fingerprint"), built.get("merged")) == expected:
        snap.write_state(data_dir, state)
        path.unlink(missing_ok=True)
        return f"finished the interrupted publication of the {month} snapshot"
    path.unlink(missing_ok=True)
    return f"discarded the interrupted publication of the {month} snapshot (the catalog never switched)"


def prepare_writer(data_dir: Path) -> list[str]:
    """What every writer (load, update, sync, catalog) runs first, under the writer lock: removes an
    interrupted writer's leftovers (datadir.clean_leftovers: build folders, catalog and state temp files
    with their .wal, current.json temp files) and finishes or discards an interrupted publication
    (finish_publication), so the state and the catalog agree before anything else is done; then publishes
    current.json again when it does not describe the catalog (a crash between the two switches, or a
    catalog older than current.json). Returns notes for the user."""
    data_dir = Path(data_dir)
    notes = [f"removed leftover {name}" for name in snap.clean_leftovers(data_dir)]
    with contextlib.suppress(FileNotFoundError):
        if note := finish_publication(data_dir):
            notes.append(note)
    built = built_from(catalog_path(data_dir))
    if current.stale(data_dir, built):
        merged = deltas.merged_root(data_dir) / built["merged"] if built["merged"] else None
        snapshot_dir = Path(built["snapshot"])
        # A catalog built for another folder (a copied or moved DATA_DIR) is not this repair's: its
        # writers rebuild it for this one (see connect's "was built for" check).
        own = snapshot_dir.resolve().is_relative_to(data_dir.resolve())
        if own and snapshot_dir.is_dir() and (merged is None or merged.is_dir()):
            rebuild(data_dir, merged, snapshot_dir=snapshot_dir, reuse=True)
            notes.append(f"published {current.CURRENT_NAME} again: it did not describe the catalog")
    return notes
