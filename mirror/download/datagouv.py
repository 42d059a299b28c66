"""Discovery and download of the monthly Sirene stock files published on data.gouv.fr.

Discovery reads the dataset API (`{base}/api/1/datasets/5b7ffc618b4c4169d30727e0/`) and matches
resource titles `Fichier <Name>` followed by a non-letter (`StockEtablissement` is a prefix of
`StockEtablissementHistorique`...), format zip or parquet, keeping the latest by `last_modified`.
The stock month is the month named in the title ("du 01 Août 2026", "- 01 juillet 2026" -> 2026-08 /
2026-07: the publication month, an image of the register at the end of the previous month), else
the month of `last_modified`.

The optional seventh input, INSEE's geolocation file (GeolocalisationEtablissement_Sirene_pour_etudes_
statistiques, `--geolocalisation`), is a resource of another dataset (`61d5e2d372a52d9f9411ff88`), published
around the 21st: a resource of that dataset is it when its id is one of the file's stable ids or its title
or URL names the file (zip or parquet, the latest by `last_modified`). It is saved beside the stock it
goes with, in the stock month's folder.

Downloads go to `DATA_DIR/downloads/<YYYY-MM>/<Name>_utf8.<zip|parquet>` through the stable
`r/<id>` link (302 to the dated static file), via `<file>.part` resumed with HTTP Range, verified
against the published size and checksum, with a sidecar `<file>.json` (url, last_modified,
filesize, checksum, our sha256, downloaded_at) used to skip files we already have.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import sys
import time
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import requests
from tqdm import tqdm

from mirror import __version__
from mirror.core.config import DATAGOUV_URL_ENV, DEFAULT_DATAGOUV_URL, SIRENE_DATASET_ID
from mirror.core.errors import IntegrityError, MirrorError, UpstreamUnavailable
from mirror.core.schema import (
    GEOLOCALISATION,
    GEOLOCALISATION_DATASET_ID,
    GEOLOCALISATION_RESOURCE_IDS,
    STOCK_FILES,
    STOCK_FILES_BY_KEY,
    STOCK_FILES_BY_NAME,
)

FORMATS = ("auto", "parquet", "zip")
TIMEOUT = (10, 60)  # (connect, read) seconds, on every request
DEFAULT_RETRIES = 4
DEFAULT_BACKOFF = 1.0  # seconds; doubled at each retry
_CHUNK = 1 << 20  # hashing
_NET_CHUNK = 64 * 1024  # small: bytes read before a dropped connection are kept for the resume

_NAMES_LONGEST_FIRST = sorted((f.name for f in STOCK_FILES), key=len, reverse=True)
# "Fichier <Name>" followed by a non-letter (or the end): never a prefix of a longer name.
_TITLE_RE = re.compile(r"\bFichier\s+(" + "|".join(_NAMES_LONGEST_FIRST) + r")(?![^\W\d_])", re.IGNORECASE)
_MONTH_NAMES = "janvier fevrier mars avril mai juin juillet aout septembre octobre novembre decembre".split()
_MONTHS = {m: i + 1 for i, m in enumerate(_MONTH_NAMES)}
_MONTH_RE = re.compile(r"\b(" + "|".join(_MONTHS) + r")\s+(\d{4})\b")
_MONTH_ARG = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
# The six stock files, then the geolocation file (the order of `pick`'s answer).
_ORDER = {f.name: i for i, f in enumerate((*STOCK_FILES, GEOLOCALISATION))}


@dataclass(frozen=True)
class Resource:
    """One stock file resource of the data.gouv.fr dataset."""

    name: str  # INSEE base name, e.g. "StockEtablissement"
    format: str  # "zip" or "parquet"
    url: str  # the stable `latest` link, {base}/api/1/datasets/r/<id>
    title: str
    last_modified: str  # ISO 8601 as published
    filesize: int | None
    checksum_type: str | None
    checksum_value: str | None
    month: str  # YYYY-MM
    id: str = ""
    static_url: str = ""  # the dated static URL (informative; we download through `url`)

    @property
    def filename(self) -> str:
        return f"{self.name}_utf8.{self.format}"


# ---------------------------------------------------------------------------------------------
# Discovery
# ---------------------------------------------------------------------------------------------


def datagouv_url(value: str | None = None) -> str:
    """The data.gouv.fr base URL: the explicit value, else $MIRROR_DATAGOUV_URL, else the real site."""
    url = (value or os.environ.get(DATAGOUV_URL_ENV) or DEFAULT_DATAGOUV_URL).strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise MirrorError(f"invalid data.gouv.fr URL {url!r}: expected http(s)://host[:port]")
    return url


def match_title(title: str) -> str | None:
    """The INSEE stock name a resource title is about ("Sirene : Fichier StockEtablissement du ..."), or None."""
    found = _TITLE_RE.search(title or "")
    if not found:
        return None
    return next(n for n in STOCK_FILES_BY_NAME if n.lower() == found.group(1).lower())


def title_month(title: str) -> str | None:
    """YYYY-MM of the date in a title ("01 Août 2026", "01 juillet 2026", accents or not), or None."""
    plain = unicodedata.normalize("NFKD", title or "").encode("ascii", "ignore").decode().lower()
    found = _MONTH_RE.search(plain)
    return f"{found.group(2)}-{_MONTHS[found.group(1)]:02d}" if found else None


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _resource_format(raw: dict) -> str | None:
    fmt = (raw.get("format") or "").strip().lower().lstrip(".")
    if not fmt:  # some resources have no format: use the file extension
        path = (raw.get("url") or "").split("?")[0].lower()
        fmt = path.rsplit(".", 1)[-1] if "." in path.rsplit("/", 1)[-1] else ""
    return fmt if fmt in ("zip", "parquet") else None


def match_geolocation(raw: dict) -> str | None:
    """GEOLOCALISATION.name when a resource of the geolocation dataset is the file itself (one of its stable
    ids, or its name in the title or URL, underscores and case aside), else None (documentation...)."""
    if raw.get("id") in GEOLOCALISATION_RESOURCE_IDS.values():
        return GEOLOCALISATION.name
    wanted = GEOLOCALISATION.name.replace("_", "").lower()
    for text in (raw.get("title") or "", (raw.get("url") or "").rsplit("/", 1)[-1]):
        if wanted in re.sub(r"[\W_]", "", unicodedata.normalize("NFKD", text)).lower():
            return GEOLOCALISATION.name
    return None


def parse_resources(dataset: dict, matcher: Callable[[dict], str | None] | None = None) -> list[Resource]:
    """The stock resources of a dataset JSON: the latest by last_modified per (name, format). `matcher`
    names the file a raw resource is (default: its title, `match_title`)."""
    best: dict[tuple[str, str], tuple[datetime, Resource]] = {}
    for raw in dataset.get("resources") or []:
        if not isinstance(raw, dict):
            continue
        name = matcher(raw) if matcher else match_title(raw.get("title", ""))
        fmt = _resource_format(raw)
        if name is None or fmt is None:
            continue
        modified = _parse_time(raw.get("last_modified"))
        month = title_month(raw.get("title", "")) or (modified.strftime("%Y-%m") if modified else None)
        url = raw.get("latest") or raw.get("url")
        if month is None or not url:
            continue
        checksum = raw.get("checksum") if isinstance(raw.get("checksum"), dict) else {}
        size = raw.get("filesize")
        resource = Resource(
            name=name,
            format=fmt,
            url=url,
            title=raw.get("title") or "",
            last_modified=raw.get("last_modified") or "",
            filesize=int(size) if isinstance(size, int | float) and size > 0 else None,
            checksum_type=str(checksum.get("type") or "sha256").lower() if checksum.get("value") else None,
            checksum_value=str(checksum["value"]).strip().lower() if checksum.get("value") else None,
            month=month,
            id=raw.get("id") or "",
            static_url=raw.get("url") or "",
        )
        key = (name, fmt)
        stamp = modified or datetime.min.replace(tzinfo=UTC)
        if key not in best or stamp > best[key][0]:
            best[key] = (stamp, resource)
    return sorted((r for _, r in best.values()), key=lambda r: (_ORDER[r.name], r.format))


def pick(
    resources: Iterable[Resource], fmt: str = "auto", names: Iterable[str] | None = None
) -> list[Resource]:
    """One resource per stock name in the wanted format.

    Only the newest month of each name is eligible, whatever the format (a Parquet resource lagging
    behind the zip is never taken for the current stock). "auto" prefers Parquet and falls back to
    zip. `names` restricts to those INSEE names (all six when None); names without an eligible
    resource are left out.
    """
    if fmt not in FORMATS:
        raise MirrorError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    resources = list(resources)
    wanted = set(names) if names is not None else set(STOCK_FILES_BY_NAME)
    newest: dict[str, str] = {}
    for res in resources:
        newest[res.name] = max(newest.get(res.name, res.month), res.month)
    chosen: dict[str, Resource] = {}
    for res in resources:
        if res.name not in wanted or res.month != newest[res.name] or fmt not in ("auto", res.format):
            continue
        current = chosen.get(res.name)
        rank = (res.month, res.format == "parquet")
        if current is None or rank > (current.month, current.format == "parquet"):
            chosen[res.name] = res
    return sorted(chosen.values(), key=lambda r: _ORDER[r.name])


def discover(
    base_url: str | None = None,
    session: requests.Session | None = None,
    *,
    retries: int = DEFAULT_RETRIES,
    backoff: float = DEFAULT_BACKOFF,
) -> list[Resource]:
    """Reads the Sirene dataset on data.gouv.fr; returns the latest resource per (name, format)."""
    return parse_resources(_dataset(base_url, SIRENE_DATASET_ID, session, retries, backoff))


def discover_geolocation(
    base_url: str | None = None,
    session: requests.Session | None = None,
    *,
    retries: int = DEFAULT_RETRIES,
    backoff: float = DEFAULT_BACKOFF,
) -> list[Resource]:
    """Reads the geolocation dataset on data.gouv.fr; returns the latest zip / parquet of the file."""
    return parse_resources(
        _dataset(base_url, GEOLOCALISATION_DATASET_ID, session, retries, backoff), match_geolocation
    )


def _dataset(base_url: str | None, dataset_id: str, session, retries: int, backoff: float) -> dict:
    """The JSON of a data.gouv.fr dataset (`{base}/api/1/datasets/<id>/`)."""
    base = datagouv_url(base_url)
    url = f"{base}/api/1/datasets/{dataset_id}/"
    with _session(session) as http:
        response = _request(http, url, retries=retries, backoff=backoff, what="the data.gouv.fr dataset")
        with response:
            if response.status_code != 200:
                raise UpstreamUnavailable(
                    f"data.gouv.fr dataset API answered HTTP {response.status_code} at {url}"
                )
            try:
                dataset = response.json()
            except ValueError:
                raise IntegrityError(f"data.gouv.fr dataset API at {url} did not answer JSON") from None
    if not isinstance(dataset, dict):
        raise IntegrityError(f"data.gouv.fr dataset API at {url} answered an unexpected document")
    return dataset


def stock_month(resources: Iterable[Resource]) -> str:
    """The month of a set of picked resources: the oldest month among the required files
    (StockUniteLegale, StockEtablissement) when present, else among all."""
    resources = list(resources)
    if not resources:
        raise MirrorError("no stock file resource found on data.gouv.fr")
    required = [r.month for r in resources if STOCK_FILES_BY_NAME[r.name].required]
    return min(required or [r.month for r in resources])


def latest_month(
    base_url: str | None = None, fmt: str = "auto", session: requests.Session | None = None, **http
) -> str:
    """YYYY-MM of the latest complete stock published on data.gouv.fr (both required files present)."""
    picked = pick(discover(base_url, session, **http), fmt)
    _require_main_files(picked, fmt)
    return stock_month(picked)


def _require_main_files(picked: list[Resource], fmt: str) -> None:
    have = {r.name for r in picked}
    missing = [f.name for f in STOCK_FILES if f.required and f.name not in have]
    if missing:
        kind = "" if fmt == "auto" else f" {fmt}"
        raise MirrorError(
            f"data.gouv.fr lists no{kind} resource for {', '.join(missing)}"
            + ("" if fmt == "auto" else "; try --format auto")
        )


def resolve_names(values: Iterable[str]) -> list[str]:
    """INSEE names from user input: INSEE names or our table keys, any case, comma-separated allowed
    (GeolocalisationEtablissement_Sirene_pour_etudes_statistiques or geolocalisation: the geolocation file)."""
    lookup = {n.lower(): n for n in STOCK_FILES_BY_NAME}
    lookup |= {k.lower(): f.name for k, f in STOCK_FILES_BY_KEY.items()}
    lookup |= {GEOLOCALISATION.name.lower(): GEOLOCALISATION.name, GEOLOCALISATION.key: GEOLOCALISATION.name}
    names = []
    for value in values:
        for item in filter(None, (v.strip() for v in value.split(","))):
            name = lookup.get(item.lower().removesuffix("_utf8"))
            if name is None:
                raise MirrorError(
                    f"unknown stock file {item!r}; expected one of {', '.join(STOCK_FILES_BY_NAME)} "
                    f"or {GEOLOCALISATION.name}"
                )
            if name not in names:
                names.append(name)
    return names


# ---------------------------------------------------------------------------------------------
# HTTP with retries
# ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _session(session: requests.Session | None):
    """The caller's session, or a new one (closed afterwards) that identifies the mirror."""
    if session is not None:
        yield session
        return
    with requests.Session() as own:
        own.headers["User-Agent"] = f"sirene-mirror/{__version__} (+python-requests)"
        yield own


