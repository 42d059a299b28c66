"""`mirror views --dialect`: the catalog transpiled from the sql/ files, over the current-state layout."""

from __future__ import annotations

import duckdb
import pytest
import sqlglot
from conftest import run_mirror
from layout_days import shared_mirror_with_three_days

from mirror.engines import dialects


@pytest.fixture(scope="module")
def with_days(loaded_stock, tmp_path_factory):
    """The run's mirror with three applied delta days (merged and recent layers present), read only."""
    return shared_mirror_with_three_days(loaded_stock, tmp_path_factory)


def catalog_relations(data) -> list[str]:
    con = duckdb.connect(str(data / "sirene.duckdb"), read_only=True)
    try:
        rows = con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' "
            "AND table_name <> 'mirror_catalog_build' ORDER BY table_name"
        ).fetchall()
        return [r[0] for r in rows]
    finally:
        con.close()


@pytest.mark.slow
@pytest.mark.parametrize("dialect", dialects.DIALECTS)
def test_every_dialect_prints_every_view_and_parses_again(with_days, dialect):
    result = run_mirror("views", "--dialect", dialect, data_dir=with_days)
    assert result.returncode == 0, result.stderr
    statements = [s for s in sqlglot.parse(result.stdout, read=dialect) if s is not None]
    created = {s.this.name for s in statements if isinstance(s, sqlglot.exp.Create)}
    views = {r for r in catalog_relations(with_days) if not r.startswith("ref_")}
    assert views <= created, views - created
    # No DuckDB-only construct is left in another dialect's text.
    if dialect != "duckdb":
        for construct in ("UNION ALL BY NAME", "EXCLUDE (", "ANTI JOIN", "read_parquet", "JSON_OBJECT("):
            if dialect in ("trino", "bigquery", "postgres") and construct == "JSON_OBJECT(":
                continue  # those engines have a JSON_OBJECT of their own
            assert construct not in result.stdout, construct


@pytest.mark.slow
def test_the_duckdb_script_over_the_layout_gives_the_catalogs_rows(with_days):
    """The portable base views (the layer rule) and the transpiled views, run by a DuckDB that knows only
    the printed script, hold exactly the catalog's rows in every table and view."""
    script = dialects.catalog_script(with_days, "duckdb")
    fresh = duckdb.connect()
    fresh.execute(script)
    cat = duckdb.connect(str(with_days / "sirene.duckdb"), read_only=True)
    # Each side's rows once as Arrow (same types, field by field), compared as multisets by a third DuckDB:
    # converting them to Python values and sorting their reprs took a third of this test's time.
    compare = duckdb.connect()
    for name in catalog_relations(with_days):
        expected = cat.execute(f'SELECT * FROM "{name}"').to_arrow_table()
        got = fresh.execute(f'SELECT * FROM "{name}"').to_arrow_table()
        assert got.schema == expected.schema, name
        compare.register("expected", expected)
        compare.register("got", got)
        (differing,) = compare.execute(
            "SELECT (SELECT count(*) FROM (SELECT * FROM expected EXCEPT ALL SELECT * FROM got))"
            " + (SELECT count(*) FROM (SELECT * FROM got EXCEPT ALL SELECT * FROM expected))"
        ).fetchone()
        assert (differing, got.num_rows) == (0, expected.num_rows), name
    for con in (compare, fresh, cat):
        con.close()


def test_unknown_dialect_is_one_line(loaded_stock):
    result = run_mirror("views", "--dialect", "oracle", data_dir=loaded_stock)
    assert result.returncode == 2 and "oracle" in result.stderr and "Traceback" not in result.stderr
