"""Conversions between INSEE API Sirene 3.11 JSON records and stock-file rows.

A "row" is a dict {stock column name (current layout, mirror.core.schema headers): string exactly as in the CSV}:
"" for null, "true"/"false" for booleans, dates YYYY-MM-DD, timestamps as in the API
("2026-10-05T08:12:33.123"). Records follow the 3.11 OpenAPI: periods most recent first, `[ND]` kept,
integers for nombrePeriodes*, JSON booleans, null for absent values (never omitted), timestamps with
milliseconds (a stock timestamp without them gains ".000"; the API always sends them since 3.11).
"""

from __future__ import annotations

from mirror.core.schema import (
    ETABLISSEMENT_COLUMNS,
    ETABLISSEMENT_HISTORIQUE_COLUMNS,
    LIENS_SUCCESSION_COLUMNS,
    UNITE_LEGALE_COLUMNS,
    UNITE_LEGALE_HISTORIQUE_COLUMNS,
)

# ------------------------------------------------------------------------------------------------
# Field lists in OpenAPI order (reference insee-api-sirene.md §4).
# ------------------------------------------------------------------------------------------------

# UniteLegale, non-historised fields before periodesUniteLegale (the 4 CNIL fields are always null).
UL_TOP = (
    "siren",
    "statutDiffusionUniteLegale",
    "unitePurgeeUniteLegale",
    "dateCreationUniteLegale",
    "dateNaissanceUniteLegale",
    "codeCommuneNaissanceUniteLegale",
    "codePaysNaissanceUniteLegale",
    "libelleNationaliteUniteLegale",
    "identifiantAssociationUniteLegale",
    "trancheEffectifsUniteLegale",
    "anneeEffectifsUniteLegale",
    "dateDernierTraitementUniteLegale",
    "nombrePeriodesUniteLegale",
    "categorieEntreprise",
    "anneeCategorieEntreprise",
    "sigleUniteLegale",
    "sexeUniteLegale",
    "prenom1UniteLegale",
    "prenom2UniteLegale",
    "prenom3UniteLegale",
    "prenom4UniteLegale",
    "prenomUsuelUniteLegale",
    "pseudonymeUniteLegale",
    "activitePrincipaleNAF25UniteLegale",
)
CNIL_FIELDS = frozenset(
    {
        "dateNaissanceUniteLegale",
        "codeCommuneNaissanceUniteLegale",
        "codePaysNaissanceUniteLegale",
        "libelleNationaliteUniteLegale",
    }
)
UL_PERIOD = (
    "dateFin",
    "dateDebut",
    "etatAdministratifUniteLegale",
    "changementEtatAdministratifUniteLegale",
    "nomUniteLegale",
    "changementNomUniteLegale",
    "nomUsageUniteLegale",
    "changementNomUsageUniteLegale",
    "denominationUniteLegale",
    "changementDenominationUniteLegale",
    "denominationUsuelle1UniteLegale",
    "denominationUsuelle2UniteLegale",
    "denominationUsuelle3UniteLegale",
    "categorieJuridiqueUniteLegale",
    "changementCategorieJuridiqueUniteLegale",
    "activitePrincipaleUniteLegale",
    "nomenclatureActivitePrincipaleUniteLegale",
    "changementActivitePrincipaleUniteLegale",
    "nicSiegeUniteLegale",
    "changementNicSiegeUniteLegale",
    "economieSocialeSolidaireUniteLegale",
    "changementEconomieSocialeSolidaireUniteLegale",
    "societeMissionUniteLegale",
    "changementSocieteMissionUniteLegale",
    "caractereEmployeurUniteLegale",
    "changementCaractereEmployeurUniteLegale",
    "changementDenominationUsuelleUniteLegale",
)
# UniteLegaleEtablissement: the unit's current values, flat, inside an établissement record.
UL_IN_ETAB = (
    "statutDiffusionUniteLegale",
    "unitePurgeeUniteLegale",
    "dateCreationUniteLegale",
    "dateNaissanceUniteLegale",
    "codeCommuneNaissanceUniteLegale",
    "codePaysNaissanceUniteLegale",
    "libelleNationaliteUniteLegale",
    "identifiantAssociationUniteLegale",
    "trancheEffectifsUniteLegale",
    "anneeEffectifsUniteLegale",
    "dateDernierTraitementUniteLegale",
    "categorieEntreprise",
    "anneeCategorieEntreprise",
    "sigleUniteLegale",
    "sexeUniteLegale",
    "prenom1UniteLegale",
    "prenom2UniteLegale",
    "prenom3UniteLegale",
    "prenom4UniteLegale",
    "prenomUsuelUniteLegale",
    "pseudonymeUniteLegale",
    "etatAdministratifUniteLegale",
    "nomUniteLegale",
    "denominationUniteLegale",
    "denominationUsuelle1UniteLegale",
    "denominationUsuelle2UniteLegale",
    "denominationUsuelle3UniteLegale",
    "activitePrincipaleUniteLegale",
    "categorieJuridiqueUniteLegale",
    "nicSiegeUniteLegale",
    "nomenclatureActivitePrincipaleUniteLegale",
    "nomUsageUniteLegale",
    "economieSocialeSolidaireUniteLegale",
    "societeMissionUniteLegale",
    "caractereEmployeurUniteLegale",
    "activitePrincipaleNAF25UniteLegale",
)
ET_TOP = (
    "siren",
    "nic",
    "siret",
    "statutDiffusionEtablissement",
    "dateCreationEtablissement",
    "trancheEffectifsEtablissement",
    "anneeEffectifsEtablissement",
    "activitePrincipaleRegistreMetiersEtablissement",
    "dateDernierTraitementEtablissement",
    "etablissementSiege",
    "nombrePeriodesEtablissement",
    "activitePrincipaleNAF25Etablissement",
)
ADRESSE = (
    "complementAdresseEtablissement",
    "numeroVoieEtablissement",
    "indiceRepetitionEtablissement",
    "dernierNumeroVoieEtablissement",
    "indiceRepetitionDernierNumeroVoieEtablissement",
    "typeVoieEtablissement",
    "libelleVoieEtablissement",
    "codePostalEtablissement",
    "libelleCommuneEtablissement",
    "libelleCommuneEtrangerEtablissement",
    "distributionSpecialeEtablissement",
    "codeCommuneEtablissement",
    "codeCedexEtablissement",
    "libelleCedexEtablissement",
    "codePaysEtrangerEtablissement",
    "libellePaysEtrangerEtablissement",
    "identifiantAdresseEtablissement",
    "coordonneeLambertAbscisseEtablissement",
    "coordonneeLambertOrdonneeEtablissement",
)
ADRESSE2 = (
    "complementAdresse2Etablissement",
    "numeroVoie2Etablissement",
    "indiceRepetition2Etablissement",
    "typeVoie2Etablissement",
    "libelleVoie2Etablissement",
    "codePostal2Etablissement",
    "libelleCommune2Etablissement",
    "libelleCommuneEtranger2Etablissement",
    "distributionSpeciale2Etablissement",
    "codeCommune2Etablissement",
    "codeCedex2Etablissement",
    "libelleCedex2Etablissement",
    "codePaysEtranger2Etablissement",
    "libellePaysEtranger2Etablissement",
)
ET_PERIOD = (
    "dateFin",
    "dateDebut",
    "etatAdministratifEtablissement",
    "changementEtatAdministratifEtablissement",
    "enseigne1Etablissement",
    "enseigne2Etablissement",
    "enseigne3Etablissement",
    "changementEnseigneEtablissement",
    "denominationUsuelleEtablissement",
    "changementDenominationUsuelleEtablissement",
    "activitePrincipaleEtablissement",
    "nomenclatureActivitePrincipaleEtablissement",
    "changementActivitePrincipaleEtablissement",
    "caractereEmployeurEtablissement",
    "changementCaractereEmployeurEtablissement",
)
LIEN_FIELDS = tuple(LIENS_SUCCESSION_COLUMNS)

