"""`mirror update`: fetch the INSEE API's changes day by day and store them as delta days (mirror.deltas.store).

Algorithm (INSEE, API Sirene 3.11 documentation: "Mise à jour quotidienne", `/informations`):

1. The key (env INSEE_API_KEY) is checked before any work; a snapshot must exist.
2. `/informations`: a day is published when every collection's `dateDerniereMiseADisposition` (matched by
   name) is on a later date; later days are not applied.
3. Days are fetched one at a time, from a day before the watermark (the end of the last applied day; the
   snapshot's coverage at first) through the last published day: per day, `/siren`, `/siret` and
   `/siret/liensSuccession` with `dateDernierTraitement...:<day>`, records converted to stock rows
   (mirror.core.insee_records), typed by the loader's code, written as the day's Parquet folder (atomic).
4. state.json gets `deltas` (applied days), `delta_watermark`, `delta_seq` and `last_update` after each
   day, so an interrupted run resumes where it stopped. After each day the delta days are compacted into
   a new merged version and the catalog is rebuilt over it (deltas.compact_for, then catalog.rebuild): readers
   see each day at once, and the next day's counts see the previous days. A run first repairs a catalog
   left behind by a crash (merged version stale or not the one the catalog reads).
5. If INSEE ran a mass update (`dateDernierTraitementDeMasse`) on a day still to fetch, nothing is paged:
   the mirror must reload the next monthly stock (`mirror sync`).

Failures never leave a half-applied day: the three searches of a day are fetched and checked
(mirror.update.validate) before the day is written, so a malformed answer fails that day and leaves the
watermark and the store as they were. A watermark after the last published day is an error, not a no-op.
Ctrl-C, SIGTERM and a full disk end the run with one line: the days applied so far are kept (every step
on disk is atomic), the rest is fetched again by the next run.
"""

from __future__ import annotations

import errno
import os
import signal
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb

from mirror.catalog import build as catalog
from mirror.core import datadir as snapshot
from mirror.core import insee_records
from mirror.core.config import DEFAULT_INSEE_URL, INSEE_KEY_ENV, INSEE_URL_ENV, catalog_path, open_duckdb
from mirror.core.errors import IntegrityError, MassUpdate, MirrorError
from mirror.core.faults import crash_point
from mirror.core.schema import LAST_PROCESSED
from mirror.core.typed import prepare_connection
from mirror.deltas import store as deltas
from mirror.lookup import build as lookup_build
from mirror.lookup import store as lookup_store
from mirror.update import insee_client as insee
from mirror.update.validate import shown

KINDS = ("unites_legales", "etablissements")  # tables counted in the summary


@dataclass
class DaySummary:
    day: date
    counts: dict[
        str, dict[str, int]
    ]  # {"unites_legales": {"new", "changed", "closed"}, "etablissements": ...}
    liens: int
    requests: int
    seconds: float


@dataclass
class UpdateReport:
    days: list[DaySummary] = field(default_factory=list)
    requests: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    dry_run: bool = False
    published_through: date | None = None

    def format(self) -> str:
        """The summary printed by `mirror update` / `mirror sync`."""
        lines = list(self.notes)
        if self.days:
            head = (
                f"{'day':<10}  {'UL new':>7} {'changed':>7} {'closed':>7}  "
                f"{'étab new':>8} {'changed':>7} {'closed':>7}  {'liens':>5} {'requests':>8} {'time':>7}"
            )
            lines.append("Would apply (dry run, nothing written):" if self.dry_run else "Applied:")
            lines.append(head)
            for d in self.days:
                ul, et = d.counts["unites_legales"], d.counts["etablissements"]
                lines.append(
                    f"{d.day.isoformat():<10}  {ul['new']:>7} {ul['changed']:>7} {ul['closed']:>7}  "
                    f"{et['new']:>8} {et['changed']:>7} {et['closed']:>7}  {d.liens:>5} {d.requests:>8} "
                    f"{d.seconds:>6.1f}s"
                )
        if self.days and not self.dry_run:
            lines.append(
                f"Mirror up to date through {self.days[-1].day.isoformat()} "
                f"(INSEE has published changes through {self.published_through.isoformat()})."
            )
        lines.append(f"INSEE requests: {self.requests}; duration {self.seconds:.1f}s.")
        return "\n".join(lines)


