"""`mirror sync`: the main job, safe from cron at any hour.

Under the writer lock: if data.gouv.fr publishes a newer monthly stock than the current snapshot (a later
month, or the same month re-published later, as INSEE did mid-month on 2025-12-16), download it
(mirror.download.datagouv) and load it (mirror.load.stock; the delta days it contains are then ignored and deleted); then
apply every day of INSEE API changes published since the snapshot (mirror.update.run).

A data.gouv.fr that cannot be reached, or a newer stock that cannot be downloaded or fails validation,
does not stop the daily updates of an existing mirror: they are applied to the current snapshot, then
PartlyDone is raised (exit PARTLY_DONE_EXIT, 4) with the report attached (`exc.report`), so that cron
tells "up to date" (0) from "daily changes applied, monthly stock not checked or not loaded" (4), from a
mass update waiting for the next stock (3) and from a failure (1).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from mirror.core.errors import MirrorError
from mirror.update import run as update
from mirror.update.insee_client import DEFAULT_RETRY_BUDGET, RETRY_BUDGET_ENV, seconds_setting

# Checking data.gouv.fr for a newer stock: a few retries only, the next run checks again.
CHECK_RETRIES = 2
CHECK_BACKOFF = 2.0  # seconds, doubled at each retry
PARTLY_DONE_EXIT = 4


class PartlyDone(MirrorError):
    """The daily changes were applied, but data.gouv.fr could not be checked or its newer stock not loaded."""

    exit_code = PARTLY_DONE_EXIT


@dataclass
class SyncReport:
    stock: str = ""  # what happened to the monthly stock
    notes: list[str] = field(default_factory=list)  # in the order they happened
    update: update.UpdateReport | None = None
    seconds: float = 0.0
    stock_error: MirrorError | None = None  # the stock step failed (the updates were still applied)
    stock_at: int | None = None  # where `stock` goes among `notes` (None: first)
    watchlists: list = field(default_factory=list)  # mirror.watch.lists.Collected, one per watchlist

    def set_stock(self, line: str) -> None:
        """What happened to the monthly stock, placed after the notes so far (e.g. the downloads)."""
        self.stock, self.stock_at = line, len(self.notes)

    def format(self) -> str:
        at = self.stock_at or 0
        lines = [*self.notes[:at], self.stock, *self.notes[at:]]
        if self.update is not None:
            lines.append(self.update.format())
        lines += [w.format() for w in self.watchlists]
        lines.append(f"Sync done in {self.seconds:.1f}s.")
        return "\n".join(line for line in lines if line)


def _collect_watchlists(data_dir: Path, report: SyncReport) -> list:
    """The watchlists' alerts of the new days (mirror.watch); a failure there never fails the sync: the
    next sync collects what this one could not."""
    from mirror.watch import lists as watch

    try:
        return watch.collect(data_dir)
    except Exception as exc:  # noqa: BLE001  (DuckDB, disk, a damaged list: reported, retried next time)
        report.notes.append(f"warning: watchlists not collected ({exc}); the next sync will")
        return []


def newer_stock(state: dict, month: str, last_modified: str) -> bool:
    """Whether the published stock (month, last_modified of its main files) is newer than the mirror's."""
    snap = state.get("snapshot") or {}
    if not snap.get("month"):
        return True
    if month != snap["month"]:
        return month > snap["month"]
    synced = state.get("sync_stock") or {}
    return synced.get("month") == month and last_modified > (synced.get("last_modified") or "")


