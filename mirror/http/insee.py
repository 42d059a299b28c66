"""The INSEE API Sirene 3.11 served by `mirror serve` under /api-sirene/3.11 (mounted by mirror.http.app).

A client of the real API (https://api.insee.fr/api-sirene/3.11, its OpenAPI description on
portail-api.insee.fr) only swaps its base URL: the same paths, parameters, `header` block, JSON shapes, key
names and order, status codes and error bodies (`{"header": {"statut": ..., "message": ...}}`).

- `GET /siren/{siren}`, `GET /siret/{siret}`: `date=` (the periods cut to the one valid on that day, 404 when
  none is), `champs=`, `masquerValeursNulles=`; 301 with a Location for a doublon (StockDoublons), 404
  `Aucun élément trouvé pour le siren ...`;
- `GET|POST /siren`, `GET|POST /siret` (POST: the same fields as an x-www-form-urlencoded form): `q` (the
  language of mirror.http.insee_query), `nombre` (default 20, at most 1,000), `debut` (at most 10,000),
  `curseur=*` then `header.curseurSuivant` (the last page is empty with `curseur == curseurSuivant`), `tri`,
  `champs`, `masquerValeursNulles`, `facette.champ`, `date`; 404 when nothing matches; `Accept: text/csv`
  gives the page as CSV (one line per record, the current values flat);
- `GET /siret/liensSuccession`: `q` over the links, `tri=successeur`, `nombre`, `debut`, `curseur`;
- `GET /informations`: the mirror's own dates: `dateDerniereMiseADisposition` is the day after the last
  day the mirror has applied (so a client computes "published through" as with INSEE),
  `dateDernierTraitementMaximum` the latest dateDernierTraitement of each collection, and
  `dateDernierTraitementDeMasse` the coverage of the loaded monthly stock (a mirror on an older stock is told
  to reload one, as after a mass update).

The records are built by SQL (sql/insee/*.sql, rendered by mirror.lookup.insee) from the mirror's base views
and history, the inverse of mirror.core.insee_records (the INSEE JSON -> stock rows conversion of `mirror
update`), so `mirror update --insee-url http://HOST:PORT/api-sirene/3.11` can feed a second mirror from this
one. Lookups answer from the lookup store (DATA_DIR/lookup.sqlite keeps those records, every period, built
and refreshed by the writers with the same SQL) when its token matches state.json, on the event loop like
API Entreprise's routes; `date=`, `champs` and `masquerValeursNulles` are then applied in Python
(mirror.lookup.insee.at_date is the files' period rule). Otherwise, and for searches, the views answer in
the server's thread pool: each thread has a cursor on the process's read-only DuckDB connection to the
published catalog (a new catalog, after a load or an update day, gets a new connection), and each process
caches the totals of the latest searches per catalog, so the pages of a cursor count their matches once.
The search keys come from the validated `q` (bound values only).

The `X-INSEE-Api-Key-Integration` header is accepted, and required (or `Authorization: Bearer`) when
`mirror serve` has tokens. The real API's 30 requests per minute is not imitated.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import re
import threading
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qsl

from mirror.core import insee_records as R
from mirror.core.cache import Lru
from mirror.core.config import INSEE_KEY_HEADER, catalog_path
from mirror.core.datadir import read_state, writer_at_work
from mirror.core.errors import MirrorError
from mirror.core.identifiers import is_valid_siren, is_valid_siret
from mirror.core.schema import LIENS_SUCCESSION_COLUMNS, typed_column_type
from mirror.core.sql import ident, private_cursor, render_cached
from mirror.http.entreprise import LOOP_BUSY_MS
from mirror.http.insee_query import COLLECTIONS, QueryError, translate
from mirror.http.params import last
from mirror.lookup import insee as lookup_insee
from mirror.lookup.store import READ_BUSY_MS, open_store

PREFIX = "/api-sirene/3.11"
JSON_TYPE = "application/json;charset=utf-8"
CSV_TYPE = "text/csv;charset=utf-8"
DEFAULT_NOMBRE = 20
MAX_NOMBRE = 1000
MAX_DEBUT = 10_000
MAX_FORM_BYTES = 64 * 1024
MAX_FACET_VALUES = 1000
TOTALS_CACHE = 256
SEARCH_PARAMS = (
    "q",
    "date",
    "champs",
    "nombre",
    "debut",
    "masquerValeursNulles",
    "tri",
    "curseur",
    "facette.champ",
)
LOOKUP_PARAMS = ("date", "champs", "masquerValeursNulles")
LIENS_PARAMS = ("q", "tri", "nombre", "debut", "curseur")
CURSOR_PREFIX = "AoE"
_COLLECTION_NAMES = (
    ("Unités Légales", "unites_legales"),
    ("Établissements", "etablissements"),
    ("Liens de succession", "liens_succession"),
)
_ARRAY = {"siren": "unitesLegales", "siret": "etablissements", "liensSuccession": "liensSuccession"}
_MESSAGES = {
    400: "Nombre incorrect de paramètres ou les paramètres sont mal formatés",
    401: "Jeton d'accès manquant ou invalide",
    404: "Aucun élément trouvé",
    406: "Le paramètre 'Accept' de l'en-tête HTTP contient une valeur non prévue",
    414: "Requête trop longue",
    503: "Service indisponible",
}


@dataclass
class Answer:
    status: int
    body: bytes
    media_type: str = JSON_TYPE
    headers: dict = field(default_factory=dict)


def error(status: int, message: str | None = None, headers: dict | None = None) -> Answer:
    """INSEE's error body (ReponseErreur): the header block only."""
    return Answer(status, _dumps({"header": {"statut": status, "message": message or _MESSAGES[status]}}),
                  headers=headers or {})  # fmt: skip


