"""`mirror status`: what the mirror holds and whether it is fresh.

Staleness rules (warnings, never errors):
- the snapshot is stale when today is more than 35 days after the 1st of its stock month (the next
  monthly stock is published on the 1st, so a snapshot older than that missed a month);
- the daily updates are stale when deltas were applied at least once and the last applied day is
  more than 3 days old (a mirror that never ran `mirror update` only gets the snapshot rule).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

from mirror.catalog.build import TABLES, connect
from mirror.core import datadir as snap
from mirror.core.config import catalog_path, lookup_store_enabled
from mirror.core.errors import IntegrityError, MirrorError
from mirror.core.schema import LAST_PROCESSED
from mirror.deltas.store import merged_root
from mirror.lookup.store import describe as describe_store

STALE_SNAPSHOT_DAYS = 35
STALE_DELTA_DAYS = 3


def _last_delta_day(state: dict) -> str | None:
    """The last applied delta day, whatever shape the updates helper gave state["deltas"]."""
    for key in ("last_delta_day", "last_day"):
        if state.get(key):
            return str(state[key])[:10]
    deltas = state.get("deltas")
    if isinstance(deltas, dict) and deltas:
        return str(max(deltas))[:10]
    if isinstance(deltas, list) and deltas:
        days = [d if isinstance(d, str) else (d.get("day") or d.get("date")) for d in deltas]
        days = [d for d in days if d]
        return str(max(days))[:10] if days else None
    return None


def _bad_field(path: Path, field: str, expected: str, value) -> IntegrityError:
    shown = repr(value)
    shown = shown if len(shown) <= 40 else shown[:37] + "..."
    return IntegrityError(f"{path}: field {field!r} should be {expected}, found {shown}")


def _is_timestamp(value) -> bool:
    try:
        datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return False
    return isinstance(value, str)


def checked_state(data_dir: Path) -> dict:
    """state.json with the fields `status` reads checked for their type, so a hand-edited or damaged file
    is reported in one line naming the field instead of failing deep inside the formatting."""
    path = Path(data_dir) / snap.STATE_NAME
    state = snap.read_state(Path(data_dir))
    if not isinstance(state, dict):
        raise IntegrityError(f"{path}: expected a JSON object, found a {type(state).__name__}")
    current = state.get("snapshot")
    if current is not None:
        if not isinstance(current, dict):
            raise _bad_field(path, "snapshot", "an object with month and dir", current)
        month = current.get("month")
        if not (isinstance(month, str) and snap.MONTH_RE.match(month)):
            raise _bad_field(path, "snapshot.month", "a month YYYY-MM", month)
        if not isinstance(current.get("dir"), str) or not current["dir"]:
            raise _bad_field(path, "snapshot.dir", "a folder name", current.get("dir"))
        if current.get("rows") is not None and not isinstance(current["rows"], dict):
            raise _bad_field(path, "snapshot.rows", "an object", current["rows"])
    for field in ("delta_watermark", "watermark"):
        if state.get(field) is not None and not _is_timestamp(state[field]):
            raise _bad_field(path, field, "a timestamp YYYY-MM-DDTHH:MM:SS", state[field])
    for field in ("last_delta_day", "last_day"):
        value = state.get(field)
        if value is not None and not (isinstance(value, str) and _is_day(value)):
            raise _bad_field(path, field, "a day YYYY-MM-DD", value)
    deltas = state.get("deltas")
    if deltas is not None:
        if not isinstance(deltas, list | dict):
            raise _bad_field(path, "deltas", "a list of days", deltas)
        days = (
            deltas
            if isinstance(deltas, dict)
            else [d.get("day") if isinstance(d, dict) else d for d in deltas]
        )
        bad = [d for d in days if not (isinstance(d, str) and _is_day(d))]
        if bad:
            raise _bad_field(path, "deltas", "a list of days YYYY-MM-DD", bad[0])
    return state


def _is_day(value: str) -> bool:
    try:
        date.fromisoformat(value[:10])
    except ValueError:
        return False
    return True


def status(data_dir: Path, today: date | None = None) -> dict:
    """Snapshot month, rows per table (as the views see them), last update, freshness, disk use, warnings."""
    data_dir = Path(data_dir)
    state = checked_state(data_dir)
    current = state.get("snapshot")
    if not current or not catalog_path(data_dir).is_file():
        raise MirrorError(f"no mirror in {data_dir}: run `mirror load` or `mirror sync` first")
    today = today or datetime.now(UTC).date()
    con = connect(data_dir, read_only=True)
    try:
        rows = {t: con.sql(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
        freshness = {}
        for table in ("unites_legales", "etablissements"):
            col = LAST_PROCESSED[table]
            value = con.sql(
                f"SELECT max({col}) FROM {table} WHERE {col} <= now()::TIMESTAMP + INTERVAL 2 DAY"
            ).fetchone()[0]
            freshness[table] = value.isoformat(sep="T") if value else None
    finally:
        con.close()
    month = current["month"]
    warnings = []
    age = (today - date(int(month[:4]), int(month[5:7]), 1)).days
    if age > STALE_SNAPSHOT_DAYS:
        warnings.append(
            f"stale: snapshot {month} is {age} days past its month start (> {STALE_SNAPSHOT_DAYS}); "
            "load a newer monthly stock (`mirror sync`)"
        )
    last_delta = _last_delta_day(state)
    if last_delta:
        delta_age = (today - date.fromisoformat(last_delta)).days
        if delta_age > STALE_DELTA_DAYS:
            warnings.append(
                f"stale: last daily update applied is {last_delta} ({delta_age} days ago); run `mirror update`"
            )
    disk = {
        "snapshots": snap.dir_size(snap.snapshots_dir(data_dir)),
        "deltas": snap.dir_size(data_dir / "deltas") + snap.dir_size(merged_root(data_dir)),
        "catalog": snap.dir_size(catalog_path(data_dir)),
        "downloads": snap.dir_size(data_dir / "downloads"),
    }
    stale = bool(warnings)  # the data is old; a lagging lookup store is a warning, not staleness
    lookup = describe_store(data_dir)
    disk["lookup_store"] = snap.dir_size(Path(lookup["path"])) if lookup["exists"] else 0
    if lookup_store_enabled() and lookup["lagging"]:
        warnings.append(
            "the lookup store is being brought up to the new state by the writer at work: lookups and search "
            "answer the previous state until it commits"
        )
    elif lookup_store_enabled() and not lookup["current"] and lookup["building_pid"] is not None:
        warnings.append(
            f"the lookup store is being built by pid {lookup['building_pid']} (a background build logs to "
            f"{Path(data_dir) / 'lookup-build.log'}): lookups answer from the SQL views (same answers, "
            "slower) until it is switched in"
        )
    elif lookup_store_enabled() and not lookup["current"]:
        what = "is not current" if lookup["exists"] else "is missing"
        warnings.append(
            f"the lookup store {what}: lookups answer from the SQL views (same answers, slower) and search "
            "is not available or not current; run `mirror store`"
        )
    if lookup_store_enabled() and lookup["current"] and not lookup["wal"]:
        warnings.append(
            "the lookup store was built before WAL mode: every update locks its readers out while it commits "
            "(about 100 ms at 100,000 units); `mirror store --rebuild` (or the next monthly load) switches it"
        )
    disk["total"] = snap.dir_size(data_dir)
    return {
        "data_dir": str(data_dir),
        "catalog": str(catalog_path(data_dir)),
        "snapshot": {k: current.get(k) for k in ("month", "dir", "loaded_at", "max_date_dernier_traitement")},
        "snapshot_rows": current.get("rows"),
        "rows": rows,
        "freshness": freshness,
        "last_update": last_delta,
        "watermark": state.get("delta_watermark") or state.get("watermark"),
        "lookup_store": lookup,
        "disk_bytes": disk,
        "warnings": warnings,
        "stale": stale,
    }


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def format_status(s: dict) -> str:
    """Human-readable status."""
    snapshot = s["snapshot"]
    lines = [
        f"mirror:    {s['data_dir']}",
        f"snapshot:  {snapshot['month']} (folder {snapshot['dir']}, loaded {snapshot['loaded_at']})",
        f"updates:   last day applied {s['last_update'] or 'none'}"
        + (f", watermark {s['watermark']}" if s.get("watermark") else ""),
        "freshness: latest dateDernierTraitement "
        + ", ".join(f"{t} {v or '-'}" for t, v in s["freshness"].items()),
        "rows:",
    ]
    lines += [f"  {t:<28}{n:>14,}" for t, n in s["rows"].items()]
    d = s["disk_bytes"]
    lines.append(
        f"disk:      {_size(d['total'])} (snapshots {_size(d['snapshots'])}, deltas {_size(d['deltas'])}, "
        f"catalog {_size(d['catalog'])}, lookup store {_size(d['lookup_store'])}, "
        f"downloads {_size(d['downloads'])})"
    )
    store = s["lookup_store"]
    lines.append(
        "lookup:    "
        + (
            f"store {'current' if store['current'] else 'catching up' if store['lagging'] else 'NOT current'}, built {store['built_at']} "
            f"in {store['build_seconds']} s"
            if store["exists"]
            else "no store"
        )
    )
    lines += [f"WARNING: {w}" for w in s["warnings"]]
    return "\n".join(lines)
