"""Client of the INSEE API Sirene 3.11 (daily updates): searches with cursor pagination, retries, rate limit.

The API key travels only in the `X-INSEE-Api-Key-Integration` header of each request: it is never logged,
printed, put in an exception message or written to disk. Facts used here come from INSEE's documentation
of the API Sirene 3.11 (portail-api.insee.fr: "Documentation API Sirene" and its OpenAPI file): 404 = zero
results, the extra empty cursor page, 429/Retry-After, 414 -> POST form, 301 = doublon on lookups,
`/informations` collections matched by name.

Waits are bounded: a `Retry-After` is capped (`max_retry_after`, env MIRROR_MAX_RETRY_AFTER, default 120 s)
and all the waits of one client (one run) share a budget (`retry_budget`: `--max-wait` of update and sync, env
MIRROR_RETRY_BUDGET, default 600 s), which also counts the time spent on the failed attempts themselves (a
connection that times out after CONNECT_TIMEOUT s): a 429 asking for a day, a permanent 503 or an unreachable
host ends with one UpstreamUnavailable line instead of holding the writer lock for hours, and each retry is
announced on one line (`notify`) with its wait. Every search page is checked (mirror.update.validate) before its
records are yielded; a malformed answer is an IntegrityError naming the request (path and `q`).
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
import unicodedata
from collections.abc import Callable, Iterator
from datetime import date, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urlencode

import requests

from mirror.core.config import INSEE_KEY_HEADER
from mirror.core.errors import BadInput, IntegrityError, MirrorError, UpstreamUnavailable
from mirror.update.validate import RECORD_CHECKS, Malformed, check_page, identify, oneline, shown

log = logging.getLogger(__name__)

PAGE_SIZE = 1000
MAX_GET_URL = 2000  # longer GET URLs go as a POST form (the gateway answers 414 otherwise)
BACKOFF_BASE = 2.0  # seconds, doubled at each retry, with jitter
BACKOFF_MAX = 60.0
CONNECT_TIMEOUT = 10.0  # seconds to establish a connection (an unreachable host fails this fast)
MAX_RETRY_AFTER_ENV = "MIRROR_MAX_RETRY_AFTER"
RETRY_BUDGET_ENV = "MIRROR_RETRY_BUDGET"
DEFAULT_MAX_RETRY_AFTER = 120.0  # seconds: a longer Retry-After is waited this long, then retried
DEFAULT_RETRY_BUDGET = 600.0  # seconds of waiting (backoff + Retry-After) per client, i.e. per run

# Our table keys -> (search path, response array key, dateDernierTraitement field).
KINDS = {
    "unites_legales": ("/siren", "unitesLegales", "dateDernierTraitementUniteLegale"),
    "etablissements": ("/siret", "etablissements", "dateDernierTraitementEtablissement"),
    "liens_succession": ("/siret/liensSuccession", "liensSuccession", "dateDernierTraitementLienSuccession"),
}
_KIND_ALIASES = {
    "unites_legales": "unites_legales",
    "unite_legale": "unites_legales",
    "siren": "unites_legales",
    "etablissements": "etablissements",
    "etablissement": "etablissements",
    "siret": "etablissements",
    "liens_succession": "liens_succession",
    "lien_succession": "liens_succession",
    "liensSuccession": "liens_succession",
}
# Collection names of /informations (normalised: no accents, lower case) -> our table keys.
COLLECTIONS = {
    "unites legales": "unites_legales",
    "etablissements": "etablissements",
    "liens de succession": "liens_succession",
}


def kind_key(kind: str) -> str:
    """Normalises a kind ('siren', 'unites_legales', 'siret', ...) to our table key."""
    try:
        return _KIND_ALIASES[kind]
    except KeyError:
        raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}") from None


def day_query(kind: str, day: date) -> str:
    """The `q` selecting every record of `kind` processed on `day`.

    Uses the partial-date form `dateDernierTraitementUniteLegale:2025-12-07`, the one the Annuaire des
    Entreprises runs in production on 3.11 (millisecond bounds in ranges are unconfirmed, reference §3.1).
    """
    return f"{KINDS[kind_key(kind)][2]}:{day.isoformat()}"


def range_query(kind: str, start: datetime | date | None, end: datetime | date | None = None) -> str:
    """`dateDernierTraitement...:[start TO end]` (inclusive, `*` for an open end; seconds precision)."""

    def fmt(v):
        if v is None:
            return "*"
        if isinstance(v, datetime):
            return v.strftime("%Y-%m-%dT%H:%M:%S")
        return v.isoformat()

    return f"{KINDS[kind_key(kind)][2]}:[{fmt(start)} TO {fmt(end)}]"


def _norm(text: str) -> str:
    text = unicodedata.normalize("NFKD", text)
    return "".join(c for c in text if not unicodedata.combining(c)).strip().lower()


def parse_timestamp(value: str | None) -> datetime | None:
    """An API timestamp (`2026-10-05T08:12:33.123`, with or without ms, or a bare date) as a naive datetime."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise IntegrityError(f"INSEE API returned an unreadable timestamp: {shown(value)}") from None


