"""Ranked company search over the SQLite FTS5 index built by mirror.lookup.search_index.

    from mirror.lookup.search import search, render
    result = search("./data/lookup.sqlite", "boulangerie l'ouest", departement=["35"], etat="A")
    print(render(result, "table"))

The pieces, for a caller holding its own connection (mirror.http.recherche reads the index and the lookup
store in one transaction): match_expression / filter_expression build the bound FTS5 expression (every
filter column of sql/lookup/search_schema.sql), ranked() gives the number of matches and the re-ranked
window (or its head), ids_after() pages through every match in SIREN order (no window), count() counts them.

Standard library only (plus mirror.core modules that import neither duckdb nor pyarrow): a search must start
fast. The index file is opened read-only; user text is never written into SQL: it is cut into tokens here,
each token quoted as an FTS5 string, and the FTS5 expression is bound as a parameter.

Query language (what recherche-entreprises accepts, the way it behaves):
- words are ANDed; case and accents folded; apostrophes and hyphens separate words; elided articles
  (l' d' j' m' n' s' t' qu') are dropped, and so is such a one-letter word typed alone before another word
  ("l ouest" == "l'ouest" == "ouest"); a hyphenated word also matches written as one ("saintetienne");
- the last word is a prefix when it has two characters or more (autocompletion: "boul" -> BOULANGERIE);
- a word of TYPO_MIN_LETTERS letters or more that (almost) no unit holds is also matched by the indexed
  words at edit distance 1 (substitution, insertion, deletion, transposition): "boulengerie" -> BOULANGERIE;
- a SIREN (9 digits) or SIRET (14 digits), spaces allowed, answers that unit directly (filters ignored),
  even a partially diffusible person that no name finds.
Ranking, in two tiers: first the units holding every word in their names, by bm25 over search_nom (an
index of the names alone), then those that need an enseigne for a word, by bm25 over search_enseignes
(names and enseignes of the units that have enseignes, names weighing more); never over search_fts, whose filter columns hold a code per open
établissement (bm25 divides by the length of the row it scores: a unit's établissements lowered its
relevance). A filtered search tests each text match against the set of the whole expression (it costs what
its text costs). Over the best WINDOW matches: an exact name match first (found by key, search_exact), then
each tier in RELEVANCE_STEPS buckets counted down from its best match (within 10 % of it: one bucket),
active before closed, more open établissements first, siren: deterministic, and pages of one query never
overlap. A page reads only the buckets it reaches (a common word's first page: a few dozen units of its
window). Results beyond the first WINDOW are not served (offset + limit <= WINDOW); `total` is the exact
number of matches. Addresses are not searched as text (the département / code postal filters are).
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import itertools
import json
import os
import re
import sqlite3
import threading
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from mirror.core.errors import BadInput, MirrorError
from mirror.core.sql import render_cached
from mirror.lookup.store import READ_BUSY_MS, store_path

MAX_LIMIT = 100  # recherche-entreprises' per_page cap
WINDOW = 1000  # candidates re-ranked per query; offset + limit may not exceed it
RELEVANCE_STEPS = 10  # relevance buckets: 10 % of the best score each, counted down from the best
TYPO_MIN_LETTERS = 5
TYPO_MAX_DOCS = 2  # a word held by at most this many units also matches its edit-distance-1 variants
TYPO_MAX_VARIANTS = 8
READER_CACHE_KB = 32_768  # a kept connection's page cache: a common word's bucket keys stay in it (1 M units)
MAX_TEXT = 200  # characters of search text
MAX_WORDS = 20  # words of search text (each is a term of the FTS5 expression, and maybe a vocabulary lookup)
ETATS = ("A", "C", "all")
FIELDS = (
    "siren",
    "nom_complet",
    "sigle",
    "siret_siege",
    "code_postal",
    "commune",
    "departement",
    "activite_principale",
    "etat_administratif",
    "categorie_juridique",
    "tranche_effectif_salarie",
    "etablissements_ouverts",
)
TEXT_COLUMNS = "{nom enseignes}"

_ELIDED = {"l", "d", "j", "m", "n", "s", "t", "qu"}
_APOSTROPHES = "'’`ʼ‘′"
_ELISION_RE = re.compile(r"(?<![^\W_])(?:[ldjmnst]|qu)[" + _APOSTROPHES + r"](?=[^\W_])")
_TOKEN_RE = re.compile(r"[^\W_]+")
_IDENTIFIER_RE = re.compile(r"[0-9\s\u00a0\u202f]+")
_DEPARTEMENT_RE = re.compile(r"[0-9]{2,3}|2[AB]", re.IGNORECASE)
_CODE_POSTAL_RE = re.compile(r"[0-9]{5}")
_NAF_RE = re.compile(r"[0-9]{2}\.?[0-9]{2}[A-Z]", re.IGNORECASE)
_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def _sql(name: str, **values) -> str:
    return render_cached(f"lookup/{name}.sql", **values)


@dataclass
class SearchResult:
    """`total`: the number of units matching (exact); `results`: the page asked for, dicts of FIELDS plus
    `score` (the bm25 relevance, larger is better; None for a SIREN / SIRET typed)."""

    total: int
    results: list[dict] = field(default_factory=list)
    limit: int = 20
    offset: int = 0


# ------------------------------------------------------------------------------------------------
# Normalisation (the same folding as the index's unicode61 remove_diacritics 2 tokenizer)
# ------------------------------------------------------------------------------------------------


def fold(text: str) -> str:
    """Lower case (not casefold: unicode61 keeps ß), accents removed (NFKD without combining marks)."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()


