"""Export filters: command-line options -> one SQL WHERE clause with bound parameters.

Every user value reaches DuckDB as a bound parameter (`?`), never inside the SQL text; values are
also checked for their expected shape, and codes against their nomenclature (`mirror.core.nomenclatures`,
naming the nearest valid codes), so that a typo gives a clear one-line error instead of an empty
export. The clause references the export source's column names (see `mirror.export.exporter`):

- level "etablissement": the établissement's own activity, headcount band, state, dates and address;
  the unit's columns (catégorie juridique, catégorie d'entreprise, ESS, société à mission, names).
- level "unite-legale": the unit's activity, headcount band, state and dates; the address filters
  (commune, code postal, département, région, EPCI, radius) apply to the unit's siège.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import date

from mirror.core import nomenclatures as ref
from mirror.core.errors import BadInput, MirrorError
from mirror.core.identifiers import is_valid_siren, is_valid_siret
from mirror.core.schema import GEOLOCATION_COLUMNS, opted_out_person
from mirror.export.where import compile_where

LEVELS = ("etablissement", "unite-legale")
EARTH_RADIUS_KM = 6371.0088

# Column names per level for the filters whose meaning depends on the level.
LEVEL_COLUMNS = {
    "etablissement": {
        "naf": "activitePrincipaleEtablissement",
        "nomenclature": "nomenclatureActivitePrincipaleEtablissement",
        "naf25": "activitePrincipaleNAF25Etablissement",
        "tranche": "trancheEffectifsEtablissement",
        "etat": "etatAdministratifEtablissement",
        "closed": "F",
        "created": "dateCreationEtablissement",
        "updated": "dateDernierTraitementEtablissement",
    },
    "unite-legale": {
        "naf": "activitePrincipaleUniteLegale",
        "nomenclature": "nomenclatureActivitePrincipaleUniteLegale",
        "naf25": "activitePrincipaleNAF25UniteLegale",
        "tranche": "trancheEffectifsUniteLegale",
        "etat": "etatAdministratifUniteLegale",
        "closed": "C",
        "created": "dateCreationUniteLegale",
        "updated": "dateDernierTraitementUniteLegale",
    },
}

# Searched by --name (case and accents ignored), for both levels (at unit level the établissement
# names are the siège's).
NAME_COLUMNS = (
    "denominationUniteLegale",
    "sigleUniteLegale",
    "denominationUsuelle1UniteLegale",
    "denominationUsuelle2UniteLegale",
    "denominationUsuelle3UniteLegale",
    "nomUniteLegale",
    "nomUsageUniteLegale",
    "enseigne1Etablissement",
    "enseigne2Etablissement",
    "enseigne3Etablissement",
    "denominationUsuelleEtablissement",
)

_NAF_CODE = re.compile(r"^\d{2}\.\d{2}[A-Z]$")
_NAF_PREFIX = re.compile(r"^\d{2}(\.\d{0,2})?$")
_SECTION = re.compile(r"^[A-U]$")
_TRANCHE = re.compile(r"^(NN|\d{2})$")
_CJ = re.compile(r"^\d{1,4}$")
_COMMUNE = re.compile(r"^(\d{5}|2[AB]\d{3})$")
_CODE_POSTAL = re.compile(r"^\d{5}$")
_DEPARTEMENT = re.compile(r"^(\d{2}|2[AB]|97\d|98\d)$")  # 99: abroad
_REGION = re.compile(r"^\d{2,3}$")
_EPCI = re.compile(r"^\d{9}$")
_IRIS = re.compile(r"^(\d{5}|2[AB]\d{3})\d{4}$")  # national IRIS code: commune + 4 digits
_QPV = re.compile(r"^Q[A-Z0-9]{6,8}$")  # e.g. QN07501M (2024 list) [uncertain: the exact shape]
ANY_QPV = "any"
CATEGORIES_ENTREPRISE = ("PME", "ETI", "GE")


@dataclass
class Filters:
    """What the user asked for; empty lists / None mean "no constraint"."""

    naf: list[str] = field(default_factory=list)
    naf25: list[str] = field(default_factory=list)
    tranches: list[str] = field(default_factory=list)
    effectif_min: int | None = None
    effectif_max: int | None = None
    categories_juridiques: list[str] = field(default_factory=list)
    categories_entreprise: list[str] = field(default_factory=list)
    etat: str = "active"  # active | closed | all
    siege_only: bool = False
    communes: list[str] = field(default_factory=list)
    codes_postaux: list[str] = field(default_factory=list)
    departements: list[str] = field(default_factory=list)
    regions: list[str] = field(default_factory=list)
    epcis: list[str] = field(default_factory=list)
    iris: list[str] = field(default_factory=list)
    qpvs: list[str] = field(default_factory=list)  # QPV codes, or ANY_QPV: in any QPV
    near: tuple[float, float] | None = None
    near_siret: str | None = None
    radius_km: float | None = None
    created_from: date | None = None
    created_to: date | None = None
    updated_from: date | None = None
    updated_to: date | None = None
    ess: bool = False
    societe_mission: bool = False
    sirens: list[str] = field(default_factory=list)
    name: str | None = None
    where: str | None = None


@dataclass
class WhereClause:
    sql: str  # "TRUE" when nothing is filtered
    params: list
    columns: set[str]  # source columns the clause reads


def _split(values, option: str = "") -> list[str]:
    """Accepts repeated options and comma-separated lists; strips blanks.

    An empty value (`--siren ''`, `--naf ','`, `--naf 62,`) is an error: dropping it would remove the
    filter, and a script passing an empty variable would export the whole register.
    """
    out: list[str] = []
    for v in values or ():
        parts = [p.strip() for p in str(v).split(",")]
        if not all(parts):
            raise BadInput(
                f"empty value in {option or 'a filter'} {str(v)!r}: give a value or leave the option out"
            )
        out.extend(parts)
    return out


def _check(values: list[str], pattern: re.Pattern, what: str, example: str) -> list[str]:
    for v in values:
        if not pattern.match(v):
            raise BadInput(f"invalid {what} {v!r} (expected e.g. {example})")
    return values


def _known(
    values: list[str], valid: frozenset[str], what: str, suggest: frozenset[str] | None = None
) -> list[str]:
    """Refuses a well-formed code absent from its nomenclature (it would select nothing, silently), naming
    the nearest valid codes (of `suggest`, by default `valid`)."""
    for v in values:
        if v not in valid:
            near = ref.nearest(v, suggest or valid)
            if what == "département" and v == "20":  # Corsica: 2A and 2B since 1976
                near = ["2A", "2B", *near[:3]]
            raise BadInput(f"unknown {what} {v!r} (nearest: {', '.join(near)})")
    return values


def _prefixes(codes: frozenset[str], length: int) -> frozenset[str]:
    return frozenset(c[:length] for c in codes)


def _activity(values: list[str], table: str, what: str, example: str) -> list[tuple[str, str]]:
    """(kind, value) per --naf / --naf25 value: a section letter, a code or a prefix of the nomenclature
    sql/ref/`table`, each checked against it."""
    codes = ref.codes(table)
    out = []
    for v in values:
        if _SECTION.match(v):
            out.append(("section", _known([v], ref.codes(table, "section"), f"{what} section")[0]))
        elif _NAF_CODE.match(v):
            out.append(("code", _known([v], codes, f"{what} code")[0]))
        elif _NAF_PREFIX.match(v):
            out.append(("prefix", _known([v], _prefixes(codes, len(v)), f"{what} prefix")[0]))
        else:
            raise BadInput(f"invalid {what} code {v!r} (expected {example})")
    return out


def parse_near(value: str) -> tuple[float, float]:
    """'LAT,LON' in WGS84 degrees."""
    try:
        lat_s, lon_s = value.split(",")
        lat, lon = float(lat_s), float(lon_s)
    except ValueError:
        raise BadInput(f"invalid --near {value!r} (expected LAT,LON e.g. 48.8566,2.3522)") from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180) or math.isnan(lat) or math.isnan(lon):
        raise BadInput(f"invalid --near {value!r}: latitude or longitude out of range")
    return lat, lon


def normalize_naf(value: str) -> str:
    """'6201Z' -> '62.01Z', '62.01z' -> '62.01Z'; other shapes unchanged."""
    v = value.strip().upper()
    if re.match(r"^\d{4}[A-Z]$", v):
        v = f"{v[:2]}.{v[2:]}"
    return v


def build_where(
    f: Filters, level: str, available: set[str], near_point: tuple[float, float] | None = None
) -> WhereClause:
    """The WHERE clause of an export at `level`, over a source exposing the `available` columns.

    `near_point` is the resolved centre of a radius search (from --near or --near-siret).
    """
    if level not in LEVELS:
        raise BadInput(f"invalid level {level!r} (expected {' or '.join(LEVELS)})")
    cols = LEVEL_COLUMNS[level]
    parts: list[str] = []
    params: list = []
    used: set[str] = set()

    def q(name: str) -> str:
        used.add(name)
        return f'"{name}"'

    def add(sql: str, *values):
        parts.append(sql)
        params.extend(values)

    # Activity, NAF rév. 2: exact code, prefix, or section letter.
    naf = _activity(
        [normalize_naf(v) for v in _split(f.naf, "--naf")],
        "naf_rev2.csv",
        "NAF rév. 2",
        "a code 62.01Z, a prefix 62 / 62.0, or a section letter J",
    )
    if naf:
        ors = []
        for kind, v in naf:
            if kind == "section":
                ors.append(f"{q(cols['naf'])} IN (SELECT code FROM ref_naf_rev2 WHERE section = ?)")
            elif kind == "code":
                ors.append(f"{q(cols['naf'])} = ?")
            else:
                ors.append(f"starts_with({q(cols['naf'])}, ?)")
            params.append(v)
        parts.append(f"({q(cols['nomenclature'])} = 'NAFRev2' AND ({' OR '.join(ors)}))")

    # Activity, NAF 2025 (no nomenclature column: the code pattern is enough).
    naf25 = _activity(
        [normalize_naf(v) for v in _split(f.naf25, "--naf25")],
        "naf_2025.csv",
        "NAF 2025",
        "a code 62.10Y, a prefix 62, or a section letter",
    )
    if naf25:
        ors = []
        for kind, v in naf25:
            if kind == "section":
                ors.append(f"{q(cols['naf25'])} IN (SELECT code FROM ref_naf_2025 WHERE section = ?)")
            elif kind == "code":
                ors.append(f"{q(cols['naf25'])} = ?")
            else:
                ors.append(f"starts_with({q(cols['naf25'])}, ?)")
            params.append(v)
        parts.append(f"({' OR '.join(ors)})")

    # Headcount band: codes, or the bands whose [de, a] range overlaps [min, max].
    tranches = _known(
        _check(
            [t.upper() for t in _split(f.tranches, "--tranche")], _TRANCHE, "tranche d'effectif", "11 or NN"
        ),
        ref.codes("tranches_effectifs.csv"),
        "tranche d'effectif",
    )
    if tranches:
        add(f"{q(cols['tranche'])} IN ({', '.join('?' * len(tranches))})", *tranches)
    if f.effectif_min is not None or f.effectif_max is not None:
        lo = f.effectif_min if f.effectif_min is not None else 0
        hi = f.effectif_max if f.effectif_max is not None else 2**31 - 1
        if lo < 0 or hi < lo:
            raise BadInput("invalid headcount range: need 0 <= --effectif-min <= --effectif-max")
        add(
            f"{q(cols['tranche'])} IN (SELECT code FROM ref_tranches_effectifs "
            "WHERE de IS NOT NULL AND de <= ? AND coalesce(a, 2147483647) >= ?)",
            hi,
            lo,
        )

    # Catégorie juridique: 4-digit code or a prefix (a trailing * is accepted, as on sirene.fr).
    cjs = _check(
        [v.rstrip("*") for v in _split(f.categories_juridiques, "--categorie-juridique")],
        _CJ,
        "catégorie juridique",
        "5710, 57 or 5*",
    )
    cj_codes = ref.codes("categories_juridiques.csv")
    for v in cjs:
        _known([v], _prefixes(cj_codes, len(v)), "catégorie juridique")
    if cjs:
        ors = []
        for v in cjs:
            ors.append(
                '"categorieJuridiqueUniteLegale" = ?'
                if len(v) == 4
                else 'starts_with("categorieJuridiqueUniteLegale", ?)'
            )
            params.append(v)
        used.add("categorieJuridiqueUniteLegale")
        parts.append(f"({' OR '.join(ors)})")

    cats = [v.upper() for v in _split(f.categories_entreprise, "--categorie-entreprise")]
    for v in cats:
        if v not in CATEGORIES_ENTREPRISE:
            raise BadInput(f"invalid catégorie d'entreprise {v!r} (expected PME, ETI or GE)")
    if cats:
        add(f"{q('categorieEntreprise')} IN ({', '.join('?' * len(cats))})", *cats)

    # État administratif.
    if f.etat == "active":
        add(f"{q(cols['etat'])} = 'A'")
    elif f.etat == "closed":
        add(f"{q(cols['etat'])} = ?", cols["closed"])
    elif f.etat != "all":
        raise BadInput(f"invalid état {f.etat!r}")

    if f.siege_only:
        if level != "etablissement":
            raise BadInput("--siege-only applies to --level etablissement")
        add(f"{q('etablissementSiege')}")

    # Geography (établissement, or the unit's siège), checked against the COG and the EPCI list; a code
    # postal is checked for its shape only (CEDEX codes are not in the COG). Paris, Lyon and Marseille
    # (75056, 69123, 13055) also cover their arrondissements, where Sirene locates the établissements.
    geo = (
        ("codeCommuneEtablissement", f.communes, _COMMUNE, "commune code", "75056 or 2A004", "--commune"),
        ("codePostalEtablissement", f.codes_postaux, _CODE_POSTAL, "code postal", "75001", "--code-postal"),
        ("departement", f.departements, _DEPARTEMENT, "département", "75, 2A or 974", "--departement"),
        ("region", f.regions, _REGION, "région code", "11", "--region"),
        ("epci", f.epcis, _EPCI, "EPCI SIREN", "200054781", "--epci"),
    )
    valid_codes = {
        "--commune": ref.commune_codes,
        "--departement": ref.departement_codes,
        "--region": lambda: ref.codes("regions.csv"),
        "--epci": lambda: ref.codes("epci.csv"),
    }
    for column, values, pattern, what, example, option in geo:
        vals = _check([v.upper() for v in _split(values, option)], pattern, what, example)
        if vals and option in valid_codes:
            suggest = ref.current_commune_codes() if option == "--commune" else None
            _known(vals, valid_codes[option](), what, suggest)
        if option == "--commune":
            vals = ref.with_arrondissements(vals)
        if vals:
            add(f"{q(column)} IN ({', '.join('?' * len(vals))})", *vals)

    # Zones of the geolocation file (columns present only when it was loaded with the stock).
    iris = _check(
        [v.upper() for v in _split(f.iris, "--iris")], _IRIS, "IRIS code", "751010101 (commune + 4 digits)"
    )
    if iris:
        add(f"{q('iris')} IN ({', '.join('?' * len(iris))})", *iris)
    qpvs = [v.upper() for v in _split(f.qpvs, "--qpv")]
    if ANY_QPV.upper() in qpvs:
        add(f"{q('qpv')} IS NOT NULL")
    elif _check(qpvs, _QPV, "QPV code", f"QN07501M, or {ANY_QPV}"):
        add(f"{q('qpv')} IN ({', '.join('?' * len(qpvs))})", *qpvs)

    if near_point is not None:
        if f.radius_km is None or not (0 < f.radius_km <= 1000):
            raise BadInput("a radius search needs --radius-km between 0 and 1000")
        lat, lon = near_point
        dlat = f.radius_km / 110.574
        coslat = max(math.cos(math.radians(lat)), 1e-6)
        dlon = min(f.radius_km / (111.320 * coslat), 180.0)
        la, lo_ = q("latitude"), q("longitude")
        add(f"{la} BETWEEN ? AND ?", lat - dlat, lat + dlat)
        if dlon < 180:
            add(f"{lo_} BETWEEN ? AND ?", lon - dlon, lon + dlon)
        add(
            f"2 * {EARTH_RADIUS_KM} * asin(sqrt(pow(sin(radians({la} - ?) / 2), 2) + cos(radians(?)) * "
            f"cos(radians({la})) * pow(sin(radians({lo_} - ?) / 2), 2))) <= ?",
            lat,
            lat,
            lon,
            f.radius_km,
        )
    elif f.radius_km is not None:
        raise BadInput("--radius-km needs --near LAT,LON or --near-siret SIRET")

    # Date ranges (inclusive); a reversed range would silently select nothing.
    for key, lo_d, hi_d in (
        ("created", f.created_from, f.created_to),
        ("updated", f.updated_from, f.updated_to),
    ):
        if lo_d is not None and hi_d is not None and lo_d > hi_d:
            raise BadInput(f"--{key}-from {lo_d} is after --{key}-to {hi_d}")
        column = q(cols[key])
        if lo_d is not None:
            add(f"{column} >= ?", lo_d)
        if hi_d is not None:
            if key == "updated":  # a timestamp: the whole last day is included
                add(f"{column} < CAST(? AS DATE) + INTERVAL 1 DAY", hi_d)
            else:
                add(f"{column} <= ?", hi_d)

    if f.ess:
        add(f"{q('economieSocialeSolidaireUniteLegale')} = 'O'")
    if f.societe_mission:
        add(f"{q('societeMissionUniteLegale')} = 'O'")

    # Given units (e.g. every établissement of a company).
    sirens = [v.replace(" ", "") for v in _split(f.sirens, "--siren")]
    for v in sirens:
        if not is_valid_siren(v):
            raise BadInput(f"invalid SIREN {v!r} (9 digits passing the Luhn check)")
    if sirens:
        add(f"{q('siren')} IN ({', '.join('?' * len(sirens))})", *sirens)

    # Name search: every word must occur in one of the names, ignoring case and accents.
    if f.name is not None:
        words = f.name.split()
        if not words:
            raise BadInput("--name needs at least one word")
        names = [c for c in NAME_COLUMNS if c in available]
        haystack = "strip_accents(lower(concat_ws(' ', " + ", ".join(q(c) for c in names) + ")))"
        for w in words:
            add(f"contains({haystack}, strip_accents(lower(?)))", w)
        # An opted-out natural person (sql/catalog/opted_out_person.sql) is found by no name, not even by
        # the enseigne of an établissement that is itself diffusible: as in the search index (README
        # "Diffusion rules").
        if {"statutDiffusionUniteLegale", "categorieJuridiqueUniteLegale"} <= available:
            add(
                f"NOT {opted_out_person(q('statutDiffusionUniteLegale'), q('categorieJuridiqueUniteLegale'))}"
            )

    if f.where is not None:  # an empty --where is refused, not ignored
        sql, where_params, where_cols = compile_where(f.where, available)
        used |= where_cols
        add(f"({sql})", *where_params)

    missing = used - available
    if missing & set(GEOLOCATION_COLUMNS):
        raise MirrorError(
            f"this filter needs column(s) {', '.join(sorted(missing))}, which come from INSEE's geolocation file: "
            "load GeolocalisationEtablissement_Sirene_pour_etudes_statistiques_utf8 with the stock (mirror load)"
        )
    if missing:
        raise MirrorError(f"this filter needs column(s) {', '.join(sorted(missing))}, absent from the mirror")
    return WhereClause(" AND ".join(parts) if parts else "TRUE", params, used)


def check_near_siret(siret: str) -> str:
    s = siret.replace(" ", "")
    if not is_valid_siret(s):
        raise BadInput(f"invalid --near-siret {siret!r} (not a valid SIRET)")
    return s