def _dumps(value) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


# ------------------------------------------------------------------------------------------------
# Connections and per-catalog caches
# ------------------------------------------------------------------------------------------------

_local = threading.local()
TOTALS = Lru(TOTALS_CACHE)


def _catalog_token(data_dir: Path) -> tuple:
    """Names the published catalog: it is rebuilt aside and os.replace'd, so a new one has a new inode."""
    try:
        st = catalog_path(data_dir).stat()
    except OSError:
        raise MirrorError(f"no mirror in {data_dir}") from None
    return (str(data_dir), st.st_ino, st.st_mtime_ns, st.st_size)


_shared: dict[str, tuple] = {}  # data dir -> (catalog token, the process's connection to that catalog)
_shared_lock = threading.Lock()


def _connection(data_dir: Path):
    """(token, this thread's cursor on the process's read-only connection to the current catalog). The
    cursors share one DuckDB instance, so its Parquet metadata cache is warmed once per process, not once
    per thread; a new catalog gets a new connection (the old one closes when its last cursor goes)."""
    from mirror.catalog.build import connect

    key = str(data_dir)
    token = _catalog_token(data_dir)
    conns = getattr(_local, "conns", None)
    if conns is None:
        conns = _local.conns = {}
    held = conns.get(key)
    if held is not None and held[0] == token:
        return held
    with _shared_lock:
        shared = _shared.get(key)
        if shared is None or shared[0] != token:
            shared = _shared[key] = (token, connect(data_dir))
        cursor = private_cursor(shared[1])
    if held is not None:
        held[1].close()
    conns[key] = (token, cursor)
    return token, cursor


# ------------------------------------------------------------------------------------------------
# Parameters
# ------------------------------------------------------------------------------------------------


class BadRequest(Exception):
    pass


def _int(params, name: str, default: int, hi: int, clamp: bool = False) -> int:
    raw = last(params, name)
    if raw is None or raw == "":
        return default
    if not re.fullmatch(r"\d{1,9}", raw.strip()):
        raise BadRequest(f"Le paramètre {name} doit être un entier positif : {raw[:20]}")
    value = int(raw)
    if value > hi:
        if clamp:
            return hi
        raise BadRequest(f"Le paramètre {name} ne peut pas dépasser {hi}")
    return value


def _date_param(params) -> date | None:
    raw = last(params, "date")
    if raw is None or raw == "":
        return None
    try:
        return date.fromisoformat(raw.strip())
    except ValueError:
        raise BadRequest(f"Le paramètre date doit être une date AAAA-MM-JJ : {raw[:20]}") from None


def _bool_param(params, name: str) -> bool:
    raw = (last(params, name) or "false").strip().lower()
    if raw not in ("true", "false"):
        raise BadRequest(f"Le paramètre {name} vaut true ou false : {raw[:20]}")
    return raw == "true"