def _reason(exc: BaseException) -> str:
    """A short human reason for a requests exception ("Connection refused", "timed out"...)."""
    text = str(exc)
    found = re.findall(r"\[Errno -?\d+\] ([^'\"\)]+)", text)
    if found:
        return found[-1].strip()
    if isinstance(exc, requests.Timeout):
        return "timed out"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return "connection closed before the end of the file"
    return text.splitlines()[0][:200] if text else type(exc).__name__


def _request(
    session: requests.Session, url: str, *, retries: int, backoff: float, what: str, **kwargs
) -> requests.Response:
    """GET with a timeout, retrying connection errors, 429 and 5xx with exponential backoff."""
    last = ""
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(backoff * 2 ** (attempt - 1))
        try:
            response = session.get(url, timeout=TIMEOUT, **kwargs)
        except (
            requests.exceptions.MissingSchema,
            requests.exceptions.InvalidSchema,
            requests.exceptions.InvalidURL,
        ) as exc:
            raise MirrorError(f"invalid URL {url!r}: {_reason(exc)}") from None
        except requests.RequestException as exc:
            last = _reason(exc)
            continue
        if response.status_code == 429 or response.status_code >= 500:
            last = f"HTTP {response.status_code}"
            response.close()
            continue
        return response
    tries = f" after {retries + 1} attempts" if retries else ""
    raise UpstreamUnavailable(f"cannot get {what} from {url}: {last}{tries}")


