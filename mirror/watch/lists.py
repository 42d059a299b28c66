"""Watchlists: named lists of SIRENs / SIRETs whose changes are collected after every `mirror sync`.

Layout:

    DATA_DIR/watchlists/<name>.json     {name, ids, webhook, since, done_through, delivered}
    DATA_DIR/alerts/<name>/<day>.jsonl  the changes (mirror.serve.changes rows) of that day for the list
    DATA_DIR/alerts/<name>/stock-<snapshot>.jsonl  the changes a monthly stock brought that the days did not
                                        report (mirror.load.stock_changes), after the sync that loaded it

After a sync (`collect`), each list gets one alerts file per applied day after its `done_through`, written
atomically (temp + rename) and *then* recorded in the list's JSON (atomically too): a crash between the two
rewrites the same file with the same rows at the next sync, so a day is never lost nor listed twice; the same
for each snapshot loaded after the list's `stock_through` (the load time of the last one it reported). A list
with a webhook then POSTs each alerts file not yet `delivered` (JSON body {watchlist, day, changes}), with
an `Idempotency-Key: <name>/<day>` header, retrying with backoff; a failure never fails the sync and the
file is posted again at the next one. A receiver that keeps the keys it saw gets each day exactly once (a
crash after its 2xx and before we record it resends the same key: HTTP alone cannot do better).
"""

from __future__ import annotations

import csv
import json
import os
import re
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from mirror.core.datadir import read_state, write_json_atomic
from mirror.core.errors import BadInput, MirrorError
from mirror.core.faults import crash_point
from mirror.core.identifiers import is_valid_siren, is_valid_siret

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
WEBHOOK_TRIES = 3
WEBHOOK_BACKOFF_S = 1.0
WEBHOOK_TIMEOUT_S = 10.0


def lists_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "watchlists"


def alerts_dir(data_dir: Path, name: str) -> Path:
    return Path(data_dir) / "alerts" / name


def _path(data_dir: Path, name: str) -> Path:
    if not NAME_RE.match(name):
        raise BadInput(f"{name!r} is not a watchlist name (letters, digits, '_', '-', '.'; at most 64)")
    return lists_dir(data_dir) / f"{name}.json"


