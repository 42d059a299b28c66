"""The `q` language of the INSEE API Sirene 3.11 multicriteria searches, parsed and translated to DuckDB SQL.

    predicate = translate("periode(denominationUniteLegale:GAZ* AND etatAdministratifUniteLegale:A)", "siren")
    predicate.sql, predicate.params   # a boolean SQL expression over the base view, its bound values

The syntax is INSEE's (sirene.fr's pages on multicriteria searches, insee.fr's API Sirene documentation),
a Lucene dialect parsed by luqum (a maintained Lucene query parser): `champ:valeur`, `AND`, `OR`, `NOT`, a
leading `-`, parentheses, `champ:(a OR b)`, quoted phrases, wildcards `*` (any run of characters) and `?`
(one character), ranges `[a TO b]` / `{a TO b}` with `*` for an open end, approximate search `~` (edit
distance, 2 by default, as Lucene), and `periode(...)` for the historised variables: the unit (or
établissement) matches when ONE of its periods meets every condition inside the parentheses. A historised
variable outside `periode(...)` is the current value (the current period, which the stock row carries).

Values by type (mirror.core.schema's typed layer): dates and timestamps accept partial values meaning the
whole span (`2017`, `2023-11`, `2025-12-07`, `2025-12-07T08`, seconds, milliseconds) alone or as range
bounds; booleans `true` / `false`; numbers; codes match exactly (or with wildcards). Names (dénominations,
noms, prénoms, enseignes, libellés...) match by words, case- and accent-insensitively, as INSEE's text
fields do; a masked value (`[ND]`, diffusion partielle) is never a word of a name, so a partially
diffusible natural person is not found by name.

Anything else answers QueryError (HTTP 400, INSEE's error shape): unknown fields, a field of the wrong
collection, a non-historised field inside `periode(...)`, implicit operators (write AND / OR), boosts,
regular expressions, proximity searches, `.phonetisation` (not available on the mirror), bad dates, a
range in the wrong order. A cost bound (MAX_CLAUSES clauses, MAX_COST weighted by the clauses' kinds)
refuses queries that would scan the register without limit.

The SQL is regenerated from the validated syntax tree only: column names come from mirror.core.schema
(written with core.sql.ident), every value is a bound parameter (`?`), never text of the query.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from luqum.exceptions import ParseError
from luqum.parser import parser as _lucene
from luqum.tree import (
    AndOperation,
    Boost,
    FieldGroup,
    Fuzzy,
    Group,
    Not,
    OrOperation,
    Phrase,
    Plus,
    Prohibit,
    Proximity,
    Range,
    Regex,
    SearchField,
    UnknownOperation,
    Word,
)

from mirror.core.insee_records import CNIL_FIELDS, ET_PERIOD, UL_IN_ETAB, UL_PERIOD
from mirror.core.schema import (
    ETABLISSEMENT_COLUMNS,
    LIENS_SUCCESSION_COLUMNS,
    UNITE_LEGALE_COLUMNS,
    typed_column_type,
)
from mirror.core.sql import ident

MAX_Q_LENGTH = 8000
MAX_CLAUSES = 100
MAX_COST = 200
MAX_EDITS = 2
# Weights of the cost bound: what a clause costs DuckDB relative to an equality on one column.
COST = {"exact": 1, "range": 1, "like": 2, "words": 3, "fuzzy": 20, "periode": 3, "join": 3}
ND = "[ND]"
_WORD = "A-Z0-9"  # after normalisation (upper case, no accents)


class QueryError(ValueError):
    """A `q` INSEE answers 400 to; the message is INSEE-style French, one line."""


@dataclass(frozen=True)
class Collection:
    name: str
    table: str  # base view
    alias: str
    key: tuple[str, ...]
    direct: frozenset[str]  # columns of the base view
    history: str | None = None  # the view of the periods
    history_key: str | None = None
    historised: frozenset[str] = frozenset()
    joined: frozenset[str] = frozenset()  # unit fields searchable from an établissement (via its siren)
    extra_known: frozenset[str] = frozenset()  # fields INSEE knows that the open data never fills


COLLECTIONS = {
    "siren": Collection(
        "siren",
        "unites_legales",
        "u",
        ("siren",),
        frozenset(UNITE_LEGALE_COLUMNS),
        "unites_legales_historique",
        "siren",
        frozenset(UL_PERIOD),
        extra_known=CNIL_FIELDS,
    ),
    "siret": Collection(
        "siret",
        "etablissements",
        "e",
        ("siret",),
        frozenset(ETABLISSEMENT_COLUMNS),
        "etablissements_historique",
        "siret",
        frozenset(ET_PERIOD),
        joined=frozenset(f for f in UL_IN_ETAB if f in UNITE_LEGALE_COLUMNS),
        extra_known=CNIL_FIELDS,
    ),
    "liensSuccession": Collection(
        "liensSuccession",
        "liens_succession",
        "l",
        ("siretEtablissementPredecesseur", "siretEtablissementSuccesseur", "dateLienSuccession"),
        frozenset(LIENS_SUCCESSION_COLUMNS),
    ),
}


def is_text_field(name: str) -> bool:
    """Names and labels: matched by words (INSEE's text fields), not as codes."""
    return name.startswith(
        ("denomination", "prenom", "pseudonyme", "sigle", "enseigne", "libelle", "complementAdresse")
    ) or name in ("nomUniteLegale", "nomUsageUniteLegale")


def normalize(text: str) -> str:
    """Upper case without accents (what the text comparisons use on both sides)."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).upper()


# ------------------------------------------------------------------------------------------------
# Parsing
# ------------------------------------------------------------------------------------------------

_PARSE_LOCK = threading.Lock()  # luqum's PLY parser keeps its state on the shared parser object
_PERIODE = re.compile(r"periode\s*\(", re.IGNORECASE)


def _periode_as_field(q: str) -> str:
    """`periode(...)` -> `periode:(...)` outside quoted phrases, so that the Lucene grammar reads it as one
    field group (luqum would otherwise read `periode` as a bare word before a group)."""
    out, i, quoted = [], 0, False
    while i < len(q):
        c = q[i]
        if c == "\\" and i + 1 < len(q):
            out.append(q[i : i + 2])
            i += 2
            continue
        if c == '"':
            quoted = not quoted
        elif not quoted and (i == 0 or not (q[i - 1].isalnum() or q[i - 1] in "._")):
            m = _PERIODE.match(q, i)
            if m:
                out.append("periode:(")
                i = m.end()
                continue
        out.append(c)
        i += 1
    return "".join(out)


def parse(q: str):
    if len(q) > MAX_Q_LENGTH:
        raise QueryError(f"Requête trop longue : plus de {MAX_Q_LENGTH} caractères dans q")
    text = _periode_as_field(q.strip())
    with _PARSE_LOCK:
        try:
            return _lucene.parse(text)
        except (ParseError, ValueError, TypeError) as exc:
            detail = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
            raise QueryError(f"Erreur de syntaxe dans la requête q : {detail}") from None


# ------------------------------------------------------------------------------------------------
# Values
# ------------------------------------------------------------------------------------------------

_PARTIAL = re.compile(
    r"^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:[T ](\d{2})(?::(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?)?)?)?)?$"
)


def partial_span(value: str) -> tuple[datetime, datetime, bool]:
    """A partial date or timestamp -> [start, end) and whether it names a time of day. QueryError if
    it is not one (or not a real date)."""
    m = _PARTIAL.match(value.replace("\\", ""))
    if not m:
        raise QueryError(f"Erreur de syntaxe, date incorrecte : {value[:40]}")
    y, mo, d, h, mi, s, frac = m.groups()
    try:
        start = datetime(
            int(y),
            int(mo or 1),
            int(d or 1),
            int(h or 0),
            int(mi or 0),
            int(s or 0),
            int((frac or "0").ljust(6, "0")),
        )
    except ValueError:
        raise QueryError(f"Erreur de syntaxe, date incorrecte : {value[:40]}") from None
    if mo is None:
        end = start.replace(year=start.year + 1) if start.year < 9999 else datetime.max
    elif d is None:
        end = start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
    elif h is None:
        end = start + timedelta(days=1)
    elif mi is None:
        end = start + timedelta(hours=1)
    elif s is None:
        end = start + timedelta(minutes=1)
    elif frac is None:
        end = start + timedelta(seconds=1)
    else:
        end = start + timedelta(microseconds=10 ** (6 - len(frac)))
    return start, end, h is not None


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def _word_regex(text: str) -> str:
    """A word or phrase (with * and ?) -> an RE2 pattern matching it as whole words of a normalised name."""
    tokens = [t for t in re.split(rf"[^{_WORD}*?]+", normalize(text)) if t]
    if not tokens:
        raise QueryError(f"Valeur sans lettre ni chiffre : {text[:40]}")
    parts = []
    for t in tokens:
        parts.append("".join(f"[{_WORD}]*" if c == "*" else f"[{_WORD}]" if c == "?" else c for c in t))
    return f"(^|[^{_WORD}])" + f"[^{_WORD}]+".join(parts) + f"([^{_WORD}]|$)"


def _like(text: str) -> str:
    out = []
    for c in text:
        if c in "%_\\":
            out.append("\\" + c)
        else:
            out.append("%" if c == "*" else "_" if c == "?" else c)
    return "".join(out)


# ------------------------------------------------------------------------------------------------
# Translation
# ------------------------------------------------------------------------------------------------


@dataclass
class Predicate:
    sql: str
    params: list = field(default_factory=list)
    cost: int = 0
    clauses: int = 0


class _Translator:
    def __init__(self, collection: Collection):
        self.c = collection
        self.params: list = []
        self.cost = 0
        self.clauses = 0

    # a column reference in the current context (alias.column)
    def node(self, n, fld: str | None, scope: str) -> str:
        if isinstance(n, AndOperation | OrOperation):
            op = " AND " if isinstance(n, AndOperation) else " OR "
            return "(" + op.join(self.node(x, fld, scope) for x in n.children) + ")"
        if isinstance(n, Not | Prohibit):
            return f"(NOT {self.node(n.a, fld, scope)})"
        if isinstance(n, Plus):
            return self.node(n.a, fld, scope)
        if isinstance(n, Group | FieldGroup):
            return self.node(n.expr, fld, scope)
        if isinstance(n, UnknownOperation):
            raise QueryError(
                "Erreur de syntaxe : opérateur manquant entre deux conditions de q (écrire AND ou OR)"
            )
        if isinstance(n, SearchField):
            return self.search_field(n, fld, scope)
        if isinstance(n, Boost):
            raise QueryError("Les pondérations (^) ne sont pas prises en charge dans q")
        if isinstance(n, Regex):
            raise QueryError("Les expressions régulières (/.../) ne sont pas prises en charge dans q")
        if isinstance(n, Proximity):
            raise QueryError('Les recherches de proximité ("..."~n) ne sont pas prises en charge dans q')
        if isinstance(n, Word | Phrase | Range | Fuzzy):
            if fld is None:
                raise QueryError(
                    f"Erreur de syntaxe : valeur sans champ dans q ({str(n)[:40]}), écrire champ:valeur"
                )
            return self.leaf(fld, n, scope)
        raise QueryError(f"Construction non prise en charge dans q : {type(n).__name__}")

    def search_field(self, n: SearchField, fld: str | None, scope: str) -> str:
        name = n.name
        if fld is not None:
            raise QueryError(f"Erreur de syntaxe : champ {name} à l'intérieur du champ {fld}")
        if name.lower() == "periode":
            if scope != "main":
                raise QueryError("periode(...) ne peut pas être imbriqué")
            if self.c.history is None:
                raise QueryError(f"periode(...) n'existe pas pour la collection {self.c.name}")
            self.cost += COST["periode"]
            inner = self.node(n.expr, None, "periode")
            h, k = self.c.history, ident(self.c.history_key)
            return f"EXISTS (SELECT 1 FROM {ident(h)} h WHERE h.{k} = {self.c.alias}.{k} AND {inner})"
        if name.endswith(".phonetisation"):
            raise QueryError("La recherche phonétique (.phonetisation) n'est pas disponible sur ce miroir")
        return self.node(n.expr, name, scope)

    def column(self, name: str, scope: str) -> tuple[str, str, str | None]:
        """(SQL column reference, its table for typing, the unit join or None) of a field, or QueryError."""
        c = self.c
        if scope == "periode":
            if name not in c.historised:
                raise QueryError(
                    f"Le champ {name} n'est pas historisé : il ne peut pas figurer dans periode(...)"
                )
            return f"h.{ident(name)}", c.history, None
        if name in c.direct:
            return f"{c.alias}.{ident(name)}", c.table, None
        if name in c.joined:
            return f"j.{ident(name)}", "unites_legales", "unites_legales"
        if name in c.extra_known:
            raise QueryError(f"Le champ {name} n'est pas diffusé (données soumises à une démarche CNIL)")
        if name in c.historised:  # dateFin: period only
            raise QueryError(f"Le champ {name} est historisé : écrire periode({name}:...)")
        raise QueryError(f"Champ inconnu pour la collection {c.name} : {name}")

    def bind(self, value) -> str:
        self.params.append(value)
        return "?"

    def leaf(self, name: str, n, scope: str) -> str:
        self.clauses += 1
        if self.clauses > MAX_CLAUSES:
            raise QueryError(f"Requête trop complexe : plus de {MAX_CLAUSES} conditions dans q")
        col, table, join = self.column(name, scope)
        sql = self.condition(name, col, typed_column_type(table, name), n)
        if join is not None:
            self.cost += COST["join"]
            sql = f"{self.c.alias}.siren IN (SELECT j.siren FROM {ident(join)} j WHERE {sql})"
        return f"coalesce(({sql}), false)"

    def condition(self, name: str, col: str, ctype: str, n) -> str:
        if isinstance(n, Range):
            self.cost += COST["range"]
            return self.range(name, col, ctype, n)
        if isinstance(n, Fuzzy):
            return self.fuzzy(name, col, ctype, n)
        phrase = isinstance(n, Phrase)
        raw = n.value[1:-1] if phrase else n.value
        text = raw if phrase else _unescape(raw)
        wild = not phrase and any(ch in "*?" for ch in re.sub(r"\\.", "", raw))
        if not phrase and raw == "*":
            self.cost += COST["exact"]
            return f"{col} IS NOT NULL"
        if ctype in ("DATE", "TIMESTAMP"):
            if wild:
                self.cost += COST["like"]
                fmt = "%Y-%m-%d" if ctype == "DATE" else "%Y-%m-%dT%H:%M:%S.%g"
                return f"strftime({col}, '{fmt}') LIKE {self.bind(_like(text))} ESCAPE '\\'"
            self.cost += COST["exact"]
            lo, hi = self.span(name, ctype, text)
            return f"{col} >= {self.bind(lo)} AND {col} < {self.bind(hi)}"
        if ctype == "BOOLEAN":
            if text.lower() not in ("true", "false"):
                raise QueryError(f"Valeur incorrecte pour le champ {name} (true ou false) : {text[:40]}")
            self.cost += COST["exact"]
            return f"{col} = {self.bind(text.lower() == 'true')}"
        if ctype in ("SMALLINT", "INTEGER", "BIGINT", "DOUBLE"):
            if wild:
                self.cost += COST["like"]
                return f"CAST({col} AS VARCHAR) LIKE {self.bind(_like(text))} ESCAPE '\\'"
            self.cost += COST["exact"]
            return f"{col} = {self.bind(self.number(name, ctype, text))}"
        if is_text_field(name):
            self.cost += COST["words"]
            return f"{col} <> '{ND}' AND regexp_matches(strip_accents(upper({col})), {self.bind(_word_regex(text))})"
        if wild:
            self.cost += COST["like"]
            return f"{col} LIKE {self.bind(_like(text))} ESCAPE '\\'"
        self.cost += COST["exact"]
        return f"{col} = {self.bind(text)}"

    @staticmethod
    def number(name: str, ctype: str, text: str):
        try:
            return float(text) if ctype == "DOUBLE" else int(text)
        except ValueError:
            raise QueryError(f"Valeur numérique incorrecte pour le champ {name} : {text[:40]}") from None

    @staticmethod
    def span(name: str, ctype: str, text: str):
        lo, hi, timed = partial_span(text)
        if ctype == "DATE":
            if timed:
                raise QueryError(f"Le champ {name} est une date (AAAA-MM-JJ), sans heure : {text[:40]}")
            return lo.date(), hi.date() if hi != datetime.max else date.max
        return lo, hi

    def range(self, name: str, col: str, ctype: str, n: Range) -> str:
        low, high = _unescape(str(n.low)), _unescape(str(n.high))
        parts = []
        if ctype in ("DATE", "TIMESTAMP"):
            spans = [None if v == "*" else self.span(name, ctype, v) for v in (low, high)]
            if spans[0] and spans[1] and spans[0][0] > spans[1][0]:
                raise QueryError(f"Erreur de syntaxe, ordre incorrect dans l'intervalle : {low} TO {high}")
            if spans[0]:
                bound = spans[0][0] if n.include_low else spans[0][1]
                parts.append(f"{col} >= {self.bind(bound)}")
            if spans[1]:
                bound = spans[1][1] if n.include_high else spans[1][0]
                parts.append(f"{col} < {self.bind(bound)}")
        else:
            if ctype in ("SMALLINT", "INTEGER", "BIGINT", "DOUBLE"):
                values = [None if v == "*" else self.number(name, ctype, v) for v in (low, high)]
            elif ctype == "BOOLEAN":
                raise QueryError(f"Un intervalle n'a pas de sens pour le champ booléen {name}")
            else:
                values = [None if v == "*" else v for v in (low, high)]
            if values[0] is not None and values[1] is not None and values[0] > values[1]:
                raise QueryError(f"Erreur de syntaxe, ordre incorrect dans l'intervalle : {low} TO {high}")
            if values[0] is not None:
                parts.append(f"{col} {'>=' if n.include_low else '>'} {self.bind(values[0])}")
            if values[1] is not None:
                parts.append(f"{col} {'<=' if n.include_high else '<'} {self.bind(values[1])}")
        if not parts:
            return f"{col} IS NOT NULL"
        return " AND ".join(parts)

    def fuzzy(self, name: str, col: str, ctype: str, n: Fuzzy) -> str:
        if ctype != "VARCHAR":
            raise QueryError(f"La recherche approchée (~) ne s'applique qu'aux champs textuels, pas à {name}")
        self.cost += COST["fuzzy"]
        degree = n.degree
        edits = MAX_EDITS if degree is None or float(degree) < 1 else min(int(float(degree)), MAX_EDITS)
        word = normalize(_unescape(str(n.term)))
        if not re.fullmatch(rf"[{_WORD}]+", word):
            raise QueryError(f"La recherche approchée (~) porte sur un seul mot sans joker : {word[:40]}")
        if is_text_field(name):
            return (
                f"{col} <> '{ND}' AND len(list_filter(regexp_split_to_array(strip_accents(upper({col})), "
                f"'[^{_WORD}]+'), w -> levenshtein(w, {self.bind(word)}) <= {self.bind(edits)})) > 0"
            )
        return f"levenshtein(upper({col}), {self.bind(word)}) <= {self.bind(edits)}"


def translate(q: str | None, collection: str) -> Predicate:
    """`q` of a search of `collection` ("siren", "siret", "liensSuccession") -> a Predicate over the base view
    (alias u, e or l). An empty q matches everything. QueryError (400) for anything INSEE would refuse or
    the mirror does not support, and beyond the cost bound."""
    coll = COLLECTIONS[collection]
    if q is None or not q.strip():
        return Predicate("TRUE")
    tree = parse(q)
    t = _Translator(coll)
    sql = t.node(tree, None, "main")
    if t.cost > MAX_COST:
        raise QueryError(
            f"Requête trop coûteuse (coût {t.cost} > {MAX_COST}) : moins de recherches approchées, de jokers "
            "ou de conditions"
        )
    return Predicate(sql, t.params, t.cost, t.clauses)
