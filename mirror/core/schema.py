"""The six Sirene stock files: their names, ordered headers per layout, and column types.

Single source of truth shared by the generator, the loader, the delta store and the views.
Header history (INSEE, "Description des fichiers du stock" of the Sirene dataset on data.gouv.fr, and the
files themselves):

- layout "3.9"  (2019 to 26 Mar 2024): UL 33 columns, établissements 48;
- layout "3.11" (26 Mar 2024 to 16 Dec 2025): UL 34 (+ societeMissionUniteLegale), établissements 53
  (+ dernierNumeroVoie, indiceRepetitionDernierNumeroVoie, identifiantAdresse, two Lambert coordinates);
- layout "current" (16 Dec 2025 onward): UL 35 and établissements 54, the NAF 2025 column appended last.
"""

from __future__ import annotations

from dataclasses import dataclass

from mirror.core.sql import render_cached

LAYOUTS = ("3.9", "3.11", "current")

# --------------------------------------------------------------------------------------------
# Current headers, verbatim from the reference (file order).
# --------------------------------------------------------------------------------------------

UNITE_LEGALE_COLUMNS = (
    "siren,statutDiffusionUniteLegale,unitePurgeeUniteLegale,dateCreationUniteLegale,sigleUniteLegale,"
    "sexeUniteLegale,prenom1UniteLegale,prenom2UniteLegale,prenom3UniteLegale,prenom4UniteLegale,"
    "prenomUsuelUniteLegale,pseudonymeUniteLegale,identifiantAssociationUniteLegale,"
    "trancheEffectifsUniteLegale,anneeEffectifsUniteLegale,dateDernierTraitementUniteLegale,"
    "nombrePeriodesUniteLegale,categorieEntreprise,anneeCategorieEntreprise,dateDebut,"
    "etatAdministratifUniteLegale,nomUniteLegale,nomUsageUniteLegale,denominationUniteLegale,"
    "denominationUsuelle1UniteLegale,denominationUsuelle2UniteLegale,denominationUsuelle3UniteLegale,"
    "categorieJuridiqueUniteLegale,activitePrincipaleUniteLegale,nomenclatureActivitePrincipaleUniteLegale,"
    "nicSiegeUniteLegale,economieSocialeSolidaireUniteLegale,societeMissionUniteLegale,"
    "caractereEmployeurUniteLegale,activitePrincipaleNAF25UniteLegale"
).split(",")

ETABLISSEMENT_COLUMNS = (
    "siren,nic,siret,statutDiffusionEtablissement,dateCreationEtablissement,trancheEffectifsEtablissement,"
    "anneeEffectifsEtablissement,activitePrincipaleRegistreMetiersEtablissement,"
    "dateDernierTraitementEtablissement,etablissementSiege,nombrePeriodesEtablissement,"
    "complementAdresseEtablissement,numeroVoieEtablissement,indiceRepetitionEtablissement,"
    "dernierNumeroVoieEtablissement,indiceRepetitionDernierNumeroVoieEtablissement,typeVoieEtablissement,"
    "libelleVoieEtablissement,codePostalEtablissement,libelleCommuneEtablissement,"
    "libelleCommuneEtrangerEtablissement,distributionSpecialeEtablissement,codeCommuneEtablissement,"
    "codeCedexEtablissement,libelleCedexEtablissement,codePaysEtrangerEtablissement,"
    "libellePaysEtrangerEtablissement,identifiantAdresseEtablissement,coordonneeLambertAbscisseEtablissement,"
    "coordonneeLambertOrdonneeEtablissement,complementAdresse2Etablissement,numeroVoie2Etablissement,"
    "indiceRepetition2Etablissement,typeVoie2Etablissement,libelleVoie2Etablissement,codePostal2Etablissement,"
    "libelleCommune2Etablissement,libelleCommuneEtranger2Etablissement,distributionSpeciale2Etablissement,"
    "codeCommune2Etablissement,codeCedex2Etablissement,libelleCedex2Etablissement,"
    "codePaysEtranger2Etablissement,libellePaysEtranger2Etablissement,dateDebut,"
    "etatAdministratifEtablissement,enseigne1Etablissement,enseigne2Etablissement,enseigne3Etablissement,"
    "denominationUsuelleEtablissement,activitePrincipaleEtablissement,"
    "nomenclatureActivitePrincipaleEtablissement,caractereEmployeurEtablissement,"
    "activitePrincipaleNAF25Etablissement"
).split(",")

