"""--where validation: accepted expressions run in DuckDB with the expected result; anything else is refused."""

from __future__ import annotations

import re

import duckdb
import pytest

from mirror.core.errors import MirrorError
from mirror.export.where import compile_where

COLUMNS = [
    "siren",
    "denominationUniteLegale",
    "dateCreationUniteLegale",
    "trancheEffectifsUniteLegale",
    "actif",
]


@pytest.fixture(scope="module")
def con():
    c = duckdb.connect()
    c.execute(
        """CREATE TABLE t AS SELECT * FROM (VALUES
        ('000000001', 'Société Générale', DATE '1864-05-04', '53', true),
        ('000000002', 'ÉCOLE -- du ; coin', DATE '2021-03-01', '01', false),
        ('000000003', NULL, DATE '2024-12-31', 'NN', true)
        ) v(siren, denominationUniteLegale, dateCreationUniteLegale, trancheEffectifsUniteLegale, actif)"""
    )
    c.execute("CREATE TABLE secret AS SELECT 'top secret' AS s")
    return c


def run(con, text: str) -> list[str]:
    sql, params, _ = compile_where(text, COLUMNS)
    return [r[0] for r in con.execute(f"SELECT siren FROM t WHERE {sql} ORDER BY siren", params).fetchall()]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("year(dateCreationUniteLegale) >= 2000", ["000000002", "000000003"]),
        ("strip_accents(lower(denominationUniteLegale)) LIKE '%ecole%'", ["000000002"]),
        ("DENOMINATIONUNITELEGALE ILIKE 'société%'", ["000000001"]),  # case-insensitive column names
        ("trancheEffectifsUniteLegale IN ('53', 'NN') AND actif", ["000000001", "000000003"]),
        (
            "denominationUniteLegale = 'ÉCOLE -- du ; coin'",
            ["000000002"],
        ),  # comment/; markers inside a string
        ("coalesce(denominationUniteLegale, 'x') = 'x'", ["000000003"]),
        ("dateCreationUniteLegale BETWEEN DATE '2020-01-01' AND DATE '2022-01-01'", ["000000002"]),
        ("NOT actif OR starts_with(siren, '0000000013')", ["000000002"]),
        ("CAST(substr(siren, 9, 1) AS INTEGER) * 2 > 4", ["000000003"]),
        ("CASE WHEN actif THEN 1 ELSE 0 END = 0", ["000000002"]),
        ("dateCreationUniteLegale > DATE '2025-01-01' - INTERVAL 30 DAY", ["000000003"]),
    ],
)
def test_accepted_expressions_filter_rows(con, text, expected):
    assert run(con, text) == expected


@pytest.mark.parametrize(
    "text, reason",
    [
        ("siren IN (SELECT s FROM secret)", "subqueries"),
        ("EXISTS (SELECT 1 FROM secret)", "subqueries"),
        ("(SELECT count(*) FROM secret) > 0", "subqueries"),
        ("read_csv('/etc/passwd') IS NOT NULL", "read_csv"),
        ("read_parquet('http://127.0.0.1/x.parquet') IS NULL", "read_parquet"),
        ("getenv('HOME') = 'x'", "getenv"),
        ("siren = '1'; DROP TABLE t", "one expression"),
        ("1=1; COPY t TO '/tmp/x.csv'", "one expression"),
        ("siren = '1' -- AND actif", "comments"),
        ("siren = '1' /* ; DROP TABLE t */", "comments"),
        ("siren = ?", "parameters"),
        ("siren = $1", "parameters"),
        ("t.siren = '1'", "qualified"),
        ("secret.s = 'x'", "qualified"),
        ("s = 'top secret'", "unknown column"),
        ("*", "not allowed"),
        ("siren = '1') OR (1=1", "not a valid SQL expression"),
        ("", "empty"),
        ("DROP TABLE t", "not"),
        ("current_setting('home_directory') = ''", "current_setting"),
        ("query('select 1') IS NULL", "query"),
    ],
)
def test_refused_expressions(con, text, reason):
    with pytest.raises(MirrorError) as info:
        compile_where(text, COLUMNS)
    message = str(info.value)
    assert message.startswith("--where refused:")
    assert reason in message
    assert "\n" not in message
    assert info.value.exit_code == 2
    # The tables are untouched.
    assert con.execute("SELECT count(*) FROM t").fetchone()[0] == 3


def test_regenerated_sql_quotes_canonical_columns():
    sql, params, used = compile_where("lower(DenominationUniteLegale) = 'x' AND actif", COLUMNS)
    assert '"denominationUniteLegale"' in sql and '"actif"' in sql and "'x'" not in sql and params == ["x"]
    assert used == {"denominationUniteLegale", "actif"}