def _list_param(params, name: str) -> list[str]:
    raw = last(params, name)
    return [p.strip() for p in (raw or "").split(",") if p.strip()]


def _unknown(params, allowed) -> None:
    for k, _ in params:
        if k not in allowed:
            raise BadRequest(f"Paramètre inconnu : {k[:40]}")


def form_params(body: bytes, content_type: str | None) -> list[tuple[str, str]]:
    """The fields of a POST search (application/x-www-form-urlencoded)."""
    if len(body) > MAX_FORM_BYTES:
        raise BadRequest("Requête trop longue")
    if content_type and not content_type.lower().startswith("application/x-www-form-urlencoded"):
        raise BadRequest("Le corps d'une recherche POST est un formulaire application/x-www-form-urlencoded")
    try:
        return parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise BadRequest("Le corps de la requête n'est pas en UTF-8") from None


def wants_csv(accept: str | None, search: bool) -> bool | None:
    """False for JSON, True for CSV (searches only), None for a type the API does not give (406)."""
    if not accept:
        return False
    types = [t.split(";")[0].strip().lower() for t in accept.split(",")]
    for t in types:
        if t in ("application/json", "*/*", "application/*", "application/json;charset=utf-8"):
            return False
        if search and t in ("text/csv", "text/*"):
            return True
    return None


# ------------------------------------------------------------------------------------------------
# Records
# ------------------------------------------------------------------------------------------------


def _select(record: dict, wanted: set[str]) -> dict:
    """`champs`: only the listed fields, nesting kept (addresses, the unit, the periods)."""
    out = {}
    for k, v in record.items():
        if isinstance(v, dict):
            sub = {a: b for a, b in v.items() if a in wanted}
            if sub:
                out[k] = sub
        elif isinstance(v, list):
            periods = [{a: b for a, b in p.items() if a in wanted} for p in v]
            if any(periods):
                out[k] = periods
        elif k in wanted:
            out[k] = v
    return out


def _drop_nulls(value):
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


def _known_fields(kind: str) -> set[str]:
    if kind == "siren":
        return set(R.UL_TOP) | set(R.UL_PERIOD) | {"periodesUniteLegale"}
    if kind == "siret":
        return (
            set(R.ET_TOP) | set(R.UL_IN_ETAB) | set(R.ADRESSE) | set(R.ADRESSE2) | set(R.ET_PERIOD)
            | {"uniteLegale", "adresseEtablissement", "adresse2Etablissement", "periodesEtablissement"}
        )  # fmt: skip
    return set(R.LIEN_FIELDS)


def _champs(params, kind: str) -> set[str] | None:
    names = _list_param(params, "champs")
    if not names:
        return None
    known = _known_fields(kind)
    for n in names:
        if n not in known:
            raise BadRequest(f"Champ inconnu dans champs : {n[:60]}")
    return set(names)


def _shape(texts: list[str], champs: set[str] | None, hide_nulls: bool, search: bool) -> str:
    """The records as one JSON array text: spliced as SQL built them when nothing is to change, else
    parsed and cut (champs, masquerValeursNulles). Search results carry `score` first, as the real API."""
    if champs is None and not hide_nulls and not search:
        return "[" + ",".join(texts) + "]"
    out = []
    for t in texts:
        rec = json.loads(t)
        if search:
            rec = {"score": 1.0, **rec}
        if champs is not None:
            rec = _select(rec, champs | {"score"} if search else champs)
        if hide_nulls:
            rec = _drop_nulls(rec)
        out.append(json.dumps(rec, ensure_ascii=False, separators=(",", ":")))
    return "[" + ",".join(out) + "]"


# ------------------------------------------------------------------------------------------------
# Lookups
# ------------------------------------------------------------------------------------------------


def _lookup_request(kind: str, ident_: str, params, accept: str | None) -> Answer | tuple:
    """The 400 / 406 of a lookup's identifier and parameters, else (day, champs, masquerValeursNulles)."""
    try:
        _unknown(params, LOOKUP_PARAMS)
        if wants_csv(accept, search=False) is None:
            return error(406)
        valid = is_valid_siren(ident_) if kind == "siren" else is_valid_siret(ident_)
        width = 9 if kind == "siren" else 14
        if not re.fullmatch(rf"\d{{{width}}}", ident_) or not valid:
            return error(
                400, f"Le paramètre {kind} n'est pas un numéro {kind.capitalize()} valide : {ident_[:20]}"
            )
        return _date_param(params), _champs(params, kind), _bool_param(params, "masquerValeursNulles")
    except BadRequest as exc:
        return error(400, str(exc))