UNITE_LEGALE_HISTORIQUE_COLUMNS = (
    "siren,dateFin,dateDebut,etatAdministratifUniteLegale,changementEtatAdministratifUniteLegale,"
    "nomUniteLegale,changementNomUniteLegale,nomUsageUniteLegale,changementNomUsageUniteLegale,"
    "denominationUniteLegale,changementDenominationUniteLegale,denominationUsuelle1UniteLegale,"
    "denominationUsuelle2UniteLegale,denominationUsuelle3UniteLegale,changementDenominationUsuelleUniteLegale,"
    "categorieJuridiqueUniteLegale,changementCategorieJuridiqueUniteLegale,activitePrincipaleUniteLegale,"
    "nomenclatureActivitePrincipaleUniteLegale,changementActivitePrincipaleUniteLegale,nicSiegeUniteLegale,"
    "changementNicSiegeUniteLegale,economieSocialeSolidaireUniteLegale,"
    "changementEconomieSocialeSolidaireUniteLegale,societeMissionUniteLegale,"
    "changementSocieteMissionUniteLegale,caractereEmployeurUniteLegale,changementCaractereEmployeurUniteLegale"
).split(",")

ETABLISSEMENT_HISTORIQUE_COLUMNS = (
    "siren,nic,siret,dateFin,dateDebut,etatAdministratifEtablissement,changementEtatAdministratifEtablissement,"
    "enseigne1Etablissement,enseigne2Etablissement,enseigne3Etablissement,changementEnseigneEtablissement,"
    "denominationUsuelleEtablissement,changementDenominationUsuelleEtablissement,"
    "activitePrincipaleEtablissement,nomenclatureActivitePrincipaleEtablissement,"
    "changementActivitePrincipaleEtablissement,caractereEmployeurEtablissement,"
    "changementCaractereEmployeurEtablissement"
).split(",")

LIENS_SUCCESSION_COLUMNS = (
    "siretEtablissementPredecesseur,siretEtablissementSuccesseur,dateLienSuccession,transfertSiege,"
    "continuiteEconomique,dateDernierTraitementLienSuccession"
).split(",")

DOUBLONS_COLUMNS = ["siren", "sirenDoublon", "dateDernierTraitementDoublon"]

_UL_311_ONLY = {"societeMissionUniteLegale"}
_UL_CURRENT_ONLY = {"activitePrincipaleNAF25UniteLegale"}
_ET_311_ONLY = {
    "dernierNumeroVoieEtablissement",
    "indiceRepetitionDernierNumeroVoieEtablissement",
    "identifiantAdresseEtablissement",
    "coordonneeLambertAbscisseEtablissement",
    "coordonneeLambertOrdonneeEtablissement",
}
_ET_CURRENT_ONLY = {"activitePrincipaleNAF25Etablissement"}
# [inferred] The société à mission columns of the UL history arrived with the stock's.
_ULH_311_ONLY = {"societeMissionUniteLegale", "changementSocieteMissionUniteLegale"}


@dataclass(frozen=True)
class StockFile:
    """One of the six monthly stock files."""

    key: str  # our table name
    name: str  # INSEE's base name
    columns: tuple[str, ...]  # current header, in file order
    required: bool  # a snapshot cannot be built without it
    delimiter: str = ","  # CSV separator (the geolocation file uses ";")

    @property
    def zip_name(self) -> str:
        return f"{self.name}_utf8.zip"

    @property
    def csv_member(self) -> str:
        return f"{self.name}_utf8.csv"

    @property
    def parquet_name(self) -> str:
        return f"{self.name}_utf8.parquet"

    def header(self, layout: str = "current") -> list[str]:
        """The ordered header of this file in the given layout."""
        if layout not in LAYOUTS:
            raise ValueError(f"unknown layout {layout!r}; expected one of {', '.join(LAYOUTS)}")
        drop: set[str] = set()
        if layout in ("3.9", "3.11"):
            drop |= _UL_CURRENT_ONLY | _ET_CURRENT_ONLY
        if layout == "3.9":
            drop |= _UL_311_ONLY | _ET_311_ONLY
            if self.key == "unites_legales_historique":
                drop |= _ULH_311_ONLY
        return [c for c in self.columns if c not in drop]

    def exists_in(self, layout: str) -> bool:
        """StockDoublons exists only since May 2024 (3.11 era)."""
        return not (self.key == "doublons" and layout == "3.9")


