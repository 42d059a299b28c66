"""The export source reads `etablissements_masques_adresse` (etablissements_diffusibles without its
natural-person rule, so without the join with every unit) only for queries needing none of the columns
that rule masks, and then gives exactly what etablissements_diffusibles gives. Batch statuses follow the
one diffusion rule (mirror.serve.documents.is_diffusible), in its SQL form too."""

from __future__ import annotations

import csv

import pytest
from export_helpers import build_catalog, read_raw, write_edge_stock

from mirror.core.schema import ETABLISSEMENTS, MASKED_ETABLISSEMENT_PERSON_COLUMNS, UNITES_LEGALES
from mirror.export import exporter as export_mod
from mirror.export.batch import batch
from mirror.export.exporter import ADDRESS_MASKED_VIEW, build_query, build_source, count_rows, export
from mirror.export.filters import Filters
from mirror.serve.documents import DIFFUSIBLE_SQL, is_diffusible

PERSON = set(MASKED_ETABLISSEMENT_PERSON_COLUMNS)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("diffusion_paths")
    stock = write_edge_stock(root / "stock", n_units=250, seed=21)
    opener = build_catalog(root / "data", stock)
    con = opener()
    uls = {r["siren"]: r for r in read_raw(stock, UNITES_LEGALES)}
    ets = read_raw(stock, ETABLISSEMENTS)
    yield {"con": con, "uls": uls, "ets": ets, "out": root}
    con.close()


def columns_of(con, view: str) -> list[str]:
    return [r[0] for r in con.execute(f'DESCRIBE "{view}"').fetchall()]


@pytest.mark.slow
def test_the_stock_has_rows_each_rule_changes(world):
    """The comparisons below mean something only if some P établissements of natural persons have names."""
    persons = [
        e
        for e in world["ets"]
        if e["statutDiffusionEtablissement"] == "P"
        and world["uls"][e["siren"]]["categorieJuridiqueUniteLegale"][:1] in ("1", "2")
        and e["enseigne1Etablissement"]
    ]
    companies = [
        e
        for e in world["ets"]
        if e["statutDiffusionEtablissement"] == "P"
        and world["uls"][e["siren"]]["categorieJuridiqueUniteLegale"][:1] not in ("1", "2", "")
    ]
    assert persons and companies


def test_address_masked_view_is_the_diffusible_view_but_for_the_person_columns(world):
    con = world["con"]
    cols = columns_of(con, "etablissements_diffusibles")
    assert columns_of(con, ADDRESS_MASKED_VIEW) == cols
    same = ", ".join(f'"{c}"' for c in cols if c not in PERSON)
    for a, b in (
        ("etablissements_diffusibles", ADDRESS_MASKED_VIEW),
        (ADDRESS_MASKED_VIEW, "etablissements_diffusibles"),
    ):
        diff = con.execute(
            f'SELECT count(*) FROM (SELECT {same} FROM "{a}" EXCEPT ALL SELECT {same} FROM "{b}")'
        )
        assert diff.fetchone()[0] == 0
    # Its person columns are the raw ones: which is why the exporter never reads them from it.
    person = ", ".join(f'"{c}"' for c in MASKED_ETABLISSEMENT_PERSON_COLUMNS)
    raw = con.execute(
        f'SELECT count(*) FROM (SELECT siret, {person} FROM "{ADDRESS_MASKED_VIEW}" '
        f"EXCEPT ALL SELECT siret, {person} FROM etablissements)"
    ).fetchone()[0]
    masked = con.execute(
        "SELECT count(*) FROM etablissements_diffusibles WHERE enseigne1Etablissement = '[ND]'"
    ).fetchone()[0]
    assert raw == 0 and masked > 0


@pytest.mark.parametrize("level", ["etablissement", "unite-legale"])
def test_source_reads_the_light_view_only_without_person_columns(world, level):
    con = world["con"]
    source = build_source(con, level)
    light = source.select_sql({"siret", "siren", "departement", "codePostalEtablissement", "latitude"})
    assert f'"{ADDRESS_MASKED_VIEW}"' in light and "etablissements_diffusibles" not in light
    for c in MASKED_ETABLISSEMENT_PERSON_COLUMNS:
        full = source.select_sql({"siret", "siren", c})
        assert '"etablissements_diffusibles"' in full and ADDRESS_MASKED_VIEW not in full
    # A --name search reads the enseignes: the full view.
    q = build_query(con, source, Filters(name="boulangerie"), ["siren"])
    assert ADDRESS_MASKED_VIEW not in q.sql and ADDRESS_MASKED_VIEW not in q.count_sql
    # A --where on an enseigne too.
    q = build_query(con, source, Filters(where="enseigne1Etablissement = 'X'"), ["siren"])
    assert ADDRESS_MASKED_VIEW not in q.count_sql
    # The raw source never reads a masking view.
    raw = build_source(con, level, include_non_diffusible=True)
    assert raw.lighter is None and ADDRESS_MASKED_VIEW not in raw.select_sql({"siret", "departement"})


def test_a_count_reads_only_the_filter_columns(world):
    con = world["con"]
    source = build_source(con, "etablissement")
    q = build_query(con, source, Filters(departements=["75"], tranches=["NN", "01"]))
    assert "enseigne1Etablissement" in q.sql  # the default columns: the full view
    assert "etablissements_diffusibles" in q.sql
    assert "etablissements_diffusibles" not in q.count_sql
    assert count_rows(con, q) == con.execute(f"SELECT count(*) FROM ({q.sql})", q.params).fetchone()[0]


