"""An INSEE-like API Sirene 3.11 over a `DailyChanges` stream, served over real HTTP on 127.0.0.1.

`InseeApp(changes).handle(handler)` answers, under `prefix` (default `/api-sirene/3.11`):

- `GET|POST /siren`, `GET|POST /siret` (multi-criteria search; POST = `application/x-www-form-urlencoded`),
  `GET /siret/liensSuccession`: `q` with `field:value` clauses joined by `AND`: dateDernierTraitement*
  (a day `2026-10-05`, a month, a year, a timestamp, or a range `[A TO B]` with `*` for an open end),
  `siren:X`, `siret:X` or any other non-historised column (exact value); `nombre` (<= 1000), `curseur`
  (opaque; the last page is empty with `curseur == curseurSuivant`) or `debut`; 404 with the error JSON
  when nothing matches;
- `GET /siren/{siren}`, `GET /siret/{siret}` (301 for a doublon, never followed by the mirror);
- `GET /informations` (collections by name, dates of the last published day).

The data is what the real API would hold on `today`: the stock plus the changes of every day up to `today`
(days after it are not published), latest version of each unit only. Test knobs (attributes, changeable at
run time): `today`, `throttle_every` (429 with `Retry-After: retry_after` on every Nth call), `fail_next`
(answer 503 to the next N calls), `down` (503 always), `max_get_url` (414 for longer GET URLs), `api_key`
(the key required; None accepts any non-empty key), `mass_treatment` (dateDernierTraitementDeMasse).
"""

from __future__ import annotations

import base64
import bisect
import json
import re
import threading
from datetime import date, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from mirror.core.config import INSEE_KEY_HEADER
from mirror.core.insee_records import etablissement_record, lien_record, unite_legale_record
from mirror.core.schema import LAST_PROCESSED
from mirror.synthetic.upstream import UpstreamServer, make_handler, send_bytes
from mirror.synthetic.upstream.changes import DailyChanges

PREFIX = "/api-sirene/3.11"
MAX_NOMBRE = 1000
JSON = "application/json;charset=utf-8"
_ERRORS = {
    400: "Nombre incorrect de paramètres ou les paramètres sont mal formatés",
    401: "Jeton d'accès manquant ou invalide",
    404: "Aucun élément trouvé",
    414: "Requête trop longue",
    429: "Quota d'interrogations de l'API dépassé",
    503: "Service indisponible",
}
_SEARCH = {
    "/siren": ("unites_legales", "unitesLegales", "siren"),
    "/siret": ("etablissements", "etablissements", "siret"),
    "/siret/liensSuccession": ("liens_succession", "liensSuccession", None),
}
_COLLECTIONS = (
    ("Unités Légales", "unites_legales"),
    ("Établissements", "etablissements"),
    ("Liens de succession", "liens_succession"),
)
_CLAUSE = re.compile(r"^\s*([A-Za-z0-9]+)\s*:\s*(\[.*\]|\"[^\"]*\"|\S+)\s*$")
_RANGE = re.compile(r"^\[\s*(\S+)\s+TO\s+(\S+)\s*\]$")
_PARTIAL = re.compile(r"^\d{4}(-\d{2}(-\d{2}(T[\d:.]+)?)?)?$")


class QueryError(ValueError):
    pass


def _next_partial(value: str) -> str:
    """The exclusive upper bound of a partial date: 2026 -> 2027, 2026-10 -> 2026-11, 2026-10-05 -> 2026-10-06."""
    if len(value) == 4:
        return f"{int(value) + 1:04d}"
    if len(value) == 7:
        y, m = int(value[:4]), int(value[5:7])
        return f"{y + m // 12:04d}-{m % 12 + 1:02d}"
    if len(value) == 10:
        return (date.fromisoformat(value) + timedelta(days=1)).isoformat()
    return value + "\x7f"  # a timestamp: everything starting with it