def _read_store(data_dir: Path, busy_ms: int, read, current_only: bool = False):
    """read(store) in one read transaction of the lookup store (LookupStore.read), or None when there is no
    readable store or it cannot answer now: the views answer then, with the same records."""
    store = open_store(data_dir)
    if store is None:
        return None
    store.set_busy_timeout(busy_ms)
    return store.read(read, current_only)


def _cut(text: str, kind: str, day: date | None) -> str:
    """A stored record (every period) as the SQL gives it for `day` (mirror.lookup.insee.at_date)."""
    if day is None:
        return text
    return _dumps(lookup_insee.at_date(json.loads(text), kind, day)).decode("utf-8")


def _from_store(data_dir: Path, kind: str, ident_: str, day: date | None, busy_ms: int):
    """(replacing SIREN of a doublon, record JSON text cut to `day`) from the lookup store, or None when it
    cannot answer now (_read_store)."""

    def read(store):
        replacing = store.replacing(ident_[:9])
        return replacing, None if replacing is not None else store.insee(kind, ident_)

    found = _read_store(data_dir, busy_ms, read)
    if found is None or found[1] is None:
        return found
    return found[0], _cut(found[1], kind, day)


def _page_from_store(data_dir: Path, token: tuple, kind: str, keys: list[str], day: date | None):
    """The records of a search page's keys from the lookup store, or None (the views build them then). The
    keys come from the catalog `token` names; the store answers only when it holds the same state: no writer
    was at work when the search started (the caller checked) nor is now, the catalog is still that one (a
    publication in between switches it), and the store is current with state.json."""

    def read(store):
        texts = {k: store.insee(kind, k) for k in keys}
        return None if None in texts.values() else texts

    texts = _read_store(data_dir, READ_BUSY_MS, read, current_only=True)
    if texts is None or _catalog_token(data_dir) != token or writer_at_work(data_dir):
        return None
    return {k: _cut(t, kind, day) for k, t in texts.items()}


def _from_views(data_dir: Path, kind: str, ident_: str, day: date | None):
    """_from_store's answer from the catalog's views (sql/insee/*.sql, the periods cut by SQL)."""
    _token, con = _connection(data_dir)
    replacing = con.execute(render_cached("documents/replacing_siren.sql"), [ident_[:9]]).fetchone()[0]
    if replacing is not None:
        return replacing, None
    return None, lookup_insee.records(con, kind, [ident_], day).get(ident_)


def _lookup_answer(kind: str, ident_: str, found: tuple, day, champs, hide) -> Answer:
    replacing, text = found
    if replacing is not None:
        if kind == "siren":
            message = "Unité légale fermée pour cause de doublon"
        else:
            message = "Établissement d'une unité légale fermée pour cause de doublon"
        return error(301, message, {"Location": f"{PREFIX}/siren/{replacing}"})
    if text is not None and day is not None and text.endswith(f'"{lookup_insee.PERIODS[kind]}":[]}}'):
        text = None  # no period on that day: created after it
    if text is None:
        return error(404, f"Aucun élément trouvé pour le {kind} {ident_}")
    shaped = _shape([text], champs, hide, search=False)[1:-1]
    key = "uniteLegale" if kind == "siren" else "etablissement"
    return Answer(200, f'{{"header":{{"statut":200,"message":"OK"}},"{key}":{shaped}}}'.encode())


def lookup(
    data_dir: Path, kind: str, ident_: str, params: list[tuple[str, str]], accept: str | None
) -> Answer:
    """GET /siren/{siren} or /siret/{siret}: from the lookup store when it is current, else from the views."""
    checked = _lookup_request(kind, ident_, params, accept)
    if isinstance(checked, Answer):
        return checked
    day = checked[0]
    found = _from_store(data_dir, kind, ident_, day, READ_BUSY_MS)
    if found is None:
        found = _from_views(data_dir, kind, ident_, day)
    return _lookup_answer(kind, ident_, found, *checked)


