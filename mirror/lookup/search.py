"""Ranked company search over the SQLite FTS5 index built by mirror.lookup.search_index.

    from mirror.lookup.search import search, render
    result = search("./data/lookup.sqlite", "boulangerie l'ouest", departement=["35"], etat="A")
    print(render(result, "table"))

The pieces, for a caller holding its own connection (mirror.http.recherche reads the index and the lookup
store in one transaction): match_expression / filter_expression build the bound FTS5 expression (every
filter column of sql/lookup/search_schema.sql), ranked() gives the number of matches and the re-ranked
window, ids_after() pages through every match in SIREN order (no window), count() counts them.

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
Ranking: bm25 (names weigh more than enseignes) over search_names, an index of the text columns alone (bm25
divides by the length of the row it scores: over search_fts, whose filter columns hold a code per open
établissement, a unit's établissements lowered its relevance), the filters testing each text match against
the set of the whole expression (a filtered search costs what its text costs); over the best WINDOW matches,
an exact name match first,
then relevance in RELEVANCE_STEPS buckets counted down from the best match (within 10 % of it: one bucket),
active before closed, more open établissements first, siren: deterministic, and pages of one query never
overlap. Results beyond the first WINDOW are not served (offset + limit <= WINDOW); `total` is the exact
number of matches. Addresses are not searched as text (the département / code postal filters are).
"""

from __future__ import annotations

import csv
import functools
import io
import json
import os
import re
import sqlite3
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


def _connect(db_path) -> sqlite3.Connection:
    path = Path(db_path)
    if path.is_dir():  # a data directory: its lookup store holds the index
        path = store_path(path)
    if not path.is_file():
        raise MirrorError(
            f"no search index at {path}: run `mirror store` (or `mirror load` / `mirror sync`) to build it"
        )
    db = None
    try:
        db = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
        db.execute(f"PRAGMA busy_timeout = {READ_BUSY_MS}")  # a daily update's commit: wait, do not fail
        for table in ("search_units", "search_names"):
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


def _upper_bound(prefix: str) -> str:
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


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


def _docs(db: sqlite3.Connection, word: str, prefix: bool) -> int:
    if prefix:
        return db.execute(_sql("search_prefix_docs"), [word, _upper_bound(word)]).fetchone()[0]
    rows = db.execute(_sql("search_terms", candidates="?"), [word]).fetchall()
    return rows[0][1] if rows else 0


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
    """The FTS5 expression of the words (search_names ranks with it): every word, the last as a prefix,
    typo variants ORed in, ANDed. Every word is an FTS5 string."""
    parts = []
    for i, word in enumerate(words):
        prefix = i == len(words) - 1 and len(word) >= 2
        # The last word as a prefix, and as a word too: a unit holding the whole word scores higher.
        term = f"({_quote(word)} OR {_quote(word)}*)" if prefix else _quote(word)
        if len(word) >= TYPO_MIN_LETTERS and word.isalpha() and word.isascii():
            if _docs(db, word, prefix) <= TYPO_MAX_DOCS:
                variants = _variants(db, word)
                if variants:
                    term = "(" + " OR ".join([term, *(_quote(v) for v in variants)]) + ")"
        parts.append(term)
    return " AND ".join(parts)


# ------------------------------------------------------------------------------------------------
# Search
# ------------------------------------------------------------------------------------------------


# Positions in a candidate row (sql/lookup/search_candidates.sql: FIELDS, then the FTS5 rank).
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
    """The bm25 relevance of a candidate row (larger is better; None for a SIREN / SIRET typed)."""
    return None if row[_RANK] is None else round(-row[_RANK], 6)


@functools.lru_cache(maxsize=100_000)
def _name_words(nom_complet: str | None, sigle: str | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(words of the name without the sigle in parentheses, words of the sigle). Cached: the names of the
    popular queries' candidates come back request after request, and tokenizing is most of a re-rank."""
    name = nom_complet or ""
    sigle = sigle if sigle not in (None, "[ND]") else ""
    if sigle and name.endswith(f" ({sigle})"):
        name = name[: -len(sigle) - 3]
    return tuple(tokens(name)), tuple(tokens(sigle))


def _rerank(rows: list[tuple], words: list[str]) -> list[tuple]:
    """The candidate rows in the served order (see the module doc); rows stay tuples: only the page served
    becomes dicts (a window is 1,000 rows, building them all was a quarter of a common word's search)."""
    if not rows:
        return rows
    top = max(score(r) for r in rows) or 1.0
    wanted = tuple(words)

    def key(r: tuple):
        exact = wanted in _name_words(r[_NOM], r[_SIGLE])
        bucket = int((top - score(r)) / top * RELEVANCE_STEPS) if top > 0 else 0  # 0: within 10 % of the best
        return (not exact, bucket, r[_ETAT] != "A", -r[_OUVERTS], r[_SIREN])

    return sorted(rows, key=key)


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
    db = _connect(db_path)
    try:
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
        total, rows = ranked(db, match_expression(db, words, filters, text), words, text=text)
    finally:
        db.close()
    return SearchResult(total, [_row(r) for r in rows[offset : offset + limit]], limit, offset)


def ranked(
    db: sqlite3.Connection, expression: str, words: list[str], window: int = WINDOW, text: str | None = None
) -> tuple[int, list[tuple]]:
    """(number of matches of `expression` (match_expression), the best `window` of them re-ranked: rows of
    FIELDS then the FTS5 rank, as tuples; `score(row)` is its relevance): see the module doc. The rank is
    search_names' bm25 of the words' text expression (`text`, computed when not given)."""
    text = text_expression(db, words) if text is None else text
    if expression == match_expression(db, words, [], text):  # no filter: the text alone
        rows = db.execute(_sql("search_candidates"), [text, window]).fetchall()
    else:
        rows = db.execute(_sql("search_candidates_filtered"), [text, window, expression]).fetchall()
    # Counted only when the window is full (the count evaluates the whole expression a second time).
    total = len(rows) if len(rows) < window else count(db, expression)
    return total, _rerank(rows, words)


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