def parse_q(q: str, table: str, columns: list[str]) -> tuple[str, list]:
    """A `q` (clauses joined by AND) -> (SQL predicate, parameters). Raises QueryError."""
    if not q or not q.strip():
        return "TRUE", []
    preds, params = [], []
    for clause in re.split(r"\s+AND\s+", q.strip()):
        m = _CLAUSE.match(clause)
        if not m:
            raise QueryError(f"Erreur de syntaxe dans la requête : {clause[:80]}")
        fld, value = m.group(1), m.group(2)
        if fld not in columns:
            raise QueryError(f"Champ inconnu : {fld}")
        col = f"replace(coalesce(\"{fld}\", ''), ' ', 'T')"
        rng = _RANGE.match(value)
        if rng:
            lo, hi = rng.group(1), rng.group(2)
            for bound in (lo, hi):
                if bound != "*" and not _PARTIAL.match(bound):
                    raise QueryError(f"Erreur de syntaxe, borne incorrecte dans l'intervalle : {bound}")
            if lo != "*" and hi != "*" and lo[: len(hi)] > hi:
                raise QueryError(f"Erreur de syntaxe, ordre incorrect dans l'intervalle : {lo} TO {hi}")
            if lo != "*":
                preds.append(f"{col} >= ?")
                params.append(lo)
            if hi != "*":
                preds.append(f"{col} < ?")
                params.append(_next_partial(hi))
            preds.append(f'"{fld}" IS NOT NULL')
        elif _PARTIAL.match(value) and (fld.startswith("date")):
            preds.append(f"{col} >= ? AND {col} < ?")
            params += [value, _next_partial(value)]
        else:
            preds.append(f'"{fld}" = ?')
            params.append(value.strip('"'))
    return " AND ".join(preds), params


def _cursor(key: str) -> str:
    return "AoEp" + base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def _uncursor(cursor: str) -> str:
    if not cursor.startswith("AoEp"):
        raise QueryError("Curseur invalide")
    raw = cursor[4:]
    try:
        return base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
    except ValueError:
        raise QueryError("Curseur invalide") from None


