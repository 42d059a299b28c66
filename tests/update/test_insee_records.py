"""API records <-> stock rows: shapes per the 3.11 OpenAPI and lossless round trips."""

from __future__ import annotations

import json

from mirror.core.insee_records import (
    ADRESSE,
    ADRESSE2,
    ET_PERIOD,
    ET_TOP,
    UL_IN_ETAB,
    UL_PERIOD,
    UL_TOP,
    etablissement_record,
    etablissement_to_rows,
    lien_record,
    lien_to_row,
    unite_legale_record,
    unite_legale_to_rows,
)
from mirror.core.schema import (
    ETABLISSEMENT_COLUMNS,
    ETABLISSEMENT_HISTORIQUE_COLUMNS,
    LIENS_SUCCESSION_COLUMNS,
    UNITE_LEGALE_COLUMNS,
    UNITE_LEGALE_HISTORIQUE_COLUMNS,
)


def _row(columns, **values):
    row = {c: "" for c in columns}
    row.update(values)
    assert set(row) == set(columns)
    return row


UL_ROW = _row(
    UNITE_LEGALE_COLUMNS,
    siren="000325175",
    statutDiffusionUniteLegale="P",
    dateCreationUniteLegale="2000-09-26",
    sexeUniteLegale="[ND]",
    prenom1UniteLegale="[ND]",
    prenomUsuelUniteLegale="[ND]",
    trancheEffectifsUniteLegale="NN",
    dateDernierTraitementUniteLegale="2026-10-05T03:12:33.123",
    nombrePeriodesUniteLegale="2",
    dateDebut="2026-10-05",
    etatAdministratifUniteLegale="C",
    nomUniteLegale="[ND]",
    categorieJuridiqueUniteLegale="1000",
    activitePrincipaleUniteLegale="32.12Z",
    nomenclatureActivitePrincipaleUniteLegale="NAFRev2",
    nicSiegeUniteLegale="00016",
    economieSocialeSolidaireUniteLegale="N",
    activitePrincipaleNAF25UniteLegale="32.12Y",
)
UL_HIST = [
    _row(
        UNITE_LEGALE_HISTORIQUE_COLUMNS,
        siren="000325175",
        dateFin="2000-09-25",
        dateDebut="1990-01-01",
        etatAdministratifUniteLegale="A",
        changementEtatAdministratifUniteLegale="false",
        nomUniteLegale="[ND]",
        changementNomUniteLegale="false",
        categorieJuridiqueUniteLegale="1000",
        changementCategorieJuridiqueUniteLegale="true",
        activitePrincipaleUniteLegale="32.12Z",
        nomenclatureActivitePrincipaleUniteLegale="NAFRev2",
        nicSiegeUniteLegale="00016",
        economieSocialeSolidaireUniteLegale="N",
    ),
    _row(
        UNITE_LEGALE_HISTORIQUE_COLUMNS,
        siren="000325175",
        dateFin="",
        dateDebut="2026-10-05",
        etatAdministratifUniteLegale="C",
        changementEtatAdministratifUniteLegale="true",
        nomUniteLegale="[ND]",
        changementNomUniteLegale="false",
        categorieJuridiqueUniteLegale="1000",
        changementCategorieJuridiqueUniteLegale="false",
        activitePrincipaleUniteLegale="32.12Z",
        nomenclatureActivitePrincipaleUniteLegale="NAFRev2",
        nicSiegeUniteLegale="00016",
        economieSocialeSolidaireUniteLegale="N",
    ),
]
ET_ROW = _row(
    ETABLISSEMENT_COLUMNS,
    siren="000325175",
    nic="00024",
    siret="00032517500024",
    statutDiffusionEtablissement="P",
    dateCreationEtablissement="2008-05-20",
    dateDernierTraitementEtablissement="2026-10-05T03:12:33.007",
    etablissementSiege="false",
    nombrePeriodesEtablissement="2",
    numeroVoieEtablissement="[ND]",
    typeVoieEtablissement="[ND]",
    libelleVoieEtablissement="[ND]",
    codePostalEtablissement="[ND]",
    libelleCommuneEtablissement="AVIGNON",
    codeCommuneEtablissement="84007",
    identifiantAdresseEtablissement="[ND]",
    coordonneeLambertAbscisseEtablissement="[ND]",
    coordonneeLambertOrdonneeEtablissement="[ND]",
    libelleVoie2Etablissement="ZONE B \\, LOT 3",
    codeCommune2Etablissement="84007",
    dateDebut="2026-10-05",
    etatAdministratifEtablissement="F",
    enseigne1Etablissement="[ND]",
    activitePrincipaleEtablissement="47.89Z",
    nomenclatureActivitePrincipaleEtablissement="NAFRev2",
    caractereEmployeurEtablissement="N",
    activitePrincipaleNAF25Etablissement="",
)
ET_HIST = [
    _row(
        ETABLISSEMENT_HISTORIQUE_COLUMNS,
        siren="000325175",
        nic="00024",
        siret="00032517500024",
        dateFin="",
        dateDebut="2026-10-05",
        etatAdministratifEtablissement="F",
        changementEtatAdministratifEtablissement="true",
        enseigne1Etablissement="[ND]",
        changementEnseigneEtablissement="false",
        changementDenominationUsuelleEtablissement="false",
        activitePrincipaleEtablissement="47.89Z",
        nomenclatureActivitePrincipaleEtablissement="NAFRev2",
        changementActivitePrincipaleEtablissement="false",
        caractereEmployeurEtablissement="N",
        changementCaractereEmployeurEtablissement="false",
    ),
    _row(
        ETABLISSEMENT_HISTORIQUE_COLUMNS,
        siren="000325175",
        nic="00024",
        siret="00032517500024",
        dateFin="2026-10-04",
        dateDebut="2011-10-21",
        etatAdministratifEtablissement="A",
        changementEtatAdministratifEtablissement="false",
        enseigne1Etablissement="[ND]",
        changementEnseigneEtablissement="true",
        activitePrincipaleEtablissement="47.89Z",
        nomenclatureActivitePrincipaleEtablissement="NAFRev2",
        caractereEmployeurEtablissement="N",
    ),
]
LIEN_ROW = _row(
    LIENS_SUCCESSION_COLUMNS,
    siretEtablissementPredecesseur="00032517500016",
    siretEtablissementSuccesseur="00032517500024",
    dateLienSuccession="2026-10-05",
    transfertSiege="true",
    continuiteEconomique="false",
    dateDernierTraitementLienSuccession="2026-09-01T16:00:47.003",
)