def api_key() -> str:
    """The INSEE API key from the environment; a clear error when missing (checked before any work)."""
    key = os.environ.get(INSEE_KEY_ENV, "").strip()
    if not key:
        raise MirrorError(
            f"{INSEE_KEY_ENV} is not set: create a key on https://portail-api.insee.fr (application in "
            f"'Simple' mode subscribed to 'API Sirene') and export {INSEE_KEY_ENV}=<key>"
        )
    return key


def insee_base_url(value: str | None = None) -> str:
    return (value or os.environ.get(INSEE_URL_ENV) or DEFAULT_INSEE_URL).rstrip("/")


def _show_progress(progress: bool | None) -> bool:
    return sys.stderr.isatty() if progress is None else progress


def published_through(info: dict) -> date:
    """Last day INSEE finished publishing: the day before the oldest `dateDerniereMiseADisposition`."""
    stamps = [c.get("dateDerniereMiseADisposition") for c in info.values()]
    stamps = [s for s in stamps if s is not None]
    if not stamps:
        raise MirrorError("INSEE /informations gives no dateDerniereMiseADisposition")
    return min(stamps).date() - timedelta(days=1)


def mass_update(info: dict) -> datetime | None:
    stamps = [c.get("dateDernierTraitementDeMasse") for c in info.values()]
    stamps = [s for s in stamps if s is not None]
    return max(stamps) if stamps else None


def run_update(
    data_dir: Path,
    since: date | None = None,
    until: date | None = None,
    dry_run: bool = False,
    insee_url: str | None = None,
    rate: float = 30.0,
    progress: bool | None = None,
    locked: bool = False,
    max_wait: float | None = None,
) -> UpdateReport:
    """Applies the published days of INSEE API changes since the watermark (see module docstring).

    `max_wait`: seconds of retry waiting allowed for the run (None: env MIRROR_RETRY_BUDGET, default 600;
    see mirror.update.insee_client); each retry is printed on stderr, with its wait."""
    key = api_key()
    if since is not None and until is not None and since > until:
        raise MirrorError(f"--since {since.isoformat()} is after --until {until.isoformat()}")
    data_dir = Path(data_dir)
    with _signals_as_interrupt() as caught:
        try:
            if locked or dry_run:
                return _run(data_dir, key, since, until, dry_run, insee_url, rate, progress, max_wait)
            with snapshot.writer_lock(data_dir, "mirror update"):
                catalog.prepare_writer(data_dir)  # leftovers of a killed writer, an interrupted publication
                return _run(data_dir, key, since, until, dry_run, insee_url, rate, progress, max_wait)
        except BaseException as exc:
            _reraise_as_one_line(exc, caught, data_dir)
            raise


INTERRUPTED = (
    "interrupted{by}: days applied so far are kept, the mirror is consistent "
    "(run `mirror update` again to continue)"
)


@contextmanager
def _signals_as_interrupt():
    """For the duration of a run, SIGINT and SIGTERM raise KeyboardInterrupt (the default SIGTERM kills
    without a word) and are recorded, so that whatever error the interrupted code raises (DuckDB gives
    `RuntimeError: Query interrupted` or InterruptException) is reported as the interruption it is.
    Handlers are restored afterwards; off the main thread (where Python forbids handlers) nothing changes."""
    caught: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield caught
        return

    def handler(signum, _frame):
        caught.append(signum)
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield caught
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _reraise_as_one_line(exc: BaseException, caught: list[int], data_dir: Path) -> None:
    """Raises the one-line MirrorError for an interruption or a full disk; returns for anything else."""
    if caught or isinstance(exc, KeyboardInterrupt) or _is_duckdb_interrupt(exc):
        sig = caught[0] if caught else signal.SIGINT
        by = f" by {signal.Signals(sig).name}"
        raise MirrorError(INTERRUPTED.format(by=by), exit_code=128 + int(sig)) from None
    if isinstance(exc, MirrorError):
        return
    if _is_disk_full(exc):
        raise MirrorError(
            f"no space left on the device of {data_dir}: days applied so far are kept, the mirror is "
            f"consistent; free some space and run `mirror update` again"
        ) from None


def _is_duckdb_interrupt(exc: BaseException) -> bool:
    return isinstance(exc, duckdb.InterruptException) or (
        type(exc) is RuntimeError and "interrupted" in str(exc).lower()
    )