BOOL_FIELDS = frozenset(
    {"unitePurgeeUniteLegale", "etablissementSiege", "transfertSiege", "continuiteEconomique"}
    | {f for f in UL_PERIOD + ET_PERIOD if f.startswith("changement")}
)
INT_FIELDS = frozenset({"nombrePeriodesUniteLegale", "nombrePeriodesEtablissement"})
TIMESTAMP_FIELDS = frozenset(
    {
        "dateDernierTraitementUniteLegale",
        "dateDernierTraitementEtablissement",
        "dateDernierTraitementLienSuccession",
    }
)

# Stock columns taken from the current period (everything in the stock row that is historised).
UL_ROW_FROM_PERIOD = tuple(c for c in UNITE_LEGALE_COLUMNS if c in UL_PERIOD)
ET_ROW_FROM_PERIOD = tuple(c for c in ETABLISSEMENT_COLUMNS if c in ET_PERIOD)


# ------------------------------------------------------------------------------------------------
# Scalar conversions.
# ------------------------------------------------------------------------------------------------


def api_timestamp(value: str) -> str:
    """A stock timestamp as the API writes it: `T` separator and milliseconds."""
    value = value.replace(" ", "T", 1)
    if "T" in value and "." not in value:
        value += ".000"
    return value


def to_json(field: str, value: str):
    """A CSV string -> the JSON value the API uses for this field."""
    if value is None or value == "":
        return None
    if field in BOOL_FIELDS:
        if value in ("true", "false"):
            return value == "true"
        return value  # not a boolean (e.g. "[ND]"): keep it as is
    if field in INT_FIELDS:
        try:
            return int(value)
        except ValueError:
            return value
    if field in TIMESTAMP_FIELDS:
        return api_timestamp(value)
    return value