# Property names of the 3.11 OpenAPI schemas, in file order, copied from
# INSEE's OpenAPI description of the API Sirene 3.11 (without the later NAF25 fields).
SPEC = {
    "UniteLegale": "score siren statutDiffusionUniteLegale unitePurgeeUniteLegale dateCreationUniteLegale dateNaissanceUniteLegale codeCommuneNaissanceUniteLegale codePaysNaissanceUniteLegale libelleNationaliteUniteLegale identifiantAssociationUniteLegale trancheEffectifsUniteLegale anneeEffectifsUniteLegale dateDernierTraitementUniteLegale nombrePeriodesUniteLegale categorieEntreprise anneeCategorieEntreprise sigleUniteLegale sexeUniteLegale prenom1UniteLegale prenom2UniteLegale prenom3UniteLegale prenom4UniteLegale prenomUsuelUniteLegale pseudonymeUniteLegale periodesUniteLegale".split(),
    "PeriodeUniteLegale": "dateFin dateDebut etatAdministratifUniteLegale changementEtatAdministratifUniteLegale nomUniteLegale changementNomUniteLegale nomUsageUniteLegale changementNomUsageUniteLegale denominationUniteLegale changementDenominationUniteLegale denominationUsuelle1UniteLegale denominationUsuelle2UniteLegale denominationUsuelle3UniteLegale categorieJuridiqueUniteLegale changementCategorieJuridiqueUniteLegale activitePrincipaleUniteLegale nomenclatureActivitePrincipaleUniteLegale changementActivitePrincipaleUniteLegale nicSiegeUniteLegale changementNicSiegeUniteLegale economieSocialeSolidaireUniteLegale changementEconomieSocialeSolidaireUniteLegale societeMissionUniteLegale changementSocieteMissionUniteLegale caractereEmployeurUniteLegale changementCaractereEmployeurUniteLegale changementDenominationUsuelleUniteLegale".split(),
    "UniteLegaleEtablissement": "statutDiffusionUniteLegale unitePurgeeUniteLegale dateCreationUniteLegale dateNaissanceUniteLegale codeCommuneNaissanceUniteLegale codePaysNaissanceUniteLegale libelleNationaliteUniteLegale identifiantAssociationUniteLegale trancheEffectifsUniteLegale anneeEffectifsUniteLegale dateDernierTraitementUniteLegale categorieEntreprise anneeCategorieEntreprise sigleUniteLegale sexeUniteLegale prenom1UniteLegale prenom2UniteLegale prenom3UniteLegale prenom4UniteLegale prenomUsuelUniteLegale pseudonymeUniteLegale etatAdministratifUniteLegale nomUniteLegale denominationUniteLegale denominationUsuelle1UniteLegale denominationUsuelle2UniteLegale denominationUsuelle3UniteLegale activitePrincipaleUniteLegale categorieJuridiqueUniteLegale nicSiegeUniteLegale nomenclatureActivitePrincipaleUniteLegale nomUsageUniteLegale economieSocialeSolidaireUniteLegale societeMissionUniteLegale caractereEmployeurUniteLegale".split(),
    "Etablissement": "score siren nic siret statutDiffusionEtablissement dateCreationEtablissement trancheEffectifsEtablissement anneeEffectifsEtablissement activitePrincipaleRegistreMetiersEtablissement dateDernierTraitementEtablissement etablissementSiege nombrePeriodesEtablissement uniteLegale adresseEtablissement adresse2Etablissement periodesEtablissement".split(),
    "Adresse": "complementAdresseEtablissement numeroVoieEtablissement indiceRepetitionEtablissement dernierNumeroVoieEtablissement indiceRepetitionDernierNumeroVoieEtablissement typeVoieEtablissement libelleVoieEtablissement codePostalEtablissement libelleCommuneEtablissement libelleCommuneEtrangerEtablissement distributionSpecialeEtablissement codeCommuneEtablissement codeCedexEtablissement libelleCedexEtablissement codePaysEtrangerEtablissement libellePaysEtrangerEtablissement identifiantAdresseEtablissement coordonneeLambertAbscisseEtablissement coordonneeLambertOrdonneeEtablissement".split(),
    "AdresseComplementaire": "complementAdresse2Etablissement numeroVoie2Etablissement indiceRepetition2Etablissement typeVoie2Etablissement libelleVoie2Etablissement codePostal2Etablissement libelleCommune2Etablissement libelleCommuneEtranger2Etablissement distributionSpeciale2Etablissement codeCommune2Etablissement codeCedex2Etablissement libelleCedex2Etablissement codePaysEtranger2Etablissement libellePaysEtranger2Etablissement".split(),
    "PeriodeEtablissement": "dateFin dateDebut etatAdministratifEtablissement changementEtatAdministratifEtablissement enseigne1Etablissement enseigne2Etablissement enseigne3Etablissement changementEnseigneEtablissement denominationUsuelleEtablissement changementDenominationUsuelleEtablissement activitePrincipaleEtablissement nomenclatureActivitePrincipaleEtablissement changementActivitePrincipaleEtablissement caractereEmployeurEtablissement changementCaractereEmployeurEtablissement".split(),
    "LienSuccession": "siretEtablissementPredecesseur siretEtablissementSuccesseur dateLienSuccession transfertSiege continuiteEconomique dateDernierTraitementLienSuccession".split(),
}