def tokens(text: str) -> list[str]:
    """The words of a query: folded, elided articles dropped (also a lone one-letter article before another
    word, so "l ouest" == "l'ouest"), punctuation as separators."""
    words = _TOKEN_RE.findall(_ELISION_RE.sub(" ", fold(text)))
    return [w for i, w in enumerate(words) if not (w in _ELIDED and i < len(words) - 1)]


def _quote(token: str) -> str:
    """An FTS5 string: user text never reaches FTS5 as syntax."""
    return '"' + token.replace('"', '""') + '"'


def edits1(word: str) -> set[str]:
    """The words at Damerau-Levenshtein distance 1 of `word` (letters a-z)."""
    splits = [(word[:i], word[i:]) for i in range(len(word) + 1)]
    out = {a + b[1:] for a, b in splits if b}
    out |= {a + b[1] + b[0] + b[2:] for a, b in splits if len(b) > 1}
    out |= {a + c + b[1:] for a, b in splits if b for c in _LETTERS if c != b[0]}
    out |= {a + c + b for a, b in splits for c in _LETTERS}
    out.discard(word)
    return out


# ------------------------------------------------------------------------------------------------
# Arguments
# ------------------------------------------------------------------------------------------------


def _values(name: str, values, pattern: re.Pattern, normalize) -> list[str] | None:
    if values is None:
        return None
    if isinstance(values, str):
        values = [values]
    if not isinstance(values, list | tuple) or not values:
        raise BadInput(f"{name}: expected a non-empty list of codes")
    out = []
    for v in values:
        if not isinstance(v, str) or not pattern.fullmatch(v.strip()):
            raise BadInput(f"{name}: malformed value {v!r}")
        out.append(normalize(v.strip()))
    return sorted(set(out))


def _check(text, limit, offset, etat) -> None:
    if not isinstance(text, str) or not text.strip():
        raise BadInput("search text: empty")
    if len(text) > MAX_TEXT:
        raise BadInput(f"search text: more than {MAX_TEXT} characters")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise BadInput(f"limit: expected an integer from 1 to {MAX_LIMIT}, got {limit!r}")
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise BadInput(f"offset: expected an integer >= 0, got {offset!r}")
    if offset + limit > WINDOW:
        raise BadInput(f"offset + limit: at most {WINDOW} (results beyond the first {WINDOW} are not served)")
    if etat not in ETATS:
        raise BadInput(f"etat: expected one of {', '.join(ETATS)}, got {etat!r}")