UNITES_LEGALES = StockFile("unites_legales", "StockUniteLegale", tuple(UNITE_LEGALE_COLUMNS), True)
ETABLISSEMENTS = StockFile("etablissements", "StockEtablissement", tuple(ETABLISSEMENT_COLUMNS), True)
UNITES_LEGALES_HISTORIQUE = StockFile(
    "unites_legales_historique", "StockUniteLegaleHistorique", tuple(UNITE_LEGALE_HISTORIQUE_COLUMNS), False
)
ETABLISSEMENTS_HISTORIQUE = StockFile(
    "etablissements_historique",
    "StockEtablissementHistorique",
    tuple(ETABLISSEMENT_HISTORIQUE_COLUMNS),
    False,
)
LIENS_SUCCESSION = StockFile(
    "liens_succession", "StockEtablissementLiensSuccession", tuple(LIENS_SUCCESSION_COLUMNS), False
)
DOUBLONS = StockFile("doublons", "StockDoublons", tuple(DOUBLONS_COLUMNS), False)

STOCK_FILES: tuple[StockFile, ...] = (
    UNITES_LEGALES,
    ETABLISSEMENTS,
    UNITES_LEGALES_HISTORIQUE,
    ETABLISSEMENTS_HISTORIQUE,
    LIENS_SUCCESSION,
    DOUBLONS,
)
STOCK_FILES_BY_KEY = {f.key: f for f in STOCK_FILES}
STOCK_FILES_BY_NAME = {f.name: f for f in STOCK_FILES}

# --------------------------------------------------------------------------------------------
# The geolocation file, an optional seventh input: INSEE's "Géolocalisation des établissements du répertoire
# Sirene pour les études statistiques" (data.gouv.fr dataset 61d5e2d372a52d9f9411ff88, published monthly
# around the 21st; `;` separator; one row per geocoded siret, ~86 % of the établissements). It is no table
# of its own: `mirror load` joins it to the établissements (their latitude / longitude come from it when it
# has them, and GEOLOCATION_COLUMNS are added). Header of the current files, in file order (older ones had
# plg_qp / qualite_qp instead of the 2024 and 2015 QPV columns: columns are read by name).
# --------------------------------------------------------------------------------------------