def lookup_from_store(
    data_dir: Path, kind: str, ident_: str, params: list[tuple[str, str]], accept: str | None
) -> Answer | None:
    """`lookup` when it needs no DuckDB: parameter errors, and the answers of a current lookup store (a
    read of well under a millisecond, waiting at most LOOP_BUSY_MS for a writer's commit); None otherwise,
    and the caller runs `lookup` in the thread pool. For the server's event loop, as API Entreprise's
    routes (mirror.http.entreprise.answer_from_store)."""
    checked = _lookup_request(kind, ident_, params, accept)
    if isinstance(checked, Answer):
        return checked
    found = _from_store(data_dir, kind, ident_, checked[0], LOOP_BUSY_MS)
    return None if found is None else _lookup_answer(kind, ident_, found, *checked)


# ------------------------------------------------------------------------------------------------
# Searches
# ------------------------------------------------------------------------------------------------


def _encode_cursor(values: list) -> str:
    raw = json.dumps(values, separators=(",", ":"), default=str).encode()
    return CURSOR_PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str, n: int) -> list:
    if not cursor.startswith(CURSOR_PREFIX):
        raise BadRequest("Curseur invalide")
    raw = cursor[len(CURSOR_PREFIX) :]
    try:
        values = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except ValueError:
        raise BadRequest("Curseur invalide") from None
    if (
        not isinstance(values, list)
        or len(values) != n
        or not all(v is None or isinstance(v, str) for v in values)
    ):
        raise BadRequest("Curseur invalide (autre tri que celui de la requête)")
    return values


def _sort(kind: str, params) -> list[tuple[str, str]]:
    """[(column, type)] of the order: `tri`'s fields, then the key (INSEE: siren by default)."""
    coll = COLLECTIONS[kind]
    table = coll.table
    if kind == "liensSuccession":
        tri = last(params, "tri")
        if tri not in (None, "", "successeur"):
            raise BadRequest("Le paramètre tri vaut successeur ou est absent")
        first = ["siretEtablissementSuccesseur"] if tri == "successeur" else []
        names = first + [k for k in coll.key if k not in first]
    else:
        names = []
        for n in _list_param(params, "tri"):
            if n not in coll.direct:
                raise BadRequest(f"Tri impossible sur le champ {n[:60]}")
            if n not in names:
                names.append(n)
        names += [k for k in coll.key if k not in names]
    return [(n, typed_column_type(table, n)) for n in names]


def _after(alias: str, order: list[tuple[str, str]], values: list) -> tuple[str, list]:
    """The keyset condition `(order columns) > (values)` (NULLS FIRST), values bound."""
    ors, params = [], []
    for i, (name, kind) in enumerate(order):
        parts = []
        for (pname, pkind), v in zip(order[:i], values[:i], strict=True):
            col = f"{alias}.{ident(pname)}"
            if v is None:
                parts.append(f"{col} IS NULL")
            else:
                parts.append(f"{col} = CAST(? AS {pkind})")
                params.append(v)
        col = f"{alias}.{ident(name)}"
        if values[i] is None:
            parts.append(f"{col} IS NOT NULL")
        else:
            parts.append(f"{col} > CAST(? AS {kind})")
            params.append(values[i])
        ors.append("(" + " AND ".join(parts) + ")")
    return "(" + " OR ".join(ors) + ")", params


def _cursor_value(v) -> str | None:
    if v is None:
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, datetime | date):
        return v.isoformat()
    return str(v)


