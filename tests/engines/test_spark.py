"""mirror.engines.spark.register on Apache Spark in local mode (pyspark from PyPI, the machine's Java).

One SparkSession for the whole test session (a JVM start costs ~20 s and 1 GB): the `spark` fixture is
session-scoped and `make test` sends this file's tests to one xdist worker (tests/conftest.py,
ONE_WORKER_FILES), so they all run with one session. One mirror with three applied delta days, so every
base view merges a snapshot, a merged and a recent layer. Skipped, with the reason, when pyspark or Java is missing."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from layout_days import shared_mirror_with_three_days

from mirror.catalog import build as catalog

pytestmark = pytest.mark.slow


def _java_missing() -> str | None:
    java = shutil.which("java")
    if java is None:
        return "Java is not installed (Spark needs a JVM: `java -version` fails)"
    if subprocess.run([java, "-version"], capture_output=True).returncode != 0:
        return "`java -version` fails"
    return None


@pytest.fixture(scope="session")
def spark():
    pytest.importorskip("pyspark", reason="pyspark is not installed (pip install -e .[dev])")
    if reason := _java_missing():
        pytest.skip(reason)
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2]")
        .appName("sirene-mirror-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.driver.memory", "1g")
        # The JVM's quick compiler only, one GC thread: these short jobs never repay the optimising
        # compiler, whose threads competed with the other test worker for the 2 cores (this file alone:
        # 80-90 CPU-seconds against 113-123, the same wall time).
        .config("spark.driver.extraJavaOptions", "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def mirror(loaded_stock, tmp_path_factory):
    return shared_mirror_with_three_days(loaded_stock, tmp_path_factory)


@pytest.fixture(scope="module")
def registered(spark, mirror):
    from mirror.engines.spark import register

    return register(spark, mirror)


@pytest.fixture(scope="module")
def duck(mirror):
    con = catalog.connect(mirror)
    yield con
    con.close()


def test_row_counts_equal_duckdbs_for_every_table_and_view(spark, registered, duck):
    names = [
        r[0]
        for r in duck.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' "
            "AND table_name <> 'mirror_catalog_build' ORDER BY table_name"
        ).fetchall()
    ]
    assert set(names) <= set(registered)
    # One Spark job for all the counts (each view's count is a column of one row).
    counts = " UNION ALL ".join(f"SELECT '{n}' AS name, count(*) AS n FROM `{n}`" for n in names)
    got = {r["name"]: r["n"] for r in spark.sql(counts).collect()}
    expected = {n: duck.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0] for n in names}
    assert got == expected
    assert expected["etablissements"] > 1000 and expected["documents_v3_etablissements"] > 2000


def test_200_v3_documents_equal_duckdbs_as_parsed_json(spark, registered, duck):
    units = duck.execute(
        "SELECT siren, diffusibles, document FROM documents_v3_unites_legales "
        "WHERE siren IN (SELECT siren FROM unites_legales ORDER BY hash(siren) LIMIT 70)"
    ).fetchall()
    # Units changed by the delta days and partially diffusible ones are among them.
    sirens = sorted({r[0] for r in units})
    ets = duck.execute(
        "SELECT siret, diffusibles, document FROM documents_v3_etablissements "
        "WHERE siret IN (SELECT siret FROM etablissements ORDER BY hash(siret) LIMIT 30)"
    ).fetchall()
    assert len(units) + len(ets) >= 200
    spark.createDataFrame([(s,) for s in sirens], "siren string").createOrReplaceTempView("wanted_units")
    sirets = sorted({r[0] for r in ets})
    spark.createDataFrame([(s,) for s in sirets], "siret string").createOrReplaceTempView("wanted_sirets")
    got_units = {
        (r[0], r[1]): json.loads(r[2])
        for r in spark.sql(
            "SELECT siren, diffusibles, document FROM documents_v3_unites_legales "
            "WHERE siren IN (SELECT siren FROM wanted_units)"
        ).collect()
    }
    got_ets = {
        (r[0], r[1]): json.loads(r[2])
        for r in spark.sql(
            "SELECT siret, diffusibles, document FROM documents_v3_etablissements "
            "WHERE siret IN (SELECT siret FROM wanted_sirets)"
        ).collect()
    }
    assert got_units == {(r[0], r[1]): json.loads(r[2]) for r in units}
    assert got_ets == {(r[0], r[1]): json.loads(r[2]) for r in ets}
    changed = [
        d for d in got_units.values() if d["data"]["personne_morale_attributs"]["raison_sociale"] == "DAY 3"
    ]
    assert changed, "the delta days reach the documents"


@pytest.mark.parametrize("kind", ["standard-filter", "where"])
def test_export_filters_give_the_same_rows(spark, registered, duck, kind):
    """The export's own query (mirror.export: filters with bound parameters, --where rebuilt from its
    checked tree) transpiled to Spark and run with the same parameters. The standard filter is the
    benchmarks' (benchmarks/bench.py: the most common NAF and département, small tranches, active)."""
    import sqlglot

    from mirror.export.exporter import build_query, build_source
    from mirror.export.filters import Filters

    if kind == "standard-filter":
        tranches = ["NN", "00", "01", "02", "03", "11"]
        naf, dep = duck.execute(  # the commonest pair, so that the small test stock gives several rows
            "SELECT activitePrincipaleEtablissement, departement FROM etablissements "
            "WHERE etatAdministratifEtablissement = 'A' AND trancheEffectifsEtablissement IN (SELECT unnest(?)) "
            "GROUP BY 1, 2 ORDER BY count(*) DESC, 1, 2 LIMIT 1",
            [tranches],
        ).fetchone()
        filters = Filters(naf=[naf], departements=[dep], tranches=tranches, etat="active")
    else:
        filters = Filters(
            etat="all", where="departement IN ('75', '13', '69', '59') OR enseigne1Etablissement = 'DAY 3'"
        )
    query = build_query(duck, build_source(duck, "etablissement"), filters)
    expected = duck.execute(query.sql, query.params).fetchall()
    (spark_sql,) = sqlglot.transpile(query.sql, read="duckdb", write="spark")
    got = spark.sql(spark_sql, args=list(query.params)).collect()
    assert len(expected) >= 3, len(expected)
    assert sorted(map(repr, (tuple(r) for r in got))) == sorted(map(repr, expected))
