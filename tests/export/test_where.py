"""--where validation: accepted expressions run in DuckDB with the expected result; anything else is refused."""

from __future__ import annotations

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
