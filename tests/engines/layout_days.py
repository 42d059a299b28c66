"""Delta days for the tests of tests/engines, written by the real delta store over a mirror's own rows."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
from conftest import built_once, private_mirror

from mirror.catalog import build as catalog
from mirror.core.typed import prepare_connection
from mirror.deltas import store as deltas


def write_day(data: Path, con, day: date, seq: int, i: int) -> None:
    """A day of changes over the catalog's own rows (attached as `c`): a slice of units and établissements
    re-stamped on the day with a changed name, their history periods, and some succession links."""
    ts = f"TIMESTAMP '{day.isoformat()} 10:00:00'"
    pick = f"hash({{key}}, {i}) % 40 = 0"
    selects = {
        "unites_legales": f"SELECT * REPLACE ({ts} AS dateDernierTraitementUniteLegale, 'DAY {i}' AS "
        f"denominationUniteLegale) FROM c.unites_legales WHERE {pick.format(key='siren')}",
        "unites_legales_historique": "SELECT * FROM c.unites_legales_historique "
        f"WHERE {pick.format(key='siren')} AND hash(siren, {i}, 'h') % 3 <> 0",
        "etablissements": f"SELECT * REPLACE ({ts} AS dateDernierTraitementEtablissement, 'DAY {i}' AS "
        f"enseigne1Etablissement) FROM c.etablissements WHERE {pick.format(key='siret')}",
        "etablissements_historique": f"SELECT * FROM c.etablissements_historique WHERE {pick.format(key='siret')}",
        "liens_succession": f"SELECT * REPLACE ({ts} AS dateDernierTraitementLienSuccession) "
        f"FROM c.liens_succession WHERE {pick.format(key='siretEtablissementPredecesseur')}",
    }
    typed = {}
    for table, select in selects.items():
        con.execute(f"CREATE OR REPLACE TEMP TABLE day_{table} AS {select}")
        typed[table] = f"day_{table}"
    deltas.write_day(data, day, seq, con, typed)


def mirror_with_days(source: Path, data: Path, days: int, after_day=None) -> Path:
    """A private copy of the mirror `source` at `data` with `days` delta days applied as `mirror update`
    applies them (write the day, compact, rebuild the catalog reusing it), each over the state before it;
    `after_day(i, data)`, when given, runs after the i-th day is published."""
    data = private_mirror(source, data)
    con = duckdb.connect()
    prepare_connection(con)
    for i in range(1, days + 1):
        con.execute(f"ATTACH '{data / 'sirene.duckdb'}' AS c (READ_ONLY)")
        write_day(data, con, date(2026, 10, i), i, i)
        con.execute("DETACH c")
        catalog.rebuild(data, deltas.compact_for(data), reuse=True)
        if after_day is not None:
            after_day(i, data)
    con.close()
    return data


def shared_mirror_with_three_days(loaded_stock: Path, tmp_path_factory) -> Path:
    """mirror_with_days(loaded_stock, ..., 3) built once per run for the tests that only read it (the
    dialect scripts and Spark: every base view merges a snapshot, a merged and a recent layer)."""
    return (
        built_once(
            tmp_path_factory,
            "loaded-stock-3-days",
            lambda root: mirror_with_days(loaded_stock, root / "data", 3),
        )
        / "data"
    )