# ---------------------------------------------------------------------------------------------
# Download
# ---------------------------------------------------------------------------------------------


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _identity(res: Resource) -> dict:
    """What identifies one published version of a file."""
    checksum = {"type": res.checksum_type, "value": res.checksum_value} if res.checksum_value else None
    return {
        "url": res.url,
        "last_modified": res.last_modified,
        "filesize": res.filesize,
        "checksum": checksum,
    }


def already_downloaded(res: Resource, target: Path) -> bool:
    """True when `target` holds this very version (same last_modified, size and checksum per its sidecar)."""
    meta = _read_json(target.with_name(target.name + ".json"))
    if meta is None or not target.is_file():
        return False
    ident = _identity(res)
    same = all(meta.get(k) == ident[k] for k in ("last_modified", "filesize", "checksum"))
    return same and meta.get("size") == target.stat().st_size


def _hash_file(path: Path, algo: str | None) -> tuple[str, str | None]:
    """(sha256, hex digest with the published algorithm `algo` or None) in one read of the file."""
    sha = hashlib.sha256()
    other = hashlib.new(algo) if algo and algo != "sha256" else None
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            sha.update(chunk)
            if other:
                other.update(chunk)
    if algo is None:
        return sha.hexdigest(), None
    return sha.hexdigest(), (other or sha).hexdigest()


