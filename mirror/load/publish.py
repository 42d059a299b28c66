"""Publication and retention of monthly snapshots: the one step that makes a complete build current.

A snapshot folder is complete before anything points at it; the intended state is written to
state.json.pending; the catalog switch (one os.replace) is what readers see; state.json follows and the
pending file goes. A crash between the two switches is finished by the next writer (`prepare_writer`):
the pending state is made current when the catalog's build record shows the switch happened, else
discarded (in mirror.catalog.build, below every writer: update cannot import this module). Superseded snapshots are deleted only after the grace period (readers of the old catalog).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import duckdb

from mirror.catalog import build as catalog
from mirror.catalog.build import finish_publication, prepare_writer  # noqa: F401  (re-exported: load, sync)
from mirror.core.changes import STOCK_CHANGES_FILE
from mirror.core.datadir import (
    BUILDING_PREFIX,
    PENDING_NAME,
    SNAPSHOT_DIR_RE,
    current_snapshot,
    fsync_dir,
    grace_elapsed,
    mark_superseded,
    read_state,
    snapshots_dir,
    utc_now,
    write_json_atomic,
    write_state,
)
from mirror.core.errors import MirrorError, first_line
from mirror.core.faults import crash_point
from mirror.deltas import store as deltas
from mirror.load.stock_changes import write_stock_changes
from mirror.lookup.store import GRACE_FIELD, grace_entry

DEFAULT_KEEP = 2


def new_build_dir(data_dir: Path, month: str | None) -> Path:
    path = snapshots_dir(data_dir) / f"{BUILDING_PREFIX}{month or 'auto'}-{os.getpid()}"
    try:
        path.mkdir(parents=True)
    except OSError as exc:
        raise MirrorError(f"cannot write into {path.parent}: {exc.strerror or exc}") from exc
    return path


def published_dirs(data_dir: Path) -> list[tuple[str, int, Path]]:
    """Published snapshot folders as (month, generation, path), oldest first."""
    snaps = snapshots_dir(data_dir)
    out = []
    if snaps.is_dir():
        for p in snaps.iterdir():
            m = SNAPSHOT_DIR_RE.match(p.name)
            if m and p.is_dir():
                out.append((m.group(1), int(m.group(2) or 1), p))
    return sorted(out, key=lambda t: (t[0], t[1]))


def free_snapshot_name(data_dir: Path, month: str) -> str:
    """`<month>` if free, else `<month>.<n>` (a reload of a month whose folder is still in use)."""
    taken = {p.name for _, _, p in published_dirs(data_dir)}
    if month not in taken:
        return month
    n = 2
    while f"{month}.{n}" in taken:
        n += 1
    return f"{month}.{n}"


def publish(
    data_dir: Path, build_dir: Path, month: str, snapshot_info: dict, keep: int = DEFAULT_KEEP
) -> dict:
    """Makes a complete, validated build the current snapshot, atomically for readers.

    Order: rename the build folder to snapshots/<name> (complete before anything points at it);
    rebuild the catalog into a temp file and os.replace it (the switch readers see); write
    state.json atomically; only then delete snapshots beyond `keep` months (and the old copy of a
    reloaded month). A crash at any point leaves the previous snapshot queryable; a re-run finishes.
    """
    name = free_snapshot_name(data_dir, month)
    target = snapshots_dir(data_dir) / name
    # the delta days the new catalog will merge (by the folder's name: it needs no folder yet)
    merged = deltas.compact_for(data_dir, target)
    # what the new snapshot changes for readers that the days did not report, inside the build folder:
    # published by the rename below, with it (mirror.load.stock_changes). A comparison that cannot be made
    # (a previous state damaged on disk) never stops a new stock: the load says so.
    warnings = []
    try:
        stock_changes = write_stock_changes(
            data_dir, build_dir, merged, deltas.snapshot_coverage(build_dir, month).date()
        )
    except (duckdb.Error, MirrorError, OSError) as exc:
        stock_changes = None
        (build_dir / STOCK_CHANGES_FILE).unlink(missing_ok=True)
        first = first_line(exc)
        warnings.append(
            f"not compared with the previous state (`mirror changes` lists no stock change): {first}"
        )
    crash_point("before-rename")
    os.rename(build_dir, target)
    fsync_dir(snapshots_dir(data_dir))
    crash_point("after-rename")
    state = read_state(data_dir)
    # the store keeps answering the state this snapshot replaces until its rebuild is switched in
    grace = grace_entry(data_dir, state)
    previous = state.get("snapshot")
    snapshot = dict(snapshot_info, month=month, dir=name, loaded_at=utc_now())
    if stock_changes is not None:
        snapshot["stock_changes"] = stock_changes
    state["snapshot"] = snapshot
    state[GRACE_FIELD] = grace
    if previous and previous.get("dir") != name:
        history = [h for h in state.get("previous_snapshots", []) if h.get("dir") != previous.get("dir")]
        history.insert(0, {k: previous.get(k) for k in ("month", "dir", "loaded_at", "rows")})
        state["previous_snapshots"] = history[:10]
    pending = {
        "state": state,
        "fingerprint": catalog.fingerprint(data_dir, target),
        "merged": merged.name if merged else None,
    }
    write_json_atomic(data_dir / PENDING_NAME, pending)
    crash_point("after-pending")
    catalog.rebuild(data_dir, merged, snapshot_dir=target)
    crash_point("after-catalog")
    write_state(data_dir, state)
    crash_point("after-state")
    (data_dir / PENDING_NAME).unlink(missing_ok=True)
    crash_point("after-pending-removed")
    removed = apply_retention(data_dir, keep)
    return {"snapshot": snapshot, "removed": removed, "warnings": warnings}


def apply_retention(data_dir: Path, keep: int = DEFAULT_KEEP) -> list[str]:
    """Keeps the current snapshot plus the newest copy of the (keep - 1) most recent other months, and
    every superseded folder for the grace period (datadir.grace_elapsed), whatever `keep` says.

    A folder is marked superseded the first time it is seen not current (right after the publication
    that replaced it), so a reader that opened the catalog before the switch keeps its files for the
    grace period, including on a same-month reload. Older copies of the current month and months beyond
    `keep` are deleted once their grace is over. Call it only while holding the writer lock, after the
    catalog and state.json point at the current one."""
    keep = max(1, keep)
    current = current_snapshot(data_dir)
    if not current:
        return []
    newest_per_month: dict[str, Path] = {}
    for month, _gen, path in published_dirs(data_dir):  # ascending: the last copy of a month wins
        newest_per_month[month] = path
    others = sorted((m for m in newest_per_month if m != current["month"]), reverse=True)[: keep - 1]
    kept = {current["dir"]} | {newest_per_month[m].name for m in others}
    removed = []
    for _month, _gen, path in published_dirs(data_dir):
        if path.name == current["dir"]:
            continue
        mark_superseded(path)
        if path.name not in kept and grace_elapsed(path):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path.name)
    return removed