# --- issue 18, item 1: the bypasses found by the audit, and what must be accepted ---

BYPASSES = [
    # A quoted type name spanning injected text was written back unquoted.
    """CAST("siren" AS "x) OR read_text('/etc/passwd') IS NOT NULL OR CAST(1 AS x") IS NULL""",
    """TRY_CAST("siren" AS "x) OR read_text('/etc/passwd') IS NOT NULL OR TRY_CAST(1 AS x") IS NULL""",
    """"siren"::"x) OR (SELECT count(*) FROM read_csv('/etc/passwd')) > 0 OR 1::x" IS NULL""",
    """CAST(siren AS "VARINT) OR EXISTS (SELECT * FROM duckdb_settings()) OR CAST(1 AS VARINT") IS NULL""",
    """TRY_CAST(siren AS "GUID) OR read_text('/etc/passwd') IS NULL OR TRY_CAST(1 AS GUID") IS NULL""",
    "CAST(siren AS VARINT) IS NULL",
    "siren::GUID IS NULL",
    "CAST(siren AS x) IS NULL",
    "read_text('/etc/passwd') IS NOT NULL",
    "read_csv('/etc/passwd', sep = ':') IS NOT NULL",
    "(SELECT count(*) FROM duckdb_settings()) > 0",
    "duckdb_settings() IS NULL",
    "siren IN (SELECT name FROM duckdb_settings())",
]


@pytest.mark.parametrize("text", BYPASSES)
def test_bypass_shapes_are_refused_in_one_line(text):
    with pytest.raises(MirrorError) as info:
        compile_where(text, COLUMNS)
    assert str(info.value).startswith("--where refused:") and "\n" not in str(info.value)
    assert info.value.exit_code == 2


def test_no_name_or_literal_of_the_input_reaches_the_sql():
    sql, params, _ = compile_where(
        "CAST(siren AS DECIMAL(10, 2)) > 1.5 AND lower(denominationUniteLegale) = 'x'' OR 1=1 --'", COLUMNS
    )
    assert "OR 1=1" not in sql and "'" not in sql and "1.5" not in sql
    assert "DECIMAL(10, 2)" in sql and params[-1] == "x' OR 1=1 --"


# Every function of the list the error message gives, used as documented (DuckDB spellings).
FUNCTION_CALLS = {
    "abs": "abs(-2) = 2",
    "coalesce": "coalesce(denominationUniteLegale, 'x') <> ''",
    "concat": "concat(siren, 'x') <> ''",
    "contains": "contains(siren, '0')",
    "current_date": "dateCreationUniteLegale <= current_date",
    "date_diff": "date_diff('day', dateCreationUniteLegale, DATE '2030-01-01') > 0",
    "date_part": "date_part('year', dateCreationUniteLegale) > 1800",
    "datepart": "datepart('year', dateCreationUniteLegale) > 1800",
    "date_trunc": "date_trunc('month', dateCreationUniteLegale) <= dateCreationUniteLegale",
    "datediff": "datediff('month', dateCreationUniteLegale, DATE '2030-01-01') > 0",
    "day": "day(dateCreationUniteLegale) >= 1",
    "dayofweek": "dayofweek(dateCreationUniteLegale) >= 0",
    "ends_with": "ends_with(siren, '1') OR TRUE",
    "greatest": "greatest(1, 2) = 2",
    "if": "if(actif, 1, 1) = 1",
    "ifnull": "ifnull(denominationUniteLegale, 'x') <> ''",
    "iif": "iif(actif, 'a', 'a') = 'a'",
    "isodow": "isodow(dateCreationUniteLegale) >= 1",
    "lcase": "lcase(siren) = siren",
    "least": "least(1, 2) = 1",
    "left": "left(siren, 2) = '00'",
    "length": "length(siren) = 9",
    "lower": "lower(siren) = siren",
    "lpad": "lpad(trancheEffectifsUniteLegale, 3, '0') <> ''",
    "ltrim": "ltrim(siren, '0') <> ''",
    "month": "month(dateCreationUniteLegale) >= 1",
    "nfc_normalize": "nfc_normalize(siren) = siren",
    "nullif": "nullif(siren, 'x') = siren",
    "prefix": "prefix(siren, '0')",
    "quarter": "quarter(dateCreationUniteLegale) >= 1",
    "regexp_matches": "regexp_matches(siren, '^0+[0-9]$')",
    "replace": "replace(siren, '0', '') <> 'x'",
    "right": "right(siren, 1) <> 'x'",
    "round": "round(1.26, 1) = 1.3",
    "rpad": "rpad(trancheEffectifsUniteLegale, 3, 'x') <> ''",
    "rtrim": "rtrim(siren) = siren",
    "starts_with": "starts_with(siren, '0')",
    "strip_accents": "strip_accents('é') = 'e'",
    "strpos": "strpos(siren, '0') = 1",
    "substr": "substr(siren, 1, 2) = '00'",
    "substring": "substring(siren, 1, 2) = '00'",
    "suffix": "suffix(siren, '1') OR TRUE",
    "today": "dateCreationUniteLegale <= today()",
    "trim": "trim(siren) = siren",
    "ucase": "ucase(siren) = siren",
    "upper": "upper(siren) = siren",
    "year": "year(dateCreationUniteLegale) > 1800",
}