def parse_informations(js: dict) -> dict[str, dict[str, datetime | None]]:
    """Per collection (our table keys, matched by name, not index): the three dates of `/informations`.

    Returns e.g. {"unites_legales": {"dateDerniereMiseADisposition": datetime, "dateDernierTraitementMaximum":
    datetime, "dateDernierTraitementDeMasse": datetime | None}, "etablissements": {...}, "liens_succession":
    {...}}. The unités légales and établissements collections are required; liens de succession is optional.
    """
    entries = js.get("datesDernieresMisesAJourDesDonnees") if isinstance(js, dict) else None
    if not isinstance(entries, list):
        raise IntegrityError("INSEE /informations answer has no datesDernieresMisesAJourDesDonnees")
    out: dict[str, dict[str, datetime | None]] = {}
    for entry in entries:
        if not isinstance(entry, dict):
            raise IntegrityError("INSEE /informations answer: a collection entry is not an object")
        key = COLLECTIONS.get(_norm(str(entry.get("collection", ""))))
        if key is None:
            continue
        out[key] = {
            field: parse_timestamp(entry.get(field))
            for field in (
                "dateDerniereMiseADisposition",
                "dateDernierTraitementMaximum",
                "dateDernierTraitementDeMasse",
            )
        }
    missing = [k for k in ("unites_legales", "etablissements") if k not in out]
    if missing:
        raise IntegrityError(f"INSEE /informations does not describe the collection(s): {', '.join(missing)}")
    return out


class RateLimiter:
    """At most `rate_per_minute` requests per minute: requests are spaced by 60 / rate seconds.

    Thread-safe; `clock` and `sleep` are injectable so that tests run without sleeping.
    """

    def __init__(self, rate_per_minute: float, clock: Callable[[], float], sleep: Callable[[float], None]):
        if rate_per_minute <= 0:
            raise MirrorError("the INSEE request rate must be a positive number of requests per minute")
        self.interval = 60.0 / rate_per_minute
        self.clock = clock
        self.sleep = sleep
        self._next = None
        self._lock = threading.Lock()

    def acquire(self) -> None:
        with self._lock:
            now = self.clock()
            if self._next is not None and now < self._next:
                self.sleep(self._next - now)
                now = self.clock()
            self._next = max(now, self._next or now) + self.interval


class DoublonError(MirrorError):
    """A lookup answered 301: the unit was closed as a doublon (duplicate) of another one."""

    def __init__(self, identifier: str, location: str | None):
        self.identifier = identifier
        self.location = location
        super().__init__(
            f"{identifier} is a doublon (closed duplicate); INSEE redirects to {location or '?'}"
        )


def seconds_setting(value: float | None, env: str, default: float) -> float:
    """A duration in seconds: `value` when given, else $env, else `default`; BadInput when not >= 0."""
    if value is None:
        raw = os.environ.get(env, "").strip()
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise BadInput(f"{env} must be a number of seconds, got {shown(raw)}") from None
        where = env
    else:
        where = env.lower().removeprefix("mirror_")
    if not value >= 0 or value == float("inf"):
        raise BadInput(f"{where} must be a number of seconds >= 0, got {shown(value)}")
    return float(value)