def test_field_lists_match_the_openapi():
    assert list(UL_TOP[:-1]) == [p for p in SPEC["UniteLegale"] if p not in ("score", "periodesUniteLegale")]
    assert list(UL_PERIOD) == SPEC["PeriodeUniteLegale"]
    assert list(UL_IN_ETAB[:-1]) == SPEC["UniteLegaleEtablissement"]
    assert list(ET_TOP[:-1]) == [
        p
        for p in SPEC["Etablissement"]
        if p
        not in (
            "score",
            "uniteLegale",
            "adresseEtablissement",
            "adresse2Etablissement",
            "periodesEtablissement",
        )
    ]
    assert list(ADRESSE) == SPEC["Adresse"]
    assert list(ADRESSE2) == SPEC["AdresseComplementaire"]
    assert list(ET_PERIOD) == SPEC["PeriodeEtablissement"]
    assert list(LIENS_SUCCESSION_COLUMNS) == SPEC["LienSuccession"]
    # NAF 2025 fields come last (JANE client of the 2026 spec), as in the stock files
    assert UL_TOP[-1] == "activitePrincipaleNAF25UniteLegale"
    assert ET_TOP[-1] == "activitePrincipaleNAF25Etablissement"


def test_unite_legale_record_shape_and_round_trip():
    rec = unite_legale_record(UL_ROW, UL_HIST)
    assert list(rec) == list(UL_TOP) + ["periodesUniteLegale"]
    assert rec["nombrePeriodesUniteLegale"] == 2 and isinstance(rec["nombrePeriodesUniteLegale"], int)
    assert rec["dateDernierTraitementUniteLegale"] == "2026-10-05T03:12:33.123"
    assert rec["sexeUniteLegale"] == "[ND]" and rec["sigleUniteLegale"] is None
    assert rec["unitePurgeeUniteLegale"] is None and rec["dateNaissanceUniteLegale"] is None
    periods = rec["periodesUniteLegale"]
    assert [p["dateDebut"] for p in periods] == ["2026-10-05", "1990-01-01"]  # most recent first
    assert periods[0]["dateFin"] is None and periods[0]["changementEtatAdministratifUniteLegale"] is True
    assert periods[1]["changementEtatAdministratifUniteLegale"] is False
    assert periods[0]["nomUniteLegale"] == "[ND]"
    assert list(periods[0]) == list(UL_PERIOD)
    rec = json.loads(json.dumps(rec))  # survives JSON
    row, hist = unite_legale_to_rows(rec)
    assert row == UL_ROW
    assert list(row) == UNITE_LEGALE_COLUMNS
    assert sorted(hist, key=lambda h: h["dateDebut"]) == sorted(UL_HIST, key=lambda h: h["dateDebut"])
    assert all(list(h) == UNITE_LEGALE_HISTORIQUE_COLUMNS for h in hist)