def _attempt(session: requests.Session, res: Resource, part: Path, bar: tqdm) -> str | None:
    """One GET of the file, appended to `part` (Range) or replacing it (200).

    Returns None when the body was received completely, else the reason of a transient failure.
    Raises MirrorError on a definitive failure (404, 403...).
    """
    have = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    try:
        response = session.get(res.url, headers=headers, stream=True, timeout=TIMEOUT)
    except (
        requests.exceptions.MissingSchema,
        requests.exceptions.InvalidSchema,
        requests.exceptions.InvalidURL,
    ) as exc:
        raise MirrorError(f"invalid URL {res.url!r}: {_reason(exc)}") from None
    except requests.RequestException as exc:
        return _reason(exc)
    with response:
        status = response.status_code
        if status == 429 or status >= 500:
            return f"HTTP {status}"
        if status == 416 and have:  # nothing after our bytes: complete per the server, or a stale part
            total = response.headers.get("Content-Range", "").rpartition("/")[2]
            if total.isdigit() and int(total) == have:
                return None
            part.unlink()
            bar.reset(total=res.filesize)
            return "stale partial file restarted"
        if status == 206 and have:
            if not response.headers.get("Content-Range", "").startswith(f"bytes {have}-"):
                part.unlink()  # a range we did not ask for: start over
                bar.reset(total=res.filesize)
                return "unexpected Content-Range"
            mode, start = "ab", have
        elif status == 200:  # full body: first request, or a server that ignores Range
            mode, start = "wb", 0
            bar.reset(total=res.filesize)
        else:
            raise MirrorError(
                f"download of {res.name} ({res.format}) failed: HTTP {status} from {response.url}"
            )
        length = response.headers.get("Content-Length", "")
        try:
            with open(part, mode) as fh:
                for chunk in response.iter_content(_NET_CHUNK):
                    fh.write(chunk)
                    bar.update(len(chunk))
        except requests.RequestException as exc:
            return _reason(exc)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise MirrorError(
                    f"disk full while downloading {res.name} into {part.parent}; free some space "
                    "and run again to resume"
                ) from None
            raise
        if length.isdigit() and part.stat().st_size - start < int(length):
            return "connection closed before the end of the file"
        return None