_READERS = threading.local()  # per thread: (the file's identity, its connection)


def _reader(db_path) -> sqlite3.Connection:
    """A read-only connection to the index, kept per thread while the file it reads stays the same (its real
    path, inode, size and modification time, and the process): a program searching again skips opening
    and checking it and finds its pages in SQLite's cache. A new store (published under a new name) or a
    day written into this one is a new connection, the old one closed."""
    path = Path(db_path)
    if path.is_dir():  # a data directory: its lookup store holds the index
        path = store_path(path)
    try:
        real = os.path.realpath(path)
        st = os.stat(real)
        identity = (real, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, os.getpid())
    except OSError:
        identity = None
    held = getattr(_READERS, "held", None)
    if held is not None and identity is not None and held[0] == identity:
        return held[1]
    if held is not None:
        _READERS.held = None
        held[1].close()
    db = _connect(path)
    if identity is not None:
        db.execute(f"PRAGMA cache_size = -{READER_CACHE_KB}")
        _READERS.held = (identity, db)
    return db


def _connect(path: Path) -> sqlite3.Connection:
    """A read-only connection to the index file `path`, its tables checked (one line for a missing or older
    index)."""
    if not path.is_file():
        raise MirrorError(
            f"no search index at {path}: run `mirror store` (or `mirror load` / `mirror sync`) to build it"
        )
    db = None
    try:
        db = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
        db.execute(f"PRAGMA busy_timeout = {READ_BUSY_MS}")  # a daily update's commit: wait, do not fail
        for table in ("search_units", "search_nom", "search_enseignes", "search_exact"):
            db.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchall()
    except sqlite3.Error as exc:
        if db is not None:
            db.close()
        older = " (built by an older version: run `mirror store`)" if "no such table" in str(exc) else ""
        raise MirrorError(f"cannot read the search index {path}: {exc}{older}") from exc
    return db


# ------------------------------------------------------------------------------------------------
# The FTS5 expression
# ------------------------------------------------------------------------------------------------


def _variants(db: sqlite3.Connection, word: str) -> list[str]:
    """Indexed terms at edit distance 1 of `word`, the most frequent first (at most TYPO_MAX_VARIANTS)."""
    candidates = sorted(edits1(word))
    found = []
    for i in range(0, len(candidates), 900):
        chunk = candidates[i : i + 900]
        sql = _sql("search_terms", candidates=", ".join("?" * len(chunk)))
        found += db.execute(sql, chunk).fetchall()
    found.sort(key=lambda r: (-r[1], r[0]))
    return [term for term, _docs in found[:TYPO_MAX_VARIANTS]]


def _held_by_few(db: sqlite3.Connection, word: str, prefix: bool) -> bool:
    """Whether at most TYPO_MAX_DOCS units hold the word (as a prefix: a word it begins) in their names or
    enseignes. The probe stops after TYPO_MAX_DOCS + 1 rows, and a prefix is probed only when the whole word
    is rare (a prefix merges the doclists of all its words first: 0.3 ms for "patisserie" at 1 M units)."""

    def held(phrase: str) -> int:
        expression = f"{TEXT_COLUMNS} : {phrase}"
        return db.execute(_sql("search_held"), [expression, TYPO_MAX_DOCS + 1]).fetchone()[0]

    return held(_quote(word)) <= TYPO_MAX_DOCS and (not prefix or held(_quote(word) + "*") <= TYPO_MAX_DOCS)


def filter_expression(filters: list[tuple[str, list[str]]]) -> str:
    """The FTS5 column filters: each column matching one of its values (every value an FTS5 string), ANDed."""
    return " AND ".join(
        f"{column} : (" + " OR ".join(_quote(v) for v in values) + ")" for column, values in filters
    )