def to_csv(value) -> str:
    """A JSON value -> its CSV string."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _current_period(periods: list[dict]) -> dict:
    for p in periods:
        if p.get("dateFin") in (None, ""):
            return p
    return periods[0] if periods else {}


def _sort_periods(rows: list[dict]) -> list[dict]:
    """Most recent first: the open period (dateFin empty) first, then by dateFin, dateDebut descending."""

    def key(r):
        open_ = r.get("dateFin", "") == ""
        return (open_, r.get("dateFin", "") or "", r.get("dateDebut", "") or "")

    return sorted(rows, key=key, reverse=True)


# ------------------------------------------------------------------------------------------------
# API record -> stock rows.
# ------------------------------------------------------------------------------------------------


# Where each stock column comes from in a record (0: the record, 1: its current period, 2: its address,
# 3: its second address), computed once: the conversions below run on every record of a day.
_UL_SOURCES = tuple((c, 1 if c in UL_ROW_FROM_PERIOD else 0) for c in UNITE_LEGALE_COLUMNS)
_ET_SOURCES = tuple(
    (c, 1 if c in ET_ROW_FROM_PERIOD else 2 if c in ADRESSE else 3 if c in ADRESSE2 else 0)
    for c in ETABLISSEMENT_COLUMNS
)


def _csv(value) -> str:
    """to_csv with the common cases (text, null) first, inlined by the converters' comprehensions."""
    return value if value.__class__ is str else to_csv(value)


def unite_legale_to_rows(record: dict) -> tuple[dict, list[dict]]:
    """A `unitesLegales[]` record -> (StockUniteLegale row, StockUniteLegaleHistorique rows, most recent first)."""
    periods = record.get("periodesUniteLegale") or []
    sources = (record, _current_period(periods))
    row = {c: _csv(sources[i].get(c)) for c, i in _UL_SOURCES}
    siren = row["siren"]
    history = [
        {"siren": siren, **{c: _csv(p.get(c)) for c in UNITE_LEGALE_HISTORIQUE_COLUMNS[1:]}} for p in periods
    ]
    return row, history


def etablissement_to_rows(record: dict) -> tuple[dict, list[dict]]:
    """An `etablissements[]` record -> (StockEtablissement row, StockEtablissementHistorique rows).

    The address blocks flatten to the stock columns; the nested `uniteLegale` block is ignored.
    """
    periods = record.get("periodesEtablissement") or []
    sources = (
        record,
        _current_period(periods),
        record.get("adresseEtablissement") or {},
        record.get("adresse2Etablissement") or {},
    )
    row = {c: _csv(sources[i].get(c)) for c, i in _ET_SOURCES}
    ids = {"siren": row["siren"], "nic": row["nic"], "siret": row["siret"]}
    history = [{**ids, **{c: _csv(p.get(c)) for c in ETABLISSEMENT_HISTORIQUE_COLUMNS[3:]}} for p in periods]
    return row, history


def lien_to_row(record: dict) -> dict:
    """A `liensSuccession[]` record -> StockEtablissementLiensSuccession row."""
    return {c: to_csv(record.get(c)) for c in LIENS_SUCCESSION_COLUMNS}


# ------------------------------------------------------------------------------------------------
# Stock rows -> API record (for the INSEE-like server).
# ------------------------------------------------------------------------------------------------


def _period_from_row(row: dict, fields: tuple[str, ...]) -> dict:
    """The current period rebuilt from a stock row alone (when the history file has no period)."""
    return {f: (None if f == "dateFin" else to_json(f, row.get(f, ""))) for f in fields}


def unite_legale_record(row: dict, history_rows: list[dict]) -> dict:
    """A StockUniteLegale row + its history rows -> a `unitesLegales[]` record (3.11 shape)."""
    rec = {}
    for f in UL_TOP:
        rec[f] = None if f in CNIL_FIELDS else to_json(f, row.get(f, ""))
    if history_rows:
        periods = [{f: to_json(f, h.get(f, "")) for f in UL_PERIOD} for h in _sort_periods(history_rows)]
    else:
        periods = [_period_from_row(row, UL_PERIOD)]
    rec["periodesUniteLegale"] = periods
    return rec


def unite_legale_etab_block(ul_row: dict | None) -> dict:
    """The `uniteLegale` block of an établissement record: the unit's current values, flat."""
    ul_row = ul_row or {}
    return {f: None if f in CNIL_FIELDS else to_json(f, ul_row.get(f, "")) for f in UL_IN_ETAB}


def etablissement_record(row: dict, history_rows: list[dict], unite_legale_row: dict | None) -> dict:
    """A StockEtablissement row + its history rows + its unit's row -> an `etablissements[]` record."""
    rec = {f: to_json(f, row.get(f, "")) for f in ET_TOP}
    rec["uniteLegale"] = unite_legale_etab_block(unite_legale_row)
    rec["adresseEtablissement"] = {f: to_json(f, row.get(f, "")) for f in ADRESSE}
    rec["adresse2Etablissement"] = {f: to_json(f, row.get(f, "")) for f in ADRESSE2}
    if history_rows:
        periods = [{f: to_json(f, h.get(f, "")) for f in ET_PERIOD} for h in _sort_periods(history_rows)]
    else:
        periods = [_period_from_row(row, ET_PERIOD)]
    rec["periodesEtablissement"] = periods
    return rec


def lien_record(row: dict) -> dict:
    """A StockEtablissementLiensSuccession row -> a `liensSuccession[]` record."""
    return {f: to_json(f, row.get(f, "")) for f in LIEN_FIELDS}
