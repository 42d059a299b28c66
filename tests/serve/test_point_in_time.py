"""Point in time (`mirror get --date`, get_document(as_of=...)): the documents as they stood on a past day,
from the historique periods, over the shared loaded stock (real Parquet, real catalog, real CLI)."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest
from conftest import run_mirror

from mirror.catalog.build import connect
from mirror.serve.documents import get_document


@pytest.fixture(scope="module")
def periods(loaded_stock):
    """Units with several periods: {siren: [(dateDebut, dateFin, etat, activite, nic siège), ...]}."""
    con = connect(loaded_stock)
    try:
        rows = con.execute(
            "SELECT siren, dateDebut, dateFin, etatAdministratifUniteLegale, activitePrincipaleUniteLegale, "
            "nicSiegeUniteLegale FROM unites_legales_historique "
            "WHERE siren IN (SELECT siren FROM unites_legales_historique GROUP BY siren HAVING count(*) >= 3 "
            "               ORDER BY siren LIMIT 6) "
            "ORDER BY siren, dateDebut NULLS FIRST"
        ).fetchall()
        sieges = con.execute(
            "SELECT siren, dateDebut, nicSiegeUniteLegale FROM unites_legales_historique "
            "WHERE changementNicSiegeUniteLegale AND dateDebut IS NOT NULL ORDER BY siren LIMIT 5"
        ).fetchall()
    finally:
        con.close()
    out: dict[str, list] = {}
    for siren, *period in rows:
        out.setdefault(siren, []).append(tuple(period))
    assert len(out) >= 5 and sieges
    return out, sieges


@pytest.mark.slow
def test_each_period_answers_its_own_etat_and_activity(loaded_stock, periods):
    """On the first and the last day of every period, the v3 unit document shows that period's état and
    APE code; a closure appears with its date only from the day it took effect."""
    by_unit, _ = periods
    checked = 0
    for siren, rows in by_unit.items():
        for debut, fin, etat, activite, _nic in rows:
            for day in filter(None, (debut, fin)):
                status, doc = get_document(loaded_stock, siren, "v3", as_of=day)
                assert status == 200, (siren, day, doc)
                data = doc["data"]
                assert data["etat_administratif"] == etat, (siren, day)
                assert data["activite_principale"]["code"] == activite, (siren, day)
                closed_since = [d for d, _f, e, _a, _n in rows if e == "C" and d is not None and d <= day]
                if etat == "C":
                    assert data["date_cessation"] is not None
                elif not closed_since:
                    assert data["date_cessation"] is None, (siren, day)
                checked += 1
    assert checked >= 20


@pytest.mark.slow
def test_today_is_the_current_document(loaded_stock, periods):
    """As of today (and of a day in the future), a unit, its siège and an établissement are their current
    documents, in v3 and v4."""
    by_unit, _ = periods
    con = connect(loaded_stock)
    try:
        sirets = [
            r[0] for r in con.execute("SELECT siret FROM etablissements ORDER BY siret LIMIT 3").fetchall()
        ]
    finally:
        con.close()
    for ident in [*list(by_unit)[:3], *sirets]:
        for fmt in ("v3", "v4"):
            current = get_document(loaded_stock, ident, fmt)
            assert get_document(loaded_stock, ident, fmt, as_of=date.today()) == current, (ident, fmt)
            assert get_document(loaded_stock, ident, fmt, as_of=date.today() + timedelta(days=400)) == current
    for siren in list(by_unit)[:2]:
        assert get_document(loaded_stock, siren, "v3", siege=True, as_of=date.today()) == get_document(
            loaded_stock, siren, "v3", siege=True
        )


def test_the_siege_moves_back_before_a_transfer(loaded_stock, periods):
    """The day before a siège transfer, the unit's siège is the previous one (nicSiegeUniteLegale of the
    period then); from the transfer on, the new one."""
    by_unit, sieges = periods
    con = connect(loaded_stock)
    try:
        for siren, debut, nic in sieges:
            (before_nic,) = con.execute(
                "SELECT nicSiegeUniteLegale FROM unites_legales_historique WHERE siren = ? AND dateFin = ?",
                [siren, debut - timedelta(days=1)],
            ).fetchone() or (None,)
            if before_nic is None or before_nic == nic:
                continue
            status, doc = get_document(loaded_stock, siren, "v3", as_of=debut)
            assert status == 200 and doc["data"]["siret_siege_social"] == siren + nic
            status, doc = get_document(loaded_stock, siren, "v3", as_of=debut - timedelta(days=1))
            if status == 200:
                assert doc["data"]["siret_siege_social"] == siren + before_nic
    finally:
        con.close()


def test_the_store_rows_rebuild_the_documents_the_catalog_rebuilds(loaded_stock, periods):
    """A data directory with a current lookup store rebuilds the day's rows from the rows it keeps per unit
    (no Parquet scan); the documents equal those rebuilt from the catalog's tables (a connection as the
    source), for units with several periods, their établissements, doublons and unknown SIRENs."""
    from mirror.serve.documents import _stored_rows

    by_unit, sieges = periods
    con = connect(loaded_stock)
    try:
        sirets = [
            r[0]
            for r in con.execute(
                "SELECT min(siret) FROM etablissements WHERE siren IN (SELECT unnest(?)) GROUP BY siren",
                [list(by_unit)],
            ).fetchall()
        ]
        doublons = [r[0] for r in con.execute("SELECT sirenDoublon FROM doublons LIMIT 2").fetchall()]
        ids = [*by_unit, *(s for s, _d, _n in sieges), *sirets, *doublons, "000000000"]
        assert sirets and doublons
        compared = 0
        for n, ident in enumerate(ids):
            assert _stored_rows(loaded_stock, ident[:9]) is not None
            rows = by_unit.get(ident[:9]) or [(date(2018, 6, 1), None)]
            for day in {rows[0][0] or date(2000, 1, 1), date(2018, 6, 1)}:
                fmt = ("v3", "v4")[n % 2]
                got = get_document(loaded_stock, ident, fmt, follow_doublons=True, as_of=day)
                assert got == get_document(con, ident, fmt, follow_doublons=True, as_of=day), (ident, day)
                compared += 1
    finally:
        con.close()
    assert compared >= 20


def test_before_creation_is_404_and_the_cli_says_so(loaded_stock, periods):
    """Before a unit's creation (or its first period) the answer is 404, as INSEE's `date=`; the CLI
    exits 3 with API Entreprise's error body; a malformed date is one line, exit 2."""
    by_unit, _ = periods
    siren, rows = next((s, r) for s, r in by_unit.items() if r[0][0] is not None)
    first = rows[0][0]
    assert get_document(loaded_stock, siren, "v3", as_of=first - timedelta(days=1))[0] == 404
    result = run_mirror(
        "get", siren, "--date", (first - timedelta(days=1)).isoformat(), data_dir=loaded_stock
    )
    assert result.returncode == 3, result.stderr
    assert json.loads(result.stdout)["errors"][0]["code"] == "01003"
    result = run_mirror("get", siren, "--date", first.isoformat(), "--compact", data_dir=loaded_stock)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["data"]["etat_administratif"] == rows[0][2]
    bad = run_mirror("get", siren, "--date", "2020-13-01", data_dir=loaded_stock)
    assert bad.returncode == 2 and "--date" in bad.stderr and "Traceback" not in bad.stderr