def read_ids(path: Path, column: str | None = None) -> list[str]:
    """The identifiers of a file: one per line, or the column `column` of a CSV (`,` or `;`). Spaces inside
    an identifier are dropped; empty lines skipped; the first invalid one is reported with its line."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"cannot read {path}: {exc}") from None
    if column is not None:
        dialect = ";" if text.split("\n", 1)[0].count(";") > text.split("\n", 1)[0].count(",") else ","
        reader = csv.DictReader(text.splitlines(), delimiter=dialect)
        if column not in (reader.fieldnames or []):
            raise BadInput(f"{path}: no column {column!r} (columns: {', '.join(reader.fieldnames or [])})")
        values = [(n + 2, (row[column] or "")) for n, row in enumerate(reader)]
    else:
        values = list(enumerate(text.splitlines(), start=1))
    ids = []
    for line, raw in values:
        value = raw.strip().replace(" ", "")
        if not value:
            continue
        if not (is_valid_siren(value) or is_valid_siret(value)):
            hint = " (a CSV? pass --column NAME)" if column is None and line == 1 else ""
            raise BadInput(f"{path}:{line}: {raw.strip()!r} is not a valid SIREN or SIRET{hint}")
        ids.append(value)
    if not ids:
        raise BadInput(f"{path}: no SIREN or SIRET")
    return sorted(set(ids))


def _last_day(data_dir: Path) -> str | None:
    days = read_state(Path(data_dir)).get("deltas") or []
    return max(days) if days else None


def _loaded_at(data_dir: Path) -> str | None:
    """When the current snapshot was loaded: a list reports the comparisons of the snapshots loaded later."""
    return (read_state(Path(data_dir)).get("snapshot") or {}).get("loaded_at")


def add(data_dir: Path, name: str, ids: list[str], webhook: str | None = None) -> dict:
    """Creates (or replaces the identifiers and webhook of) a watchlist; it reports the days applied from
    now on (a new list starts after the last applied day)."""
    path = _path(data_dir, name)
    if webhook is not None and not re.match(r"^https?://[^\s/]+", webhook):
        raise BadInput(f"--webhook {webhook!r} is not an http(s) URL")
    existing = _load(path) if path.is_file() else None
    entry = {
        "name": name,
        "ids": ids,
        "webhook": webhook,
        "since": existing["since"] if existing else _last_day(data_dir),
        "done_through": existing["done_through"] if existing else _last_day(data_dir),
        "delivered": existing["delivered"] if existing else [],
        "stock_through": existing.get("stock_through") if existing else _loaded_at(data_dir),
    }
    lists_dir(data_dir).mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, entry)
    return entry


def _load(path: Path) -> dict:
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise MirrorError(f"cannot read watchlist {path}: {exc}") from None
    return entry


def get(data_dir: Path, name: str) -> dict:
    path = _path(data_dir, name)
    if not path.is_file():
        raise BadInput(f"no watchlist {name!r} (see `mirror watch list`)")
    return _load(path)


def all_lists(data_dir: Path) -> list[dict]:
    folder = lists_dir(data_dir)
    return [_load(p) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []


def remove(data_dir: Path, name: str) -> None:
    """Removes a watchlist; its alerts files stay (they are the user's record)."""
    path = _path(data_dir, name)
    if not path.is_file():
        raise BadInput(f"no watchlist {name!r} (see `mirror watch list`)")
    path.unlink()


def _write_day(folder: Path, day: str, rows: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{day}.jsonl"
    tmp = folder / f".{day}.jsonl.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, target)
    return target


STOCK_PREFIX = "stock-"  # alerts/NAME/stock-<snapshot folder>.jsonl: the changes a monthly stock brought


def _new_snapshots(data_dir: Path, after: str | None) -> list[tuple[str, str]]:
    """(folder, loaded_at) of the published snapshots loaded after `after` (state.json), oldest first."""
    state = read_state(Path(data_dir))
    entries = [*(state.get("previous_snapshots") or []), state.get("snapshot") or {}]
    found = {
        (e["loaded_at"], e["dir"])
        for e in entries
        if e.get("dir") and e.get("loaded_at") and (after is None or e["loaded_at"] > after)
    }
    return [(d, at) for at, d in sorted(found)]


@dataclass
class Collected:
    name: str
    days: int
    changes: int
    delivered: int
    pending: int
    error: str | None = None
    stocks: int = 0  # monthly stocks whose comparison was collected

    def format(self) -> str:
        line = f"Watchlist {self.name}: {self.changes:,} change(s) over {self.days} new day(s)"
        if self.stocks:
            line += f" and {self.stocks} new monthly stock(s)"
        if self.delivered or self.pending:
            line += f"; webhook: {self.delivered} delivered, {self.pending} pending"
        if self.error:
            line += f" (last delivery error: {self.error})"
        return line + "."


def collect(data_dir: Path, post=None) -> list[Collected]:
    """After a sync (writer lock held): each watchlist's alerts files for the applied days it has not seen,
    then its webhook deliveries. Returns one summary per list."""
    from mirror.deltas.store import list_days
    from mirror.serve.changes import changes, snapshot_changes

    data_dir = Path(data_dir)
    out = []
    applied = [d.isoformat() for d in list_days(data_dir)]
    for entry in all_lists(data_dir):
        path = _path(data_dir, entry["name"])
        folder = alerts_dir(data_dir, entry["name"])
        new_days = [d for d in applied if entry.get("done_through") is None or d > entry["done_through"]]
        count = 0
        if new_days:
            table = changes(
                data_dir,
                date.fromisoformat(new_days[0]),
                date.fromisoformat(new_days[-1]),
                ids=entry["ids"],
                sources=("daily",),  # the stocks' changes go to files of their own, below
            )
            rows = table.to_pylist()
            for day in new_days:
                todays = [r for r in rows if r["day"].isoformat() == day]
                _write_day(folder, day, todays)  # first the file, then the record that it is done
                count += len(todays)
            crash_point("watch-before-record")
            entry["done_through"] = new_days[-1]
            write_json_atomic(path, entry)
        # the monthly stocks loaded since the last sync: their comparison with the state they replaced
        if "stock_through" not in entry:  # a list of an older version: from the current snapshot on
            entry["stock_through"] = _loaded_at(data_dir)
            write_json_atomic(path, entry)
        loads = _new_snapshots(data_dir, entry["stock_through"])
        for snapshot_dir, loaded_at in loads:
            rows = snapshot_changes(data_dir, snapshot_dir, entry["ids"]).to_pylist()
            _write_day(folder, f"{STOCK_PREFIX}{snapshot_dir}", rows)  # the file first, then the record
            count += len(rows)
            crash_point("watch-before-record")
            entry["stock_through"] = loaded_at
            write_json_atomic(path, entry)
        delivered, pending, error = 0, 0, None
        if entry.get("webhook"):
            delivered, pending, error = _deliver(data_dir, entry, path, folder, post)
        out.append(Collected(entry["name"], len(new_days), count, delivered, pending, error, len(loads)))
    return out


def _deliver(data_dir: Path, entry: dict, path: Path, folder: Path, post) -> tuple[int, int, str | None]:
    """POSTs the alerts files not yet delivered, oldest first; stops at the first one that fails."""
    import requests

    post = post or requests.post
    done = set(entry.get("delivered") or [])
    waiting = sorted(p.stem for p in folder.glob("*.jsonl") if p.stem not in done) if folder.is_dir() else []
    delivered, error = 0, None
    for day in waiting:
        rows = [
            json.loads(line) for line in (folder / f"{day}.jsonl").read_text(encoding="utf-8").splitlines()
        ]
        if day.startswith(STOCK_PREFIX):
            body = {"watchlist": entry["name"], "snapshot": day[len(STOCK_PREFIX) :], "changes": rows}
        else:
            body = {"watchlist": entry["name"], "day": day, "changes": rows}
        ok = False
        for attempt in range(WEBHOOK_TRIES):
            try:
                response = post(
                    entry["webhook"],
                    json=body,
                    headers={"Idempotency-Key": f"{entry['name']}/{day}"},
                    timeout=WEBHOOK_TIMEOUT_S,
                )
                if 200 <= response.status_code < 300:
                    ok = True
                    break
                error = f"HTTP {response.status_code}"
            except requests.RequestException as exc:
                error = type(exc).__name__
            if attempt + 1 < WEBHOOK_TRIES:
                time.sleep(WEBHOOK_BACKOFF_S * 2**attempt)
        if not ok:
            break
        crash_point("watch-before-delivered")
        entry["delivered"] = sorted(done | {day})
        done.add(day)
        write_json_atomic(path, entry)
        delivered += 1
    if delivered == len(waiting):
        error = None
    return delivered, len(waiting) - delivered, error