GEOLOCALISATION_FILE_COLUMNS = (
    "siret,x,y,qualite_xy,epsg,plg_qp24,plg_iris,plg_zus,plg_qp15,plg_qva,plg_code_commune,distance_precision,"
    "qualite_qp24,qualite_iris,qualite_zus,qualite_qp15,qualite_qva,y_latitude,x_longitude"
).split(",")
# Its data.gouv.fr dataset (slug geolocalisation-des-etablissements-du-repertoire-sirene-pour-les-etudes-
# statistiques) and the stable ids of its two resources (zipped CSV, Parquet).
GEOLOCALISATION_DATASET_ID = "61d5e2d372a52d9f9411ff88"
GEOLOCALISATION_RESOURCE_IDS = {
    "zip": "ba6a4e4c-aac6-4764-bbd2-f80ae345afc5",
    "parquet": "672007af-0146-491f-835c-8314d63fa44e",
}
GEOLOCALISATION = StockFile(
    "geolocalisation",
    "GeolocalisationEtablissement_Sirene_pour_etudes_statistiques",
    tuple(GEOLOCALISATION_FILE_COLUMNS),
    False,
    delimiter=";",
)
# What the établissements gain when the file is loaded (after DERIVED_COLUMNS; absent otherwise):
#   qualiteXY: INSEE's geocoding quality qualite_xy (11 voie sûre + numéro trouvé ... 33 voie inconnue);
#   iris: the national IRIS code (plg_code_commune + plg_iris, 9 characters; "<commune>0000" for a commune
#     not divided into IRIS);
#   qpv: the quartier prioritaire de la politique de la ville (2024 list, plg_qp24; older files plg_qp),
#     NULL outside any QPV ("HZ", hors zone; "CSZ", commune sans zonage).
GEOLOCATION_COLUMNS: dict[str, str] = {"qualiteXY": "VARCHAR", "iris": "VARCHAR", "qpv": "VARCHAR"}
# The daily changes of the INSEE API carry none of them, and the file is monthly. The rule for an
# établissement changed by a day (sql/deltas/carry_geolocation.sql, mirror.update.run): while its geocoded
# address (these columns) is the snapshot's, it keeps the snapshot's geolocation (qualiteXY, iris, qpv and,
# when the snapshot has one, its point, as the load would give it); once the address differs, the old
# zones would place it wrongly: no zones, and the point the API gives (Lambert), until the next load.
GEOCODED_ADDRESS_COLUMNS = (
    "codeCommuneEtablissement",
    "codePostalEtablissement",
    "numeroVoieEtablissement",
    "indiceRepetitionEtablissement",
    "typeVoieEtablissement",
    "libelleVoieEtablissement",
    "codePaysEtrangerEtablissement",
)
# The values of qualite_xy (INSEE, documentation of the geolocation file).
QUALITES_XY = {
    "11": "voie sûre, numéro trouvé",
    "12": "voie sûre, position aléatoire dans la voie",
    "21": "voie probable, numéro trouvé",
    "22": "voie probable, position aléatoire dans la voie",
    "33": "voie inconnue, position aléatoire dans la commune",
}

# --------------------------------------------------------------------------------------------
# Types of the mirror's typed layer (snapshot Parquet and deltas). Columns not listed are VARCHAR.
# Masked values: text columns keep the literal "[ND]"; typed columns that cannot hold it (the
# Lambert coordinates) become NULL and the row's `coordonneesMasquees` flag says so.
# --------------------------------------------------------------------------------------------

TYPED_COLUMNS: dict[str, dict[str, str]] = {
    "unites_legales": {
        "unitePurgeeUniteLegale": "BOOLEAN",
        "dateCreationUniteLegale": "DATE",
        "anneeEffectifsUniteLegale": "SMALLINT",
        "dateDernierTraitementUniteLegale": "TIMESTAMP",
        "nombrePeriodesUniteLegale": "SMALLINT",
        "anneeCategorieEntreprise": "SMALLINT",
        "dateDebut": "DATE",
    },
    "etablissements": {
        "dateCreationEtablissement": "DATE",
        "anneeEffectifsEtablissement": "SMALLINT",
        "dateDernierTraitementEtablissement": "TIMESTAMP",
        "etablissementSiege": "BOOLEAN",
        "nombrePeriodesEtablissement": "SMALLINT",
        "coordonneeLambertAbscisseEtablissement": "DOUBLE",
        "coordonneeLambertOrdonneeEtablissement": "DOUBLE",
        "dateDebut": "DATE",
    },
    "unites_legales_historique": {"dateFin": "DATE", "dateDebut": "DATE"},
    "etablissements_historique": {"dateFin": "DATE", "dateDebut": "DATE"},
    "liens_succession": {
        "dateLienSuccession": "DATE",
        "transfertSiege": "BOOLEAN",
        "continuiteEconomique": "BOOLEAN",
        "dateDernierTraitementLienSuccession": "TIMESTAMP",
    },
    "doublons": {"dateDernierTraitementDoublon": "TIMESTAMP"},
}
for _key in ("unites_legales_historique", "etablissements_historique"):
    for _col in STOCK_FILES_BY_KEY[_key].columns:
        if _col.startswith("changement"):
            TYPED_COLUMNS[_key][_col] = "BOOLEAN"


def typed_column_type(table: str, column: str) -> str:
    """DuckDB type of a column in the mirror's typed layer."""
    return TYPED_COLUMNS[table].get(column, "VARCHAR")