class InseeApp:
    """The INSEE-like API over `changes` (see module doc). Mount it with mirror.synthetic.upstream.serve / make_handler."""

    def __init__(
        self,
        changes: DailyChanges,
        *,
        prefix: str = PREFIX,
        api_key: str | None = None,
        today: date | None = None,
        throttle_every: int = 0,
        retry_after: float = 1,
        fail_next: int = 0,
        down: bool = False,
        max_get_url: int = 8000,
        mass_treatment: datetime | None = None,
    ):
        self.changes = changes
        self.prefix = prefix.rstrip("/")
        self.api_key = api_key
        self.today = today or changes.days[-1]
        self.throttle_every = throttle_every
        self.retry_after = retry_after
        self.fail_next = fail_next
        self.down = down
        self.max_get_url = max_get_url
        first = changes.days[0]
        self.mass_treatment = mass_treatment or datetime(first.year, first.month, 1) - timedelta(
            days=40, hours=-5
        )
        self.calls: list[tuple[str, str, dict]] = []  # (method, path under prefix, params) of every call
        self._lock = threading.Lock()
        self._cache: dict[tuple, list[dict]] = {}

    # ---------------------------------------------------------------- plumbing

    def as_of(self) -> date | None:
        """The last day of changes visible on `today` (None: the stock only)."""
        if self.today < self.changes.days[0]:
            return None
        return min(self.today, self.changes.days[-1])

    def _send(self, handler, status: int, body: dict, headers: dict | None = None) -> None:
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        send_bytes(handler, status, data, JSON, headers)

    def _error(self, handler, status: int, message: str | None = None, headers: dict | None = None) -> None:
        self._send(
            handler, status, {"header": {"statut": status, "message": message or _ERRORS[status]}}, headers
        )

    def handle(self, handler: BaseHTTPRequestHandler) -> bool:
        parts = urlsplit(handler.path)
        path = parts.path
        if not (path == self.prefix or path.startswith(self.prefix + "/")):
            return False
        sub = path[len(self.prefix) :].rstrip("/") or "/"
        params = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        if handler.command == "POST":
            length = int(handler.headers.get("Content-Length") or 0)
            body = handler.rfile.read(length).decode("utf-8") if length else ""
            params.update({k: v[-1] for k, v in parse_qs(body, keep_blank_values=True).items()})
        with self._lock:
            self.calls.append((handler.command, sub, dict(params)))
            n = len(self.calls)
            fail = self.down or self.fail_next > 0
            if self.fail_next > 0:
                self.fail_next -= 1
        key = handler.headers.get(INSEE_KEY_HEADER)
        if not key or (self.api_key is not None and key != self.api_key):
            self._error(handler, 401)
            return True
        if fail:
            self._error(handler, 503)
            return True
        if self.throttle_every and n % self.throttle_every == 0:
            self._error(handler, 429, headers={"Retry-After": f"{self.retry_after:g}"})
            return True
        if handler.command == "GET" and len(handler.path) > self.max_get_url:
            self._error(handler, 414)
            return True
        try:
            if sub == "/informations":
                self._send(handler, 200, self.informations())
            elif sub in _SEARCH and (handler.command in ("GET", "HEAD") or sub != "/siret/liensSuccession"):
                self._search(handler, sub, params)
            elif re.fullmatch(r"/siren/\d{9}", sub):
                self._lookup(handler, "unites_legales", sub[7:])
            elif re.fullmatch(r"/siret/\d{14}", sub):
                self._lookup(handler, "etablissements", sub[7:])
            else:
                self._error(handler, 404, "Ressource inconnue")
        except QueryError as exc:
            self._error(handler, 400, str(exc))
        return True

    # ---------------------------------------------------------------- endpoints

    def informations(self) -> dict:
        as_of = self.as_of()
        dates = []
        for name, table in _COLLECTIONS:
            col = LAST_PROCESSED[table]
            limit = (as_of or self.changes.days[0] - timedelta(days=1)).isoformat() + "T99"
            with self.changes.lock:
                if as_of is not None:
                    self.changes.ensure(as_of)
                sql = self.changes._current_sql(table, as_of)
                top = self.changes.con.execute(
                    f"SELECT max(ts) FROM (SELECT replace(\"{col}\", ' ', 'T') AS ts FROM ({sql})) WHERE ts <= ?",
                    [limit],
                ).fetchone()[0]
            dates.append(
                {
                    "collection": name,
                    "dateDerniereMiseADisposition": f"{self.today.isoformat()}T07:02:52.000",
                    "dateDernierTraitementMaximum": _ms(top) if top else None,
                    "dateDernierTraitementDeMasse": self.mass_treatment.strftime("%Y-%m-%dT%H:%M:%S.000"),
                }
            )
        return {
            "header": {"statut": 200, "message": "OK"},
            "etatService": "UP",
            "etatsDesServices": [{"Collection": name, "etatCollection": "UP"} for name, _ in _COLLECTIONS],
            "versionService": "3.11.23",
            "journalDesModifications": "https://portail-api.insee.fr/ (synthetic local upstream)",
            "datesDernieresMisesAJourDesDonnees": dates,
        }

    def _rows(self, table: str, where: str, params: list) -> list[dict]:
        key = (table, where, tuple(params), self.as_of())
        with self._lock:
            cached = self._cache.get(key)
        if cached is None:
            order = (
                "siretEtablissementPredecesseur, siretEtablissementSuccesseur, dateLienSuccession"
                if table == "liens_succession"
                else None
            )
            cached = self.changes.current_rows(table, self.as_of(), where, params, order=order)
            with self._lock:
                if len(self._cache) > 256:
                    self._cache.clear()
                self._cache[key] = cached
        return cached

    def _records(self, table: str, rows: list[dict]) -> list[dict]:
        as_of = self.as_of()
        if table == "liens_succession":
            return [lien_record(r) for r in rows]
        if table == "unites_legales":
            sirens = [r["siren"] for r in rows]
            hist = _group(
                self.changes.current_rows("unites_legales_historique", as_of, keys=sirens, key_col="siren"),
                "siren",
            )
            return [unite_legale_record(r, hist.get(r["siren"], [])) for r in rows]
        sirets = [r["siret"] for r in rows]
        sirens = sorted({r["siren"] for r in rows})
        hist = _group(
            self.changes.current_rows("etablissements_historique", as_of, keys=sirets, key_col="siret"),
            "siret",
        )
        uls = {
            u["siren"]: u
            for u in self.changes.current_rows("unites_legales", as_of, keys=sirens, key_col="siren")
        }
        return [etablissement_record(r, hist.get(r["siret"], []), uls.get(r["siren"])) for r in rows]

    def _search(self, handler, sub: str, params: dict) -> None:
        table, array_key, _ = _SEARCH[sub]
        where, qparams = parse_q(params.get("q", ""), table, self.changes.columns[table])
        try:
            nombre = int(params.get("nombre") or 20)
            debut = int(params.get("debut") or 0)
        except ValueError:
            raise QueryError("Paramètre nombre ou debut incorrect") from None
        if nombre < 0 or debut < 0:
            raise QueryError("Paramètre nombre ou debut incorrect")
        nombre = min(nombre, MAX_NOMBRE)
        rows = self._rows(table, where, qparams)
        total = len(rows)
        if total == 0:
            self._error(handler, 404, "Aucun élément trouvé")
            return
        header = {"statut": 200, "message": "OK", "total": total, "debut": debut, "nombre": 0}
        cursor = params.get("curseur")
        if cursor:
            keys = [_sort_key(table, r) for r in rows]
            start = 0 if cursor == "*" else bisect.bisect_right(keys, _uncursor(cursor))
            page = rows[start : start + nombre]
            header["debut"] = 0
            header["curseur"] = cursor
            header["curseurSuivant"] = _cursor(_sort_key(table, page[-1])) if page else cursor
        else:
            page = rows[debut : debut + nombre]
        header["nombre"] = len(page)
        self._send(handler, 200, {"header": header, array_key: self._records(table, page)})

    def _lookup(self, handler, table: str, ident: str) -> None:
        col = "siren" if table == "unites_legales" else "siret"
        if table == "unites_legales":
            with self.changes.lock:
                dup = self.changes.con.execute(
                    "SELECT siren FROM doublons WHERE sirenDoublon = ? ORDER BY 1", [ident]
                ).fetchone()
            if dup:
                self._send(
                    handler,
                    301,
                    {"header": {"statut": 301, "message": "Unité légale fermée pour cause de doublon"}},
                    {"Location": f"{self.prefix}/siren/{dup[0]}"},
                )
                return
        rows = self._rows(table, f"{col} = ?", [ident])
        if not rows:
            self._error(handler, 404, f"Aucun élément trouvé pour le {col} {ident}")
            return
        key = "uniteLegale" if table == "unites_legales" else "etablissement"
        self._send(
            handler, 200, {"header": {"statut": 200, "message": "OK"}, key: self._records(table, rows)[0]}
        )


