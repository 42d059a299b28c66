"""The comparison of a new monthly snapshot with the state it replaces: what `mirror changes` and the
watchlists report with source "stock".

Computed once, at publication, into the build folder (`stock_changes.parquet`, mirror.core.changes), so
the file is published by the same rename as the snapshot and is never half-written nor visible without it;
a crash before the rename leaves a build folder the next writer removes, and a re-run computes it again.
Why at load time and not at query time: the state it compares with (the previous snapshot *with the delta
days applied over it*) exists only until this publication (the days it contains are pruned by the next
update, and the previous snapshot goes after `--keep` months); the writer already holds both sides, and
the result is small (the changes the days did not report), so a query or a watchlist after a sync reads a
few rows instead of joining two whole snapshots.

Old side: the current catalog's base views (attached read-only: exactly what readers saw). New side: the
base views a catalog over the new snapshot will define (its files plus the merged delta days at or after
its coverage). Units and établissements are compared variable by variable (sql/changes/stock.sql), the
doublons file pair by pair (sql/changes/stock_doublons.sql), the liens de succession link by link
(sql/changes/stock_successions.sql). No previous snapshot: nothing to compare, no
file.
"""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

from mirror.catalog import build as catalog
from mirror.core.changes import STOCK_CHANGES_FILE, TABLES, compared_columns, historised_columns, rows_sql
from mirror.core.config import catalog_path, tuned_connection
from mirror.core.datadir import current_snapshot
from mirror.core.schema import LAST_PROCESSED
from mirror.core.sql import ident, literal, render


def _struct(column: str, historised: bool) -> str:
    c = ident(column)
    return (
        f"{{'field': {literal(column)}, 'old': CAST(b.{c} AS VARCHAR), 'new': CAST(a.{c} AS VARCHAR), "
        f"'historised': {'true' if historised else 'false'}, 'masked': CAST(a.{c} AS VARCHAR) = '[ND]'}}"
    )


def write_stock_changes(data_dir: Path, build_dir: Path, merged: Path | None, day: date) -> int | None:
    """Writes `build_dir/stock_changes.parquet`: the changes (mirror.core.changes.COLUMNS, source "stock",
    `day` = the new snapshot's coverage) between the current catalog and the snapshot being built in
    `build_dir` over the merged delta version `merged`. Returns the number of rows, None when there is no
    current snapshot to compare with. Call it under the writer lock, before the build folder is renamed."""
    data_dir = Path(data_dir).resolve()
    build_dir = Path(build_dir).resolve()
    catalog_file = catalog_path(data_dir)
    if current_snapshot(data_dir) is None or not catalog_file.is_file():
        return None
    con = tuned_connection(build_dir / ".tmp-changes")
    try:
        con.execute(f"ATTACH {literal(catalog_file)} AS stock_before (READ_ONLY)")
        parts, args = [], []
        for table, (key, level, created, historique) in TABLES.items():
            old = f"stock_before.main.{ident(table)}"
            new = f"({catalog.base_view_select(con, build_dir, data_dir, table, merged)})"
            present = set(con.sql(f"SELECT * FROM {old} LIMIT 0").columns) & set(
                con.sql(f"SELECT * FROM {new} LIMIT 0").columns
            )
            # a variable one side's layout lacks is not compared (else every row would differ)
            columns = [c for c in compared_columns(table) if c in present]
            historised = set(historised_columns(historique))
            parts.append(
                render(
                    "changes/stock.sql",
                    old=old,
                    new=new,
                    key=ident(key),
                    processed=ident(LAST_PROCESSED[table]),
                    created=ident(created),
                    hashed=", ".join(f"CAST({ident(c)} AS VARCHAR)" for c in columns),
                    unpivot=", ".join(_struct(c, c in historised) for c in columns),
                    rows=rows_sql(level, columns[0], "stock"),
                )
            )
            args.append(day)
        parts.append(
            render(
                "changes/stock_doublons.sql",
                old="stock_before.main.doublons",
                new=f"({catalog.base_view_select(con, build_dir, data_dir, 'doublons', None)})",
            )
        )
        args.append(day)
        parts.append(
            render(
                "changes/stock_successions.sql",
                old="stock_before.main.liens_succession",
                new=f"({catalog.base_view_select(con, build_dir, data_dir, 'liens_succession', merged)})",
            )
        )
        args.append(day)
        query = " UNION ALL ".join(f"({p})" for p in parts)
        target = build_dir / STOCK_CHANGES_FILE
        con.execute(
            f"COPY (SELECT * FROM ({query}) ORDER BY identifier, level DESC, field NULLS FIRST) "
            f"TO {literal(target)} (FORMAT parquet, COMPRESSION zstd)",
            args,
        )
        (rows,) = con.execute(f"SELECT count(*) FROM read_parquet({literal(target)})").fetchone()
        return int(rows)
    finally:
        con.close()
        shutil.rmtree(build_dir / ".tmp-changes", ignore_errors=True)
