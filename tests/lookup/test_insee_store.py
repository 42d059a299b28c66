"""The INSEE API Sirene 3.11 records of the lookup store (mirror.lookup.insee, mirror.http.insee lookups):
the store keeps the records sql/insee/*.sql build, without a date, and `date=` is cut in Python; the
served bodies must be what the SQL views give, for every identifier of a real mirror, with and without
`date=` (days on period boundaries included)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from mirror.catalog.build import connect
from mirror.http import insee as http_insee
from mirror.lookup import insee
from mirror.lookup.store import open_store

TABLES = (("siren", "unites_legales"), ("siret", "etablissements"))


def boundary_days(con) -> list[date | None]:
    """No date, a day before every unit, and the commonest dateDebut and dateFin of closed periods (a
    period is kept on both its bounds: an off-by-one in either comparison changes the answer)."""
    days: list[date | None] = [None, date(1900, 1, 1)]
    for column in ("dateDebut", "dateFin"):
        for table in ("unites_legales_historique", "etablissements_historique"):
            days.append(
                con.execute(
                    f"SELECT {column} FROM {table} WHERE dateFin IS NOT NULL AND {column} IS NOT NULL "
                    "GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1"
                ).fetchone()[0]
            )
    return days


def assert_insee_store_equals_views(data_dir: Path, keys: dict[str, list[str]] | None = None) -> int:
    """For every key (default: every unit and établissement) and boundary day, the store's record cut by
    mirror.lookup.insee.at_date is byte for byte the record the SQL builds for that day. Returns the number
    of records compared."""
    con = connect(data_dir)
    store = open_store(data_dir)
    assert store is not None and store.begin(), "the store must be current"
    compared = 0
    try:
        for kind, table in TABLES:
            wanted = (keys or {}).get(kind) or [
                r[0] for r in con.execute(f"SELECT {kind} FROM {table} ORDER BY 1").fetchall()
            ]
            for day in boundary_days(con):
                views = insee.records(con, kind, wanted, day)
                assert set(views) == set(wanted), (kind, day)
                for key in wanted:
                    text = store.insee(kind, key)
                    assert text is not None, (kind, key)
                    if day is not None:
                        text = json.dumps(
                            insee.at_date(json.loads(text), kind, day),
                            ensure_ascii=False,
                            separators=(",", ":"),
                        )
                    assert text == views[key], (kind, key, day)
                    compared += 1
    finally:
        store.end()
        con.close()
    return compared


@pytest.mark.slow
def test_stored_records_cut_to_a_day_equal_the_sql_for_every_identifier(loaded_stock):
    assert assert_insee_store_equals_views(loaded_stock) > 6 * 7000


def sample_requests(con) -> list[tuple[str, str, list]]:
    """(kind, identifier, query parameters): diffusible and P units and établissements, doublons, unknown
    ones, each plain, on boundary days, before their creation (404), with champs and masquerValeursNulles."""
    ids = {
        "siren": [r[0] for r in con.execute(
            "(SELECT siren FROM unites_legales WHERE statutDiffusionUniteLegale = 'O' ORDER BY siren LIMIT 4) "
            "UNION ALL (SELECT siren FROM unites_legales WHERE statutDiffusionUniteLegale = 'P' ORDER BY siren LIMIT 2) "
            "UNION ALL (SELECT DISTINCT sirenDoublon FROM doublons ORDER BY 1 LIMIT 2)").fetchall()] + ["000000000"],
        "siret": [r[0] for r in con.execute(
            "(SELECT siret FROM etablissements WHERE statutDiffusionEtablissement = 'O' ORDER BY siret LIMIT 4) "
            "UNION ALL (SELECT siret FROM etablissements WHERE statutDiffusionEtablissement = 'P' ORDER BY siret LIMIT 2) "
            "UNION ALL (SELECT e.siret FROM etablissements e JOIN doublons d ON d.sirenDoublon = e.siren LIMIT 1)"
        ).fetchall()] + ["00000000000000"],
    }  # fmt: skip
    params = [[]] + [[("date", d.isoformat())] for d in boundary_days(con) if d is not None]
    params += [[("masquerValeursNulles", "true"), ("date", "2015-01-01")]]
    champs = {"siren": "siren,dateDebut,denominationUniteLegale",
              "siret": "siret,dateDebut,codePostalEtablissement,denominationUniteLegale"}  # fmt: skip
    return [
        (kind, i, p)
        for kind, keys in ids.items()
        for i in keys
        for p in params + [[("champs", champs[kind])]]
    ]


@pytest.mark.slow
def test_served_lookups_from_the_store_equal_the_views(loaded_stock, monkeypatch):
    """/siren/{siren} and /siret/{siret} answers (status, body, Location) from the store (the event loop's
    path, which must answer every one of them) equal the thread pool's answers from the views."""
    con = connect(loaded_stock)
    try:
        requests = sample_requests(con)
    finally:
        con.close()
    fast = [http_insee.lookup_from_store(loaded_stock, kind, i, p, None) for kind, i, p in requests]
    assert all(a is not None for a in fast)
    monkeypatch.setattr(http_insee, "open_store", lambda data_dir: None)  # the views answer
    statuses = set()
    for (kind, i, p), a in zip(requests, fast, strict=True):
        b = http_insee.lookup(loaded_stock, kind, i, p, None)
        assert (a.status, a.body, a.headers) == (b.status, b.body, b.headers), (kind, i, p)
        statuses.add(a.status)
    assert statuses == {200, 301, 404}


@pytest.mark.slow
def test_search_pages_from_the_store_equal_the_views(loaded_stock, monkeypatch):
    """A search page's records come from the store when no writer is at work (the page's keys still come
    from the catalog): the same bodies as the views', JSON and CSV, with date=, champs, cursors."""
    searches = [
        ("siren", [("q", "etatAdministratifUniteLegale:A"), ("nombre", "40")], None),
        ("siren", [("q", "periode(etatAdministratifUniteLegale:C)"), ("nombre", "30"), ("date", "2015-01-01")], None),
        ("siret", [("q", "etablissementSiege:true"), ("nombre", "30"), ("curseur", "*"),
                   ("champs", "siret,codePostalEtablissement,dateDebut")], None),
        ("siret", [("q", "codePostalEtablissement:7*"), ("nombre", "20"), ("date", "2020-06-30")], "text/csv"),
    ]  # fmt: skip
    views = insee.records

    def no_views(*args, **kwargs):
        raise AssertionError("the page's records must come from the store")

    monkeypatch.setattr(insee, "records", no_views)
    fast = [http_insee.search(loaded_stock, kind, params, accept) for kind, params, accept in searches]
    monkeypatch.setattr(insee, "records", views)
    monkeypatch.setattr(http_insee, "open_store", lambda data_dir: None)
    for (kind, params, accept), a in zip(searches, fast, strict=True):
        b = http_insee.search(loaded_stock, kind, params, accept)
        assert a.status == 200 and len(a.body) > 1000, (kind, params, a.body[:300])
        assert (a.status, a.body, a.media_type) == (b.status, b.body, b.media_type), (kind, params)