def test_every_listed_function_is_accepted_and_runs(con):
    from mirror.export.where import ALLOWED_FUNCTION_NAMES

    assert sorted(FUNCTION_CALLS) == ALLOWED_FUNCTION_NAMES
    for name, text in FUNCTION_CALLS.items():
        assert run(con, text) == ["000000001", "000000002", "000000003"], name


def test_a_literal_holding_comment_markers_is_accepted(con):
    assert run(con, "denominationUniteLegale = 'ÉCOLE -- du ; coin'") == ["000000002"]
    assert run(con, "contains(denominationUniteLegale, '--') AND siren <> '/* x */'") == ["000000002"]
    # A quote doubled inside the literal (refused before: the check looked for the unescaped text).
    assert run(con, "denominationUniteLegale <> 'l''école -- x' AND siren = '000000002'") == ["000000002"]


@pytest.mark.parametrize(
    "text",
    [
        "(" * 40 + "actif" + ")" * 40,
        "NOT " * 40 + "actif",
        " + ".join(["1"] * 60) + " > 0",
        "lower(" * 40 + "siren" + ")" * 40 + " = ''",
        "siren = '" + "x" * 5000 + "'",
    ],
)
def test_deep_or_huge_expressions_are_refused_in_one_line(text):
    with pytest.raises(MirrorError) as info:
        compile_where(text, COLUMNS)
    message = str(info.value)
    assert message.startswith("--where refused:") and "\n" not in message
    assert any(w in message for w in ("nested", "deep", "longer", "parts"))


def test_a_long_flat_list_of_conditions_is_accepted(con):
    text = " OR ".join(f"siren = '{i:09d}'" for i in range(1, 80))
    assert run(con, text) == ["000000001", "000000002", "000000003"]


# --- issue "A newcomer's first hour", item 4: the allow-list does not contradict itself ---

NOT_ALLOWED = re.compile(r"function (\w+)\(\) is not allowed \(allowed: ([^)]*)\)")


@pytest.mark.parametrize(
    "text, name",
    [
        ("strftime(dateCreationUniteLegale, '%Y') = '2020'", "strftime"),  # sqlglot: TimeToStr
        ("STRFTIME(dateCreationUniteLegale, '%Y') = '2020'", "strftime"),
        ("\"strftime\"(dateCreationUniteLegale, '%Y') = '2020'", "strftime"),
        ("len(siren) = 9", "len"),  # sqlglot: Length, an allowed node
        ("char_length(siren) = 9", "char_length"),
        ("nvl(siren, 'x') = 'x'", "nvl"),  # sqlglot: Coalesce
        ("lower(siren) = 'x' AND to_char(dateCreationUniteLegale, 'YYYY') = '2020'", "to_char"),
        ("DATE(dateCreationUniteLegale) IS NULL", "date"),
    ],
)
def test_a_refused_function_is_the_word_written_and_absent_from_the_allowed_list(text, name):
    with pytest.raises(MirrorError) as info:
        compile_where(text, COLUMNS)
    found = NOT_ALLOWED.search(str(info.value))
    assert found and found.group(1) == name, str(info.value)
    assert name not in found.group(2).split(", ") and name in text.lower()


@pytest.mark.parametrize(
    "text",
    [
        "date_diff('day', dateCreationUniteLegale, current_date) < 365",
        "datediff('day', dateCreationUniteLegale, current_date) < 365",
        "CAST(siren AS DECIMAL(10, 2)) > 1 AND siren::VARCHAR(9) = siren",
        "(siren) IS NOT DISTINCT FROM (siren) AND siren IN ('1') AND NOT (actif)",
    ],
)
def test_syntax_before_a_parenthesis_is_not_taken_for_a_function(text):
    compile_where(text, COLUMNS)