def test_etablissement_record_shape_and_round_trip():
    rec = etablissement_record(ET_ROW, ET_HIST, UL_ROW)
    assert list(rec) == list(ET_TOP) + [
        "uniteLegale",
        "adresseEtablissement",
        "adresse2Etablissement",
        "periodesEtablissement",
    ]
    assert rec["etablissementSiege"] is False and rec["nombrePeriodesEtablissement"] == 2
    assert rec["dateDernierTraitementEtablissement"] == "2026-10-05T03:12:33.007"
    adr = rec["adresseEtablissement"]
    assert adr["codePostalEtablissement"] == "[ND]" and adr["codeCommuneEtablissement"] == "84007"
    assert (
        adr["coordonneeLambertAbscisseEtablissement"] == "[ND]"
        and adr["complementAdresseEtablissement"] is None
    )
    assert rec["adresse2Etablissement"]["libelleVoie2Etablissement"] == "ZONE B \\, LOT 3"
    assert list(rec["adresse2Etablissement"]) == list(ADRESSE2)
    ul = rec["uniteLegale"]
    assert list(ul) == list(UL_IN_ETAB)
    assert ul["etatAdministratifUniteLegale"] == "C" and ul["nicSiegeUniteLegale"] == "00016"
    assert ul["nomUniteLegale"] == "[ND]" and ul["categorieJuridiqueUniteLegale"] == "1000"
    periods = rec["periodesEtablissement"]
    assert periods[0]["dateFin"] is None and periods[1]["dateFin"] == "2026-10-04"
    assert periods[0]["changementEtatAdministratifEtablissement"] is True
    row, hist = etablissement_to_rows(json.loads(json.dumps(rec)))
    assert row == ET_ROW and list(row) == ETABLISSEMENT_COLUMNS
    assert hist == ET_HIST  # ET_HIST is already most recent first
    # the nested uniteLegale block is ignored when converting back
    rec["uniteLegale"]["etatAdministratifUniteLegale"] = "A"
    assert etablissement_to_rows(rec)[0] == ET_ROW