def _is_disk_full(exc: BaseException) -> bool:
    """ENOSPC / EDQUOT from Python, or DuckDB's IOException saying so (it carries no errno)."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(exc).lower()
    return isinstance(exc, duckdb.Error) and ("no space left" in text or "disk quota" in text)


def current_coverage(data_dir: Path, state: dict) -> tuple[str, str, datetime]:
    """(snapshot month, snapshot folder name, coverage) of the current snapshot (see deltas.snapshot_coverage)."""
    snap = state.get("snapshot") or {}
    if not isinstance(snap, dict):
        raise IntegrityError(f"state.json: snapshot is not an object ({shown(snap)}): fix or restore it")
    if not snap.get("month"):
        raise MirrorError("no snapshot in this data dir: run `mirror sync` (or `mirror load`) first")
    recorded = state.get("delta_coverage") or {}
    if (
        isinstance(recorded, dict)
        and recorded.get("dir") == snap.get("dir")
        and recorded.get("loaded_at") == snap.get("loaded_at")
        and isinstance(recorded.get("coverage"), str)
    ):
        try:
            return snap["month"], snap["dir"], datetime.fromisoformat(recorded["coverage"])
        except ValueError:
            pass  # unreadable: computed again from the snapshot below, and rewritten by the run
    folder = snapshot.snapshots_dir(data_dir) / snap["dir"]
    return snap["month"], snap["dir"], deltas.snapshot_coverage(folder, snap["month"])


def _run(data_dir, key, since, until, dry_run, insee_url, rate, progress, max_wait=None) -> UpdateReport:
    t0 = time.monotonic()
    report = UpdateReport(dry_run=dry_run)
    show = _show_progress(progress)
    state = snapshot.read_state(data_dir)
    month, snap_dir, coverage = current_coverage(data_dir, state)
    if not dry_run:
        deltas.recover(data_dir)
        removed = deltas.prune(data_dir, coverage)
        if removed:
            report.notes.append(
                f"Removed {len(removed)} delta day(s) contained in the {month} snapshot "
                f"({removed[0].isoformat()} .. {removed[-1].isoformat()})."
            )
        record = {
            "month": month,
            "dir": snap_dir,
            "loaded_at": state["snapshot"].get("loaded_at"),
            "coverage": coverage.isoformat(),
        }
        days_on_disk = [d.isoformat() for d in deltas.list_days(data_dir)]
        if removed or state.get("delta_coverage") != record or state.get("deltas", []) != days_on_disk:
            state = _save_state(data_dir, delta_coverage=record, deltas=days_on_disk)
        if removed or not _catalog_current(data_dir, coverage):
            catalog.rebuild(data_dir, deltas.compact_for(data_dir))
        # A store left behind by a crash (or never built) catches up before new days are fetched.
        note = lookup_build.maintain(data_dir)
        if note:
            report.notes.append(note)

    client = insee.InseeClient(
        insee_base_url(insee_url),
        key,
        rate_per_minute=rate,
        progress=show,
        retry_budget=max_wait,
        notify=_stderr_line,  # each retry and its wait, --quiet or not (a cron log shows why a run is slow)
    )
    info = insee.parse_informations(client.informations())
    last_published = published_through(info)
    report.published_through = last_published

    watermark = _state_datetime(state, "delta_watermark")
    base = coverage
    if watermark:
        limit = datetime.combine(last_published + timedelta(days=1), datetime.min.time())
        if watermark > limit:
            raise IntegrityError(
                f"state.json's delta_watermark {watermark.isoformat()} is after the last day INSEE has "
                f"published ({last_published.isoformat()}): the state is wrong (clock or hand edit); set it "
                f"back to the day after the last applied day, or remove it to restart from the snapshot"
            )
        base = max(base, watermark)
    start = default_start = max((base - timedelta(days=1)).date(), coverage.date())
    if since is not None:
        if since < coverage.date():
            report.notes.append(
                f"Days before {coverage.date().isoformat()} are in the {month} snapshot: starting there."
            )
        start = max(since, coverage.date())
    end = last_published
    if until is not None:
        if until > last_published:
            report.notes.append(
                f"INSEE has published changes through {last_published.isoformat()} only: "
                f"later days are not applied."
            )
        end = min(until, last_published)

    mass = mass_update(info)
    if mass is not None and mass > base and start <= mass.date() <= end:
        raise MassUpdate(
            f"INSEE ran a mass update on {mass:%Y-%m-%d %H:%M} (after the last sync, {base:%Y-%m-%d}): "
            f"paging it at 30 requests/minute would take hours, so nothing was fetched; the mirror must "
            f"reload the next monthly stock: run `mirror sync` once data.gouv.fr publishes it"
        )
    if start > end:
        report.notes.append(f"Up to date: INSEE has published changes through {last_published.isoformat()}.")
        report.requests = client.requests_made
        report.seconds = time.monotonic() - t0
        return report

    days = [start + timedelta(days=i) for i in range((end - start).days + 1)]
    # The watermark moves only over contiguous days: `--since` after the usual start leaves a gap.
    contiguous = start <= default_start
    if not contiguous and not dry_run:
        # The days between the usual start and --since: those never applied are missing; the others
        # (the usual start is the last applied day, fetched again for its late changes) are only skipped.
        applied = set(state.get("deltas", []))
        between = [default_start + timedelta(days=i) for i in range((start - default_start).days)]
        missing = [d for d in between if d.isoformat() not in applied]
        shown = missing or between
        span = (
            f"Days {shown[0].isoformat()} .. {shown[-1].isoformat()} are"
            if len(shown) > 1
            else f"Day {shown[0].isoformat()} is"
        )
        what = "not applied" if missing else "applied already, not fetched again for late changes"
        report.notes.append(
            f"{span} {what} (--since {start.isoformat()}): the watermark stays, the next run starts from "
            f"{default_start.isoformat()}."
        )
    con = open_duckdb()
    try:
        prepare_connection(con)  # the loader's typing UDF and lookup tables, used for every day
        snapshot_selects = {t: catalog.snapshot_select(con, data_dir, t) for t in KINDS}
        geolocated = deltas.has_geolocation(con, snapshot_selects["etablissements"])
        bar = None
        if show:
            from tqdm import tqdm

            bar = tqdm(total=len(days), desc="days", unit="day")
        # The lookup store follows once, after the last day (a refresh costs seconds whatever the day's
        # size): until then it answers the state before this run, which its grace entry names for readers.
        grace, applied = None, False
        try:
            for day in days:
                try:
                    summary = _apply_day(
                        con, client, data_dir, day, state, dry_run, coverage, snapshot_selects, geolocated
                    )
                except IntegrityError as exc:
                    kept = "the days before it are kept, " if report.days and not dry_run else ""
                    raise IntegrityError(
                        f"{exc}; {day.isoformat()} not applied ({kept}the watermark stays)"
                    ) from None
                report.days.append(summary)
                if not dry_run:
                    if not applied:
                        grace = lookup_store.grace_entry(data_dir, state)
                    state = _save_state(
                        data_dir,
                        lookup_grace=grace,
                        deltas=[d.isoformat() for d in deltas.list_days(data_dir)],
                        delta_seq=_state_seq(state) + 1,
                        delta_watermark=_watermark(state, coverage, day if contiguous else None),
                        last_update={
                            "at": datetime.now().isoformat(timespec="seconds"),
                            "day": day.isoformat(),
                            "counts": summary.counts,
                            "liens": summary.liens,
                        },
                    )
                    # A new merged version with this day, and the catalog over it (the switch readers see).
                    catalog.rebuild(data_dir, deltas.compact_for(data_dir), reuse=True)
                    applied = True
                if bar is not None:
                    bar.update(1)
        except Exception:
            if applied:  # a later day failed: the store still follows the days applied (Ctrl-C does not wait)
                lookup_build.maintain(data_dir)
            raise
        if applied:  # the SIRENs the days touched, in one transaction
            note = lookup_build.maintain(data_dir)
            if note:
                report.notes.append(note)
        if bar is not None:
            bar.close()
    finally:
        con.close()
    report.requests = client.requests_made
    report.seconds = time.monotonic() - t0
    return report


def _stderr_line(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def _state_datetime(state: dict, field: str) -> datetime | None:
    """A timestamp field of state.json (None when absent); one line naming the field when unreadable."""
    value = state.get(field)
    if value in (None, ""):
        return None
    try:
        return datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise IntegrityError(
            f"state.json: {field} is not a timestamp ({shown(value)}): fix or remove the field"
        ) from None


def _state_seq(state: dict) -> int:
    value = state.get("delta_seq", 0)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise IntegrityError(
        f"state.json: delta_seq is not a count ({shown(value)}): set it to the number of days applied"
    )


def _watermark(state: dict, coverage: datetime, applied: date | None) -> str:
    """The new watermark: the end of the last contiguously applied day (never moves back)."""
    current = _state_datetime(state, "delta_watermark") or coverage
    if applied is None:
        return current.isoformat()
    return max(current, datetime.combine(applied + timedelta(days=1), datetime.min.time())).isoformat()


def _catalog_current(data_dir: Path, coverage: datetime) -> bool:
    """Whether the catalog reads the merged version matching the delta days on disk (or the plain snapshot
    when there is no delta day to merge): False after a crash between writing a day and the rebuild, and
    in a copied or moved data directory."""
    path = catalog_path(data_dir)
    if not path.exists():
        return False
    expected = deltas.merged_version(data_dir, coverage)
    if expected is None and deltas.has_deltas(data_dir, coverage.date()):
        return False  # no merged version for these days yet
    built = catalog.built_from(path)
    if built is None:
        return False  # unreadable (e.g. open for writing elsewhere): rebuilding replaces it anyway
    if catalog.built_elsewhere(data_dir, built["snapshot"]) is not None:
        return False  # a copied or moved data directory: its views read the original's files
    return built["merged"] == (expected.name if expected else None)


def _fetch(client, kind: str, day: date) -> list[dict]:
    return list(client.iter_kind(kind, insee.day_query(kind, day)))


def _apply_day(
    con,
    client,
    data_dir: Path,
    day: date,
    state: dict,
    dry_run: bool,
    coverage: datetime,
    snapshot_selects,
    geolocated: bool = False,
) -> DaySummary:
    """Fetches one day, types it, counts new/changed/closed against the mirror, and writes it;
    `geolocated`: the snapshot was loaded with the geolocation file (deltas.carry_geolocation_sql)."""
    t0 = time.monotonic()
    req0 = client.requests_made
    rows: dict[str, list[dict]] = {t: [] for t in deltas.DELTA_TABLES}
    for record in _fetch(client, "unites_legales", day):
        row, history = insee_records.unite_legale_to_rows(record)
        rows["unites_legales"].append(row)
        rows["unites_legales_historique"].extend(history)
    crash_point(f"fetch-{day.isoformat()}")
    for record in _fetch(client, "etablissements", day):
        row, history = insee_records.etablissement_to_rows(record)
        rows["etablissements"].append(row)
        rows["etablissements_historique"].extend(history)
    for record in _fetch(client, "liens_succession", day):
        rows["liens_succession"].append(insee_records.lien_to_row(record))

    typed = {}
    for table in deltas.DELTA_TABLES:
        name = f"day_{table}"
        deltas.write_typed_rows(con, table, rows[table], name, prepare=False)
        typed[table] = name
    if geolocated:  # the snapshot's geolocation, kept while the address is its own
        select = deltas.carry_geolocation_sql("day_etablissements", snapshot_selects["etablissements"])
        con.execute(f"CREATE OR REPLACE TABLE day_etablissements_geo AS {select}")
        typed["etablissements"] = "day_etablissements_geo"
    merged = deltas.merged_version(data_dir, coverage)  # what the catalog reads before this day
    counts = {t: _count(con, f"day_{t}", t, snapshot_selects[t], merged) for t in KINDS}
    if not dry_run:
        seq = _state_seq(state) + 1
        deltas.write_day(data_dir, day, seq, con, typed)
    return DaySummary(
        day, counts, len(rows["liens_succession"]), client.requests_made - req0, time.monotonic() - t0
    )


def _count(con, day_table: str, table: str, snapshot_select: str, merged: Path | None) -> dict[str, int]:
    """New, changed and closed units of a day, relative to the mirror before the day is applied. A unit
    counts as changed only when INSEE processed it again since the mirror's version (its
    dateDernierTraitement differs): a day applied twice, or dry-run after it was applied, changes nothing.
    (Comparing every column instead reads them all from the snapshot: 4 times the cost of the count.)"""
    new, closed, changed = con.execute(
        deltas.previous_state_sql(table, day_table, snapshot_select, merged, [LAST_PROCESSED[table]])
    ).fetchone()
    return {"new": new, "changed": changed, "closed": closed}


def _save_state(data_dir: Path, **changes) -> dict:
    """Merges `changes` into state.json (written atomically by mirror.core.datadir) and returns the new state."""
    return snapshot.update_state(data_dir, **changes)


def parse_day(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise MirrorError(f"{option} expects a date YYYY-MM-DD, got {value!r}") from None
