"""The `q` language of the INSEE API (mirror.http.insee_query): each construct run on the session's mirror
(real DuckDB over the loaded Parquet) against the same selection computed in Python from the rows."""

from __future__ import annotations

import re
import unicodedata

import pytest

from mirror.catalog.build import connect
from mirror.http.insee_query import MAX_CLAUSES, QueryError, translate

TABLES = {"siren": "unites_legales u", "siret": "etablissements e", "liensSuccession": "liens_succession l"}
KEYS = {"siren": "u.siren", "siret": "e.siret", "liensSuccession": "l.siretEtablissementPredecesseur"}


@pytest.fixture(scope="module")
def db(http_mirror):
    con = connect(http_mirror)
    yield con
    con.close()


def matches(db, collection: str, q: str) -> set[str]:
    p = translate(q, collection)
    sql = f"SELECT {KEYS[collection]} FROM {TABLES[collection]} WHERE {p.sql}"
    return {r[0] for r in db.execute(sql, p.params).fetchall()}


def rows(db, sql: str) -> list[dict]:
    cur = db.execute(sql)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def words(text: str | None) -> list[str]:
    if not text or text == "[ND]":
        return []
    plain = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c)).upper()
    return [w for w in re.split(r"[^A-Z0-9]+", plain) if w]


@pytest.fixture(scope="module")
def units(db):
    return rows(db, "SELECT * FROM unites_legales")


@pytest.fixture(scope="module")
def periods(db):
    out = {}
    for r in rows(db, "SELECT * FROM unites_legales_historique"):
        out.setdefault(r["siren"], []).append(r)
    return out


def test_codes_booleans_numbers_wildcards_and_not(db, units):
    assert matches(db, "siren", "categorieJuridiqueUniteLegale:5710") == {
        u["siren"] for u in units if u["categorieJuridiqueUniteLegale"] == "5710"
    }
    assert matches(db, "siren", "activitePrincipaleUniteLegale:56*") == {
        u["siren"] for u in units if (u["activitePrincipaleUniteLegale"] or "").startswith("56")
    }
    assert matches(db, "siren", "activitePrincipaleUniteLegale:4?.??Z") == {
        u["siren"] for u in units if re.fullmatch(r"4.\...Z", u["activitePrincipaleUniteLegale"] or "")
    }
    # NOT and a leading -: rows without a value are kept, as Lucene does
    assert matches(db, "siren", "-categorieJuridiqueUniteLegale:1000") == {
        u["siren"] for u in units if u["categorieJuridiqueUniteLegale"] != "1000"
    }
    assert matches(
        db, "siren", "etatAdministratifUniteLegale:A AND NOT categorieJuridiqueUniteLegale:1000"
    ) == {
        u["siren"]
        for u in units
        if u["etatAdministratifUniteLegale"] == "A" and u["categorieJuridiqueUniteLegale"] != "1000"
    }
    assert matches(db, "siren", "(categorieJuridiqueUniteLegale:1000 OR categorieJuridiqueUniteLegale:5499) AND etatAdministratifUniteLegale:C") == {
        u["siren"] for u in units
        if u["categorieJuridiqueUniteLegale"] in ("1000", "5499") and u["etatAdministratifUniteLegale"] == "C"
    }  # fmt: skip
    assert matches(db, "siren", "categorieJuridiqueUniteLegale:(1000 OR 5499)") == {
        u["siren"] for u in units if u["categorieJuridiqueUniteLegale"] in ("1000", "5499")
    }
    assert matches(db, "siren", "nombrePeriodesUniteLegale:[2 TO 3]") == {
        u["siren"] for u in units if u["nombrePeriodesUniteLegale"] in (2, 3)
    }
    assert matches(db, "siren", "nombrePeriodesUniteLegale:{2 TO *]") == {
        u["siren"] for u in units if (u["nombrePeriodesUniteLegale"] or 0) > 2
    }
    assert matches(db, "siren", "unitePurgeeUniteLegale:true") == {
        u["siren"] for u in units if u["unitePurgeeUniteLegale"]
    }
    assert matches(db, "siren", "sigleUniteLegale:*") == {
        u["siren"] for u in units if u["sigleUniteLegale"] is not None
    }