def test_lien_round_trip():
    rec = lien_record(LIEN_ROW)
    assert rec == {
        "siretEtablissementPredecesseur": "00032517500016",
        "siretEtablissementSuccesseur": "00032517500024",
        "dateLienSuccession": "2026-10-05",
        "transfertSiege": True,
        "continuiteEconomique": False,
        "dateDernierTraitementLienSuccession": "2026-09-01T16:00:47.003",
    }
    assert lien_to_row(rec) == LIEN_ROW


def test_stock_timestamps_gain_milliseconds_and_missing_history_gives_one_period():
    row = dict(UL_ROW, dateDernierTraitementUniteLegale="2024-03-22T14:26:06", unitePurgeeUniteLegale="true")
    rec = unite_legale_record(row, [])
    assert rec["dateDernierTraitementUniteLegale"] == "2024-03-22T14:26:06.000"
    assert rec["unitePurgeeUniteLegale"] is True
    assert len(rec["periodesUniteLegale"]) == 1
    period = rec["periodesUniteLegale"][0]
    assert period["dateFin"] is None and period["etatAdministratifUniteLegale"] == "C"
    assert period["nicSiegeUniteLegale"] == "00016"
    back, hist = unite_legale_to_rows(rec)
    assert back["dateDernierTraitementUniteLegale"] == "2024-03-22T14:26:06.000"
    assert back["unitePurgeeUniteLegale"] == "true"
    assert len(hist) == 1 and hist[0]["dateDebut"] == "2026-10-05"


def test_real_style_api_record_to_rows():
    """A record shaped like a real 3.11 answer (nulls present, not omitted) flattens to the stock columns."""
    rec = {
        "siren": "552049447",
        "nic": "00013",
        "siret": "55204944700013",
        "statutDiffusionEtablissement": "O",
        "dateCreationEtablissement": None,
        "trancheEffectifsEtablissement": "22",
        "anneeEffectifsEtablissement": "2023",
        "activitePrincipaleRegistreMetiersEtablissement": None,
        "dateDernierTraitementEtablissement": "2025-10-23T19:01:01.037",
        "etablissementSiege": True,
        "nombrePeriodesEtablissement": 1,
        "uniteLegale": {"denominationUniteLegale": "X"},
        "adresseEtablissement": {
            "codeCommuneEtablissement": "75108",
            "coordonneeLambertAbscisseEtablissement": "651234.5",
            "libelleCommuneEtablissement": "PARIS 8",
        },
        "adresse2Etablissement": {k: None for k in ADRESSE2},
        "periodesEtablissement": [
            {
                "dateFin": None,
                "dateDebut": "2019-01-01",
                "etatAdministratifEtablissement": "A",
                "activitePrincipaleEtablissement": "70.10Z",
                "changementEtatAdministratifEtablissement": False,
            }
        ],
    }
    row, hist = etablissement_to_rows(rec)
    assert row["etablissementSiege"] == "true" and row["nombrePeriodesEtablissement"] == "1"
    assert row["coordonneeLambertAbscisseEtablissement"] == "651234.5"
    assert row["libelleCommuneEtablissement"] == "PARIS 8" and row["dateCreationEtablissement"] == ""
    assert row["activitePrincipaleEtablissement"] == "70.10Z" and row["dateDebut"] == "2019-01-01"
    assert row["activitePrincipaleNAF25Etablissement"] == ""
    assert (
        hist[0]["changementEtatAdministratifEtablissement"] == "false"
        and hist[0]["siret"] == "55204944700013"
    )