def match_expression(
    db: sqlite3.Connection, words: list[str], filters: list[tuple[str, list[str]]], text: str | None = None
) -> str:
    """The FTS5 MATCH expression of search_fts: the text expression (text_expression, or `text` when the
    caller has it) in the text columns, AND each filter column matching one of its values."""
    text = text_expression(db, words) if text is None else text
    expression = f"{TEXT_COLUMNS} : ({text})"
    if filters:
        expression += " AND " + filter_expression(filters)
    return expression


def text_expression(db: sqlite3.Connection, words: list[str]) -> str:
    """The FTS5 expression of the words (search_nom and search_enseignes rank with it): every word, the last as a
    prefix, typo variants ORed in, ANDed. Every word is an FTS5 string."""
    parts = []
    for i, word in enumerate(words):
        prefix = i == len(words) - 1 and len(word) >= 2
        term = _quote(word) + ("*" if prefix else "")
        if (
            len(word) >= TYPO_MIN_LETTERS
            and word.isalpha()
            and word.isascii()
            and _held_by_few(db, word, prefix)
        ):
            variants = _variants(db, word)
            if variants:
                term = "(" + " OR ".join([term, *(_quote(v) for v in variants)]) + ")"
        parts.append(term)
    return " AND ".join(parts)


# ------------------------------------------------------------------------------------------------
# Search
# ------------------------------------------------------------------------------------------------


# Positions in a ranked row (sql/lookup/search_rows.sql without its id: FIELDS, then the FTS5 rank).
_SIREN, _NOM, _SIGLE, _ETAT, _OUVERTS, _RANK = (
    *(
        FIELDS.index(f)
        for f in ("siren", "nom_complet", "sigle", "etat_administratif", "etablissements_ouverts")
    ),
    len(FIELDS),
)


def _row(row: tuple) -> dict:
    out = dict(zip(FIELDS, row[:-1], strict=True))
    out["score"] = score(row)
    return out


def score(row: tuple) -> float | None:
    """The bm25 relevance of a ranked row (larger is better; None for a SIREN / SIRET typed)."""
    return None if row[_RANK] is None else round(-row[_RANK], 6)


