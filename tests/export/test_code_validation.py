"""Codes of the export filters checked against the sql/ref nomenclatures, the Paris / Lyon / Marseille
commune codes covering their arrondissements, the --where function names checked as written, and
`get SIRET --siege`: through the real CLI (subprocesses) on the session's loaded mirror. The expected
counts come from the raw stock files (csv module), not from the export code."""

from __future__ import annotations

import csv
import gzip
import re
from datetime import date

import pytest
from conftest import run_mirror
from export_helpers import read_raw

from mirror.core.schema import ETABLISSEMENTS
from mirror.core.sql import REF_DIR


@pytest.fixture(scope="module")
def active(stock_dir) -> list[dict]:
    return [e for e in read_raw(stock_dir, ETABLISSEMENTS) if e["etatAdministratifEtablissement"] == "A"]


def _count(data, *args) -> int:
    r = run_mirror("export", "--count", "--quiet", *args, data_dir=data)
    assert r.returncode == 0, r.stderr
    return int(r.stdout.strip())


def _refused(data, *args) -> str:
    """The one-line error of a refused command (exit 2, nothing on stdout, no traceback)."""
    r = run_mirror(*args, data_dir=data)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert len(lines) == 1 and lines[0].startswith("Error: ") and r.stdout == "", r.stderr
    return lines[0]


# --- item 5: unknown codes are refused with the nearest valid ones, instead of 0 rows ---


@pytest.mark.slow
@pytest.mark.parametrize(
    "option, value, needle, near",
    [
        ("--naf", "99.99Z", "unknown NAF rév. 2 code '99.99Z'", "99.00Z"),
        ("--naf", "9999Z", "unknown NAF rév. 2 code '99.99Z'", "99.00Z"),  # normalised first
        ("--naf", "63.3", "unknown NAF rév. 2 prefix '63.3'", "63.1"),
        ("--naf25", "62.10Z", "unknown NAF 2025 code '62.10Z'", "62.10Y"),
        ("--tranche", "99", "unknown tranche d'effectif '99'", "00"),
        ("--departement", "20", "unknown département '20'", "2A"),
        ("--departement", "979", "unknown département '979'", "971"),
        ("--region", "99", "unknown région code '99'", "94"),
        ("--categorie-juridique", "5799", "unknown catégorie juridique '5799'", "5710"),
        ("--categorie-juridique", "59", "unknown catégorie juridique '59'", "51"),
        ("--commune", "75000", "unknown commune code '75000'", "75056"),
        ("--epci", "200054780", "unknown EPCI SIREN '200054780'", "200054781"),
    ],
)
def test_unknown_codes_are_refused_with_the_nearest_valid_ones(loaded_stock, option, value, needle, near):
    line = _refused(loaded_stock, "export", "--count", option, value)
    assert needle in line
    nearest = re.search(r"nearest: ([^)]*)\)", line).group(1).split(", ")
    assert near in nearest and value not in nearest and len(nearest) <= 5, line


@pytest.mark.slow
def test_valid_codes_of_every_kind_are_accepted(loaded_stock, active):
    # Corsica and the overseas départements (the DROM 971-976; 975 is a COM) are départements.
    overseas = ("2A", "2B", "971", "972", "973", "974", "976")
    expected = sum(1 for e in active if e["codeCommuneEtablissement"][:2] in ("2A", "2B"))
    expected += sum(1 for e in active if e["codeCommuneEtablissement"][:3] in overseas)
    assert _count(loaded_stock, "--departement", ",".join(overseas)) == expected
    # A code, a prefix and a section of each NAF; bands; a catégorie juridique prefix: no refusal.
    for args in (
        ("--naf", "62.01Z,62.0,J"),
        ("--naf25", "62.10Y,62,J"),
        ("--tranche", "NN,00,53"),
        ("--categorie-juridique", "5*,5710"),
        ("--region", "11,975"),
        ("--epci", "200054781"),
    ):
        _count(loaded_stock, *args)


@pytest.mark.slow
@pytest.mark.parametrize("commune, city", [("75056", "Paris"), ("69123", "Lyon"), ("13055", "Marseille")])
def test_paris_lyon_marseille_cover_their_arrondissements(loaded_stock, active, commune, city):
    with gzip.open(REF_DIR / "communes.csv.gz", "rt", encoding="utf-8", newline="") as fh:
        children = {r["code"] for r in csv.DictReader(fh) if r["commune_parent"] == commune}
    assert len(children) == {"Paris": 20, "Lyon": 9, "Marseille": 16}[city]
    expected = sum(1 for e in active if e["codeCommuneEtablissement"] in children | {commune})
    assert expected > 0  # the generated stock locates them in arrondissements, as Sirene does
    assert _count(loaded_stock, "--commune", commune) == expected
    one = sorted(children)[0]
    assert _count(loaded_stock, "--commune", one) == sum(
        1 for e in active if e["codeCommuneEtablissement"] == one
    )


# --- item 5: `get SIRET --siege` names the option ---


@pytest.mark.slow
def test_get_siret_with_siege_names_the_option(loaded_stock, active):
    siret = active[0]["siret"]
    line = _refused(loaded_stock, "get", siret, "--siege")
    assert "--siege" in line and "SIRET" in line and siret[:9] in line
    assert "formatt" not in line