# Types of INSEE's (data.gouv's) Parquet stock files, which differ from ours (reference section 3).
INSEE_PARQUET_TYPES: dict[str, dict[str, str]] = {
    "unites_legales": {
        "unitePurgeeUniteLegale": "BOOLEAN",
        "dateCreationUniteLegale": "DATE",
        "dateDebut": "DATE",
        "anneeEffectifsUniteLegale": "BIGINT",
        "nombrePeriodesUniteLegale": "BIGINT",
        "anneeCategorieEntreprise": "BIGINT",
        "categorieJuridiqueUniteLegale": "BIGINT",
        "dateDernierTraitementUniteLegale": "TIMESTAMP",
    },
    "etablissements": {
        "dateCreationEtablissement": "DATE",
        "dateDebut": "DATE",
        "anneeEffectifsEtablissement": "BIGINT",
        "nombrePeriodesEtablissement": "BIGINT",
        "dateDernierTraitementEtablissement": "TIMESTAMP",
        "etablissementSiege": "BOOLEAN",
    },
    "unites_legales_historique": dict(TYPED_COLUMNS["unites_legales_historique"]),
    "etablissements_historique": dict(TYPED_COLUMNS["etablissements_historique"]),
    "liens_succession": dict(TYPED_COLUMNS["liens_succession"]),
    "doublons": {"dateDernierTraitementDoublon": "TIMESTAMP"},
    # [uncertain] the types of data.gouv.fr's Parquet release of the geolocation file are not documented;
    # the generator writes text (the coordinates can be "[ND]"); the loader casts whatever it finds.
    "geolocalisation": {},
}


def insee_parquet_type(table: str, column: str) -> str:
    return INSEE_PARQUET_TYPES[table].get(column, "VARCHAR")


# --------------------------------------------------------------------------------------------
# Diffusion: the fields INSEE replaces by the literal "[ND]" for partially diffusible (P) rows.
# --------------------------------------------------------------------------------------------

ND = "[ND]"


def opted_out_person(statut: str, categorie: str) -> str:
    """The SQL boolean (never NULL) of a partially diffusible natural person, sql/catalog/opted_out_person.sql
    over the SQL expressions `statut` (a statut de diffusion) and `categorie` (the unit's catégorie
    juridique): whose identity is masked and whom no name finds."""
    return render_cached("catalog/opted_out_person.sql", statut=statut, categorie=categorie)


# Unité légale, natural person (catégorie juridique 1000) with statutDiffusionUniteLegale = P.
MASKED_UL_PERSON_COLUMNS = (
    "sexeUniteLegale",
    "prenom1UniteLegale",
    "prenom2UniteLegale",
    "prenom3UniteLegale",
    "prenom4UniteLegale",
    "prenomUsuelUniteLegale",
    "pseudonymeUniteLegale",
    "nomUniteLegale",
    "nomUsageUniteLegale",
)
# Unité légale, legal person with P: the dénomination stays public, the sigle is hidden.
MASKED_UL_COMPANY_COLUMNS = ("sigleUniteLegale",)
# Établissement with statutDiffusionEtablissement = P: the street part of the address, the
# postcode and the coordinates (the commune stays public).
MASKED_ETABLISSEMENT_COLUMNS = (
    "complementAdresseEtablissement",
    "numeroVoieEtablissement",
    "indiceRepetitionEtablissement",
    "dernierNumeroVoieEtablissement",
    "indiceRepetitionDernierNumeroVoieEtablissement",
    "typeVoieEtablissement",
    "libelleVoieEtablissement",
    "codePostalEtablissement",
    "distributionSpecialeEtablissement",
    "codeCedexEtablissement",
    "libelleCedexEtablissement",
    "identifiantAdresseEtablissement",
    "coordonneeLambertAbscisseEtablissement",
    "coordonneeLambertOrdonneeEtablissement",
)
# Établissement of a natural person with P: its names are hidden too [uncertain, annuaire's rule].
MASKED_ETABLISSEMENT_PERSON_COLUMNS = (
    "enseigne1Etablissement",
    "enseigne2Etablissement",
    "enseigne3Etablissement",
    "denominationUsuelleEtablissement",
)
MASKABLE_COLUMNS: dict[str, frozenset[str]] = {
    "unites_legales": frozenset(MASKED_UL_PERSON_COLUMNS + MASKED_UL_COMPANY_COLUMNS),
    "etablissements": frozenset(MASKED_ETABLISSEMENT_COLUMNS + MASKED_ETABLISSEMENT_PERSON_COLUMNS),
}


