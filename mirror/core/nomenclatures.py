"""The code lists of the `sql/ref/` nomenclatures, for checking user input, and the nearest codes to a typo.

One reader of the CSV files the catalog loads as its `ref_*` tables (INSEE's NAF rév. 2 and NAF 2025,
tranches d'effectif, catégories juridiques, Code officiel géographique: communes, départements,
régions; BANATIC's EPCI), so an option or a request parameter is checked against the same codes the
mirror's libellés come from. `arrondissements` gives the arrondissements municipaux of Paris, Lyon and
Marseille (COG: type `arrondissement-municipal`, `commune_parent` 75056, 69123, 13055), where Sirene
locates the établissements of those three communes.
"""

from __future__ import annotations

import csv
import gzip
import io
import threading
from collections.abc import Callable, Iterable
from functools import cache

from mirror.core.sql import REF_DIR

_LOCK = threading.Lock()


def _rows(name: str) -> list[dict[str, str]]:
    path = REF_DIR / name
    raw = path.read_bytes()
    if name.endswith(".gz"):
        raw = gzip.decompress(raw)
    return list(csv.DictReader(io.StringIO(raw.decode("utf-8"), newline="")))


@cache
def _table(name: str) -> tuple[dict[str, str], ...]:
    return tuple(_rows(name))


def rows(name: str) -> tuple[dict[str, str], ...]:
    """The rows of sql/ref/`name` (read once per process; thread-safe)."""
    with _LOCK:
        return _table(name)


def codes(name: str, column: str = "code", where: Callable[[dict], bool] | None = None) -> frozenset[str]:
    """The values of `column` in sql/ref/`name` (empty values left out), optionally of the rows `where`."""
    return frozenset(r[column] for r in rows(name) if r[column] and (where is None or where(r)))


# The département of an address abroad in the catalog (sql/catalog/typed_etablissements.sql), as in
# INSEE's codes: 99 is "étranger".
DEPARTEMENT_ETRANGER = "99"


@cache
def commune_codes() -> frozenset[str]:
    """Every commune code of the COG file: current communes, arrondissements municipaux, communes
    associées and déléguées, the former codes merged into them (old Sirene rows still carry them), and
    the country codes 99xxx some rows carry for an address abroad."""
    out = set(codes("pays.csv"))
    for r in rows("communes.csv.gz"):
        out.add(r["code"])
        out.update(c for c in r["anciens_codes"].split("|") if c)
    return frozenset(out)


def departement_codes() -> frozenset[str]:
    """The départements of the COG, and 99 (abroad) as the catalog's `departement` column has it."""
    return codes("departements.csv") | {DEPARTEMENT_ETRANGER}


@cache
def current_commune_codes() -> frozenset[str]:
    """The codes of the current communes and arrondissements municipaux (the codes worth suggesting)."""
    return codes(
        "communes.csv.gz", where=lambda r: r["type"] in ("commune-actuelle", "arrondissement-municipal")
    )


@cache
def _arrondissements() -> dict[str, tuple[str, ...]]:
    out: dict[str, list[str]] = {}
    for r in rows("communes.csv.gz"):
        if r["type"] == "arrondissement-municipal" and r["commune_parent"]:
            out.setdefault(r["commune_parent"], []).append(r["code"])
    return {parent: tuple(sorted(children)) for parent, children in out.items()}


def arrondissements(commune: str) -> tuple[str, ...]:
    """The arrondissements municipaux of `commune` (75056 Paris, 69123 Lyon, 13055 Marseille), else ()."""
    return _arrondissements().get(commune, ())


def with_arrondissements(communes: Iterable[str]) -> list[str]:
    """`communes` followed by the arrondissements of Paris, Lyon and Marseille among them (no duplicates)."""
    out: list[str] = []
    for code in communes:
        for c in (code, *arrondissements(code)):
            if c not in out:
                out.append(c)
    return out


def _distance(a: str, b: str) -> int:
    """Levenshtein distance (codes are a few characters long)."""
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return current[-1] if a else len(b)


def nearest(value: str, valid: Iterable[str], n: int = 5) -> list[str]:
    """Up to `n` codes of `valid` closest to `value`: fewest edits first, then the longest common prefix."""

    def key(code: str):
        common = 0
        for x, y in zip(value, code, strict=False):
            if x != y:
                break
            common += 1
        return (_distance(value, code), -common, code)

    return sorted(valid, key=key)[:n]