def search(
    data_dir: Path, kind: str, params: list[tuple[str, str]], accept: str | None, method: str = "GET"
) -> Answer:
    """GET|POST /siren, /siret; GET /siret/liensSuccession."""
    coll = COLLECTIONS[kind]
    try:
        _unknown(params, LIENS_PARAMS if kind == "liensSuccession" else SEARCH_PARAMS)
        as_csv = wants_csv(accept, search=kind != "liensSuccession")
        if as_csv is None:
            return error(406)
        nombre = _int(params, "nombre", DEFAULT_NOMBRE, MAX_NOMBRE, clamp=True)
        debut = _int(params, "debut", 0, MAX_DEBUT)
        cursor = last(params, "curseur")
        if cursor is not None and debut:
            raise BadRequest("Les paramètres curseur et debut ne peuvent pas être utilisés ensemble")
        order = _sort(kind, params)
        day = None if kind == "liensSuccession" else _date_param(params)
        champs = None if kind == "liensSuccession" else _champs(params, kind)
        hide = kind != "liensSuccession" and _bool_param(params, "masquerValeursNulles")
        facets = [] if kind == "liensSuccession" else _list_param(params, "facette.champ")
        for f in facets:
            if f not in coll.direct:
                raise BadRequest(f"Facette impossible sur le champ {f[:60]}")
        after = _decode_cursor(cursor, len(order)) if cursor not in (None, "", "*") else None
        predicate = translate(last(params, "q"), kind)
    except (BadRequest, QueryError) as exc:
        return error(400, str(exc))

    quiet = not writer_at_work(data_dir)  # the page's records may then come from the store
    token, con = _connection(data_dir)
    table, alias = ident(coll.table), coll.alias
    where = predicate.sql
    total_key = (token, kind, where, tuple(map(str, predicate.params)))
    total = TOTALS.get(total_key)
    if total is None:
        total = con.execute(
            render_cached("insee/search_count.sql", table=table, alias=alias, where=where), predicate.params
        ).fetchone()[0]
        TOTALS.put(total_key, total)
    if total == 0:
        return error(404, "Aucun élément trouvé")

    page_where, page_params = where, list(predicate.params)
    if after is not None:
        cond, cond_params = _after(alias, order, after)
        page_where, page_params = f"({where}) AND {cond}", page_params + cond_params
    columns = ", ".join(f"{alias}.{ident(n)}" for n, _ in order)
    order_sql = ", ".join(f"{alias}.{ident(n)} ASC NULLS FIRST" for n, _ in order)
    rows = con.execute(
        render_cached(
            "insee/search_page.sql",
            table=table,
            alias=alias,
            where=page_where,
            columns=columns,
            order=order_sql,
        ),
        page_params + [nombre, 0 if cursor is not None else debut],
    ).fetchall()

    header = {
        "statut": 200,
        "message": "OK",
        "total": total,
        "debut": 0 if cursor is not None else debut,
        "nombre": len(rows),
    }
    if cursor is not None:
        header["curseur"] = cursor
        header["curseurSuivant"] = _encode_cursor([_cursor_value(v) for v in rows[-1]]) if rows else cursor

    key_index = [n for n, _ in order].index(coll.key[0])
    if kind == "liensSuccession":
        texts = _lien_records(con, rows, order)
    else:
        keys = [r[key_index] for r in rows]
        by_key = _page_from_store(data_dir, token, kind, keys, day) if quiet and keys else None
        if by_key is None:
            by_key = lookup_insee.records(con, kind, keys, day)
        texts = [by_key[k] for k in keys if k in by_key]
    if as_csv:
        return Answer(200, _csv(kind, texts, champs), CSV_TYPE)
    parts = [
        f'"header":{_dumps(header).decode()}',
        f'"{_ARRAY[kind]}":{_shape(texts, champs, hide, search=kind != "liensSuccession")}',
    ]
    if facets:
        parts.append(f'"facettes":{_dumps([_facet(con, coll, f, predicate) for f in facets]).decode()}')
    return Answer(200, ("{" + ",".join(parts) + "}").encode("utf-8"))


def _lien_records(con, rows, order) -> list[str]:
    if not rows:
        return []
    names = [n for n, _ in order]
    ors, params = [], []
    for r in rows:
        ors.append("(" + " AND ".join(f"l.{ident(n)} IS NOT DISTINCT FROM ?" for n in names) + ")")
        params += list(r)
    sql = render_cached(
        "insee/liens_succession.sql",
        where="(" + " OR ".join(ors) + ")",
        order=", ".join(f"l.{ident(n)} ASC NULLS FIRST" for n in names),
        **lookup_insee.fields("liensSuccession"),
    )
    return [r[0] for r in con.execute(sql, params).fetchall()]


def _facet(con, coll, name: str, predicate) -> dict:
    manquants, total, modalites, comptages = con.execute(
        render_cached("insee/facet.sql", table=ident(coll.table), alias=coll.alias, where=predicate.sql,
                      column=f"{coll.alias}.{ident(name)}"),
        [*predicate.params, MAX_FACET_VALUES],
    ).fetchone()  # fmt: skip
    return {
        "nom": name,
        "manquants": manquants,
        "total": int(total),
        "modalites": modalites,
        "comptages": [{"valeur": c["valeur"], "nombre": c["nombre"]} for c in comptages or []],
    }