def test_partial_dates_and_ranges(db, units):
    assert matches(db, "siren", "dateCreationUniteLegale:2019") == {
        u["siren"]
        for u in units
        if u["dateCreationUniteLegale"] and u["dateCreationUniteLegale"].year == 2019
    }
    assert matches(db, "siren", "dateCreationUniteLegale:2019-03") == {
        u["siren"] for u in units
        if u["dateCreationUniteLegale"] and (u["dateCreationUniteLegale"].year, u["dateCreationUniteLegale"].month) == (2019, 3)
    }  # fmt: skip
    assert matches(db, "siren", "dateCreationUniteLegale:[2010 TO 2012-06]") == {
        u["siren"] for u in units
        if u["dateCreationUniteLegale"] and "2010-01-01" <= u["dateCreationUniteLegale"].isoformat() <= "2012-06-30"
    }  # fmt: skip
    some = max(u["dateDernierTraitementUniteLegale"] for u in units)
    day = some.date().isoformat()
    assert matches(db, "siren", f"dateDernierTraitementUniteLegale:{day}") == {
        u["siren"] for u in units if u["dateDernierTraitementUniteLegale"].date().isoformat() == day
    }
    stamp = some.strftime("%Y-%m-%dT%H:%M:%S")
    assert some and u_in(
        matches(db, "siren", f"dateDernierTraitementUniteLegale:[{stamp} TO *]"), units, some
    )
    assert matches(db, "siren", f"dateDernierTraitementUniteLegale:{{{stamp} TO *]") == {
        u["siren"]
        for u in units
        if u["dateDernierTraitementUniteLegale"].replace(microsecond=0) > some.replace(microsecond=0)
    }


def u_in(found, units, stamp) -> bool:
    return found == {
        u["siren"] for u in units if u["dateDernierTraitementUniteLegale"] >= stamp.replace(microsecond=0)
    }


def test_names_match_by_words_never_masks(db, units):
    named = next(
        u for u in units if u["denominationUniteLegale"] and len(words(u["denominationUniteLegale"])) >= 2
    )
    first, second = words(named["denominationUniteLegale"])[:2]
    expected = {u["siren"] for u in units if first in words(u["denominationUniteLegale"])}
    assert named["siren"] in expected
    assert matches(db, "siren", f"denominationUniteLegale:{first.lower()}") == expected
    assert matches(db, "siren", f'denominationUniteLegale:"{first} {second}"') == {
        u["siren"] for u in units
        if f" {first} {second} " in " " + " ".join(words(u["denominationUniteLegale"])) + " "
    }  # fmt: skip
    prefix = first[:3]
    assert matches(db, "siren", f"denominationUniteLegale:{prefix}*") == {
        u["siren"] for u in units if any(w.startswith(prefix) for w in words(u["denominationUniteLegale"]))
    }
    # partially diffusible natural persons: their masked names are never words
    masked = [u for u in units if u["nomUniteLegale"] == "[ND]"]
    assert masked
    assert not matches(db, "siren", "nomUniteLegale:ND") & {u["siren"] for u in masked}
    assert not matches(db, "siren", "nomUniteLegale:*ND*") & {u["siren"] for u in masked}


def test_approximate_search(db, units):
    person = next(
        u for u in units if u["prenom1UniteLegale"] not in (None, "[ND]") and len(u["prenom1UniteLegale"]) > 4
    )
    name = person["prenom1UniteLegale"]
    typo = name[:-1] + ("A" if name[-1] != "A" else "E")
    found = matches(db, "siren", f"prenom1UniteLegale:{typo}~")
    assert person["siren"] in found
    assert person["siren"] not in matches(db, "siren", f"prenom1UniteLegale:{typo}")
    assert found <= {u["siren"] for u in units if u["prenom1UniteLegale"] not in (None, "[ND]")}


def test_periode_needs_one_period_meeting_every_condition(db, units, periods):
    """periode(a AND b): one period with both; periode(a) AND periode(b): possibly two different periods."""

    def one(pred):
        return {s for s, ps in periods.items() if any(pred(p) for p in ps)}

    closed_then = one(lambda p: p["etatAdministratifUniteLegale"] == "C")
    q_both = "periode(etatAdministratifUniteLegale:C AND changementEtatAdministratifUniteLegale:true)"
    assert matches(db, "siren", q_both) == one(
        lambda p: p["etatAdministratifUniteLegale"] == "C" and p["changementEtatAdministratifUniteLegale"]
    )
    assert matches(db, "siren", "periode(etatAdministratifUniteLegale:C)") == closed_then
    split = matches(
        db, "siren", "periode(etatAdministratifUniteLegale:A) AND periode(etatAdministratifUniteLegale:C)"
    )
    together = matches(
        db, "siren", "periode(etatAdministratifUniteLegale:A AND etatAdministratifUniteLegale:C)"
    )
    assert split and together == set()  # no period is both active and closed; a unit was both, in turn
    assert matches(db, "siren", "periode(dateFin:*)") == one(lambda p: p["dateFin"] is not None)


