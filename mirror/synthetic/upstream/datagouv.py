"""A data.gouv.fr-like server for the Sirene dataset, over real HTTP on 127.0.0.1 (tests and demo upstream).

It serves folders of stock files (`<Name>_utf8.zip` and/or `<Name>_utf8.parquet`, one folder per
stock month) the way data.gouv.fr does (its dataset API, /api/1/datasets/<id>/, and the stable r/<id> links):

- `GET /api/1/datasets/5b7ffc618b4c4169d30727e0/` (or the slug): the dataset JSON with `resources[]`
  (id, title, format, url = a dated static URL, latest = `{base}/api/1/datasets/r/<id>`,
  last_modified, filesize, mime, checksum `{type: sha256, value}` on zip resources only), plus PDF
  documentation and decoy resources that a careless title matcher would pick;
- `GET /api/1/datasets/r/<id>` (and `/fr/datasets/r/<id>`): 302 to the static URL of the file
  currently published under that stable id;
- `GET /static/...`: the file, with Content-Length, Accept-Ranges and single-range requests (206).

The geolocation file (`GeolocalisationEtablissement_Sirene_pour_etudes_statistiques_utf8.zip|.parquet` in
a month's folder) is served as data.gouv.fr serves it: a dataset of its own (`/api/1/datasets/
61d5e2d372a52d9f9411ff88/` or its slug), its real stable resource ids, a documentation PDF beside it, and a
publication on the 21st of the month before the stock's (the file a stock downloaded on the 1st goes with).

The published month can change at runtime (`publish(month)`) to test "a newer stock appears".
Test knobs: `cut_after` (close the connection after N body bytes on the first GET of each file),
`corrupt_checksum`, `ignore_range`, `fail_next` (answer 503 to the next N file requests),
`metadata=False` (no filesize nor checksum in the JSON, as a remote resource may have).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import urlsplit

from mirror.core.config import SIRENE_DATASET_ID
from mirror.core.schema import (
    GEOLOCALISATION,
    GEOLOCALISATION_DATASET_ID,
    GEOLOCALISATION_RESOURCE_IDS,
    STOCK_FILES,
)
from mirror.synthetic.upstream import UpstreamServer, send_bytes, serve

DATASET_SLUG = "base-sirene-des-entreprises-et-de-leurs-etablissements-siren-siret"
GEOLOCALISATION_SLUG = "geolocalisation-des-etablissements-du-repertoire-sirene-pour-les-etudes-statistiques"

# The real stable resource ids (reference section 8.1), so URLs look like the real ones.
RESOURCE_IDS = {
    ("StockUniteLegale", "zip"): "825f4199-cadd-486c-ac46-a65a8ea1a047",
    ("StockUniteLegale", "parquet"): "350182c9-148a-46e0-8389-76c2ec1374a3",
    ("StockUniteLegaleHistorique", "zip"): "0835cd60-2c2a-497b-bc64-404de704ce89",
    ("StockUniteLegaleHistorique", "parquet"): "1b9290ed-d0bc-461f-ba31-0250a99cc140",
    ("StockEtablissement", "zip"): "0651fb76-bcf3-4f6a-a38d-bc04fa708576",
    ("StockEtablissement", "parquet"): "a29c1297-1f92-4e2a-8f6b-8c902ce96c5f",
    ("StockEtablissementHistorique", "zip"): "88fbb6b4-0320-443e-b739-b4376a012c32",
    ("StockEtablissementHistorique", "parquet"): "2b3a0c79-f97b-46b8-ac02-8be6c1f01a8c",
    ("StockEtablissementLiensSuccession", "zip"): "9c4d5d9c-4bbb-4b9c-837a-6155cb589e26",
    ("StockEtablissementLiensSuccession", "parquet"): "6ea8c0d2-a4b9-4ea2-ba63-7ec89c2dd4f4",
    ("StockDoublons", "zip"): "d8c31348-8630-4918-b6d1-5dd689b05f29",
    ("StockDoublons", "parquet"): "ec0a0d5f-5d52-4603-a712-b6821076abf0",
}
MIMES = {"zip": "application/zip", "parquet": "application/vnd.apache.parquet", "pdf": "application/pdf"}
MONTHS_FR = (
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
)
_MONTH_DIR = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
_CHUNK = 64 * 1024


def stock_title(name: str, fmt: str, month: str, style: str = "old") -> str:
    """A resource title as data.gouv.fr shows it.

    style "old" (data.gouv pipeline until May 2026): "Sirene : Fichier StockEtablissement du 01 Août 2026";
    style "new" (INSEE since June 2026): "Sirene : Fichier StockEtablissement - 01 juillet 2026".
    Parquet titles end with " (format parquet)".
    """
    year, mon = month.split("-")
    mois = MONTHS_FR[int(mon) - 1]
    if style == "old":
        title = f"Sirene : Fichier {name} du 01 {mois.capitalize()} {year}"
    elif style == "new":
        title = f"Sirene : Fichier {name} - 01 {mois} {year}"
    else:
        raise ValueError(f"unknown title style {style!r}")
    return title + (" (format parquet)" if fmt == "parquet" else "")


def geolocation_title(fmt: str, published: datetime) -> str:
    """A title of the geolocation file's resources. [uncertain] The real titles are not documented in our
    sources; the mirror finds the file by its stable ids or its name, never by this wording."""
    mois = MONTHS_FR[published.month - 1]
    title = f"Fichier {GEOLOCALISATION.name} - {published.day:02d} {mois} {published.year}"
    return title + (" (format parquet)" if fmt == "parquet" else "")


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class DatagouvUpstream:
    """The data.gouv-like app: mount it with `mirror.synthetic.upstream.serve([...])` or use `serve_datagouv`.

    `folders` is either a dict {"YYYY-MM": folder}, a folder holding one `YYYY-MM` subfolder per
    month, or a flat folder of stock files (then `month` names its month). The latest month is
    published unless `published` says otherwise. Attributes can be changed while serving.
    `prefix` mounts the app under a path (its base URL is then `http://host:port<prefix>`).
    """

    def __init__(
        self,
        folders: Path | str | dict[str, Path],
        *,
        month: str | None = None,
        published: str | None = None,
        title_style: str = "old",
        cut_after: int | None = None,
        corrupt_checksum: bool = False,
        ignore_range: bool = False,
        fail_next: int = 0,
        decoys: bool = True,
        prefix: str = "",
        metadata: bool = True,
    ):
        self.months: dict[str, Path] = {}
        if isinstance(folders, dict):
            for key, folder in folders.items():
                self.add_month(key, folder)
        else:
            root = Path(folders)
            subdirs = [p for p in root.iterdir() if p.is_dir() and _MONTH_DIR.match(p.name)]
            if subdirs:
                for sub in subdirs:
                    self.add_month(sub.name, sub)
            elif month:
                self.add_month(month, root)
            else:
                raise ValueError(f"{root} has no YYYY-MM subfolder; pass month= for a flat folder")
        self.published = published or max(self.months)
        self.title_style = title_style
        self.cut_after = cut_after
        self.corrupt_checksum = corrupt_checksum
        self.ignore_range = ignore_range
        self.fail_next = fail_next
        self.metadata = metadata
        self.prefix = prefix.rstrip("/")  # mount point, e.g. "/datagouv" on a shared server ("" = root)
        self.decoys = decoys
        self.revisions: dict[str, int] = {}  # month -> republication count (moves last_modified)
        self.log: list[dict] = []  # every request: method, path, range
        self._cut_done: set[str] = set()
        self._sha_cache: dict[tuple, str] = {}
        self._lock = threading.Lock()

    # ---- runtime control -------------------------------------------------------------------

    def add_month(self, month: str, folder: Path | str) -> None:
        if not _MONTH_DIR.match(month):
            raise ValueError(f"month must be YYYY-MM, got {month!r}")
        self.months[month] = Path(folder)

    def publish(self, month: str) -> None:
        """Makes `month` the stock published behind the stable ids (it must have been added)."""
        if month not in self.months:
            raise ValueError(f"unknown month {month!r}")
        self.published = month

    def republish(self, month: str | None = None) -> None:
        """Re-publishes a month's files with a newer last_modified (as when INSEE replaces a file)."""
        month = month or self.published
        self.revisions[month] = self.revisions.get(month, 0) + 1

    def file_requests(self, method: str = "GET") -> list[dict]:
        """The logged requests for static files (not the API, not the redirects)."""
        with self._lock:
            return [e for e in self.log if e["method"] == method and e["path"].startswith("/static/")]

    # ---- the dataset ------------------------------------------------------------------------

    def _files(self, month: str) -> list[tuple[str, str, Path]]:
        """(name, format, path) of the stock files present for a month, in STOCK_FILES order."""
        out = []
        for stock in STOCK_FILES:
            for fmt, fname in (("zip", stock.zip_name), ("parquet", stock.parquet_name)):
                path = self.months[month] / fname
                if path.is_file():
                    out.append((stock.name, fmt, path))
        return out

    def _geo_files(self, month: str) -> list[tuple[str, Path]]:
        """(format, path) of the geolocation file present in a month's folder."""
        out = []
        for fmt, fname in (("zip", GEOLOCALISATION.zip_name), ("parquet", GEOLOCALISATION.parquet_name)):
            path = self.months[month] / fname
            if path.is_file():
                out.append((fmt, path))
        return out

    def _geo_stamp(self, month: str, index: int) -> tuple[datetime, str]:
        """(publication time, static folder stamp) of the geolocation file going with a stock month: the 21st
        of the previous month, 06:05 + index minutes (plus one hour per republication)."""
        year, mon = map(int, month.split("-"))
        year, mon = (year - 1, 12) if mon == 1 else (year, mon - 1)
        when = datetime(year, mon, 21, 6, 5, 2, 118000, tzinfo=UTC)
        when += timedelta(minutes=index, hours=self.revisions.get(month, 0))
        return when, when.strftime("%Y%m%d-%H%M%S")

    def _geo_static(self, month: str, index: int, fmt: str) -> str:
        _, stamp = self._geo_stamp(month, index)
        return f"/static/resources/{GEOLOCALISATION_SLUG}/{stamp}/geolocalisationetablissement-sirene-{fmt}.{fmt}"

    def _stamp(self, month: str, index: int) -> tuple[str, str]:
        """(last_modified ISO, static folder stamp) of the index-th file of a month (07:30 + index min on the
        1st, plus one hour per republication)."""
        year, mon = map(int, month.split("-"))
        when = datetime(year, mon, 1, 7, 30, 13, 463000, tzinfo=UTC)
        when += timedelta(minutes=index, hours=self.revisions.get(month, 0))
        return when.isoformat(), when.strftime("%Y%m%d-%H%M%S")

    def _static_map(self) -> dict[str, Path]:
        """Static path -> file, for every month (old static URLs stay valid, as on static.data.gouv.fr)."""
        mapping = {}
        for month in self.months:
            for index, (name, fmt, path) in enumerate(self._files(month)):
                _, stamp = self._stamp(month, index)
                mapping[f"/static/resources/{DATASET_SLUG}/{stamp}/stock-{name.lower()}-{fmt}.{fmt}"] = path
            for index, (fmt, path) in enumerate(self._geo_files(month)):
                mapping[self._geo_static(month, index, fmt)] = path
        return mapping

    def _sha256(self, path: Path) -> str:
        stat = path.stat()
        key = (str(path), stat.st_size, stat.st_mtime_ns)
        with self._lock:
            cached = self._sha_cache.get(key)
        if cached is None:
            cached = _file_sha256(path)
            with self._lock:
                self._sha_cache[key] = cached
        return cached

    def _checksum(self, fmt: str, path: Path) -> dict | None:
        """The `checksum` of a resource: sha256 on zip resources only, as the real pipeline published it
        (one wrong hex digit with `corrupt_checksum`; none without `metadata`)."""
        if fmt != "zip" or not self.metadata:
            return None
        value = self._sha256(path)
        if self.corrupt_checksum:
            value = ("0" if value[0] != "0" else "1") + value[1:]
        return {"type": "sha256", "value": value}

    def dataset(self, base: str) -> dict:
        """The dataset JSON of the real shape, for the published month."""
        month = self.published
        resources = []
        if self.decoys:
            resources += self._decoys(base)
        for index, (name, fmt, path) in enumerate(self._files(month)):
            iso, stamp = self._stamp(month, index)
            rid = RESOURCE_IDS[(name, fmt)]
            checksum = self._checksum(fmt, path)
            resources.append(
                {
                    "id": rid,
                    "title": stock_title(name, fmt, month, self.title_style),
                    "description": f"Fichier {name} ({fmt})",
                    "type": "main",
                    "filetype": "file",
                    "format": fmt,
                    "mime": MIMES[fmt],
                    "url": f"{base}/static/resources/{DATASET_SLUG}/{stamp}/stock-{name.lower()}-{fmt}.{fmt}",
                    "latest": f"{base}/api/1/datasets/r/{rid}",
                    "last_modified": iso,
                    "created_at": "2019-01-01T00:00:00+00:00",
                    "filesize": path.stat().st_size if self.metadata else None,
                    "checksum": checksum,
                }
            )
        # Historique / liens resources first: a prefix matcher would grab them for the main names.
        resources.sort(key=lambda r: -len(r["title"]))
        return {
            "id": SIRENE_DATASET_ID,
            "slug": DATASET_SLUG,
            "title": "Base Sirene des entreprises et de leurs établissements (SIREN, SIRET)",
            "last_modified": max((r["last_modified"] for r in resources), default=None),
            "resources": resources,
        }

    def geolocation_dataset(self, base: str) -> dict:
        """The JSON of the geolocation dataset for the published month (the file's resources, if its folder
        has the file, and a documentation PDF)."""
        month = self.published
        resources = [
            {
                "id": "9f6c2157-3c89-4e8d-8473-9894348c84cb",
                "title": "Description du fichier de géolocalisation des établissements (pdf)",
                "format": "pdf",
                "mime": MIMES["pdf"],
                "type": "documentation",
                "filetype": "file",
                "url": f"{base}/static/resources/{GEOLOCALISATION_SLUG}/missing/description-geoloc-v8.pdf",
                "latest": f"{base}/api/1/datasets/r/9f6c2157-3c89-4e8d-8473-9894348c84cb",
                "last_modified": "2099-01-01T00:00:00+00:00",
                "filesize": 1234,
                "checksum": None,
            }
        ]
        for index, (fmt, path) in enumerate(self._geo_files(month)):
            when, _ = self._geo_stamp(month, index)
            rid = GEOLOCALISATION_RESOURCE_IDS[fmt]
            checksum = self._checksum(fmt, path)
            resources.append(
                {
                    "id": rid,
                    "title": geolocation_title(fmt, when),
                    "format": fmt,
                    "mime": MIMES[fmt],
                    "type": "main",
                    "filetype": "file",
                    "url": f"{base}{self._geo_static(month, index, fmt)}",
                    "latest": f"{base}/api/1/datasets/r/{rid}",
                    "last_modified": when.isoformat(),
                    "created_at": "2022-01-05T00:00:00+00:00",
                    "filesize": path.stat().st_size if self.metadata else None,
                    "checksum": checksum,
                }
            )
        return {
            "id": GEOLOCALISATION_DATASET_ID,
            "slug": GEOLOCALISATION_SLUG,
            "title": "Géolocalisation des établissements du répertoire SIRENE pour les études statistiques",
            "last_modified": max((r["last_modified"] for r in resources), default=None),
            "resources": resources,
        }

    def _decoys(self, base: str) -> list[dict]:
        """Resources a careless matcher would take: PDF docs, an old 3.9 file, a title without 'Fichier'."""

        def res(rid, title, fmt, url, last_modified, checksum=None):
            return {
                "id": rid,
                "title": title,
                "format": fmt,
                "mime": MIMES.get(fmt, "text/csv"),
                "type": "main",
                "filetype": "file",
                "url": url,
                "latest": f"{base}/api/1/datasets/r/{rid}",
                "last_modified": last_modified,
                "filesize": 1234,
                "checksum": checksum,
            }

        missing = f"{base}/static/resources/{DATASET_SLUG}/missing"
        return [
            res(
                "9d9b8e0c-0000-4000-8000-000000000001",
                "Description-fichier-stocketablissement-311.pdf",
                "pdf",
                f"{missing}/description-fichier-stocketablissement-311.pdf",
                "2099-01-01T00:00:00+00:00",
            ),
            res(
                "9d9b8e0c-0000-4000-8000-000000000002",
                "Sirene : Fichier StockEtablissement - dessin du fichier (format pdf)",
                "pdf",
                f"{missing}/dessin.pdf",
                "2099-01-01T00:00:00+00:00",
            ),
            res(
                "9d9b8e0c-0000-4000-8000-000000000003",
                "Sirene : Fichier StockEtablissement du 01 Mars 2024",
                "zip",
                f"{missing}/stock-3.9.zip",
                "2024-03-01T06:00:00+00:00",
            ),
            res(
                "9d9b8e0c-0000-4000-8000-000000000004",
                "Sirene : Fichier StockUniteLegale du 01 Mars 2024",
                "parquet",
                f"{missing}/stock-ul-3.9.parquet",
                "2024-03-01T06:00:00+00:00",
            ),
            res(
                "9d9b8e0c-0000-4000-8000-000000000005",
                "StockUniteLegale : extrait de démonstration",
                "zip",
                f"{missing}/extrait.zip",
                "2099-01-01T00:00:00+00:00",
            ),
        ]

    # ---- HTTP -------------------------------------------------------------------------------

    def handle(self, handler: BaseHTTPRequestHandler) -> bool:
        """Answers the request if its path belongs to this app; returns False otherwise."""
        path = urlsplit(handler.path).path
        if self.prefix:
            if not path.startswith(self.prefix + "/"):
                return False
            path = path[len(self.prefix) :]
        with self._lock:
            self.log.append({"method": handler.command, "path": path, "range": handler.headers.get("Range")})
        host, port = handler.server.server_address[:2]
        base = f"http://{handler.headers.get('Host') or f'{host}:{port}'}{self.prefix}"

        match = re.fullmatch(r"/api/1/datasets/([^/]+)/?", path)
        if match and match.group(1) in (SIRENE_DATASET_ID, DATASET_SLUG):
            body = json.dumps(self.dataset(base), ensure_ascii=False).encode()
            send_bytes(handler, 200, body, "application/json; charset=utf-8")
            return True
        if match and match.group(1) in (GEOLOCALISATION_DATASET_ID, GEOLOCALISATION_SLUG):
            body = json.dumps(self.geolocation_dataset(base), ensure_ascii=False).encode()
            send_bytes(handler, 200, body, "application/json; charset=utf-8")
            return True

        match = re.fullmatch(r"/(?:api/1|fr)/datasets/r/([0-9a-f-]+)/?", path)
        if match:
            resources = self.dataset(base)["resources"] + self.geolocation_dataset(base)["resources"]
            target = next((r["url"] for r in resources if r["id"] == match.group(1)), None)
            if target is None:
                send_bytes(handler, 404, b'{"message": "Resource not found"}', "application/json")
            else:
                send_bytes(handler, 302, b"", "text/plain", {"Location": target})
            return True

        if path.startswith("/static/"):
            file = self._static_map().get(path)
            with self._lock:
                failing = self.fail_next > 0
                self.fail_next -= failing
            if failing:
                send_bytes(handler, 503, b"Service Unavailable", "text/plain")
            elif file is None:
                send_bytes(handler, 404, b"Not found", "text/plain")
            else:
                self._send_file(handler, path, file)
            return True
        return False

    def _send_file(self, handler: BaseHTTPRequestHandler, path: str, file: Path) -> None:
        size = file.stat().st_size
        fmt = file.suffix.lstrip(".")
        start, end, status = 0, size - 1, 200
        range_header = handler.headers.get("Range")
        if range_header and not self.ignore_range:
            match = re.fullmatch(r"bytes=(\d+)-(\d*)", range_header.strip())
            if match:
                start = int(match.group(1))
                end = min(int(match.group(2)), size - 1) if match.group(2) else size - 1
                if start >= size or start > end:
                    send_bytes(handler, 416, b"", "text/plain", {"Content-Range": f"bytes */{size}"})
                    return
                status = 206
        length = end - start + 1
        handler.send_response(status)
        handler.send_header("Content-Type", MIMES.get(fmt, "application/octet-stream"))
        handler.send_header("Content-Length", str(length))
        handler.send_header("Accept-Ranges", "none" if self.ignore_range else "bytes")
        if status == 206:
            handler.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        handler.end_headers()
        if handler.command == "HEAD":
            return

        limit = length
        with self._lock:
            if self.cut_after is not None and path not in self._cut_done:
                self._cut_done.add(path)
                limit = min(length, self.cut_after)
        with open(file, "rb") as fh:
            fh.seek(start)
            remaining = limit
            while remaining > 0:
                chunk = fh.read(min(_CHUNK, remaining))
                if not chunk:
                    break
                handler.wfile.write(chunk)
                remaining -= len(chunk)
        if limit < length:  # simulate a dropped connection: fewer bytes than Content-Length, then EOF
            handler.wfile.flush()
            handler.close_connection = True


def serve_datagouv(
    folders: Path | str | dict[str, Path], port: int = 0, **options
) -> tuple[UpstreamServer, str]:
    """Starts a standalone data.gouv-like server on 127.0.0.1; the app is `server.upstream`.

    Returns (server, base_url); use base_url as `--datagouv-url`. Stop it with
    `server.shutdown(); server.server_close()`.
    """
    app = DatagouvUpstream(folders, **options)
    server, base_url = serve([app], port=port)
    server.upstream = app
    return server, base_url