def _flat(kind: str, rec: dict) -> dict:
    """A record as one flat line: the unit's (or établissement's) fields, its address, its unit, the current
    period (the first)."""
    out = {}
    periods_key = "periodesUniteLegale" if kind == "siren" else "periodesEtablissement"
    for k, v in rec.items():
        if isinstance(v, dict):
            out.update(v)
        elif k == periods_key:
            out.update((v or [{}])[0])
        else:
            out[k] = v
    return out


def _csv(kind: str, texts: list[str], champs: set[str] | None) -> bytes:
    if kind == "liensSuccession":
        names = list(LIENS_SUCCESSION_COLUMNS)
    else:
        names = list(_flat(kind, json.loads(texts[0])).keys()) if texts else []
        if champs is not None:
            names = [n for n in names if n in champs]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(names)
    for t in texts:
        flat = _flat(kind, json.loads(t))
        w.writerow([R.to_csv(flat.get(n)) for n in names])
    return buf.getvalue().encode("utf-8")


# ------------------------------------------------------------------------------------------------
# /informations
# ------------------------------------------------------------------------------------------------

INFORMATIONS = Lru(8)


def _ms(ts: datetime | None) -> str | None:
    return None if ts is None else ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}"


def informations(data_dir: Path) -> Answer:
    token, con = _connection(data_dir)
    state = read_state(data_dir)
    cached = INFORMATIONS.get((token, json.dumps(state, sort_keys=True)))
    if cached is not None:
        return cached
    snapshot = state.get("snapshot") or {}
    coverage = snapshot.get("max_date_dernier_traitement")
    coverage_ts = datetime.fromisoformat(coverage) if coverage else None
    days = sorted(state.get("deltas") or [])
    last_day = date.fromisoformat(days[-1]) if days else (coverage_ts.date() if coverage_ts else None)
    published = _ms(datetime.combine(last_day + timedelta(days=1), datetime.min.time())) if last_day else None
    maxima = con.execute(render_cached("insee/informations.sql")).fetchone()
    dates = [
        {
            "collection": name,
            "dateDerniereMiseADisposition": published,
            "dateDernierTraitementMaximum": _ms(top),
            "dateDernierTraitementDeMasse": _ms(coverage_ts),
        }
        for (name, _key), top in zip(_COLLECTION_NAMES, maxima, strict=True)
    ]
    from mirror import __version__

    body = {
        "header": {"statut": 200, "message": "OK"},
        "etatService": "UP",
        "etatsDesServices": [{"Collection": name, "etatCollection": "UP"} for name, _ in _COLLECTION_NAMES],
        "versionService": f"3.11 (Sirene Mirror {__version__})",
        "journalDesModifications": "https://portail-api.insee.fr/ (served by Sirene Mirror from its own data)",
        "datesDernieresMisesAJourDesDonnees": dates,
    }
    answer = Answer(200, _dumps(body))
    INFORMATIONS.put((token, json.dumps(state, sort_keys=True)), answer)
    return answer


# ------------------------------------------------------------------------------------------------
# Routes (mounted by mirror.http.app)
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    """One route of the INSEE API (under PREFIX): what routes() mounts and mirror.http.openapi describes."""

    path: str
    endpoint: str  # "informations", "search", "lookup"
    kind: str | None  # "siren", "siret", "liensSuccession" (the collection)
    methods: tuple[str, ...]
    params: tuple[str, ...]  # the query (and POST form) parameters it takes
    summary: str