def test_siret_collection_joins_its_unit_and_its_periods(db):
    e_rows = rows(db, "SELECT e.siret, e.codeCommuneEtablissement, u.categorieJuridiqueUniteLegale FROM etablissements e "
                      "LEFT JOIN unites_legales u USING (siren)")  # fmt: skip
    assert matches(db, "siret", "categorieJuridiqueUniteLegale:1000 AND codeCommuneEtablissement:75*") == {
        r["siret"] for r in e_rows
        if r["categorieJuridiqueUniteLegale"] == "1000" and (r["codeCommuneEtablissement"] or "").startswith("75")
    }  # fmt: skip
    hist = rows(db, "SELECT siret, etatAdministratifEtablissement FROM etablissements_historique")
    assert matches(db, "siret", "periode(etatAdministratifEtablissement:F)") == {
        h["siret"] for h in hist if h["etatAdministratifEtablissement"] == "F"
    }
    liens = rows(db, "SELECT * FROM liens_succession")
    assert matches(db, "liensSuccession", "transfertSiege:true") == {
        r["siretEtablissementPredecesseur"] for r in liens if r["transfertSiege"]
    }


@pytest.mark.parametrize(
    ("collection", "q", "message"),
    [
        ("siren", "denominationUniteLegale:(A OR B", "Erreur de syntaxe"),
        ("siren", "foo:1", "Champ inconnu"),
        ("siren", "activitePrincipaleEtablissement:56.10A", "Champ inconnu"),
        ("siren", "GAZ", "valeur sans champ"),
        ("siren", "siren:1 siren:2", "AND ou OR"),
        ("siren", "periode(siren:123)", "n'est pas historisé"),
        ("siren", "periode(periode(nomUniteLegale:A))", "imbriqué"),
        ("siren", "dateFin:2020", "periode("),
        ("siren", "denominationUniteLegale:GAZ^2", "pondérations"),
        ("siren", "denominationUniteLegale:/GA.*/", "expressions régulières"),
        ("siren", 'denominationUniteLegale:"A B"~2', "proximité"),
        ("siren", "denominationUniteLegale.phonetisation:GAZ", "phonétique"),
        ("siren", "dateCreationUniteLegale:2020-02-30", "date incorrecte"),
        ("siren", "dateCreationUniteLegale:2020-02-03T10:00", "sans heure"),
        ("siren", "dateCreationUniteLegale:[2021 TO 2020]", "ordre incorrect"),
        ("siren", "nombrePeriodesUniteLegale:deux", "numérique"),
        ("siren", "unitePurgeeUniteLegale:oui", "true ou false"),
        ("siren", "dateNaissanceUniteLegale:1980", "CNIL"),
        ("liensSuccession", "periode(transfertSiege:true)", "n'existe pas"),
    ],
)
def test_refused_with_a_clear_message(collection, q, message):
    with pytest.raises(QueryError, match=re.escape(message)):
        translate(q, collection)


def test_cost_bound_refuses_unbounded_queries():
    many = " OR ".join(f"siren:{i:09d}" for i in range(MAX_CLAUSES + 1))
    with pytest.raises(QueryError, match="trop complexe"):
        translate(many, "siren")
    fuzzy = " OR ".join(f"denominationUniteLegale:MOT{i}~" for i in range(11))
    with pytest.raises(QueryError, match="trop coûteuse"):
        translate(fuzzy, "siren")
    assert translate(" OR ".join(f"siren:{i:09d}" for i in range(50)), "siren").cost == 50


def test_values_are_bound_never_written_into_the_sql():
    p = translate("denominationUniteLegale:\"O'HARA; DROP TABLE x\" OR sigleUniteLegale:x\\'y", "siren")
    assert "DROP" not in p.sql and "HARA" not in p.sql and "x'y" not in p.sql
    assert any("HARA" in str(v) for v in p.params)