def _sort_key(table: str, row: dict) -> str:
    if table == "unites_legales":
        return row["siren"]
    if table == "etablissements":
        return row["siret"]
    return "|".join(
        (
            row["siretEtablissementPredecesseur"],
            row["siretEtablissementSuccesseur"],
            row["dateLienSuccession"],
        )
    )


def _group(rows: list[dict], key: str) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in rows:
        out.setdefault(r[key], []).append(r)
    return out


def _ms(ts: str) -> str:
    return ts if "." in ts else ts + ".000"


def make_insee_handler(apps) -> type[BaseHTTPRequestHandler]:
    """mirror.synthetic.upstream.make_handler plus POST (the search form variant)."""
    base = make_handler(apps)

    class Handler(base):
        do_POST = base._dispatch

    return Handler


def serve_insee(
    changes: DailyChanges | None = None,
    *,
    stock_dir: Path | None = None,
    month: str | None = None,
    seed: int = 0,
    port: int = 0,
    **options,
):
    """Starts an INSEE-like API on 127.0.0.1 in a daemon thread; returns (server, base_url incl. prefix).

    The app is `server.app` (to change knobs). Stop with `server.shutdown(); server.server_close()`.
    """
    if changes is None:
        changes = DailyChanges(stock_dir, month, seed=seed)
    app = InseeApp(changes, **options)
    server = UpstreamServer(("127.0.0.1", port), make_insee_handler([app]))
    server.app = app
    threading.Thread(target=server.serve_forever, args=(0.1,), name="insee-upstream", daemon=True).start()
    host, bound = server.server_address[:2]
    return server, f"http://{host}:{bound}{app.prefix}"