def _transfer(
    session: requests.Session, res: Resource, part: Path, *, retries: int, backoff: float, progress: bool
) -> None:
    """Fills `part` with the whole file, resuming with Range requests after transient failures.

    Gives up after `retries` further attempts without new bytes (exponential backoff); an attempt
    that brought new bytes restarts the count, so a flaky connection still finishes a large file.
    With retries=0 the first failure is final (the `.part` stays for a later run).
    """
    failures = 0
    have = part.stat().st_size if part.exists() else 0
    bar = tqdm(
        total=res.filesize,
        initial=have,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=f"{res.name}.{res.format}",
        disable=not progress or not sys.stderr.isatty(),
        leave=True,
    )
    with bar:
        while True:
            have = part.stat().st_size if part.exists() else 0
            if res.filesize is not None and have >= res.filesize:
                return  # complete (or too long: the size check rejects it)
            reason = _attempt(session, res, part, bar)
            if reason is None:
                return
            now = part.stat().st_size if part.exists() else 0
            failures = 1 if now > have else failures + 1
            if failures > retries:
                raise MirrorError(
                    f"download of {res.name} ({res.format}) failed after {failures} attempts: "
                    f"{reason}; run again to resume"
                )
            time.sleep(backoff * 2 ** max(failures - 1, 0))