_GET, _POST = ("GET", "HEAD"), ("GET", "HEAD", "POST")
ROUTES: tuple[Route, ...] = (
    Route(f"{PREFIX}/informations", "informations", None, _GET, (),
          "INSEE API Sirene: state of the service and dates of the data (the mirror's own)"),
    Route(f"{PREFIX}/siren", "search", "siren", _POST, SEARCH_PARAMS,
          "INSEE API Sirene: multicriteria search of unités légales (q=...; POST: the same as a form)"),
    Route(f"{PREFIX}/siret", "search", "siret", _POST, SEARCH_PARAMS,
          "INSEE API Sirene: multicriteria search of établissements (q=...; POST: the same as a form)"),
    Route(f"{PREFIX}/siret/liensSuccession", "search", "liensSuccession", _GET, LIENS_PARAMS,
          "INSEE API Sirene: liens de succession between établissements"),
    Route(f"{PREFIX}/siren/{{siren}}", "lookup", "siren", _GET, LOOKUP_PARAMS,
          "INSEE API Sirene: one unité légale (date= cuts its periods to that day)"),
    Route(f"{PREFIX}/siret/{{siret}}", "lookup", "siret", _GET, LOOKUP_PARAMS,
          "INSEE API Sirene: one établissement (date= cuts its periods to that day)"),
)  # fmt: skip
# The parameters' descriptions (INSEE's OpenAPI of API Sirene 3.11) for /openapi.json: (type, description).
PARAM_DOCS = {
    "q": ("string", "Query in INSEE's language: champ:valeur, AND / OR / NOT, (), \"phrases\", * ?, "
                    "[a TO b], periode(...), ~"),
    "date": ("string", "AAAA-MM-JJ: only the period valid on that day"),
    "champs": ("string", "Fields to return, comma separated"),
    "nombre": ("integer", f"Results per page (default {DEFAULT_NOMBRE}, at most {MAX_NOMBRE})"),
    "debut": ("integer", f"Rank of the first result (at most {MAX_DEBUT})"),
    "masquerValeursNulles": ("boolean", "true: null values left out"),
    "tri": ("string", "Sort fields, comma separated (the key last)"),
    "curseur": ("string", "Deep paging: * then header.curseurSuivant (the last page is empty)"),
    "facette.champ": ("string", "Fields to count the values of, comma separated"),
}  # fmt: skip


def routes(state) -> list:
    """The Starlette routes of the INSEE API over `state` (mirror.http.app's _App: tokens, time limit,
    thread pool with the DuckDB limiter)."""
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route as StarletteRoute

    from mirror.http import security

    def authorized(request: Request) -> bool:
        if not state.tokens:
            return True
        given = security.insee_key(request.headers.get(INSEE_KEY_HEADER))
        if given is None:
            given = security.bearer_token(request.headers.get("authorization"))
        return security.token_ok(given, state.tokens)

    def respond(answer: Answer, head: bool) -> Response:
        return Response(b"" if head else answer.body, status_code=answer.status, media_type=answer.media_type,
                        headers=answer.headers or None)  # fmt: skip

    async def run(request: Request, fn, *args) -> Response:
        if not authorized(request):
            return respond(error(401), request.method == "HEAD")
        result = await state.call(request, fn, *args, limiter=state.view_limiter())
        if not isinstance(result, Answer):  # the app's 503 (time limit, unreadable mirror)
            return result
        return respond(result, request.method == "HEAD")

    def search_endpoint(kind: str):
        async def endpoint(request: Request) -> Response:
            params = request.query_params.multi_items()
            if not authorized(request):
                return respond(error(401), request.method == "HEAD")
            if request.method == "POST":
                try:
                    params = params + form_params(await request.body(), request.headers.get("content-type"))
                except BadRequest as exc:
                    status = 414 if str(exc) == "Requête trop longue" else 400
                    return respond(error(status, str(exc)), False)
            return await run(
                request, search, state.data_dir, kind, params, request.headers.get("accept"), request.method
            )

        return endpoint

    def lookup_endpoint(kind: str):
        async def endpoint(request: Request) -> Response:
            params = request.query_params.multi_items()
            if not authorized(request):
                return respond(error(401), request.method == "HEAD")
            try:  # on the event loop when the store answers (no DuckDB), else in the thread pool
                fast = lookup_from_store(state.data_dir, kind, request.path_params[kind], params,
                                         request.headers.get("accept"))  # fmt: skip
            except MirrorError:
                fast = None
            if fast is not None:
                return respond(fast, request.method == "HEAD")
            return await run(request, lookup, state.data_dir, kind, request.path_params[kind], params,
                             request.headers.get("accept"))  # fmt: skip

        return endpoint

    async def informations_endpoint(request: Request) -> Response:
        return await run(request, informations, state.data_dir)

    endpoints = {
        "informations": lambda kind: informations_endpoint,
        "search": search_endpoint,
        "lookup": lookup_endpoint,
    }
    return [StarletteRoute(r.path, endpoints[r.endpoint](r.kind), methods=list(r.methods)) for r in ROUTES]