CASES = [
    ("etablissement", Filters(departements=["75", "13"]), ["siret", "codePostalEtablissement", "latitude"]),
    ("etablissement", Filters(etat="all"), None),
    ("etablissement", Filters(etat="all"), ["siret", "libelleVoieEtablissement", "coordonneesMasquees"]),
    ("etablissement", Filters(etat="all", name="a"), ["siret", "denominationUniteLegale"]),
    (
        "etablissement",
        Filters(etat="all", where="codePostalEtablissement = '[ND]'"),
        ["siret", "enseigne1Etablissement"],
    ),
    (
        "unite-legale",
        Filters(etat="all"),
        ["siren", "codePostalEtablissement", "longitude", "nomUniteLegale"],
    ),
    (
        "unite-legale",
        Filters(etat="all"),
        ["siren", "enseigne1Etablissement", "denominationUsuelleEtablissement"],
    ),
    ("unite-legale", Filters(departements=["75"], etat="all"), None),
]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_exports_and_counts_equal_those_of_the_diffusible_views_alone(world, case, monkeypatch):
    """Whichever view the source picks, the rows written and the count are those of a source reading
    etablissements_diffusibles only (the behaviour before the light view existed)."""
    level, filters, columns = CASES[case]
    con = world["con"]
    fast = world["out"] / f"fast_{case}.csv"
    export(con, fast, level=level, filters=filters, columns=columns)
    fast_count = export(con, None, level=level, filters=filters, columns=columns, count_only=True)["rows"]
    monkeypatch.setattr(export_mod, "_address_masked_view", lambda _con, _cols: None)
    slow = world["out"] / f"slow_{case}.csv"
    export(con, slow, level=level, filters=filters, columns=columns)
    slow_count = export(con, None, level=level, filters=filters, columns=columns, count_only=True)["rows"]
    # An export has no ORDER BY (a join may emit its rows in any order): the same header, the same lines.
    fast_lines, slow_lines = (p.read_text(encoding="utf-8").splitlines() for p in (fast, slow))
    assert fast_lines[0] == slow_lines[0]
    assert sorted(fast_lines[1:]) == sorted(slow_lines[1:])
    assert fast_count == slow_count == len(fast_lines) - 1
    assert fast_count > 0


def test_the_sql_form_of_the_rule_is_the_python_rule(world):
    """batch decides over whole tables with DIFFUSIBLE_SQL, lookups with is_diffusible: the same answer for
    every pair of statuts (the obsolete 'N', NULL and an unknown unit included)."""
    values = ["O", "P", "N", None]
    pairs = [(a, b) for a in values for b in values]
    sql = DIFFUSIBLE_SQL.format(statut="a", statut_ul="b")
    got = (
        world["con"]
        .execute(
            f"SELECT a, b, {sql} FROM (VALUES {', '.join('(?, ?)' for _ in pairs)}) t(a, b)",
            [v for p in pairs for v in p],
        )
        .fetchall()
    )
    assert {(a, b): d for a, b, d in got} == {(a, b): is_diffusible(a, b) for a, b in pairs}


@pytest.mark.parametrize("level", ["etablissement", "unite-legale"])
def test_batch_statuses_follow_the_one_rule(world, level):
    """Every SIRET of the edge stock through batch: non_diffusible exactly where is_diffusible says so (at
    level etablissement the établissement and its unit; at level unite-legale the unit)."""
    sirets = [e["siret"] for e in world["ets"]]
    src = world["out"] / f"all-{level}.txt"
    src.write_text("\n".join(sirets) + "\n", encoding="utf-8")
    out = world["out"] / f"all-{level}.csv"
    batch(world["con"], src, out, level=level, columns=["siret"])
    statuses = [r["status"] for r in csv.DictReader(out.open(encoding="utf-8"))]
    uls = world["uls"]
    want = []
    for e in world["ets"]:
        unit = uls.get(e["siren"], {}).get("statutDiffusionUniteLegale")  # None: an orphan établissement
        if level == "etablissement":
            ok = is_diffusible(e["statutDiffusionEtablissement"], unit)
        else:
            ok = is_diffusible(unit)
        want.append("ok" if ok else "non_diffusible")
    assert statuses == want
    assert "non_diffusible" in want and "ok" in want


def test_name_filter_never_finds_an_opted_out_natural_person():
    """`--name` over rows as the export source gives them: the enseigne of a diffusible ('O') établissement
    of an opted-out natural person is shown, but is no search key (the search index's rule too)."""
    import duckdb

    from mirror.export.filters import NAME_COLUMNS, build_where

    con = duckdb.connect()
    cols = list(NAME_COLUMNS) + ["siret", "statutDiffusionUniteLegale", "categorieJuridiqueUniteLegale"]
    cols += ["dateCreationEtablissement", "dateDernierTraitementEtablissement"]  # read by every clause
    con.execute(f"CREATE TABLE src ({', '.join(f'{c} VARCHAR' for c in cols)})")
    rows = [  # siret, statut of the unit, catégorie juridique, enseigne of an 'O' établissement
        ("1", "P", "1000", "BOULANGERIE DUPONT"),
        ("2", "P", None, "BOULANGERIE MARTIN"),
        ("3", "P", "5710", "BOULANGERIE SAS"),
        ("4", "O", "1000", "BOULANGERIE DURAND"),
    ]
    for siret, statut, cj, enseigne in rows:
        con.execute(
            "INSERT INTO src (siret, statutDiffusionUniteLegale, categorieJuridiqueUniteLegale, "
            "enseigne1Etablissement) VALUES (?, ?, ?, ?)",
            [siret, statut, cj, enseigne],
        )
    where = build_where(Filters(name="boulangerie", etat="all"), "etablissement", set(cols))
    found = con.execute(f"SELECT siret FROM src WHERE {where.sql} ORDER BY 1", where.params).fetchall()
    assert [r[0] for r in found] == ["3", "4"]