def fetch(
    session: requests.Session,
    res: Resource,
    target: Path,
    *,
    retries: int = DEFAULT_RETRIES,
    backoff: float = DEFAULT_BACKOFF,
    progress: bool = True,
) -> dict:
    """Downloads one resource to `target` (via `.part`, resumable), verifies it, writes the sidecar.

    Returns the sidecar metadata. On a size or checksum mismatch the partial file is deleted and
    MirrorError is raised: nothing ever appears under the final name unverified.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    part_meta = target.with_name(target.name + ".part.json")
    ident = _identity(res)
    if part.exists() and {**(_read_json(part_meta) or {}), "url": res.url} != ident:
        part.unlink()  # a leftover of another version: never mix bytes of two versions
    _write_json(part_meta, ident)

    _transfer(session, res, part, retries=retries, backoff=backoff, progress=progress)

    def reject(message: str):
        part.unlink(missing_ok=True)
        part_meta.unlink(missing_ok=True)
        raise MirrorError(f"{res.name} ({res.format}): {message}; the partial file was deleted, run again")

    size = part.stat().st_size
    if res.filesize is not None and size != res.filesize:
        reject(f"downloaded {size} bytes but data.gouv.fr announces {res.filesize}")
    algo = res.checksum_type if res.checksum_type in hashlib.algorithms_available else None
    sha256, published = _hash_file(part, algo)
    if algo and published != res.checksum_value:
        reject(f"{algo} checksum mismatch (published {res.checksum_value}, got {published})")
    os.replace(part, target)
    meta = {
        **ident,
        "name": res.name,
        "format": res.format,
        "month": res.month,
        "title": res.title,
        "resource_id": res.id,
        "static_url": res.static_url,
        "size": size,
        "sha256": sha256,
        "checksum_verified": bool(algo),
        "downloaded_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    _write_json(target.with_name(target.name + ".json"), meta)
    part_meta.unlink(missing_ok=True)
    return meta


class _Lock:
    """One download at a time per data directory (an flock on downloads/.download.lock)."""

    def __init__(self, folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / ".download.lock"

    def __enter__(self):
        self.fh = open(self.path, "a+")
        try:
            fcntl.flock(self.fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.fh.seek(0)
            holder = self.fh.read().strip() or "unknown"
            self.fh.close()
            raise MirrorError(f"another download is running (pid {holder}; lock {self.path})") from None
        self.fh.seek(0)
        self.fh.truncate()
        self.fh.write(str(os.getpid()))
        self.fh.flush()
        return self

    def __exit__(self, *exc):
        self.fh.seek(0)
        self.fh.truncate()
        fcntl.flock(self.fh, fcntl.LOCK_UN)
        self.fh.close()


def _human(size: int | None) -> str:
    if size is None:
        return "unknown size"
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def download_stock(
    data_dir: Path,
    base_url: str | None = None,
    fmt: str = "auto",
    files: Iterable[str] | None = None,
    progress: bool = True,
    *,
    month: str | None = None,
    session: requests.Session | None = None,
    retries: int = DEFAULT_RETRIES,
    backoff: float = DEFAULT_BACKOFF,
    report: Callable[[str], None] | None = None,
    geolocation: bool = False,
) -> list[Path]:
    """Downloads the latest monthly stock files into DATA_DIR/downloads/<YYYY-MM>/; returns their paths.

    `files`: INSEE names (or table keys) to restrict to; all six by default (a missing optional file
    is reported, a missing StockUniteLegale/StockEtablissement is an error). `month`: refuse unless
    the latest published stock is that month. Files already present (same last_modified, size and
    checksum) are skipped without any request. `report` receives one line per file.
    `geolocation` (or its name among `files`): also the geolocation file, from its own dataset, into the
    stock month's folder (when only it is named, the month of the stock published now). Asked for
    with the flag and not published: a warning; named in `files` and not published: an error.
    """
    say = report or (lambda line: None)
    names = resolve_names(files) if files else None
    geo_named = names is not None and GEOLOCALISATION.name in names
    if geo_named:
        names = [n for n in names if n != GEOLOCALISATION.name]
    with _session(session) as http:
        resources = discover(base_url, http, retries=retries, backoff=backoff)
        if names == []:  # only the geolocation file: it goes into the folder of the stock published now
            picked = []
            published = _check_selection(pick(resources), None, "auto", month, lambda line: None)
        else:
            picked = pick(resources, fmt, names)
            published = _check_selection(picked, names, fmt, month, say)
        geo: list[Resource] = []
        if geolocation or geo_named:
            geo = pick(
                discover_geolocation(base_url, http, retries=retries, backoff=backoff),
                fmt,
                [GEOLOCALISATION.name],
            )
            if not geo:
                kind = "" if fmt == "auto" else f" {fmt}"
                message = f"data.gouv.fr lists no{kind} resource for {GEOLOCALISATION.name}"
                if geo_named:
                    raise MirrorError(message)
                say(f"warning: {message}; skipped")
        root = Path(data_dir) / "downloads"
        paths = []
        with _Lock(root):
            todo = []
            for res in picked + geo:
                target = root / (published if res.name == GEOLOCALISATION.name else res.month) / res.filename
                paths.append(target)
                if already_downloaded(res, target):
                    say(f"skipped     {res.name} ({res.format}, {res.month}): already present at {target}")
                else:
                    todo.append((res, target))
            _check_space(root, todo)
            for res, target in todo:
                meta = fetch(http, res, target, retries=retries, backoff=backoff, progress=progress)
                if meta["checksum_verified"]:
                    check = f", {res.checksum_type} verified"
                elif res.checksum_value:
                    check = f", checksum type {res.checksum_type!r} not supported: size checked only"
                else:
                    check = ""
                say(
                    f"downloaded  {res.name} ({res.format}, {res.month}, {_human(meta['size'])}{check}) -> {target}"
                )
    if picked and published != max(r.month for r in picked):
        say(
            f"note: the newest files are from {max(r.month for r in picked)}, the complete stock from {published}"
        )
    return paths


def _check_selection(
    picked: list[Resource], names: list[str] | None, fmt: str, month: str | None, say: Callable[[str], None]
) -> str:
    """Checks the picked resources (main files present, --month); returns the stock month."""
    have = {r.name for r in picked}
    if names is None:
        _require_main_files(picked, fmt)
        kind = "" if fmt == "auto" else f"{fmt} "
        for stock in STOCK_FILES:
            if not stock.required and stock.name not in have:
                say(f"warning: data.gouv.fr lists no {kind}resource for {stock.name}; skipped")
    else:
        missing = [n for n in names if n not in have]
        if missing:
            kind = "" if fmt == "auto" else f" {fmt}"
            raise MirrorError(f"data.gouv.fr lists no{kind} resource for {', '.join(missing)}")
    published = stock_month(picked)
    if month is not None:
        if not _MONTH_ARG.match(month):
            raise MirrorError(f"--month must be YYYY-MM, got {month!r}")
        if month != published:
            raise MirrorError(f"data.gouv.fr publishes the {published} stock, not {month}")
    for res in picked:
        if res.month < published:
            say(f"warning: {res.name} is still from {res.month}, the stock from {published}")
    return published


def _check_space(root: Path, todo: list[tuple[Resource, Path]]) -> None:
    """Refuses to start when the announced sizes cannot fit on the disk."""
    need = 0
    for res, target in todo:
        part = target.with_name(target.name + ".part")
        have = part.stat().st_size if part.exists() else 0
        need += max((res.filesize or 0) - have, 0)
    free = shutil.disk_usage(root).free
    if need > free:
        raise MirrorError(f"not enough disk space in {root}: {_human(need)} needed, {_human(free)} free")