def _refresh_stock(data_dir, state, picked, current, datagouv_url, fmt, show, report, geolocation) -> None:
    """Downloads and loads the published stock when it is newer than the mirror's; `geolocation`: with
    INSEE's geolocation file (the one published then, loaded with the stock; not published: a warning)."""
    from mirror.core import datadir as snapshot
    from mirror.download import datagouv as download
    from mirror.load import stock as load

    month = download.stock_month(picked)
    stamp = max(r.last_modified for r in picked if r.month == month)
    if newer_stock(state, month, stamp):
        try:
            paths = download.download_stock(
                data_dir,
                datagouv_url,
                fmt,
                progress=show,
                report=report.notes.append,
                geolocation=geolocation,
            )
            summary = load.load_snapshot(data_dir, paths, month=month, progress=show)
        except MirrorError as exc:
            if not current:
                raise
            report.set_stock(f"warning: the {month} stock was not loaded ({exc}); kept {current}.")
            report.stock_error = exc
            return
        snapshot.update_state(data_dir, sync_stock={"month": month, "last_modified": stamp})
        report.set_stock(
            f"Loaded the {month} monthly stock" + (f" (replacing {current})." if current else ".")
        )
        report.notes.extend(f"warning: {w}" for w in (summary or {}).get("warnings", []) or [])
        if (summary or {}).get("lookup_store"):
            report.notes.append(summary["lookup_store"])
    elif current and month < current:
        report.set_stock(
            f"data.gouv.fr publishes the {month} stock, older than the mirror's {current}: kept."
        )
    else:
        report.set_stock(f"Monthly stock {current} is the latest published.")
        if not state.get("sync_stock") and current == month:
            snapshot.update_state(data_dir, sync_stock={"month": month, "last_modified": stamp})


def _check_retries(max_wait: float | None) -> int:
    """The retries of the data.gouv.fr check whose backoff waits fit in the run's retry budget (`--max-wait`,
    else MIRROR_RETRY_BUDGET): `--max-wait 0` means no waiting at all, for data.gouv.fr as for INSEE."""
    budget = seconds_setting(max_wait, RETRY_BUDGET_ENV, DEFAULT_RETRY_BUDGET)
    retries, waited = 0, 0.0
    while retries < CHECK_RETRIES and waited + CHECK_BACKOFF * 2**retries <= budget:
        waited += CHECK_BACKOFF * 2**retries
        retries += 1
    return retries


def run_sync(
    data_dir: Path,
    datagouv_url: str | None = None,
    insee_url: str | None = None,
    rate: float = 30.0,
    fmt: str = "auto",
    progress: bool | None = None,
    max_wait: float | None = None,
    geolocation: bool = False,
) -> SyncReport:
    """Loads a newer monthly stock if data.gouv.fr has one, then applies every published day of changes.

    `geolocation`: a newer stock comes with INSEE's geolocation file (mirror download --geolocalisation).
    The file is fetched only with a newer stock: one published alone (around the 21st) waits for the next
    stock, since loading it means reloading the month (`mirror download --geolocalisation` + `mirror load`).

    PartlyDone (exit 4, with `.report`) when the days were applied but the stock step failed; `max_wait`
    bounds the retry waits (INSEE: mirror.update.run.run_update; the data.gouv.fr check: _check_retries)."""
    update.api_key()  # a missing key is reported before any work
    from mirror.core import datadir as snapshot
    from mirror.download import datagouv as download
    from mirror.load import publish

    t0 = time.monotonic()
    data_dir = Path(data_dir)
    show = update._show_progress(progress)
    report = SyncReport()
    with snapshot.writer_lock(data_dir, "mirror sync"):
        report.notes.extend(publish.prepare_writer(data_dir))
        state = snapshot.read_state(data_dir)
        current = (state.get("snapshot") or {}).get("month")
        try:
            resources = download.discover(
                datagouv_url, retries=_check_retries(max_wait), backoff=CHECK_BACKOFF
            )
            picked = download.pick(resources, fmt)
            if not picked:
                raise MirrorError("data.gouv.fr lists no Sirene stock file")
        except MirrorError as exc:
            if not current:
                raise
            # Cron-safe: a data.gouv.fr outage must not stop the daily updates of an existing mirror.
            report.set_stock(f"warning: cannot check data.gouv.fr for a newer stock ({exc}); kept {current}.")
            report.stock_error = exc
            picked = []
        if picked:
            _refresh_stock(data_dir, state, picked, current, datagouv_url, fmt, show, report, geolocation)
        report.update = update.run_update(
            data_dir, insee_url=insee_url, rate=rate, progress=progress, locked=True, max_wait=max_wait
        )
        report.watchlists = _collect_watchlists(data_dir, report)
    report.seconds = time.monotonic() - t0
    if report.stock_error is not None:
        failed = report.stock_error
        what = "data.gouv.fr could not be checked" if not picked else "the newer stock was not loaded"
        error = PartlyDone(f"partly done: {failed} ({what}; the daily updates were applied to {current})")
        error.report = report
        raise error from failed
    return report
