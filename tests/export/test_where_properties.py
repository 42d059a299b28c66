"""--where, property-based (hypothesis): generated valid conditions select the same rows as the raw text
run by DuckDB; generated hostile texts (table functions, quoted names spanning SQL, subqueries) are
refused, or compile to SQL naming only known columns, allow-listed functions and no file."""

from __future__ import annotations

import re

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mirror.core.errors import BadInput
from mirror.export.where import ALLOWED_FUNCTION_NAMES, DATE_UNITS, compile_where

COLUMNS = ["siren", "nom", "d", "n", "actif"]
ROWS = [
    ("000000001", "Société Générale", "1864-05-04", 53, True),
    ("000000002", "ÉCOLE -- du ; coin", "2021-03-01", 1, False),
    ("000000003", None, "2024-12-31", None, True),
    ("000000004", "O'Brien & Fils", "1999-01-01", 0, None),
]
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def con():
    c = duckdb.connect()
    c.execute("CREATE TABLE t (siren VARCHAR, nom VARCHAR, d DATE, n INTEGER, actif BOOLEAN)")
    c.executemany("INSERT INTO t VALUES (?, ?, ?, ?, ?)", ROWS)
    return c


def sql_string(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


texts = st.text(alphabet="abcé0 -;'%_*/", max_size=6).map(sql_string)
ints = st.integers(min_value=-5, max_value=60).map(str)
dates = st.dates().map(lambda d: f"DATE '{d.isoformat()}'")
str_col = st.sampled_from(["siren", "nom", "SIREN", '"nom"'])
int_col = st.sampled_from(["n", "N"])
date_col = st.just("d")

str_expr = st.one_of(
    str_col,
    texts,
    st.builds(lambda c: f"lower({c})", str_col),
    st.builds(lambda c: f"strip_accents({c})", str_col),
    st.builds(lambda c, a, b: f"substr({c}, {a}, {b})", str_col, st.integers(1, 9), st.integers(0, 5)),
    st.builds(lambda c, t: f"coalesce({c}, {t})", str_col, texts),
    st.builds(lambda c, t: f"{c} || {t}", str_col, texts),
    st.builds(lambda c, k: f"lpad({c}, {k}, 'x')", str_col, st.integers(0, 12)),
    st.builds(lambda c, t: f"replace({c}, {t}, '')", str_col, texts),
    st.builds(lambda c: f"CAST({c} AS VARCHAR)", int_col),
)
num_expr = st.one_of(
    int_col,
    ints,
    st.builds(lambda c: f"length({c})", str_col),
    st.builds(lambda c: f"year({c})", date_col),
    st.builds(lambda c: f"isodow({c})", date_col),
    st.builds(lambda c, k: f"{c} + {k}", int_col, ints),
    st.builds(lambda c, k: f"({c} * {k})", int_col, ints),
    st.builds(
        lambda u, c: f"date_diff('{u}', {c}, DATE '2030-01-01')", st.sampled_from(DATE_UNITS[:5]), date_col
    ),
    st.builds(lambda c: f"TRY_CAST({c} AS INTEGER)", str_col),
    st.just("1.5"),
)
date_expr = st.one_of(
    date_col,
    dates,
    st.builds(lambda c, u: f"date_trunc('{u}', {c})", date_col, st.sampled_from(["year", "month", "day"])),
    st.builds(lambda c, k: f"{c} - INTERVAL {k} DAY", date_col, st.integers(0, 400)),
)
cmp_op = st.sampled_from(["=", "<>", "<", "<=", ">", ">="])
atom = st.one_of(
    st.builds(lambda a, o, b: f"{a} {o} {b}", str_expr, cmp_op, str_expr),
    st.builds(lambda a, o, b: f"{a} {o} {b}", num_expr, cmp_op, num_expr),
    st.builds(lambda a, o, b: f"{a} {o} {b}", date_expr, cmp_op, date_expr),
    st.builds(lambda a, p: f"{a} LIKE {p}", str_expr, texts),
    st.builds(lambda a, p: f"{a} ILIKE {p}", str_expr, texts),
    st.builds(lambda a, xs: f"{a} IN ({', '.join(xs)})", str_expr, st.lists(texts, min_size=1, max_size=3)),
    st.builds(lambda a, lo, hi: f"{a} BETWEEN {lo} AND {hi}", num_expr, ints, ints),
    st.builds(lambda a: f"{a} IS NULL", st.one_of(str_expr, num_expr)),
    st.builds(lambda a: f"{a} IS NOT NULL", st.one_of(str_expr, num_expr)),
    st.builds(lambda a, t: f"starts_with({a}, {t})", str_expr, texts),
    st.builds(lambda a, t: f"contains({a}, {t})", str_expr, texts),
    st.sampled_from(["actif", "NOT actif", "actif IS TRUE", "TRUE", "FALSE"]),
    st.builds(
        lambda a, t: f"CASE WHEN {a} THEN {t} ELSE 'z' END = 'z'", st.sampled_from(["actif", "n > 1"]), texts
    ),
)
condition = st.recursive(
    atom,
    lambda inner: st.one_of(
        st.builds(lambda a, b: f"({a}) AND ({b})", inner, inner),
        st.builds(lambda a, b: f"{a} OR {b}", inner, inner),
        st.builds(lambda a: f"NOT ({a})", inner),
    ),
    max_leaves=6,
)


def rows_of(con, sql: str, params=None):
    return con.execute(f"SELECT siren FROM t WHERE {sql} ORDER BY siren", params).fetchall()


@SETTINGS
@given(condition)
def test_valid_conditions_select_the_same_rows_as_the_raw_text(con, text):
    try:
        expected = rows_of(con, text)
    except duckdb.Error as exc:
        # DuckDB itself refuses it (a type mismatch): ours must fail too, never return rows.
        with pytest.raises((BadInput, duckdb.Error)):
            sql, params, _ = compile_where(text, COLUMNS)
            rows_of(con, sql, params)
        assert exc
        return
    sql, params, used = compile_where(text, COLUMNS)
    assert rows_of(con, sql, params) == expected
    assert used <= set(COLUMNS)


HOSTILE_PIECES = [
    "read_text('/etc/passwd')",
    "read_csv('/etc/passwd', sep = ':')",
    "read_parquet('/tmp/x.parquet')",
    "duckdb_settings()",
    "getenv('INSEE_API_KEY')",
    "(SELECT 1)",
    "(SELECT count(*) FROM duckdb_settings())",
    "\"x) OR read_text('/etc/passwd') IS NOT NULL OR CAST(1 AS x\"",
    '"VARINT) OR EXISTS (SELECT 1) OR CAST(1 AS VARINT"',
    "CAST(siren AS ",
    "TRY_CAST(siren AS ",
    "siren::",
    "GUID",
    "VARINT",
    ")",
    "(",
    " OR ",
    " AND ",
    " IS NULL",
    "'",
    '"',
    ";",
    "--",
    "/*",
    "*/",
    "siren",
    "1",
    "glob('/*')",
    "query('select 1')",
]


@SETTINGS
@given(st.lists(st.sampled_from(HOSTILE_PIECES), min_size=1, max_size=10).map("".join))
def test_hostile_texts_are_refused_or_harmless(con, text):
    try:
        sql, params, used = compile_where(text, COLUMNS)
    except BadInput as exc:
        assert "\n" not in str(exc)
        return
    # Accepted: the SQL is made of known columns, allow-listed functions, operators and "?" only.
    assert used <= set(COLUMNS)
    for quoted in re.findall(r'"([^"]*)"', sql):
        assert quoted in COLUMNS
    words = set(re.findall(r"\b([A-Za-z_]+)\s*\(", sql))
    keywords = {"CAST", "TRY_CAST", "IN", "DECIMAL", "AND", "OR", "NOT"}
    assert words <= set(ALLOWED_FUNCTION_NAMES) | keywords, words
    assert "read_" not in sql.lower() and "select" not in sql.lower() and "/" not in sql.replace("//", "")
    assert re.sub(r"'(" + "|".join(DATE_UNITS) + r")'", "", sql).count("'") == 0
    try:
        rows_of(con, sql, params)  # runs (or fails on a type) on its own: nothing else is reached
    except duckdb.Error:
        pass