# --- item 4: --where function names as the user wrote them ---

ALLOWED_LIST = re.compile(r"\(allowed: ([^)]*)\)")


@pytest.mark.slow
@pytest.mark.parametrize(
    "text, name",
    [
        ("strftime(dateCreationEtablissement, '%Y') = '2020'", "strftime"),
        ("len(siren) = 9", "len"),  # sqlglot reads it as length: still not a documented name
        ("extract(year FROM dateCreationEtablissement) = 2020", "extract"),
        ("now() > dateCreationEtablissement", "now"),
    ],
)
def test_a_refused_function_is_named_as_written_and_is_not_in_the_allowed_list(loaded_stock, text, name):
    line = _refused(loaded_stock, "export", "--count", "--where", text)
    assert f"function {name}() is not allowed" in line, line
    allowed = ALLOWED_LIST.search(line).group(1).split(", ")
    assert name not in allowed and "date_diff" in allowed
    assert "time_to_str" not in line


@pytest.mark.slow
def test_date_diff_as_documented_filters_the_last_365_days(loaded_stock, active):
    today = date.today()
    expected = 0
    for e in active:
        try:
            created = date.fromisoformat(e["dateCreationEtablissement"])
        except ValueError:
            continue
        expected += (today - created).days < 365
    where = "date_diff('day', dateCreationEtablissement, current_date) < 365"
    assert _count(loaded_stock, "--where", where) == expected
    assert _count(loaded_stock, "--where", where.replace("date_diff", "datediff")) == expected


# Every function of the list the error gives, called on the export's real columns. `x IS NOT DISTINCT
# FROM x` holds on every row (NULL included), so each run counts every row, and fails if a documented
# function is refused, cannot be bound to the real column types, or fails on a real value.
DOCUMENTED_CALLS = {
    "abs": "abs(length(siren) - 10)",
    "coalesce": "coalesce(denominationUniteLegale, 'x')",
    "concat": "concat(siren, 'x')",
    "contains": "contains(siren, '1')",
    "current_date": "current_date",
    "date_diff": "date_diff('day', dateCreationEtablissement, current_date)",
    "date_part": "date_part('year', dateCreationEtablissement)",
    "date_trunc": "date_trunc('month', dateCreationEtablissement)",
    "datediff": "datediff('month', dateCreationEtablissement, current_date)",
    "datepart": "datepart('month', dateCreationEtablissement)",
    "day": "day(dateCreationEtablissement)",
    "dayofweek": "dayofweek(dateCreationEtablissement)",
    "ends_with": "ends_with(siren, '1')",
    "greatest": "greatest(1, length(siren))",
    "if": "if(etablissementSiege, 1, 2)",
    "ifnull": "ifnull(denominationUniteLegale, 'x')",
    "iif": "iif(etablissementSiege, 'a', 'b')",
    "isodow": "isodow(dateCreationEtablissement)",
    "lcase": "lcase(denominationUniteLegale)",
    "least": "least(1, length(siren))",
    "left": "left(siren, 2)",
    "length": "length(denominationUniteLegale)",
    "lower": "lower(denominationUniteLegale)",
    "lpad": "lpad(siren, 12, '0')",
    "ltrim": "ltrim(siren, '0')",
    "month": "month(dateCreationEtablissement)",
    "nfc_normalize": "nfc_normalize(denominationUniteLegale)",
    "nullif": "nullif(siren, '000000000')",
    "prefix": "prefix(siren, '0')",
    "quarter": "quarter(dateCreationEtablissement)",
    "regexp_matches": "regexp_matches(siren, '^[0-9]{9}$')",
    "replace": "replace(siren, '0', '')",
    "right": "right(siren, 1)",
    "round": "round(length(siren) / 2, 1)",
    "rpad": "rpad(siren, 12, 'x')",
    "rtrim": "rtrim(siren)",
    "starts_with": "starts_with(siren, '0')",
    "strip_accents": "strip_accents(denominationUniteLegale)",
    "strpos": "strpos(siren, '0')",
    "substr": "substr(siren, 1, 2)",
    "substring": "substring(siren, 2, 3)",
    "suffix": "suffix(siren, '1')",
    "today": "today()",
    "trim": "trim(denominationUniteLegale)",
    "ucase": "ucase(denominationUniteLegale)",
    "upper": "upper(denominationUniteLegale)",
    "year": "year(dateCreationEtablissement)",
}


@pytest.mark.slow
def test_every_documented_function_runs_through_the_cli(loaded_stock):
    from mirror.export.where import ALLOWED_FUNCTION_NAMES

    assert sorted(DOCUMENTED_CALLS) == ALLOWED_FUNCTION_NAMES
    total = _count(loaded_stock)
    conditions = [f"({call}) IS NOT DISTINCT FROM ({call})" for call in DOCUMENTED_CALLS.values()]
    half = len(conditions) // 2  # two runs: each under the 500-part limit of one expression
    for part in (conditions[:half], conditions[half:]):
        assert _count(loaded_stock, "--where", " AND ".join(part)) == total