# The snapshot's siret -> departement index (a folder of the snapshot, a view of the catalog), sorted by
# siret: a lookup by siret reads the département first, then opens that partition only.
SIRET_INDEX = "etablissements_departements"

# Columns the loader derives for établissements (after the INSEE columns, in this order).
DERIVED_COLUMNS: dict[str, str] = {
    "departement": "VARCHAR",
    "region": "VARCHAR",
    "epci": "VARCHAR",
    "latitude": "DOUBLE",
    "longitude": "DOUBLE",
    "coordonneesMasquees": "BOOLEAN",
}

# Identifier columns re-padded with zeros when a Parquet release typed them as integers.
PAD_WIDTHS = {
    "siren": 9,
    "siret": 14,
    "nic": 5,
    "nicSiegeUniteLegale": 5,
    "sirenDoublon": 9,
    "siretEtablissementPredecesseur": 14,
    "siretEtablissementSuccesseur": 14,
    "categorieJuridiqueUniteLegale": 4,
}


# ------------------------------------------------------------------------------------------------
# Per-table facts used by the load, the daily changes and the synthetic upstream (declared once here)
# ------------------------------------------------------------------------------------------------

# Tables the INSEE API's daily changes touch (doublons come only with the monthly stock).
DELTA_TABLES: tuple[str, ...] = (
    "unites_legales",
    "etablissements",
    "unites_legales_historique",
    "etablissements_historique",
    "liens_succession",
)
# Columns without which a stock file is unusable (a row needs them all).
KEY_COLUMNS: dict[str, tuple[str, ...]] = {
    "unites_legales": ("siren",),
    "etablissements": ("siret",),
    "unites_legales_historique": ("siren",),
    "etablissements_historique": ("siret",),
    "liens_succession": ("siretEtablissementPredecesseur", "siretEtablissementSuccesseur"),
    "doublons": ("siren", "sirenDoublon"),
}
# The key a daily change replaces as a whole (history tables: the unit whose periods are replaced).
BUSINESS_KEYS: dict[str, tuple[str, ...]] = {
    "unites_legales": ("siren",),
    "etablissements": ("siret",),
    "unites_legales_historique": ("siren",),
    "etablissements_historique": ("siret",),
    "liens_succession": (
        "siretEtablissementPredecesseur",
        "siretEtablissementSuccesseur",
        "dateLienSuccession",
    ),
}
# Sort key of each table in the snapshot (a lookup by siren/siret then reads one row group).
SORT_KEYS: dict[str, tuple[str, ...]] = {
    "unites_legales": ("siren",),
    "etablissements": ("siret",),
    "unites_legales_historique": ("siren", "dateDebut"),
    "etablissements_historique": ("siret", "dateDebut"),
    "liens_succession": BUSINESS_KEYS["liens_succession"],
    "doublons": ("siren", "sirenDoublon"),
}
# The "last processed" timestamp of a row (dateDernierTraitement...): the newest version of a key wins.
LAST_PROCESSED: dict[str, str] = {
    "unites_legales": "dateDernierTraitementUniteLegale",
    "etablissements": "dateDernierTraitementEtablissement",
    "liens_succession": "dateDernierTraitementLienSuccession",
}
# État administratif column of a unit and its closed value (C: cessée, F: fermé).
STATE_COLUMNS: dict[str, tuple[str, str]] = {
    "unites_legales": ("etatAdministratifUniteLegale", "C"),
    "etablissements": ("etatAdministratifEtablissement", "F"),
}
# History tables follow the version kept in their base table.
HISTORY_OF: dict[str, str] = {
    "unites_legales_historique": "unites_legales",
    "etablissements_historique": "etablissements",
}