@functools.lru_cache(maxsize=100_000)
def _name_words(nom_complet: str | None, sigle: str | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(words of the name without the sigle in parentheses, words of the sigle); a masked name has none.
    Cached: the names of the popular queries' first rows come back request after request."""
    name = nom_complet if nom_complet != "[ND]" else ""
    sigle = sigle if sigle not in (None, "[ND]") else ""
    if name and sigle and name.endswith(f" ({sigle})"):
        name = name[: -len(sigle) - 3]
    return tuple(tokens(name or "")), tuple(tokens(sigle))


def _key(words: tuple[str, ...]) -> int:
    """The search_exact key of a list of words: a 64-bit hash, stable across processes and versions."""
    return int.from_bytes(
        hashlib.blake2b(" ".join(words).encode(), digest_size=8).digest(), "big", signed=True
    )


def exact_keys(nom_complet: str | None, sigle: str | None) -> list[int]:
    """The search_exact keys of a unit (mirror.lookup.search_index writes them): its name's words, its
    sigle's; a search whose words are one of them is an exact name match."""
    return sorted({_key(words) for words in _name_words(nom_complet, sigle) if words})


def _tier(db: sqlite3.Connection, name: str, text: str, limit: int, filters: str | None) -> list[tuple]:
    """[(unit id, rank)] of one tier (sql/lookup/<name>.sql), best first; `filters`: the whole search_fts
    expression when the search is filtered."""
    if filters is None:
        return db.execute(_sql(name), [text, limit]).fetchall()
    return db.execute(_sql(f"{name}_filtered"), [text, limit, filters]).fetchall()


def _groups(tier: list[tuple]) -> list[list[tuple]]:
    """A tier's [(id, rank)] cut into its relevance buckets, in order (a tier comes best first)."""
    scores = [round(-rank, 6) for _unit, rank in tier]
    top = scores[0] or 1.0
    if top <= 0:
        return [tier]
    buckets = [int((top - s) / top * RELEVANCE_STEPS) for s in scores]
    starts = [0, *(i for i in range(1, len(buckets)) if buckets[i] != buckets[i - 1]), len(buckets)]
    return [tier[a:b] for a, b in itertools.pairwise(starts)]


def _order(
    db: sqlite3.Connection, tiers: list[list[tuple]], words: list[str], first: int | None
) -> list[tuple]:
    """The ranked rows (FIELDS, then the rank) of the tiers' units in the served order (see the module doc):
    the first `first` of it, or all of them. A page reads only what it needs: the ordering fields
    (sql/lookup/search_order_keys.sql: active first, more open établissements first, then id) of the exact
    matches and of the buckets it reaches, then its own rows (a common word's first page: one bucket of
    ~1,000 units, 20 rows)."""
    ranks = {unit: rank for tier in tiers for unit, rank in tier}
    if not ranks:
        return []
    wanted = tuple(words)
    exact = [unit for (unit,) in db.execute(_sql("search_exact"), [_key(wanted)]) if unit in ranks]
    # The key is a hash: a unit counts as exact when its name's words are the words searched.
    rows = {int(r[_SIREN]): r for r in _rows(db, exact, ranks) if wanted in _name_words(r[_NOM], r[_SIGLE])}
    picked, count = [list(rows)], len(rows)
    for group in (g for tier in tiers if tier for g in _groups(tier)):
        if first is not None and count >= first:
            break
        picked.append([unit for unit, _rank in group if unit not in rows])
        count += len(picked[-1])
    sql = _sql("search_order_keys")
    keys = {
        unit: (not active, -ouverts, unit)
        for unit, active, ouverts in db.execute(sql, [json.dumps([u for m in picked for u in m])])
    }
    order = [u for members in picked for u in sorted((u for u in members if u in keys), key=keys.__getitem__)]
    order = order if first is None else order[:first]
    rows.update((int(r[_SIREN]), r) for r in _rows(db, [u for u in order if u not in rows], ranks))
    return [rows[u] for u in order if u in rows]


def _rows(db: sqlite3.Connection, units: list[int], ranks: dict) -> list[tuple]:
    """The ranked rows (FIELDS, then the rank) of `units` (in no particular order)."""
    if not units:
        return []
    return [(*r[1:], ranks[r[0]]) for r in db.execute(_sql("search_rows"), [json.dumps(units)])]


def search(
    db_path: str | os.PathLike,
    text: str,
    limit: int = 20,
    offset: int = 0,
    departement: list[str] | None = None,
    code_postal: list[str] | None = None,
    naf: list[str] | None = None,
    etat: str = "all",
) -> SearchResult:
    """Searches the units of the index `db_path` (DATA_DIR/lookup.sqlite) for `text` (see the module doc).

    Filters: departement ("75", "2A", "971"), code_postal ("75002"), naf ("10.71C" or "1071C") match the siège
    or any open établissement (naf: the unit's activitePrincipaleUniteLegale); several values of one filter
    are ORed, filters are ANDed. etat: "A" (active), "C" (closed) or "all". BadInput on bad arguments.
    """
    _check(text, limit, offset, etat)
    filters = []
    for column, values, pattern, normalize in (
        ("departement", departement, _DEPARTEMENT_RE, str.lower),
        ("code_postal", code_postal, _CODE_POSTAL_RE, str),
        ("naf", naf, _NAF_RE, lambda v: v.replace(".", "").lower()),
    ):
        checked = _values(column, values, pattern, normalize)
        if checked is not None:
            filters.append((column, checked))
    if etat != "all":
        filters.append(("etat", [etat.lower()]))
    db = _reader(db_path)
    if _IDENTIFIER_RE.fullmatch(text):
        digits = "".join(text.split())
        if len(digits) in (9, 14):
            row = db.execute(_sql("search_unit"), [int(digits[:9])]).fetchone()
            results = [_row(row)] if row else []
            return SearchResult(len(results), results[offset : offset + limit], limit, offset)
    words = tokens(text)
    if len(words) > MAX_WORDS:
        raise BadInput(f"search text: more than {MAX_WORDS} words")
    if not words:
        return SearchResult(0, [], limit, offset)
    text = text_expression(db, words)
    expression = match_expression(db, words, filters, text)
    total, rows = ranked(db, expression, words, text=text, first=offset + limit)
    return SearchResult(total, [_row(r) for r in rows[offset : offset + limit]], limit, offset)


def ranked(
    db: sqlite3.Connection,
    expression: str,
    words: list[str],
    window: int = WINDOW,
    text: str | None = None,
    first: int | None = None,
) -> tuple[int, list[tuple]]:
    """(number of matches of `expression` (match_expression), the best `window` of them in the served order:
    rows of FIELDS then the FTS5 rank, as tuples; `score(row)` is its relevance): see the module doc. With
    `first`, only the order's first `first` rows are computed and returned. The
    ranks are the bm25 of the words' text expression (`text`, computed when not given): search_nom's for the
    units holding every word in their names, then search_enseignes' for the others."""
    text = text_expression(db, words) if text is None else text
    filters = None if expression == match_expression(db, words, [], text) else expression
    tiers = [_tier(db, "search_tier_names", text, window, filters)]
    names = len(tiers[0])
    if names < window and (first is None or first > names):
        tiers.append(_tier(db, "search_tier_enseignes", text, window - names, filters))
    # The total: counted unless the tiers read every match (every count evaluates the text once more).
    if len(tiers) == 2 and names + len(tiers[1]) < window:
        total = names + len(tiers[1])
    elif filters is not None:
        total = count(db, expression)
    elif names < window:  # every name match read: the enseigne-only matches are counted alone
        ids = json.dumps([unit for unit, _rank in tiers[0]])
        total = names + db.execute(_sql("search_count_beyond"), [text, ids]).fetchone()[0]
    else:
        total = db.execute(_sql("search_count_text"), [text]).fetchone()[0]
    return total, _order(db, tiers, words, first)


def count(db: sqlite3.Connection, expression: str) -> int:
    """The number of units matching the FTS5 expression."""
    return db.execute(_sql("search_count"), [expression]).fetchone()[0]


def ids_after(db: sqlite3.Connection, expression: str, after: int, limit: int) -> list[int]:
    """The ids (siren as an integer) of the first `limit` units matching `expression` with an id greater than
    `after`, in id order: a stable order to page through every match (no window)."""
    return [i for (i,) in db.execute(_sql("search_ids"), [expression, after, limit]).fetchall()]


# ------------------------------------------------------------------------------------------------
# Output
# ------------------------------------------------------------------------------------------------

_TABLE = (
    ("siren", "siren"),
    ("nom", "nom_complet"),
    ("état", "etat_administratif"),
    ("code postal", "code_postal"),
    ("commune", "commune"),
    ("NAF", "activite_principale"),
    ("établissements ouverts", "etablissements_ouverts"),
)
FORMATS = ("table", "json", "csv")


def render(result: SearchResult, fmt: str = "table") -> str:
    """The result as text: "table" (aligned columns, then the total), "json" (one object: total, results),
    "csv" (a header and one row per result, every field)."""
    if fmt == "json":
        return json.dumps({"total": result.total, "results": result.results}, ensure_ascii=False)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow([*FIELDS, "score"])
        for r in result.results:
            writer.writerow(["" if r.get(k) is None else r.get(k) for k in (*FIELDS, "score")])
        return buf.getvalue()
    if fmt == "table":
        rows = [[h for h, _ in _TABLE]]
        rows += [["" if r.get(k) is None else str(r.get(k)) for _, k in _TABLE] for r in result.results]
        widths = [max(len(row[i]) for row in rows) for i in range(len(_TABLE))]
        lines = ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in rows]
        shown = f"{result.offset + 1}-{result.offset + len(result.results)}" if result.results else "0"
        lines.append(f"{result.total} résultat(s), {shown} affiché(s)")
        return "\n".join(lines) + "\n"
    raise BadInput(f"format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
