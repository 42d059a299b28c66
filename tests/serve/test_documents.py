"""API Entreprise documents (issue 5): real stock zips -> mirror.load.stock.load_snapshot -> catalog views ->
mirror.serve.documents / `mirror get`. Expected values come from the reference (official OCTO sample, SNCF staging
payloads) or are computed independently here (timestamps with zoneinfo, TVA key, address lines)."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from conftest import run_mirror

from mirror.catalog.build import connect
from mirror.core.identifiers import luhn_check_digit
from mirror.core.schema import STOCK_FILES
from mirror.load.stock import load_snapshot
from mirror.serve.documents import get_document, iter_documents, write_jsonl

PARIS = ZoneInfo("Europe/Paris")


def ts(y: int, m: int, d: int, hh: int = 0, mm: int = 0, ss: int = 0, fold: int = 0) -> int:
    """Unix time of a Paris local time (independent of the SQL under test)."""
    return int(datetime(y, m, d, hh, mm, ss, tzinfo=PARIS, fold=fold).timestamp())


def make_siren(prefix8: str) -> str:
    return prefix8 + luhn_check_digit(prefix8)


def make_siret(siren: str, nic4: str) -> str:
    return siren + nic4 + luhn_check_digit(siren + nic4)


def write_stock(folder: Path, rows: dict[str, list[dict]]) -> None:
    """Writes the six INSEE zipped CSV files (current layout) holding `rows` (dicts keyed by column name)."""
    folder.mkdir(parents=True, exist_ok=True)
    for sf in STOCK_FILES:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(sf.columns)
        for row in rows.get(sf.key, []):
            unknown = set(row) - set(sf.columns)
            assert not unknown, unknown
            values = [row.get(c) for c in sf.columns]
            writer.writerow(
                ["" if v is None else ("true" if v is True else "false" if v is False else v) for v in values]
            )
        with zipfile.ZipFile(folder / sf.zip_name, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(sf.csv_member, buf.getvalue())


# ------------------------------------------------------------------------------------------------
# The rows of the test mirror
# ------------------------------------------------------------------------------------------------

OCTO, OCTO_SIEGE = "418166096", "41816609600051"
SNCF, SNCF_SIEGE = "552049447", "55204944776279"
PP = make_siren("12345678")  # DUPONT MAXIME LAURENT ERIC, no nom d'usage
PP_USAGE = make_siren("12345679")  # MARTIN épouse DURAND, one prénom, woman
PP_P = make_siren("22345678")  # natural person, partially diffusible
PM_P = make_siren("32345678")  # company, partially diffusible
O_WITH_P = make_siren("42345678")  # diffusible company with a P secondary établissement
CLOSED = make_siren("52345678")  # ceased unit, its établissement closed, dates from the historique
FOREIGN = make_siren("62345678")  # siège abroad
DOM = make_siren("72345678")  # établissements overseas
OLD = "005410428"  # real row of the reference (NAF1993, purged)
NAP = make_siren("82345678")  # old NAP code, unknown codes
VALID, DOUBLON = make_siren("92345678"), make_siren("92345679")
UNKNOWN = make_siren("99999998")

PP_SIEGE = make_siret(PP, "0001")
PP_USAGE_SIEGE = make_siret(PP_USAGE, "0001")
PP_P_SIEGE = make_siret(PP_P, "0001")
PM_P_SIEGE = make_siret(PM_P, "0001")
O_WITH_P_SIEGE, O_WITH_P_SECOND = make_siret(O_WITH_P, "0001"), make_siret(O_WITH_P, "0002")
CLOSED_SIEGE = make_siret(CLOSED, "0001")
FOREIGN_SIEGE, FOREIGN_FR = make_siret(FOREIGN, "0001"), make_siret(FOREIGN, "0002")
DOM_REUNION, DOM_POLYNESIE, DOM_SPM = (
    make_siret(DOM, "0001"),
    make_siret(DOM, "0002"),
    make_siret(DOM, "0003"),
)
NAP_SIEGE = make_siret(NAP, "0001")
VALID_SIEGE, DOUBLON_SIEGE = make_siret(VALID, "0001"), make_siret(DOUBLON, "0001")


def ul(siren: str, nic: str, **kw) -> dict:
    row = {
        "siren": siren,
        "statutDiffusionUniteLegale": "O",
        "nicSiegeUniteLegale": nic,
        "etatAdministratifUniteLegale": "A",
        "dateDernierTraitementUniteLegale": "2026-09-20T10:00:00",
    }
    row.update(kw)
    return row


def et(siret: str, **kw) -> dict:
    row = {
        "siren": siret[:9],
        "nic": siret[9:],
        "siret": siret,
        "statutDiffusionEtablissement": "O",
        "etatAdministratifEtablissement": "A",
        "etablissementSiege": False,
        "dateDernierTraitementEtablissement": "2026-09-20T10:00:00",
    }
    row.update(kw)
    return row


def paris_address(**kw) -> dict:
    row = {
        "numeroVoieEtablissement": "12",
        "typeVoieEtablissement": "RUE",
        "libelleVoieEtablissement": "DE LA PAIX",
        "codePostalEtablissement": "75002",
        "libelleCommuneEtablissement": "PARIS 2",
        "codeCommuneEtablissement": "75102",
    }
    row.update(kw)
    return row


ND_ADDRESS = {
    "numeroVoieEtablissement": "[ND]",
    "typeVoieEtablissement": "[ND]",
    "libelleVoieEtablissement": "[ND]",
    "codePostalEtablissement": "[ND]",
    "complementAdresseEtablissement": "[ND]",
    "coordonneeLambertAbscisseEtablissement": "[ND]",
    "coordonneeLambertOrdonneeEtablissement": "[ND]",
    "libelleCommuneEtablissement": "LYON 3E ARRONDISSEMENT",
    "codeCommuneEtablissement": "69383",
}
PERSON_ND = {
    c: "[ND]"
    for c in (
        "sexeUniteLegale prenom1UniteLegale prenom2UniteLegale prenom3UniteLegale prenom4UniteLegale "
        "prenomUsuelUniteLegale pseudonymeUniteLegale nomUniteLegale nomUsageUniteLegale"
    ).split()
}

ROWS: dict[str, list[dict]] = {
    "unites_legales": [
        # OCTO, matching the official v2 sample (section 2.2) for every field Sirene holds.
        ul(
            OCTO,
            "00051",
            dateCreationUniteLegale="1998-04-01",
            categorieJuridiqueUniteLegale="5699",
            denominationUniteLegale="OCTO-TECHNOLOGY",
            activitePrincipaleUniteLegale="62.02A",
            nomenclatureActivitePrincipaleUniteLegale="NAFRev2",
            trancheEffectifsUniteLegale="31",
            anneeEffectifsUniteLegale="2014",
            categorieEntreprise="PME",
            etatAdministratifUniteLegale="C",
            dateDebut="2011-09-05",
            economieSocialeSolidaireUniteLegale="N",
        ),
        # SNCF, matching the v3 staging payloads (section 5.1 / 5.2).
        ul(
            SNCF,
            "76279",
            dateCreationUniteLegale="1955-01-01",
            categorieJuridiqueUniteLegale="5599",
            denominationUniteLegale="SOCIETE NATIONALE SNCF",
            sigleUniteLegale="SNCF",
            activitePrincipaleUniteLegale="49.10Z",
            nomenclatureActivitePrincipaleUniteLegale="NAFRev2",
            trancheEffectifsUniteLegale="53",
            anneeEffectifsUniteLegale="2020",
            categorieEntreprise="GE",
            economieSocialeSolidaireUniteLegale="N",
            dateDebut="2015-01-01",
            dateDernierTraitementUniteLegale="2023-01-12T14:05:09",
        ),
        ul(
            PP,
            PP_SIEGE[9:],
            categorieJuridiqueUniteLegale="1000",
            sexeUniteLegale="M",
            nomUniteLegale="DUPONT",
            prenom1UniteLegale="MAXIME",
            prenom2UniteLegale="LAURENT",
            prenom3UniteLegale="ERIC",
            prenomUsuelUniteLegale="MAXIME",
            activitePrincipaleUniteLegale="62.01Z",
            nomenclatureActivitePrincipaleUniteLegale="NAFRev2",
            trancheEffectifsUniteLegale="NN",
            dateCreationUniteLegale="2015-03-29",
        ),
        ul(
            PP_USAGE,
            PP_USAGE_SIEGE[9:],
            categorieJuridiqueUniteLegale="1000",
            sexeUniteLegale="F",
            nomUniteLegale="MARTIN",
            nomUsageUniteLegale="DURAND",
            prenom1UniteLegale="JEANNE",
            activitePrincipaleUniteLegale="96.02A",
            nomenclatureActivitePrincipaleUniteLegale="NAFRev2",
        ),
        ul(
            PP_P,
            PP_P_SIEGE[9:],
            statutDiffusionUniteLegale="P",
            categorieJuridiqueUniteLegale="1000",
            activitePrincipaleUniteLegale="85.59A",
            nomenclatureActivitePrincipaleUniteLegale="NAFRev2",
            **PERSON_ND,
        ),
        ul(
            PM_P,
            PM_P_SIEGE[9:],
            statutDiffusionUniteLegale="P",
            categorieJuridiqueUniteLegale="5710",
            denominationUniteLegale="DISCRETE SAS",
            sigleUniteLegale="[ND]",
            activitePrincipaleUniteLegale="70.22Z",
            nomenclatureActivitePrincipaleUniteLegale="NAFRev2",
        ),
        ul(
            O_WITH_P,
            O_WITH_P_SIEGE[9:],
            categorieJuridiqueUniteLegale="5499",
            denominationUniteLegale="BOULANGERIE DU COIN",
            sigleUniteLegale="BDC",
            activitePrincipaleUniteLegale="10.71C",
            nomenclatureActivitePrincipaleUniteLegale="NAFRev2",
        ),
        # Ceased on 2019-03-31 (a DST day); a later period changed only the dénomination.
        ul(
            CLOSED,
            CLOSED_SIEGE[9:],
            categorieJuridiqueUniteLegale="5499",
            denominationUniteLegale="FERMEE SARL",
            etatAdministratifUniteLegale="C",
            dateDebut="2020-06-15",
            activitePrincipaleUniteLegale="47.11B",
            nomenclatureActivitePrincipaleUniteLegale="NAFRev2",
            dateCreationUniteLegale="1900-01-01",
        ),
        ul(
            FOREIGN,
            FOREIGN_SIEGE[9:],
            categorieJuridiqueUniteLegale="3120",
            denominationUniteLegale="AUSLAND GMBH",
            activitePrincipaleUniteLegale="46.90Z",
            nomenclatureActivitePrincipaleUniteLegale="NAFRev2",
        ),
        ul(
            DOM,
            DOM_REUNION[9:],
            categorieJuridiqueUniteLegale="5710",
            denominationUniteLegale="OUTRE MER SAS",
            activitePrincipaleUniteLegale="56.10A",
            nomenclatureActivitePrincipaleUniteLegale="NAFRev2",
            activitePrincipaleNAF25UniteLegale="56.11Y",
        ),
        # Verbatim row of the reference (section 4.1): purged unit, NAF1993.
        dict(
            zip(
                [c for c in STOCK_FILES[0].columns if c != "activitePrincipaleNAF25UniteLegale"],
                "005410428,O,true,1954-01-01,,M,RENE,PIERRE,,,RENE,,,NN,,2024-03-22T14:26:06,1,,,1989-06-11,C,"
                "DINGEON,,,,,,1000,70.2C,NAF1993,00014,,,".split(","),
                strict=True,
            )
        ),
        ul(
            NAP,
            NAP_SIEGE[9:],
            categorieJuridiqueUniteLegale="9999",
            denominationUniteLegale="ANCIENNE",
            activitePrincipaleUniteLegale="22.02",
            nomenclatureActivitePrincipaleUniteLegale="NAP",
            trancheEffectifsUniteLegale="ZZ",
            anneeEffectifsUniteLegale="2019",
        ),
        ul(VALID, VALID_SIEGE[9:], categorieJuridiqueUniteLegale="5710", denominationUniteLegale="LA BONNE"),
        ul(
            DOUBLON,
            DOUBLON_SIEGE[9:],
            categorieJuridiqueUniteLegale="5710",
            denominationUniteLegale="LA BONNE BIS",
            etatAdministratifUniteLegale="C",
            dateDebut="2025-01-01",
        ),
    ],
    "etablissements": [
        et(
            OCTO_SIEGE,
            etablissementSiege=True,
            dateCreationEtablissement="2007-01-01",
            activitePrincipaleEtablissement="62.02A",
            nomenclatureActivitePrincipaleEtablissement="NAFRev2",
            trancheEffectifsEtablissement="31",
            anneeEffectifsEtablissement="2014",
            numeroVoieEtablissement="50",
            typeVoieEtablissement="AV",
            libelleVoieEtablissement="DES CHAMPS ELYSEES",
            codePostalEtablissement="75008",
            libelleCommuneEtablissement="PARIS 8",
            codeCommuneEtablissement="75108",
            dateDernierTraitementEtablissement="2026-03-29T02:30:00",
        ),
        et(
            SNCF_SIEGE,
            etablissementSiege=True,
            dateCreationEtablissement="1986-06-23",
            activitePrincipaleEtablissement="49.10Z",
            nomenclatureActivitePrincipaleEtablissement="NAFRev2",
            trancheEffectifsEtablissement="41",
            anneeEffectifsEtablissement="2020",
            enseigne1Etablissement="SNCF ST DENIS 2 PL AUX ETOILES",
            numeroVoieEtablissement="2",
            typeVoieEtablissement="PL",
            libelleVoieEtablissement="AUX ETOILES",
            codePostalEtablissement="93210",
            libelleCommuneEtablissement="SAINT-DENIS",
            codeCommuneEtablissement="93066",
            dateDernierTraitementEtablissement="2022-08-29T17:45:12.123",
        ),
        et(
            PP_SIEGE,
            etablissementSiege=True,
            enseigne1Etablissement="DUPONT CONSEIL",
            **paris_address(indiceRepetitionEtablissement="B", numeroVoieEtablissement="51"),
        ),
        et(
            PP_USAGE_SIEGE,
            etablissementSiege=True,
            **paris_address(
                typeVoieEtablissement="LD",
                complementAdresseEtablissement="BATIMENT C",
                distributionSpecialeEtablissement="BP 12",
                codeCedexEtablissement="75083",
                libelleCedexEtablissement="PARIS CEDEX 02",
            ),
        ),
        et(
            PP_P_SIEGE,
            etablissementSiege=True,
            statutDiffusionEtablissement="P",
            enseigne1Etablissement="[ND]",
            **ND_ADDRESS,
        ),
        et(
            PM_P_SIEGE,
            etablissementSiege=True,
            statutDiffusionEtablissement="P",
            enseigne1Etablissement="DISCRET",
            **ND_ADDRESS,
        ),
        et(O_WITH_P_SIEGE, etablissementSiege=True, **paris_address()),
        et(
            O_WITH_P_SECOND,
            statutDiffusionEtablissement="P",
            enseigne1Etablissement="LE FOURNIL",
            **ND_ADDRESS,
        ),
        # Closed on 2024-10-27 (DST end day); a later period changed only the enseigne.
        et(
            CLOSED_SIEGE,
            etablissementSiege=True,
            etatAdministratifEtablissement="F",
            dateDebut="2025-02-01",
            **paris_address(),
        ),
        et(
            FOREIGN_SIEGE,
            etablissementSiege=True,
            libelleVoieEtablissement="UNTER DEN LINDEN",
            numeroVoieEtablissement="5",
            libelleCommuneEtrangerEtablissement="BERLIN",
            codePaysEtrangerEtablissement="99109",
            libellePaysEtrangerEtablissement="ALLEMAGNE",
        ),
        et(FOREIGN_FR, **paris_address()),
        et(
            DOM_REUNION,
            etablissementSiege=True,
            **paris_address(
                codeCommuneEtablissement="97411",
                libelleCommuneEtablissement="SAINT-DENIS",
                codePostalEtablissement="97400",
            ),
        ),
        et(
            DOM_POLYNESIE,
            **paris_address(
                codeCommuneEtablissement="98735",
                libelleCommuneEtablissement="PAPEETE",
                codePostalEtablissement="98714",
            ),
        ),
        et(
            DOM_SPM,
            **paris_address(
                codeCommuneEtablissement="97502",
                libelleCommuneEtablissement="SAINT-PIERRE",
                codePostalEtablissement="97500",
            ),
        ),
        et(
            NAP_SIEGE,
            etablissementSiege=True,
            activitePrincipaleEtablissement="00.00Z",
            nomenclatureActivitePrincipaleEtablissement="NAFRev2",
            **paris_address(),
        ),
        et(VALID_SIEGE, etablissementSiege=True, **paris_address()),
        et(
            DOUBLON_SIEGE,
            etablissementSiege=True,
            etatAdministratifEtablissement="F",
            dateDebut="2025-01-01",
            **paris_address(),
        ),
    ],
    "unites_legales_historique": [
        {
            "siren": OCTO,
            "dateDebut": "2011-09-05",
            "etatAdministratifUniteLegale": "C",
            "changementEtatAdministratifUniteLegale": True,
        },
        {
            "siren": OCTO,
            "dateDebut": "1998-04-01",
            "dateFin": "2011-09-04",
            "etatAdministratifUniteLegale": "A",
            "changementEtatAdministratifUniteLegale": False,
        },
        {
            "siren": CLOSED,
            "dateDebut": "2020-06-15",
            "etatAdministratifUniteLegale": "C",
            "changementEtatAdministratifUniteLegale": False,
            "changementDenominationUniteLegale": True,
        },
        {
            "siren": CLOSED,
            "dateDebut": "2019-03-31",
            "dateFin": "2020-06-14",
            "etatAdministratifUniteLegale": "C",
            "changementEtatAdministratifUniteLegale": True,
        },
        {
            "siren": CLOSED,
            "dateDebut": "2010-01-01",
            "dateFin": "2019-03-30",
            "etatAdministratifUniteLegale": "A",
            "changementEtatAdministratifUniteLegale": False,
        },
    ],
    "etablissements_historique": [
        {
            "siren": CLOSED,
            "nic": CLOSED_SIEGE[9:],
            "siret": CLOSED_SIEGE,
            "dateDebut": "2025-02-01",
            "etatAdministratifEtablissement": "F",
            "changementEtatAdministratifEtablissement": False,
            "changementEnseigneEtablissement": True,
        },
        {
            "siren": CLOSED,
            "nic": CLOSED_SIEGE[9:],
            "siret": CLOSED_SIEGE,
            "dateDebut": "2024-10-27",
            "dateFin": "2025-01-31",
            "etatAdministratifEtablissement": "F",
            "changementEtatAdministratifEtablissement": True,
        },
    ],
    "doublons": [
        {"siren": VALID, "sirenDoublon": DOUBLON, "dateDernierTraitementDoublon": "2025-01-02T08:00:00"}
    ],
}
for _row in ROWS["etablissements_historique"]:
    _row["nic"] = _row["siret"][9:]


@pytest.fixture(scope="module")
def mirror_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("documents")
    write_stock(root / "stock", ROWS)
    load_snapshot(root / "data", [root / "stock"], month="2026-10", force=True)
    return root / "data"


@pytest.fixture(scope="module")
def con(mirror_dir):
    c = connect(mirror_dir, read_only=True)
    yield c
    c.close()


def doc(con, ident, fmt="v3", **kw) -> dict:
    status, body = get_document(con, ident, fmt, **kw)
    assert status == 200, (status, body)
    return body


# ------------------------------------------------------------------------------------------------
# OCTO (v2 official sample) and SNCF (v3 staging samples)
# ------------------------------------------------------------------------------------------------

V2_ENTREPRISE_KEYS = (
    "siren, capital_social, numero_tva_intracommunautaire, forme_juridique, forme_juridique_code, nom_commercial, "
    "procedure_collective, enseigne, libelle_naf_entreprise, naf_entreprise, raison_sociale, siret_siege_social, "
    "code_effectif_entreprise, date_creation, nom, prenom, date_radiation, categorie_entreprise, "
    "tranche_effectif_salarie_entreprise, mandataires_sociaux, etat_administratif"
).split(", ")
V2_ETABLISSEMENT_KEYS = (
    "siege_social, siret, naf, libelle_naf, date_mise_a_jour, tranche_effectif_salarie_etablissement, "
    "date_creation_etablissement, region_implantation, commune_implantation, pays_implantation, "
    "diffusable_commercialement, enseigne, adresse, etat_administratif"
).split(", ")


@pytest.mark.slow
def test_octo_v2_entreprise_matches_official_sample(con):
    body = doc(con, OCTO, "v2")
    assert list(body) == ["entreprise", "etablissement_siege", "gateway_error"]
    assert body["gateway_error"] is False
    entreprise = body["entreprise"]
    assert list(entreprise) == V2_ENTREPRISE_KEYS  # serializer order, no diffusable_commercialement
    official = {  # section 2.2, every field Sirene can provide
        "siren": "418166096",
        "numero_tva_intracommunautaire": "FR16418166096",
        "forme_juridique": "SA à directoire (s.a.i.)",
        "forme_juridique_code": "5699",
        "procedure_collective": False,
        "enseigne": None,
        "naf_entreprise": "6202A",
        "libelle_naf_entreprise": "Conseil en systèmes et logiciels informatiques",
        "raison_sociale": "OCTO-TECHNOLOGY",
        "siret_siege_social": "41816609600051",
        "code_effectif_entreprise": "31",
        "date_creation": 891381600,
        "nom": None,
        "prenom": None,
        "categorie_entreprise": "PME",
        "tranche_effectif_salarie_entreprise": {
            "de": 200,
            "a": 249,
            "code": "31",
            "date_reference": "2014",
            "intitule": "200 à 249 salariés",
        },
        "etat_administratif": {"value": "C", "date_cessation": 1315173600},
    }
    for key, value in official.items():
        assert entreprise[key] == value, key
    assert list(entreprise["tranche_effectif_salarie_entreprise"]) == [
        "de",
        "a",
        "code",
        "date_reference",
        "intitule",
    ]
    # Infogreffe fields, as a Sirene-only source gives them.
    assert entreprise["capital_social"] is None
    assert entreprise["nom_commercial"] is None
    assert entreprise["date_radiation"] is None
    assert entreprise["mandataires_sociaux"] == []
    # The siège is the /v2/etablissements object.
    assert body["etablissement_siege"] == doc(con, OCTO_SIEGE, "v2")["etablissement"]
    assert doc(con, OCTO, "v2", siege=True) == doc(
        con, OCTO_SIEGE, "v2"
    )  # --siege with v2: the siège's document

    with_option = doc(con, OCTO, "v2", non_diffusables=True)["entreprise"]
    assert list(with_option) == V2_ENTREPRISE_KEYS + ["diffusable_commercialement"]
    assert with_option["diffusable_commercialement"] is True


def test_octo_v2_etablissement(con):
    body = doc(con, OCTO_SIEGE, "v2")
    assert list(body) == ["etablissement", "gateway_error"]
    e = body["etablissement"]
    assert list(e) == V2_ETABLISSEMENT_KEYS
    assert e["siege_social"] is True and e["siret"] == OCTO_SIEGE
    assert (e["naf"], e["libelle_naf"]) == ("6202A", "Conseil en systèmes et logiciels informatiques")
    assert e["pays_implantation"] == {"code": "FR", "value": "FRANCE"}
    assert e["region_implantation"] == {"code": "11", "value": "Île-de-France"}
    # Arrondissement municipal: its own COG name (section 9).
    assert e["commune_implantation"] == {"code": "75108", "value": "Paris 8e Arrondissement"}
    assert e["diffusable_commercialement"] is True
    assert e["date_creation_etablissement"] == ts(2007, 1, 1)
    # 2026-03-29 02:30 does not exist in Paris (spring forward): Rails moves it to 03:30 CEST.
    assert e["date_mise_a_jour"] == ts(2026, 3, 29, 3, 30)
    assert e["adresse"] == {
        "l1": "OCTO-TECHNOLOGY",
        "l2": None,
        "l3": None,
        "l4": "50 AV DES CHAMPS ELYSEES",
        "l5": None,
        "l6": "75008 PARIS 8",
        "l7": "FRANCE",
        "numero_voie": "50",
        "type_voie": "AV",
        "nom_voie": "DES CHAMPS ELYSEES",
        "complement_adresse": None,
        "code_postal": "75008",
        "localite": "PARIS 8",
        "code_insee_localite": "75108",
        "cedex": None,
    }
    assert list(e["adresse"])[:7] == ["l1", "l2", "l3", "l4", "l5", "l6", "l7"]
    assert e["etat_administratif"] == {"value": "A", "date_fermeture": None}


SNCF_UL_SAMPLE = {
    "data": {
        "siren": "552049447",
        "rna": None,
        "siret_siege_social": "55204944776279",
        "categorie_entreprise": "GE",
        "status_diffusion": "diffusible",
        "diffusable_commercialement": True,
        "type": "personne_morale",
        "personne_morale_attributs": {"raison_sociale": "SOCIETE NATIONALE SNCF", "sigle": "SNCF"},
        "personne_physique_attributs": {
            "pseudonyme": None,
            "prenom_usuel": None,
            "prenom_1": None,
            "prenom_2": None,
            "prenom_3": None,
            "prenom_4": None,
            "nom_usage": None,
            "nom_naissance": None,
            "sexe": None,
        },
        "forme_juridique": {"code": "5599", "libelle": "SA à conseil d'administration (s.a.i.)"},
        "activite_principale": {
            "code": "49.10Z",
            "nomenclature": "NAFRev2",
            "libelle": "Transport ferroviaire interurbain de voyageurs",
        },
        "tranche_effectif_salarie": {
            "de": 10000,
            "a": None,
            "code": "53",
            "date_reference": "2020",
            "intitule": "10 000 salariés et plus",
        },
        "etat_administratif": "A",
        "economie_sociale_et_solidaire": False,
        "date_cessation": None,
        "date_creation": -473389200,
    },
    "links": {
        "siege_social": "https://entreprise.api.gouv.fr/v3/insee/sirene/etablissements/55204944776279",
        "siege_social_adresse": "https://entreprise.api.gouv.fr/v3/insee/sirene/etablissements/55204944776279/adresse",
    },
    "meta": {"date_derniere_mise_a_jour": 1673478000, "redirect_from_siren": None},
}

SNCF_ET_SAMPLE = {
    "data": {
        "siret": "55204944776279",
        "siege_social": True,
        "etat_administratif": "A",
        "date_fermeture": None,
        "enseigne": "SNCF ST DENIS 2 PL AUX ETOILES",
        "status_diffusion": "diffusible",
        "activite_principale": {
            "code": "49.10Z",
            "nomenclature": "NAFRev2",
            "libelle": "Transport ferroviaire interurbain de voyageurs",
        },
        "tranche_effectif_salarie": {
            "de": 500,
            "a": 999,
            "code": "41",
            "date_reference": "2020",
            "intitule": "500 à 999 salariés",
        },
        "diffusable_commercialement": True,
        "date_creation": 519861600,
        "unite_legale": {
            "siren": "552049447",
            "rna": None,
            "siret_siege_social": "55204944776279",
            "type": "personne_morale",
            "status_diffusion": "diffusible",
            "personne_morale_attributs": {"raison_sociale": "SOCIETE NATIONALE SNCF", "sigle": "SNCF"},
            "personne_physique_attributs": {
                "pseudonyme": None,
                "prenom_usuel": None,
                "prenom_1": None,
                "prenom_2": None,
                "prenom_3": None,
                "prenom_4": None,
                "nom_usage": None,
                "nom_naissance": None,
                "sexe": None,
            },
            "categorie_entreprise": "GE",
            "diffusable_commercialement": True,
            "forme_juridique": {"code": "5599", "libelle": "SA à conseil d'administration (s.a.i.)"},
            "activite_principale": {
                "code": "49.10Z",
                "nomenclature": "NAFRev2",
                "libelle": "Transport ferroviaire interurbain de voyageurs",
            },
            "tranche_effectif_salarie": {
                "de": 10000,
                "a": None,
                "code": "53",
                "date_reference": "2020",
                "intitule": "10 000 salariés et plus",
            },
            "economie_sociale_et_solidaire": False,
            "date_creation": -473389200,
            "etat_administratif": "A",
        },
        "adresse": {
            "complement_adresse": None,
            "numero_voie": "2",
            "status_diffusion": "diffusible",
            "indice_repetition_voie": None,
            "type_voie": "PLACE",
            "libelle_voie": "AUX ETOILES",
            "code_postal": "93210",
            "libelle_commune": "SAINT-DENIS",
            "libelle_commune_etranger": None,
            "distribution_speciale": None,
            "code_commune": "93066",
            "code_cedex": None,
            "libelle_cedex": None,
            "code_pays_etranger": None,
            "libelle_pays_etranger": None,
            "acheminement_postal": {
                "l1": "SOCIETE NATIONALE SNCF",
                "l2": "",
                "l3": "",
                "l4": "2 PLACE AUX ETOILES",
                "l5": "",
                "l6": "93210 SAINT-DENIS",
                "l7": "FRANCE",
            },
        },
    },
    "links": {"unite_legale": "https://entreprise.api.gouv.fr/v3/insee/sirene/unites_legales/552049447"},
    "meta": {"date_derniere_mise_a_jour": 1661724000, "redirect_from_siret": None},
}


def _keys_deep(value):
    """Nested key order, to compare orders and not only contents."""
    if isinstance(value, dict):
        return [(k, _keys_deep(v)) for k, v in value.items()]
    return None


def test_sncf_v3_samples_exactly(con):
    body = doc(con, SNCF, "v3")
    assert body == SNCF_UL_SAMPLE
    assert _keys_deep(body) == _keys_deep(SNCF_UL_SAMPLE)
    body = doc(con, SNCF_SIEGE, "v3")
    assert body == SNCF_ET_SAMPLE
    assert _keys_deep(body) == _keys_deep(SNCF_ET_SAMPLE)
    # siege_social endpoint: the siège's établissement document.
    assert doc(con, SNCF, "v3", siege=True) == SNCF_ET_SAMPLE
    adresse = doc(con, SNCF_SIEGE, "v3", siege=False)["data"]["adresse"]
    assert adresse["acheminement_postal"]["l4"] == "2 PLACE AUX ETOILES"


def test_v4_naf2025_and_naf_rev2(con):
    body = doc(con, DOM, "v4")["data"]
    keys = list(body)
    assert keys[keys.index("activite_principale") + 1] == "activite_principale_naf_rev2"
    assert body["activite_principale"]["code"] == "56.11Y"
    assert body["activite_principale"]["nomenclature"] == "NAF2025"
    assert body["activite_principale"]["libelle"]  # from ref_naf_2025
    assert body["activite_principale_naf_rev2"] == {
        "code": "56.10A",
        "nomenclature": "NAFRev2",
        "libelle": "Restauration traditionnelle",
    }
    sncf = doc(con, SNCF_SIEGE, "v4")
    assert (
        sncf["links"]["unite_legale"]
        == "https://entreprise.api.gouv.fr/v4/insee/sirene/unites_legales/552049447"
    )
    assert sncf["data"]["activite_principale"] == {"code": None, "nomenclature": None, "libelle": None}
    assert sncf["data"]["unite_legale"]["activite_principale_naf_rev2"]["code"] == "49.10Z"
    # Everything else as in v3.
    v3 = doc(con, SNCF_SIEGE, "v3")["data"]
    assert {
        k: v for k, v in sncf["data"].items() if not k.startswith("activite") and k != "unite_legale"
    } == {k: v for k, v in v3.items() if not k.startswith("activite") and k != "unite_legale"}


# ------------------------------------------------------------------------------------------------
# Personnes physiques, addresses
# ------------------------------------------------------------------------------------------------


def test_personne_physique_raison_sociale_and_address_lines(con):
    entreprise = doc(con, PP, "v2")["entreprise"]
    assert entreprise["raison_sociale"] == "DUPONT*/MAXIME LAURENT ERIC/"
    assert entreprise["forme_juridique"] == "Entrepreneur individuel"
    assert (entreprise["nom"], entreprise["prenom"]) == ("DUPONT", "MAXIME")
    assert entreprise["tranche_effectif_salarie_entreprise"] == {
        "de": None,
        "a": None,
        "code": "NN",
        "date_reference": None,
        "intitule": "Unités non employeuses",
    }
    # 2015-03-29 (spring-forward day): midnight is still winter time.
    assert entreprise["date_creation"] == ts(2015, 3, 29) == 1427583600
    adresse = doc(con, PP_SIEGE, "v2")["etablissement"]["adresse"]
    assert adresse["l1"] == "MONSIEUR MAXIME DUPONT"
    assert adresse["l2"] == "DUPONT CONSEIL"  # no dénomination usuelle: the enseignes
    assert adresse["l4"] == "51 B RUE DE LA PAIX"  # raw repetition letter and street type in v2

    v3 = doc(con, PP_SIEGE, "v3")["data"]
    assert v3["unite_legale"]["type"] == "personne_physique"
    assert v3["unite_legale"]["personne_physique_attributs"]["nom_naissance"] == "DUPONT"
    assert v3["adresse"]["indice_repetition_voie"] == "bis"
    assert v3["adresse"]["acheminement_postal"] == {
        "l1": "",
        "l2": "DUPONT MAXIME",
        "l3": "",
        "l4": "51 BIS RUE DE LA PAIX",
        "l5": "",
        "l6": "75002 PARIS 2",
        "l7": "FRANCE",
    }


def test_personne_physique_nom_usage_civilite_cedex(con):
    entreprise = doc(con, PP_USAGE, "v2")["entreprise"]
    assert entreprise["raison_sociale"] == "MARTIN*DURAND/JEANNE  /"  # Ruby join keeps the separators
    e = doc(con, PP_USAGE_SIEGE, "v2")["etablissement"]
    assert e["adresse"]["l1"] == "MADAME JEANNE DURAND"
    assert e["adresse"]["l3"] == "BATIMENT C"
    assert e["adresse"]["l5"] == "BP 12"
    assert e["adresse"]["l6"] == "75083 PARIS CEDEX 02"
    assert e["adresse"]["type_voie"] == "LD"
    v3 = doc(con, PP_USAGE_SIEGE, "v3")["data"]["adresse"]
    assert v3["type_voie"] == "LIEU-DIT"
    assert v3["acheminement_postal"]["l4"] == "12 LIEU-DIT DE LA PAIX"
    assert v3["acheminement_postal"]["l6"] == "75083 PARIS CEDEX 02"
    assert v3["acheminement_postal"]["l2"] == "MARTIN JEANNE"


def test_foreign_siege(con):
    body = doc(con, FOREIGN, "v2")
    assert body["entreprise"]["numero_tva_intracommunautaire"] is None
    e = body["etablissement_siege"]
    assert e["pays_implantation"] == {"code": "99109", "value": "ALLEMAGNE"}
    assert e["region_implantation"] == {"code": None, "value": None}
    assert e["commune_implantation"] == {"code": None, "value": "BERLIN"}
    assert e["adresse"]["l6"] == "BERLIN"
    assert e["adresse"]["l7"] == "ALLEMAGNE"
    assert e["adresse"]["localite"] == "BERLIN"
    v3 = doc(con, FOREIGN_SIEGE, "v3")["data"]["adresse"]["acheminement_postal"]
    assert (v3["l6"], v3["l7"]) == ("BERLIN", "ALLEMAGNE")
    # A French secondary établissement does not matter: the siège decides.
    assert doc(con, FOREIGN_FR, "v2")["etablissement"]["pays_implantation"] == {
        "code": "FR",
        "value": "FRANCE",
    }


def test_tva_key_computed(con):
    for siren in (OCTO, SNCF, PP, O_WITH_P):
        expected = f"FR{(12 + 3 * (int(siren) % 97)) % 97:02d}{siren}"
        assert doc(con, siren, "v2")["entreprise"]["numero_tva_intracommunautaire"] == expected


def test_overseas_communes(con):
    reunion = doc(con, DOM_REUNION, "v2")["etablissement"]
    assert reunion["region_implantation"] == {"code": "04", "value": "La Réunion"}
    assert reunion["commune_implantation"] == {"code": "97411", "value": "Saint-Denis"}
    assert reunion["pays_implantation"] == {"code": "FR", "value": "FRANCE"}
    polynesie = doc(con, DOM_POLYNESIE, "v2")["etablissement"]
    assert polynesie["region_implantation"] == {"code": None, "value": None}  # a COM has no région
    assert polynesie["commune_implantation"] == {"code": "98735", "value": "Papeete"}
    spm = doc(con, DOM_SPM, "v2")["etablissement"]
    assert spm["region_implantation"] == {"code": None, "value": None}
    assert spm["commune_implantation"]["value"] == "Saint-Pierre"
    assert doc(con, DOM_POLYNESIE, "v3")["data"]["adresse"]["acheminement_postal"]["l6"] == "98714 PAPEETE"


def test_old_nomenclatures_and_unknown_codes(con):
    old = doc(con, OLD, "v3")["data"]
    assert old["activite_principale"] == {
        "code": "70.2C",
        "nomenclature": "NAF1993",
        "libelle": "ancienne révision NAF (NAF1993) non supportée",
    }
    assert old["date_creation"] == ts(1954, 1, 1)
    nap = doc(con, NAP, "v3")["data"]
    assert nap["activite_principale"]["libelle"] == "ancienne révision NAF (NAP) non supportée"
    assert nap["forme_juridique"] == {"code": "9999", "libelle": "non référencé"}
    assert nap["tranche_effectif_salarie"] == {
        "de": None,
        "a": None,
        "code": "ZZ",
        "date_reference": "2019",
        "intitule": "non référencé",
    }
    assert doc(con, NAP, "v2")["entreprise"]["naf_entreprise"] == "2202"
    siege = doc(con, NAP_SIEGE, "v3")["data"]["activite_principale"]
    assert siege == {"code": "00.00Z", "nomenclature": "NAFRev2", "libelle": "En instance de chiffrement"}
    assert doc(con, OLD, "v2")["entreprise"]["raison_sociale"] == "DINGEON*/RENE PIERRE /"


# ------------------------------------------------------------------------------------------------
# États, dates from the historique, timestamps
# ------------------------------------------------------------------------------------------------


def test_closed_unit_and_etablissement_dates_from_historique(con):
    v3 = doc(con, CLOSED, "v3")["data"]
    assert v3["etat_administratif"] == "C"
    # Most recent period that changed the état (2019-03-31, a spring-forward day), not the current dateDebut.
    assert v3["date_cessation"] == ts(2019, 3, 31) == 1553986800
    assert v3["date_creation"] is None  # 1900-01-01 means unknown in v3
    v2 = doc(con, CLOSED, "v2")["entreprise"]
    assert v2["etat_administratif"] == {"value": "C", "date_cessation": ts(2020, 6, 15)}  # v2: current period
    assert v2["date_creation"] == ts(1900, 1, 1)
    e3 = doc(con, CLOSED_SIEGE, "v3")["data"]
    assert e3["etat_administratif"] == "F"
    assert e3["date_fermeture"] == ts(2024, 10, 27) == 1729980000  # fall-back day: midnight is summer time
    e2 = doc(con, CLOSED_SIEGE, "v2")["etablissement"]
    assert e2["etat_administratif"] == {"value": "F", "date_fermeture": ts(2025, 2, 1)}
    # Active units have no cessation date; OCTO's is in its historique.
    assert doc(con, SNCF, "v3")["data"]["date_cessation"] is None
    assert doc(con, OCTO, "v3")["data"]["date_cessation"] == 1315173600


def test_timestamps_v2_keep_time_v3_drop_it(con):
    # SNCF siège: dateDernierTraitement 2022-08-29T17:45:12.123 (summer time).
    assert doc(con, SNCF_SIEGE, "v2")["etablissement"]["date_mise_a_jour"] == ts(2022, 8, 29, 17, 45, 12)
    assert doc(con, SNCF_SIEGE, "v3")["meta"]["date_derniere_mise_a_jour"] == ts(2022, 8, 29)


def test_ambiguous_autumn_time_takes_summer_instant(tmp_path):
    siren = make_siren("11223344")
    siret = make_siret(siren, "0001")
    write_stock(
        tmp_path / "stock",
        {
            "unites_legales": [
                ul(siren, siret[9:], categorieJuridiqueUniteLegale="5710", denominationUniteLegale="X")
            ],
            "etablissements": [
                et(
                    siret,
                    etablissementSiege=True,
                    dateDernierTraitementEtablissement="2025-10-26T02:30:00",
                    **paris_address(),
                )
            ],
        },
    )
    load_snapshot(tmp_path / "data", [tmp_path / "stock"], month="2026-10", force=True)
    status, body = get_document(tmp_path / "data", siret, "v2")
    assert status == 200
    assert body["etablissement"]["date_mise_a_jour"] == ts(2025, 10, 26, 2, 30, fold=0)
    assert ts(2025, 10, 26, 2, 30, fold=0) + 3600 == ts(2025, 10, 26, 2, 30, fold=1)


# ------------------------------------------------------------------------------------------------
# Diffusion
# ------------------------------------------------------------------------------------------------


def test_v2_451_for_p_units_unless_non_diffusables(con):
    status, body = get_document(con, PP_P, "v2")
    assert status == 451
    assert body == {
        "errors": ["Le SIREN est non diffusable, pour y accéder référez-vous à notre documentation."],
        "gateway_error": True,
    }
    status, body = get_document(con, PP_P, "v2", non_diffusables=True)
    assert status == 200
    assert body["entreprise"]["diffusable_commercialement"] is False
    assert body["entreprise"]["nom"] == "[ND]"  # the open files' mask, never reconstructed
    assert body["etablissement_siege"]["diffusable_commercialement"] is None  # P -> null in v2
    status, body = get_document(con, O_WITH_P_SECOND, "v2")
    assert status == 451
    assert body["errors"] == [
        "Le SIRET est non diffusable, pour y accéder référez-vous à notre documentation."
    ]
    assert get_document(con, O_WITH_P, "v2")[0] == 200  # the unit is diffusible


def test_v3_diffusibles_masks_person(con):
    body = doc(con, PP_P, "v3", diffusibles=True)
    data = body["data"]
    assert data["status_diffusion"] == "partiellement_diffusible"
    assert data["diffusable_commercialement"] is False
    assert set(data["personne_physique_attributs"].values()) == {"[ND]"}
    assert list(data["personne_physique_attributs"]) == list(
        SNCF_UL_SAMPLE["data"]["personne_physique_attributs"]
    )
    assert data["activite_principale"]["code"] == "85.59A"  # stays public
    # Links point to the protected routes in every variant, as siade's serializers build them (url_for on
    # the protected controllers) and the real /diffusibles/ payloads show.
    assert (
        body["links"]["siege_social"]
        == "https://entreprise.api.gouv.fr/v3/insee/sirene/etablissements/" + PP_P_SIEGE
    )
    et_data = doc(con, PP_P_SIEGE, "v3", diffusibles=True)["data"]
    assert et_data["enseigne"] == "[ND]"
    adresse = et_data["adresse"]
    for key in (
        "complement_adresse",
        "numero_voie",
        "indice_repetition_voie",
        "type_voie",
        "libelle_voie",
        "code_postal",
        "distribution_speciale",
        "code_cedex",
        "libelle_cedex",
    ):
        assert adresse[key] == "[ND]", key
    assert adresse["libelle_commune"] == "LYON 3E ARRONDISSEMENT" and adresse["code_commune"] == "69383"
    ap = adresse["acheminement_postal"]
    assert [ap[f"l{i}"] for i in range(1, 7)] == ["[ND]"] * 6 and ap["l7"] == "FRANCE"
    assert set(et_data["unite_legale"]["personne_physique_attributs"].values()) == {"[ND]"}
    # The protected documents answer 451 without the option, and the stock's [ND] with it.
    assert get_document(con, PP_P, "v3")[0] == 451
    assert get_document(con, PP_P_SIEGE, "v4")[0] == 451
    protected = doc(con, PP_P, "v3", non_diffusables=True)["data"]
    assert protected["personne_physique_attributs"]["nom_naissance"] == "[ND]"
    assert protected["personne_physique_attributs"]["prenom_4"] == "[ND]"


def test_v3_diffusibles_masks_company_sigle_only(con):
    data = doc(con, PM_P, "v3", diffusibles=True)["data"]
    assert data["personne_morale_attributs"] == {"raison_sociale": "DISCRETE SAS", "sigle": "[ND]"}
    assert data["personne_physique_attributs"]["nom_naissance"] is None
    et_data = doc(con, PM_P_SIEGE, "v4", diffusibles=True)["data"]
    assert et_data["enseigne"] == "DISCRET"  # a company's enseigne stays public
    assert et_data["adresse"]["acheminement_postal"]["l1"] == "[ND]"


def test_p_etablissement_of_o_unit(con):
    data = doc(con, O_WITH_P_SECOND, "v3", diffusibles=True)["data"]
    assert data["status_diffusion"] == "partiellement_diffusible"
    assert data["unite_legale"]["status_diffusion"] == "diffusible"
    assert data["adresse"]["numero_voie"] == "[ND]"
    assert data["enseigne"] == "LE FOURNIL"
    assert data["unite_legale"]["personne_morale_attributs"]["sigle"] == "[ND]"  # établissement rules (8.4)
    assert get_document(con, O_WITH_P_SECOND, "v3")[0] == 451
    # The unit itself and its diffusible siège are untouched.
    unit = doc(con, O_WITH_P, "v3", diffusibles=True)["data"]
    assert unit["personne_morale_attributs"] == {"raison_sociale": "BOULANGERIE DU COIN", "sigle": "BDC"}
    siege = doc(con, O_WITH_P_SIEGE, "v3", diffusibles=True)["data"]["adresse"]
    assert siege["numero_voie"] == "12"
    assert doc(con, O_WITH_P, "v3", diffusibles=True) == doc(con, O_WITH_P, "v3", diffusibles=False) | {
        "links": doc(con, O_WITH_P, "v3", diffusibles=True)["links"]
    }


def test_diffusibles_views(con):
    rows = con.execute(
        "SELECT siren, sigleUniteLegale, nomUniteLegale, prenom1UniteLegale, sexeUniteLegale, denominationUniteLegale "
        "FROM unites_legales_diffusibles WHERE siren IN (?, ?, ?, ?) ORDER BY siren",
        [PP, PP_P, PM_P, SNCF],
    ).fetchall()
    by = {r[0]: r[1:] for r in rows}
    assert by[PP] == (None, "DUPONT", "MAXIME", "M", None)
    assert by[PP_P] == ("[ND]", "[ND]", "[ND]", "[ND]", None)
    assert by[PM_P] == ("[ND]", None, None, None, "DISCRETE SAS")
    assert by[SNCF] == ("SNCF", None, None, None, "SOCIETE NATIONALE SNCF")
    raw_cols = [r[0] for r in con.execute("DESCRIBE unites_legales").fetchall()]
    assert [r[0] for r in con.execute("DESCRIBE unites_legales_diffusibles").fetchall()] == raw_cols
    raw_cols = [r[0] for r in con.execute("DESCRIBE etablissements").fetchall()]
    assert [r[0] for r in con.execute("DESCRIBE etablissements_diffusibles").fetchall()] == raw_cols
    assert (
        con.execute("SELECT count(*) FROM etablissements_diffusibles").fetchone()
        == con.execute("SELECT count(*) FROM etablissements").fetchone()
    )

    rows = con.execute(
        "SELECT siret, numeroVoieEtablissement, codePostalEtablissement, enseigne1Etablissement, latitude, longitude, "
        "coordonneesMasquees, codeCommuneEtablissement FROM etablissements_diffusibles WHERE siret IN (?, ?, ?, ?)",
        [PP_P_SIEGE, PM_P_SIEGE, O_WITH_P_SECOND, OCTO_SIEGE],
    ).fetchall()
    by = {r[0]: r[1:] for r in rows}
    assert by[PP_P_SIEGE] == ("[ND]", "[ND]", "[ND]", None, None, True, "69383")
    assert by[PM_P_SIEGE][:3] == ("[ND]", "[ND]", "DISCRET")
    assert by[O_WITH_P_SECOND][:3] == ("[ND]", "[ND]", "LE FOURNIL")
    assert by[OCTO_SIEGE][:2] == ("50", "75008")


@pytest.mark.slow
def test_diffusibles_views_hide_coordinates_of_p(tmp_path):
    """A P établissement whose stock row still has coordinates: NULL in the diffusible view, kept in the raw one."""
    siren = make_siren("33445566")
    siret = make_siret(siren, "0001")
    write_stock(
        tmp_path / "stock",
        {
            "unites_legales": [
                ul(
                    siren,
                    siret[9:],
                    categorieJuridiqueUniteLegale="1000",
                    statutDiffusionUniteLegale="P",
                    **PERSON_ND,
                )
            ],
            "etablissements": [
                et(
                    siret,
                    etablissementSiege=True,
                    statutDiffusionEtablissement="P",
                    enseigne1Etablissement="CHEZ JEAN",
                    denominationUsuelleEtablissement="JEAN",
                    coordonneeLambertAbscisseEtablissement="652469",
                    coordonneeLambertOrdonneeEtablissement="6862035",
                    **paris_address(),
                )
            ],
        },
    )
    load_snapshot(tmp_path / "data", [tmp_path / "stock"], month="2026-10", force=True)
    with connect(tmp_path / "data") as c:
        raw = c.execute("SELECT latitude, enseigne1Etablissement FROM etablissements").fetchone()
        masked = c.execute(
            "SELECT latitude, longitude, coordonneeLambertAbscisseEtablissement, enseigne1Etablissement, "
            "denominationUsuelleEtablissement, libelleVoieEtablissement, coordonneesMasquees "
            "FROM etablissements_diffusibles"
        ).fetchone()
    assert raw[0] == pytest.approx(48.85, abs=0.05) and raw[1] == "CHEZ JEAN"
    assert masked == (None, None, None, "[ND]", "[ND]", "[ND]", True)


# ------------------------------------------------------------------------------------------------
# Errors
# ------------------------------------------------------------------------------------------------


def test_errors_422_404(con):
    status, body = get_document(con, "418166097", "v2")  # Luhn fails
    assert status == 422
    assert body == {"errors": ["Le numéro de siren n'est pas correctement formatté"], "gateway_error": False}
    status, body = get_document(con, "41816609600052", "v3")
    assert status == 422
    assert body["errors"][0]["code"] == "00302" and body["errors"][0]["source"] == {"parameter": "siret"}
    for bad in ("12345", "ABCDEFGHI", "", "4181660960005"):
        assert get_document(con, bad, "v3")[0] == 422
    assert get_document(con, "418 166 096", "v3")[0] == 200  # pasted with spaces
    status, body = get_document(con, UNKNOWN, "v3")
    assert status == 404
    assert body == {
        "errors": [
            {
                "code": "01003",
                "title": "Entité non trouvée",
                "detail": "Le ou les paramètre(s) d'entrée n'existent pas, ne sont pas connus, ou ne comportent aucune "
                "information pour cet appel. Veuillez vérifier que votre recherche est couverte par le "
                "périmètre de l'API.",
                "source": None,
                "meta": {"provider": "INSEE"},
            }
        ]
    }
    status, body = get_document(con, UNKNOWN, "v2")
    assert status == 404 and body["gateway_error"] is True
    assert get_document(con, make_siret(OCTO, "0009"), "v2")[0] == 404
    assert get_document(con, OCTO_SIEGE, "v3", siege=True)[0] == 422  # --siege takes a SIREN


def test_doublons_301(con):
    status, body = get_document(con, DOUBLON, "v3")
    assert status == 301
    err = body["errors"][0]
    assert err["meta"]["siren"] == VALID and VALID in err["detail"]
    assert err["detail"].startswith("Unité légale fermée pour cause de doublon")
    status, body = get_document(con, DOUBLON, "v2")
    assert status == 301 and VALID in body["errors"][0]
    status, body = get_document(con, DOUBLON_SIEGE, "v3")
    assert status == 301 and body["errors"][0]["detail"].startswith("Établissement d'une unité légale fermée")
    status, body = get_document(con, DOUBLON, "v3", follow_doublons=True)
    assert status == 200
    assert body["data"]["siren"] == VALID and body["meta"]["redirect_from_siren"] == DOUBLON
    assert get_document(con, VALID, "v3")[0] == 200


# ------------------------------------------------------------------------------------------------
# Bulk
# ------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_iter_documents_one_query_in_order(con, tmp_path):
    ids = [SNCF, "123", OCTO_SIEGE, UNKNOWN, PP_P, DOUBLON, SNCF, PP_P_SIEGE]
    got = list(iter_documents(con, ids, "v3"))
    assert [g[0] for g in got] == ids
    assert [g[1] for g in got] == [200, 422, 200, 404, 451, 301, 200, 451]
    assert got[0][2] == SNCF_UL_SAMPLE == got[6][2]
    assert got[2][2] == doc(con, OCTO_SIEGE, "v3")
    # Same answers as the single lookups, for every format and variant.
    for fmt in ("v2", "v3", "v4"):
        for diffusibles in (False, True):
            for ident, status, body in iter_documents(con, ids, fmt, diffusibles=diffusibles):
                assert (status, body) == get_document(con, ident, fmt, diffusibles=diffusibles), (fmt, ident)
    diff = dict((i, s) for i, s, _ in iter_documents(con, [PP_P, PP_P_SIEGE], "v4", diffusibles=True))
    assert diff == {PP_P: 200, PP_P_SIEGE: 200}
    # A DuckDB relation as input, text output.
    rel = con.sql("SELECT siren FROM unites_legales ORDER BY siren")
    texts = list(iter_documents(con, rel, "v2", as_text=True))
    assert len(texts) == con.execute("SELECT count(*) FROM unites_legales").fetchone()[0]
    assert all(isinstance(t, str) for _, _, t in texts)
    out = tmp_path / "docs.jsonl"
    counts = write_jsonl(con, [SNCF, OCTO, PP_P, UNKNOWN], out, "v3", diffusibles=True)
    assert counts == {200: 3, 404: 1}
    lines = out.read_text(encoding="utf-8").splitlines()
    assert [json.loads(x)["data"]["siren"] for x in lines] == [SNCF, OCTO, PP_P]
    sieges = list(iter_documents(con, [SNCF, OCTO], "v3", siege=True))
    assert [b["data"]["siret"] for _, _, b in sieges] == [SNCF_SIEGE, OCTO_SIEGE]


def test_lookup_prunes_before_building_json(con):
    """The siren / siret filter reaches the Parquet scans (no document built for other rows)."""
    plan = con.execute(
        "EXPLAIN SELECT document FROM documents_v3_unites_legales WHERE siren = '552049447' AND NOT diffusibles"
    ).fetchall()[0][1]
    assert "siren='552049447'" in plan.replace(" ", "").replace("\n", "").replace("│", "")
    plan = con.execute(
        "EXPLAIN SELECT document FROM documents_v2_etablissements WHERE siret = '55204944776279'"
    ).fetchall()[0][1]
    assert "siret='55204944776279'" in plan.replace(" ", "").replace("\n", "").replace("│", "")


# ------------------------------------------------------------------------------------------------
# CLI
# ------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_cli_get(mirror_dir, tmp_path):
    res = run_mirror("get", OCTO, "--format", "v2", data_dir=mirror_dir)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == doc_from_dir(mirror_dir, OCTO, "v2")
    assert res.stdout.startswith('{\n  "entreprise"')  # pretty, in key order
    res = run_mirror("get", SNCF_SIEGE, data_dir=mirror_dir)
    assert res.returncode == 0 and json.loads(res.stdout) == SNCF_ET_SAMPLE
    res = run_mirror("get", SNCF, "--siege", "--format", "v3", "--compact", data_dir=mirror_dir)
    assert res.returncode == 0 and json.loads(res.stdout) == SNCF_ET_SAMPLE and res.stdout.count("\n") == 1
    for args, code in (
        (["418166097"], 2),
        ([UNKNOWN, "--format", "v2"], 3),
        ([PP_P], 4),
        ([PP_P, "--format", "v2"], 4),
        ([DOUBLON], 5),
        ([PP_P, "--diffusibles"], 0),
        ([PP_P, "--format", "v2", "--non-diffusables"], 0),
        ([DOUBLON, "--follow-doublons"], 0),
    ):
        res = run_mirror("get", *args, data_dir=mirror_dir)
        assert res.returncode == code, (args, res.stdout, res.stderr)
        body = json.loads(res.stdout)
        assert ("errors" in body) == (code != 0), args
    res = run_mirror("get", OCTO, data_dir=tmp_path / "nothing")
    assert res.returncode == 1
    assert res.stdout == ""
    assert res.stderr.strip().startswith("Error: no mirror in") and res.stderr.count("\n") == 1


def doc_from_dir(data_dir, ident, fmt):
    status, body = get_document(data_dir, ident, fmt)
    assert status == 200
    return body


# ------------------------------------------------------------------------------------------------
# Generated stock: every unit has its documents
# ------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_views_run_on_generated_stock(loaded_stock):
    with connect(loaded_stock, read_only=True) as c:
        n_ul = c.execute("SELECT count(*) FROM unites_legales").fetchone()[0]
        n_et = c.execute("SELECT count(*) FROM etablissements").fetchone()[0]
        assert n_ul > 0 and n_et > 0
        for fmt in ("v3", "v4"):
            for view, n in (
                (f"documents_{fmt}_unites_legales", n_ul),
                (f"documents_{fmt}_etablissements", n_et),
                (f"documents_{fmt}_adresses", n_et),
            ):
                got = c.execute(
                    f"SELECT count(*), count(DISTINCT length(document)) > 1, "
                    f"bool_and(json_valid(document)) FROM {view}"
                ).fetchone()
                assert got == (2 * n, True, True), view
        assert (
            c.execute("SELECT count(*) FROM documents_v2_entreprises WHERE document IS NOT NULL").fetchone()[
                0
            ]
            == n_ul
        )
        assert c.execute("SELECT count(*) FROM documents_v2_etablissements").fetchone()[0] == n_et
        assert c.execute("SELECT count(*) FROM unites_legales_diffusibles").fetchone()[0] == n_ul
        assert c.execute("SELECT count(*) FROM etablissements_diffusibles").fetchone()[0] == n_et
        # Every SIREN through the bulk API, and the statuses agree with the diffusion statuses.
        answers = list(iter_documents(c, c.sql("SELECT siren FROM unites_legales"), "v2"))
        statuts = dict(c.execute("SELECT siren, statutDiffusionUniteLegale FROM unites_legales").fetchall())
        doublons = {r[0] for r in c.execute("SELECT sirenDoublon FROM doublons").fetchall()}
        for siren, status, _body in answers:
            if siren in doublons:
                assert status == 301
            else:
                assert status == (200 if statuts[siren] == "O" else 451), siren
        # Masked values are never reconstructed: a P unit's [ND] stays [ND] in every document.
        p_rows = c.execute(
            "SELECT siren FROM unites_legales WHERE statutDiffusionUniteLegale = 'P' "
            "AND categorieJuridiqueUniteLegale = '1000' LIMIT 20"
        ).fetchall()
        for (siren,) in p_rows:
            if siren in doublons:
                continue
            body = doc(c, siren, "v3", diffusibles=True)
            assert set(body["data"]["personne_physique_attributs"].values()) == {"[ND]"}


def _scans(node: dict):
    """extra_info of every Parquet scan of a JSON query profile."""
    if "Total Files Read" in node.get("extra_info", {}):
        yield node["extra_info"]
    for child in node.get("children", []):
        yield from _scans(child)


@pytest.mark.slow
def test_siret_lookup_opens_only_its_departement(loaded_stock):
    """A lookup by siret reads the département from the etablissements_departements index, then the
    document query opens one partition file instead of all of them; answers are unchanged."""
    from mirror.serve.documents import _partition_hint

    with connect(loaded_stock, read_only=True) as c:
        n_parts = c.execute("SELECT count(DISTINCT departement) FROM etablissements").fetchone()[0]
        assert n_parts > 20
        sirets = [
            r[0]
            for r in c.execute("SELECT siret FROM etablissements ORDER BY hash(siret) LIMIT 40").fetchall()
        ]
        for siret in sirets:
            where, args = _partition_hint(c, siret)
            expected = c.execute(
                "SELECT departement FROM etablissements WHERE siret = ?", [siret]
            ).fetchone()[0]
            assert args == ([expected] if expected is not None else [])
            plan = json.loads(
                c.execute(
                    f"EXPLAIN (ANALYZE, FORMAT json) SELECT document FROM documents_v3_etablissements "
                    f"WHERE siret = ?{where}",
                    [siret, *args],
                ).fetchall()[0][1]
            )
            files = [
                int(info["Total Files Read"])
                for info in _scans(plan)
                if "/etablissements/" in info.get("Filename(s)", "")
            ]
            assert files == [1], files
        bulk = {i: (s, d) for i, s, d in iter_documents(c, sirets, "v3")}
        for siret in sirets:
            status, document = get_document(c, siret, "v3")
            assert (status, document) == bulk[siret]
        assert _partition_hint(c, "12345678901234") is None


@pytest.mark.slow
def test_bulk_builds_only_the_requested_units_and_leaves_the_connection_alone(loaded_stock):
    """iter_documents restricts the base tables to the requested units on a private cursor: answers equal the
    single lookups, and the caller's connection still sees the whole mirror afterwards (no TEMP table left)."""
    with connect(loaded_stock, read_only=True) as c:
        total = c.execute("SELECT count(*) FROM unites_legales").fetchone()[0]
        sirens = [
            r[0]
            for r in c.execute("SELECT siren FROM unites_legales ORDER BY hash(siren) LIMIT 25").fetchall()
        ]
        answers = list(iter_documents(c, sirens, "v3"))
        assert [a[0] for a in answers] == sirens
        assert c.execute("SELECT count(*) FROM unites_legales").fetchone()[0] == total
        assert c.execute("SELECT count(*) FROM duckdb_tables() WHERE temporary").fetchone()[0] == 0
        for siren, status, body in answers:
            assert (status, body) == get_document(c, siren, "v3")
        # siège answers are the établissement documents of siren + nicSiegeUniteLegale
        for siren, status, body in iter_documents(c, sirens[:10], "v3", siege=True):
            nic = c.execute(
                "SELECT nicSiegeUniteLegale FROM unites_legales WHERE siren = ?", [siren]
            ).fetchone()[0]
            assert (status, body) == get_document(c, siren + nic, "v3")
            assert (status, body) == get_document(c, siren, "v3", siege=True)