def _secs(seconds: float) -> str:
    return f"{seconds:.0f}" if seconds >= 10 else f"{seconds:.1f}"


class InseeClient:
    """Searches and lookups on the INSEE API Sirene 3.11 with one shared rate limiter per instance.

    `max_retry_after` caps a server's Retry-After; `retry_budget` bounds the seconds of waiting over all
    retries of this client (None: from the environment, see the module docstring). `notify`, when given,
    receives one line per wait ("INSEE API: HTTP 429 on /siren, waiting 30 s (retry 2/8)").
    `clock`, `sleep` and `rng` are injectable for tests; `requests_made` counts every HTTP request sent.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        rate_per_minute: float = 30,
        timeout: float = 60,
        max_retries: int = 8,
        progress: bool = False,
        *,
        max_retry_after: float | None = None,
        retry_budget: float | None = None,
        notify: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        session: requests.Session | None = None,
    ):
        api_key = (api_key or "").strip()  # a key pasted from a file often ends with a newline
        if not api_key:
            raise MirrorError("no INSEE API key: set INSEE_API_KEY (see the README)")
        if not api_key.isprintable() or any(c.isspace() for c in api_key):
            raise MirrorError("INSEE_API_KEY contains spaces or control characters: check its value")
        self.base_url = base_url.rstrip("/")
        self.__key = api_key
        self.timeout = timeout
        self.max_retries = max_retries
        self.max_retry_after = seconds_setting(max_retry_after, MAX_RETRY_AFTER_ENV, DEFAULT_MAX_RETRY_AFTER)
        self.retry_budget = seconds_setting(retry_budget, RETRY_BUDGET_ENV, DEFAULT_RETRY_BUDGET)
        self.notify = notify
        self.progress = progress
        self.sleep = sleep
        self.rng = rng or random.Random()
        self.limiter = RateLimiter(rate_per_minute, clock, sleep)
        self.session = session or requests.Session()
        self.session.trust_env = False  # no proxies/netrc: the key goes only where base_url says
        self.requests_made = 0
        self.waits: list[float] = []  # every backoff/Retry-After wait, for summaries and tests
        self.failed_seconds = 0.0  # time spent on attempts that failed (timeouts), counted in the budget
        self.clock = clock
        self._post_paths: set[str] = set()  # paths that answered 414 to a GET

    def __repr__(self) -> str:
        return f"InseeClient({self.base_url!r}, api_key=<hidden>)"

    # ---------------------------------------------------------------- HTTP core

    def _backoff(self, attempt: int) -> float:
        delay = min(BACKOFF_MAX, BACKOFF_BASE * 2**attempt)
        return delay * (0.5 + 0.5 * self.rng.random())

    @staticmethod
    def _retry_after(resp: requests.Response) -> float | None:
        value = resp.headers.get("Retry-After")
        if not value:
            return None
        try:
            seconds = float(value)
            return max(0.0, seconds) if seconds == seconds else None  # NaN: as if absent
        except ValueError:
            pass
        try:
            when = parsedate_to_datetime(value)
            return max(0.0, when.timestamp() - time.time())
        except (TypeError, ValueError, OverflowError):
            return None

    @property
    def waited(self) -> float:
        """Seconds lost to failures so far: waits before retries and failed attempts (against `retry_budget`)."""
        return sum(self.waits) + self.failed_seconds

    def _wait(self, seconds: float, reason: str, path: str, attempt: int) -> None:
        """Waits before retry `attempt + 1`, or gives up when the wait would overrun the retry budget."""
        if self.waited + seconds > self.retry_budget:
            raise UpstreamUnavailable(
                f"INSEE API unavailable on {path}: {reason}; gave up after {attempt + 1} attempt(s) and "
                f"{_secs(self.waited)} s of waiting (retry budget {_secs(self.retry_budget)} s: --max-wait "
                f"or {RETRY_BUDGET_ENV})"
            )
        if self.notify is not None:
            self.notify(
                f"INSEE API: {reason} on {path}, waiting {_secs(seconds)} s "
                f"(retry {attempt + 1}/{self.max_retries})"
            )
        self.waits.append(seconds)
        self.sleep(seconds)

    def request(self, path: str, params: dict | None = None, method: str = "GET") -> requests.Response:
        """One API call with rate limiting and bounded retries; returns the final response (2xx, 3xx, 404,
        414). 429 waits as the server asks (capped at `max_retry_after`), 5xx and network errors back off."""
        url = self.base_url + path
        headers = {INSEE_KEY_HEADER: self.__key, "Accept": "application/json"}
        last = ""
        for attempt in range(self.max_retries + 1):
            self.limiter.acquire()
            self.requests_made += 1
            timeout = (min(CONNECT_TIMEOUT, self.timeout), self.timeout)
            started = self.clock()
            try:
                if method == "POST":
                    resp = self.session.post(
                        url, data=params or {}, headers=headers, timeout=timeout, allow_redirects=False
                    )
                else:
                    resp = self.session.get(
                        url, params=params, headers=headers, timeout=timeout, allow_redirects=False
                    )
            except requests.RequestException as exc:
                self.failed_seconds += max(0.0, self.clock() - started)
                last = f"connection error ({type(exc).__name__})"
                log.info("INSEE %s %s: %s, retrying", method, path, last)
                if attempt < self.max_retries:
                    self._wait(self._backoff(attempt), last, path, attempt)
                continue
            status = resp.status_code
            if status in (401, 403):
                raise UpstreamUnavailable(f"INSEE API key rejected (HTTP {status} on {path})")
            if status == 429:
                last = "HTTP 429 (quota exceeded)"
                delay = self._retry_after(resp)
                delay = self._backoff(attempt) if delay is None else min(delay, self.max_retry_after)
                if attempt < self.max_retries:
                    self._wait(delay, "HTTP 429", path, attempt)
                continue
            if status >= 500:
                last = f"HTTP {status}"
                log.info("INSEE %s %s: %s, retrying", method, path, last)
                if attempt < self.max_retries:
                    self._wait(self._backoff(attempt), last, path, attempt)
                continue
            if status == 400:
                raise UpstreamUnavailable(f"INSEE API refused the query on {path}: {_message(resp)}")
            return resp
        raise UpstreamUnavailable(
            f"INSEE API unavailable on {path} after {self.max_retries + 1} attempts and "
            f"{_secs(self.waited)} s of waiting: {last}"
        )

    def _json(self, resp: requests.Response, path: str):
        try:
            return resp.json()
        except ValueError:
            raise IntegrityError(f"INSEE API returned invalid JSON on {path}") from None

    # ---------------------------------------------------------------- endpoints

    def informations(self) -> dict:
        """Raw JSON of `/informations` (see parse_informations)."""
        resp = self.request("/informations")
        if resp.status_code != 200:
            raise UpstreamUnavailable(f"INSEE /informations answered HTTP {resp.status_code}")
        js = self._json(resp, "/informations")
        if not isinstance(js, dict):
            raise IntegrityError(f"INSEE /informations answer is a JSON {type(js).__name__}, not an object")
        return js

    def search(
        self, path: str, array_key: str, q: str, check: Callable[[dict], None] | None = None
    ) -> Iterator[dict]:
        """All records of a multi-criteria search, following the cursor (a 404 first page: zero results).

        Each page is checked (shape; each record with `check` when given) before its records are yielded,
        and the records received must add up to the header's `total`: any failure is an IntegrityError
        naming the request, raised before the caller has seen the end of the iteration.
        """
        cursor = "*"
        seen = {cursor}
        count = 0
        page = 0
        total = None
        bar = None

        def malformed(reason: str) -> IntegrityError:
            where = f"{path}?q={q}" + (f" (page {page})" if page > 1 else "")
            return IntegrityError(f"INSEE API answer to {oneline(where, 160)} is malformed: {reason}")

        try:
            while True:
                params = {"q": q, "nombre": PAGE_SIZE, "curseur": cursor}
                page += 1
                resp = self._search_page(path, params)
                if resp.status_code == 404:
                    if total is not None and count < total:
                        raise malformed(f"HTTP 404 after {count} of {total} records")
                    return
                if resp.status_code != 200:
                    raise UpstreamUnavailable(f"INSEE search on {path} answered HTTP {resp.status_code}")
                try:
                    header, records = check_page(self._json(resp, path), array_key)
                    for i, rec in enumerate(records):
                        try:
                            if check is not None:
                                check(rec)
                        except Malformed as exc:
                            raise Malformed(f"{array_key}[{i}]{identify(rec)}: {exc}") from None
                except Malformed as exc:
                    raise malformed(str(exc)) from None
                if header.get("total") is not None:
                    if total is not None and header["total"] != total:
                        raise malformed(f"header total changed from {total} to {header['total']}")
                    total = header["total"]
                if self.progress and bar is None and total:
                    from tqdm import tqdm

                    bar = tqdm(total=total, desc=f"INSEE {path}", unit="rec", leave=False)
                count += len(records)
                if total is not None and count > total:
                    raise malformed(f"{count} records received, more than the header total {total}")
                yield from records
                if bar is not None:
                    bar.update(len(records))
                nxt = header.get("curseurSuivant")
                if total is not None and count >= total:
                    return
                if not records or not nxt or nxt == header.get("curseur") or nxt in seen:
                    if total is not None:
                        raise malformed(f"the pages end after {count} of the header total {total} records")
                    return
                seen.add(nxt)
                cursor = nxt
        finally:
            if bar is not None:
                bar.close()

    def _search_page(self, path: str, params: dict) -> requests.Response:
        get_url = f"{self.base_url}{path}?{urlencode(params)}"
        if path in self._post_paths or len(get_url) > MAX_GET_URL:
            return self.request(path, params, method="POST")
        resp = self.request(path, params)
        if resp.status_code == 414:
            self._post_paths.add(path)
            return self.request(path, params, method="POST")
        return resp

    def iter_unites_legales(self, q: str) -> Iterator[dict]:
        return self.search("/siren", "unitesLegales", q)

    def iter_etablissements(self, q: str) -> Iterator[dict]:
        return self.search("/siret", "etablissements", q)

    def iter_liens_succession(self, q: str) -> Iterator[dict]:
        return self.search("/siret/liensSuccession", "liensSuccession", q)

    def iter_kind(self, kind: str, q: str) -> Iterator[dict]:
        """The records of a search on `kind`, each checked (mirror.update.validate) before it is yielded."""
        key = kind_key(kind)
        path, array_key, _ = KINDS[key]
        return self.search(path, array_key, q, check=RECORD_CHECKS[key])

    def _lookup(self, path: str, identifier: str, key: str) -> dict | None:
        resp = self.request(f"{path}/{identifier}")
        if resp.status_code == 404:
            return None
        if resp.status_code in (301, 302, 307, 308):
            raise DoublonError(identifier, resp.headers.get("Location"))
        if resp.status_code != 200:
            raise UpstreamUnavailable(f"INSEE lookup of {identifier} answered HTTP {resp.status_code}")
        js = self._json(resp, path)
        record = js.get(key) if isinstance(js, dict) else None
        if record is not None and not isinstance(record, dict):
            raise IntegrityError(
                f"INSEE API answer to {path}/{identifier} is malformed: {key} is not an object"
            )
        return record

    def unite_legale(self, siren: str) -> dict | None:
        """`/siren/{siren}`: the record, None when unknown; DoublonError on a 301 (never followed)."""
        return self._lookup("/siren", siren, "uniteLegale")

    def etablissement(self, siret: str) -> dict | None:
        """`/siret/{siret}`: the record, None when unknown; DoublonError on a 301 (never followed)."""
        return self._lookup("/siret", siret, "etablissement")


def _message(resp: requests.Response) -> str:
    try:
        header = resp.json().get("header") or {}
        return oneline(header.get("message") or f"HTTP {resp.status_code}")
    except (ValueError, AttributeError):
        return f"HTTP {resp.status_code}"
