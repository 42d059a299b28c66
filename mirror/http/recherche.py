"""recherche-entreprises' `/search` and `/near_point` over the mirror (mounted by mirror.http.app).

    status, body = search_response(data_dir, [("q", "boulangerie"), ("departement", "35")], base_url)
    status, body = near_point_response(data_dir, [("lat", "48.85"), ("long", "2.35")], base_url)

The parameters, their validation, the error body (`{"erreur": "..."}`, status 400) and the response shape
(`{results, total_results, page, per_page, total_pages}`, each result's keys in the order of search-api's
UniteLegaleResponse model) follow the public API recherche-entreprises.api.gouv.fr (its OpenAPI description
and the annuaire-entreprises-data-gouv-fr/search-api repository: app/controller/search_params_model.py,
field_validation.py, app/models/unite_legale.py, app/service/formatters/). Everything is read from
DATA_DIR/lookup.sqlite in one SQLite read transaction (the FTS5 search index of mirror.lookup.search_index
and the v3 documents of mirror.lookup.store), so an answer never mixes two states of the mirror and no
DuckDB query runs on the request path.

What Sirene cannot fill is empty, never invented: `dirigeants` is `[]`, `finances` null, labels (RGE, bio,
Qualiopi, FINESS, UAI, IDCC, EGAPRO, SIAE, ...) and the other non-Sirene `complements` are null, as are
`activite_principale_naf25`, `caractere_employeur`, `annee_categorie_entreprise`, `date_mise_a_jour_rne`,
`date_debut_activite`, `geo_adresse`, `geo_id` and `nom_commercial`. The filters on such data (`est_bio`,
`est_rge`, `id_convention_collective`, `ca_min`, `nom_personne`, ...) answer 400 "not available on this
mirror" rather than being ignored (the real API accepts them; a filter silently dropped would return wrong
results). Parameters the real API does not know are ignored, as the real API ignores them.

Filters (values of a list parameter are ORed, comma-separated or repeated; parameters are ANDed):
`activite_principale`, `section_activite_principale`, `tranche_effectif_salarie`, `categorie_entreprise`,
`etat_administratif`, `nature_juridique` and the `est_*` flags apply to the unité légale; `code_postal`,
`code_commune`, `departement`, `region` and `epci` to its siège or one of its open établissements (with several
of them, one établissement meets them all, as search-api's nested query). `code_commune` 75056, 69123 and 13055 (Paris, Lyon,
Marseille) also cover their arrondissements, where Sirene locates the établissements. `est_association`:
an RNA identifier or a catégorie juridique 92xx; `est_entrepreneur_individuel`: catégorie juridique 1000.

Diffusion: the index and the documents come from the *_diffusibles views, so partially diffusible ('P')
units keep their "[ND]" masks; a partially diffusible natural person has no name text in the index (found by
its SIREN / SIRET only, as search-api does); `/near_point` shows units whose statut is 'O' only (search-api's
geo_search.py does the same).

Beyond the real API: `per_page` up to 1,000 (real: 25); `near_point` applies every filter (real: the NAF
ones only) and gives each result and matching établissement its `distance` (km), results sorted by it;
every response carries `next_cursor`, and `cursor=<next_cursor>` (instead of `page`) continues after the
last result, with no 10,000-result cap (page mode keeps the real `page * per_page <= 10,000`). Order: text
queries by relevance (mirror.lookup.search: exact name, bm25 buckets, active first, open établissements) for
their best 1,000 matches, then the other matches by SIREN; filter-only queries by SIREN (the real API sorts
them by number of open établissements, which would need the whole match set sorted per request).

Per state of the store (keys holding its token), a server process keeps the ranked heads of the latest
queries, the latest near_point answers and the fields decoded from the latest documents (bounded LRUs), so a
popular query or the next page of a query does not pay its ranking again (search-api caches its answers in
Redis); a new day or snapshot changes the token, never serving a stale answer.
"""

from __future__ import annotations

import bisect
import json
import logging
import math
import re
import sqlite3
import threading
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import zstandard

from mirror.core import nomenclatures
from mirror.core.cache import Lru
from mirror.core.sql import render as render_sql
from mirror.core.sql import render_cached
from mirror.lookup import search as fts
from mirror.lookup.store import open_store

MAX_PER_PAGE = 1000  # real API: 25
HEAD_CACHE = 128  # ranked heads kept (see Lru; ~170 KB each at most, a 1,000-row window)
DECODED_CACHE = 8192  # decoded unit and établissement fields kept (a few MB)
NEAR_CACHE = 32  # near_point answers kept (see Lru)
NEAR_CACHE_MAX = 5_000  # ... when they have at most this many units (~1.5 MB)
EXACT_CACHE_MAX = 50_000  # exact match lists of several address filters kept with their head up to this size
WINDOW = fts.WINDOW  # text queries: the best WINDOW matches re-ranked, then the others by SIREN
DEFAULT_PER_PAGE = 10
MAX_PAGE = 1000
MAX_PAGE_RESULTS = 10_000  # page * per_page in page mode (the real API's cap); the cursor has none
MAX_MATCHING = 100
DEFAULT_MATCHING = 10
RADIUS_MIN, RADIUS_MAX, RADIUS_DEFAULT = 0.001, 50.0, 5.0
log = logging.getLogger("mirror.http")
ND = "[ND]"
PARIS = ZoneInfo("Europe/Paris")

# Parameter names -> kinds. Lists accept "a,b" and repetition; the others are given at most once.
LIST_PARAMS = (
    "activite_principale",
    "section_activite_principale",
    "tranche_effectif_salarie",
    "categorie_entreprise",
    "nature_juridique",
    "code_postal",
    "code_commune",
    "departement",
    "region",
    "epci",
    "include",
)
BOOL_FILTERS = ("est_ess", "est_societe_mission", "est_association", "est_entrepreneur_individuel")
SCALAR_PARAMS = (
    "q",
    "etat_administratif",
    "minimal",
    "limite_matching_etablissements",
    "page",
    "per_page",
    "cursor",
    "lat",
    "long",
    "radius",
    *BOOL_FILTERS,
)
# Parameters of the real API whose data is not in Sirene (labels, RNE, finances, élus): refused, not ignored.
UNSUPPORTED = (
    "convention_collective_renseignee",
    "egapro_renseignee",
    "est_achats_responsables",
    "est_alim_confiance",
    "est_bio",
    "est_finess",
    "est_uai",
    "est_collectivite_territoriale",
    "est_entrepreneur_spectacle",
    "est_patrimoine_vivant",
    "est_organisme_formation",
    "est_qualiopi",
    "est_rge",
    "est_administration",
    "est_siae",
    "est_service_public",
    "est_l100_3",
    "id_convention_collective",
    "id_finess",
    "id_uai",
    "id_rge",
    "code_collectivite_territoriale",
    "nom_personne",
    "prenoms_personne",
    "date_naissance_personne_min",
    "date_naissance_personne_max",
    "type_personne",
    "ca_min",
    "ca_max",
    "resultat_net_min",
    "resultat_net_max",
    "page_etablissements",
    "sort_by_size",
    "include_admin",
)
INCLUDE_FIELDS = ("complements", "dirigeants", "finances", "matching_etablissements", "siege", "score")
DEFAULT_INCLUDE = ("siege", "finances", "complements", "dirigeants", "matching_etablissements")
_CODE_COMMUNE = re.compile(r"^([013-9]\d|2[AB1-9])\d{3}$")  # search-api field_validation.py
_CODE_POSTAL = re.compile(r"^((0[1-9])|([1-8][0-9])|(9[0-8])|(2A)|(2B))[0-9]{3}$")
_EPCI = re.compile(r"^\d{9}$")
_INTEGER = re.compile(r"^[+-]?\d{1,9}$")
_CURSOR = re.compile(r"^(w\d{1,5}|s\d{1,15}|d(0x[0-9a-f]\.?[0-9a-f]{0,13}p[+-]\d{1,4})_(\d{1,15}))$")
_IDENTIFIER = re.compile(r"^[0-9\s\u00a0\u202f]+$")

# Keys of an établissement object, in the order of search-api's Etablissement model (the keys its formatter
# sets); the siège leaves out ancien_siege, matching_etablissements the bulky ones (format_etablissements_list).
ETABLISSEMENT_KEYS = (
    "activite_principale",
    "activite_principale_registre_metier",
    "ancien_siege",
    "annee_tranche_effectif_salarie",
    "adresse",
    "caractere_employeur",
    "cedex",
    "code_pays_etranger",
    "code_postal",
    "commune",
    "complement_adresse",
    "coordonnees",
    "date_creation",
    "date_debut_activite",
    "date_fermeture",
    "date_mise_a_jour",
    "date_mise_a_jour_insee",
    "departement",
    "distribution_speciale",
    "epci",
    "est_siege",
    "etat_administratif",
    "geo_adresse",
    "geo_id",
    "indice_repetition",
    "latitude",
    "libelle_cedex",
    "libelle_commune",
    "libelle_commune_etranger",
    "libelle_pays_etranger",
    "libelle_voie",
    "liste_enseignes",
    "liste_finess",
    "liste_id_bio",
    "liste_idcc",
    "liste_id_organisme_formation",
    "liste_rge",
    "liste_uai",
    "longitude",
    "nom_commercial",
    "numero_voie",
    "region",
    "siret",
    "statut_diffusion_etablissement",
    "tranche_effectif_salarie",
    "type_voie",
)
MATCHING_HIDDEN = frozenset(
    (
        "activite_principale_registre_metier",
        "coordonnees",
        "cedex",
        "code_pays_etranger",
        "complement_adresse",
        "date_mise_a_jour",
        "date_mise_a_jour_insee",
        "departement",
        "distribution_speciale",
        "geo_adresse",
        "indice_repetition",
        "libelle_cedex",
        "libelle_commune_etranger",
        "libelle_pays_etranger",
        "libelle_voie",
        "numero_voie",
        "type_voie",
    )
)
COMPLEMENTS_KEYS = (  # search-api's Complements model
    "collectivite_territoriale",
    "convention_collective_renseignee",
    "liste_idcc",
    "liste_finess_juridique",
    "egapro_renseignee",
    "est_achats_responsables",
    "est_alim_confiance",
    "est_association",
    "est_bio",
    "est_entrepreneur_individuel",
    "est_entrepreneur_spectacle",
    "est_ess",
    "est_finess",
    "est_organisme_formation",
    "est_qualiopi",
    "liste_id_organisme_formation",
    "est_rge",
    "est_service_public",
    "est_l100_3",
    "est_siae",
    "est_societe_mission",
    "est_uai",
    "est_patrimoine_vivant",
    "bilan_ges_renseigne",
    "identifiant_association",
    "statut_entrepreneur_spectacle",
    "type_siae",
    "a_aide_minimis",
    "a_aide_ademe",
)
_FLAGS = {  # est_* parameter -> the flag token prefix of the index (sql/lookup/search_units.sql)
    "est_ess": "ess",
    "est_societe_mission": "mission",
    "est_association": "asso",
    "est_entrepreneur_individuel": "ei",
}


class BadRequest(Exception):
    """A parameter error: answered 400 {"erreur": message}."""


# ------------------------------------------------------------------------------------------------
# Reference values (the real API validates the codes against its nomenclatures: the same INSEE ones)
# ------------------------------------------------------------------------------------------------

_REF: dict[str, object] = {}
_REF_LOCK = threading.Lock()


def _ref() -> dict:
    with _REF_LOCK:
        if not _REF:
            _REF["naf"] = nomenclatures.codes("naf_rev2.csv")
            _REF["section"] = nomenclatures.codes("naf_rev2.csv", "section")
            _REF["nature"] = nomenclatures.codes(
                "categories_juridiques.csv", where=lambda r: len(r["code"]) == 4
            )
            _REF["departement"] = nomenclatures.codes("departements.csv")
            _REF["region"] = nomenclatures.codes("regions.csv")
            _REF["tranche"] = nomenclatures.codes("tranches_effectifs.csv")
            _REF["types_voie"] = {
                r["code"]: r["libelle"].upper() for r in nomenclatures.rows("types_voie.csv")
            }
    return _REF


# ------------------------------------------------------------------------------------------------
# Parameters
# ------------------------------------------------------------------------------------------------


def _error(message: str) -> tuple[int, dict]:
    return 400, {"erreur": message}


def _valid_list(values: list[str], valid, alias: str, shown=None) -> list[str]:
    for v in values:
        if v not in valid:
            listed = sorted(shown if shown is not None else valid)
            raise BadRequest(
                f"Au moins un paramètre `{alias}` est non valide. Les valeurs valides : {listed}."
            )
    return values


def _matching(values: list[str], pattern: re.Pattern, alias: str) -> list[str]:
    for v in values:
        if not pattern.search(v):
            raise BadRequest(f"Au moins une valeur du paramètre {alias} est non valide.")
    return values


def _integer(raw: str, name: str, lo: int, hi: int, default) -> int:
    if not _INTEGER.match(raw.strip()):
        raise BadRequest(f"Veuillez indiquer un paramètre `{name}` entier.")
    value = int(raw)
    if not lo <= value <= hi:
        raise BadRequest(
            f"Veuillez indiquer un paramètre `{name}` entre `{lo}` et `{hi}`, par défaut `{default}`."
        )
    return value


def _float(raw: str, name: str, lo: float, hi: float, default) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if math.isnan(value) or math.isinf(value):
        raise BadRequest(f"Veuillez indiquer un paramètre `{name}` flottant.")
    if not lo <= value <= hi:
        shown = lambda x: int(x) if float(x).is_integer() else x  # noqa: E731  (search-api prints 50, 0.001)
        raise BadRequest(
            f"Veuillez indiquer un paramètre `{name}` entre `{shown(lo)}` et `{shown(hi)}`, "
            f"par défaut `{default}`."
        )
    return value


def _boolean(raw: str, name: str) -> bool:
    if raw.upper() not in ("TRUE", "FALSE"):
        raise BadRequest(f"{name} doit prendre la valeur 'true' ou 'false' !")
    return raw.upper() == "TRUE"


class Query:
    """The validated parameters of one request."""

    def __init__(self, params: list[tuple[str, str]], geo: bool):
        ref = _ref()
        given: dict[str, list[str]] = {}
        for name, value in params:
            if not isinstance(name, str) or not isinstance(value, str):
                raise BadRequest("Paramètres de requête non valides.")
            given.setdefault(name, []).append(value)
        for name in given:
            if name in UNSUPPORTED:
                raise BadRequest(
                    f"Le paramètre `{name}` n'est pas disponible sur ce miroir : "
                    "ses données ne viennent pas du répertoire Sirene."
                )
        scalar: dict[str, str] = {}
        for name in SCALAR_PARAMS:
            if name in given:
                if len(given[name]) > 1:
                    raise BadRequest(f"Le paramètre `{name}` ne peut être donné qu'une fois.")
                scalar[name] = given[name][0]
        lists: dict[str, list[str]] = {}
        for name in LIST_PARAMS:
            if name in given:
                # search-api's clean_str: hyphens and spaces removed, upper case; then split on commas.
                values = [
                    v for raw in given[name] for v in raw.replace("-", "").replace(" ", "").upper().split(",")
                ]
                if not all(values):
                    raise BadRequest(f"Au moins une valeur du paramètre {name} est vide.")
                lists[name] = sorted(set(values))

        self.geo = geo
        self.terms = scalar.get("q")
        self.page = _integer(scalar["page"], "page", 1, MAX_PAGE, 1) if "page" in scalar else 1
        self.per_page = (
            _integer(scalar["per_page"], "per_page", 1, MAX_PER_PAGE, DEFAULT_PER_PAGE)
            if "per_page" in scalar
            else DEFAULT_PER_PAGE
        )
        self.matching = (
            _integer(
                scalar["limite_matching_etablissements"],
                "limite_matching_etablissements",
                1,
                MAX_MATCHING,
                DEFAULT_MATCHING,
            )
            if "limite_matching_etablissements" in scalar
            else DEFAULT_MATCHING
        )
        self.lat = _float(scalar["lat"], "lat", -90, 90, None) if "lat" in scalar else None
        self.lon = _float(scalar["long"], "long", -180, 180, None) if "long" in scalar else None
        self.radius = (
            _float(scalar["radius"], "radius", RADIUS_MIN, RADIUS_MAX, 5)
            if "radius" in scalar
            else RADIUS_DEFAULT
        )
        self.minimal = _boolean(scalar["minimal"], "minimal") if "minimal" in scalar else False
        self.flags = {name: _boolean(scalar[name], name) for name in BOOL_FILTERS if name in scalar}
        self.etat = None
        if "etat_administratif" in scalar:
            self.etat = scalar["etat_administratif"].upper()
            if self.etat not in ("A", "C"):
                raise BadRequest(
                    "Le paramètre `etat_administratif` doit prendre une des valeurs suivantes ['A', 'C']."
                )
        naf = [v if "." in v else f"{v[:2]}.{v[2:]}" for v in lists.get("activite_principale", [])]
        self.naf = _valid_list(naf, ref["naf"], "activite_principale")
        self.sections = _valid_list(
            lists.get("section_activite_principale", []), ref["section"], "section_activite_principale"
        )
        self.tranches = _valid_list(
            lists.get("tranche_effectif_salarie", []), ref["tranche"], "tranche_effectif_salarie"
        )
        self.categories = _valid_list(
            lists.get("categorie_entreprise", []), ("GE", "PME", "ETI"), "categorie_entreprise"
        )
        self.natures = _valid_list(lists.get("nature_juridique", []), ref["nature"], "nature_juridique")
        self.departements = _valid_list(lists.get("departement", []), ref["departement"], "departement")
        self.regions = _valid_list(lists.get("region", []), ref["region"], "region")
        self.codes_postaux = _matching(lists.get("code_postal", []), _CODE_POSTAL, "code_postal")
        self.communes = _matching(lists.get("code_commune", []), _CODE_COMMUNE, "code_commune")
        self.epcis = _matching(lists.get("epci", []), _EPCI, "epci")
        include = [v.lower() for v in lists.get("include", [])]
        for field in include:
            if field not in INCLUDE_FIELDS:
                raise BadRequest(
                    f"Au moins un champ à inclure est non valide. Les champs valides : {list(INCLUDE_FIELDS)}."
                )
        if include and not self.minimal:
            raise BadRequest(
                "Veuillez indiquer si vous souhaitez une réponse minimale avec le filtre `minimal=True`` "
                "avant de préciser les champs à inclure."
            )
        self.include = frozenset(include if self.minimal else DEFAULT_INCLUDE)
        self.cursor = scalar.get("cursor")
        if self.cursor is not None:
            if not _CURSOR.match(self.cursor) or (self.cursor[0] == "d") != geo:
                raise BadRequest(
                    "Le paramètre `cursor` est non valide : reprenez la valeur `next_cursor` d'une réponse."
                )
            if "page" in scalar:
                raise BadRequest("Les paramètres `page` et `cursor` ne peuvent être donnés ensemble.")

        if geo:
            if self.terms is not None:
                raise BadRequest("Le paramètre 'terms' n'est pas autorisé pour une recherche géographique.")
            if self.lat is None or self.lon is None:
                raise BadRequest(
                    "Les paramètres 'lat' et 'long' sont obligatoires pour une recherche géographique."
                )
        elif self.lat is not None or self.lon is not None:
            raise BadRequest(
                "Les paramètres 'lat', 'long' ne sont autorisés que pour une recherche géographique."
            )
        has_filter = bool(
            self.naf
            or self.sections
            or self.tranches
            or self.categories
            or self.natures
            or self.departements
            or self.regions
            or self.codes_postaux
            or self.communes
            or self.epcis
            or self.flags
            or self.etat
        )
        if not geo and self.terms is None and not has_filter:
            raise BadRequest("Veuillez indiquer au moins un paramètre de recherche.")
        if self.terms is not None and len(self.terms) < 3 and not has_filter:
            raise BadRequest(
                "3 caractères minimum pour les termes de la requête (ou utilisez au moins un filtre)"
            )
        if self.terms is not None and len(self.terms) > fts.MAX_TEXT:
            raise BadRequest(f"Le paramètre `q` est limité à {fts.MAX_TEXT} caractères.")
        if self.cursor is None and self.page * self.per_page > MAX_PAGE_RESULTS:
            raise BadRequest(
                "Le nombre total de résultats est restreint à 10 000. Pour garantir cela, le produit du numéro "
                "de page (par défaut, page = 1) et du nombre de résultats par page (par défaut, per_page = 10), "
                "c'est-à-dire `page * per_page`, ne doit pas excéder 10 000. Au-delà, paginez avec `cursor` "
                "(la valeur `next_cursor` de la réponse précédente)."
            )
        # The établissement-level filters, as sets (code_commune: with the arrondissements).
        communes = set(nomenclatures.with_arrondissements(self.communes))
        self.et_filters = [
            (3, set(self.codes_postaux)),
            (4, communes),
            (5, set(self.departements)),
            (6, set(self.regions)),
            (7, set(self.epcis)),
        ]
        self.et_filters = [(i, s) for i, s in self.et_filters if s]

    def unit_filters(self) -> list[tuple[str, list[str]]]:
        """The FTS5 column filters of the unit-level parameters (sql/lookup/search_schema.sql)."""
        out = []
        for column, values in (
            ("naf", [v.replace(".", "").lower() for v in self.naf]),
            ("section", [v.lower() for v in self.sections]),
            ("tranche", [v.lower() for v in self.tranches]),
            ("categorie", [v.lower() for v in self.categories]),
            ("nature", self.natures),
            ("etat", [self.etat.lower()] if self.etat else []),
        ):
            if values:
                out.append((column, values))
        for name, value in self.flags.items():
            out.append(("flags", [f"{_FLAGS[name]}{int(value)}"]))
        return out

    def et_column_filters(self) -> list[tuple[str, list[str]]]:
        """The FTS5 column filters of the établissement-level parameters (siège or an open établissement)."""
        columns = {3: "code_postal", 4: "commune", 5: "departement", 6: "region", 7: "epci"}
        return [(columns[i], sorted(v.lower() for v in values)) for i, values in self.et_filters]

    def matches(self, row: tuple) -> bool:
        """Whether an établissement row (recherche_units_etablissements.sql) meets the établissement-level filters."""
        return all(row[i] in values for i, values in self.et_filters)


# ------------------------------------------------------------------------------------------------
# Result bodies
# ------------------------------------------------------------------------------------------------


# The per-state caches (mirror.core.cache.Lru, shared by the threads of a server process). Every key holds
# the lookup store's token, so an update day or a new snapshot never serves a stale value. What is kept: the
# ranked heads (number of matches, re-ranked window) of the latest queries, so that a popular query and the
# pages 2, 3... of any query pay their ranking once per state (search-api caches its Elasticsearch answers in
# Redis for the same reason); the établissements of the latest near_point questions; and the decoded
# documents of the latest units and établissements shown.
HEADS = Lru(HEAD_CACHE)
NEAR = Lru(NEAR_CACHE)
DECODED = Lru(DECODED_CACHE)
_request = threading.local()  # the token of the state the current request reads


# ------------------------------------------------------------------------------------------------


def _day(ts) -> str | None:
    """An API Entreprise v3 timestamp (seconds, Paris midnight) as the ISO date recherche-entreprises gives."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, PARIS).date().isoformat()


def _known(value):
    return None if value in (None, "") else value


def _adresse(a: dict) -> str | None:
    parts = [
        a.get("complement_adresse"),
        a.get("numero_voie"),
        a.get("indice_repetition_voie"),
        _ref()["types_voie"].get(a.get("type_voie") or "", a.get("type_voie")),
        a.get("libelle_voie"),
        a.get("distribution_speciale"),
        a.get("code_cedex") or a.get("code_postal"),
        a.get("libelle_cedex") or a.get("libelle_commune"),
        a.get("libelle_commune_etranger"),
        a.get("libelle_pays_etranger"),
    ]
    if ND in parts:
        return ND
    text = " ".join(p for p in parts if p)
    return text or None


def _coordinate(value) -> str | None:
    return None if value is None else repr(round(value, 7))


def _etablissement(store, row: tuple, context: str, seen: dict | None = None) -> dict | None:
    """The établissement object of a search_etablissements row, its other fields from the store's v3 document
    (the /diffusibles/ variant when there is one: masks as the diffusibles views give them). `seen`: the
    values already decoded for this result (the siège is also a matching établissement)."""
    if seen is not None and row[0] in seen:
        values = seen[row[0]]
    else:
        key = ("et", _request.token, row)
        values = DECODED.get(key) if _request.token is not None else None
        if values is None:
            values = _etablissement_values(store, row)
            if values is not None and _request.token is not None:
                DECODED.put(key, values)
        if seen is not None:
            seen[row[0]] = values
    if values is None:
        return None
    if context == "siege":
        return {k: values[k] for k in ETABLISSEMENT_KEYS if k != "ancien_siege"}
    return {k: values[k] for k in ETABLISSEMENT_KEYS if k not in MATCHING_HIDDEN}


def _etablissement_values(store, row: tuple) -> dict | None:
    siret = f"{row[0]:014d}"
    found = store.etablissement(siret)
    if found is None:
        return None
    statut, _statut_ul, variants = found
    doc = json.loads(variants.get("v3d") or variants["v3"])
    d = doc["data"]
    a = d.get("adresse") or {}
    tranche = d.get("tranche_effectif_salarie") or {}
    enseigne = d.get("enseigne")
    lat, lon = row[8], row[9]
    values = {
        "activite_principale": (d.get("activite_principale") or {}).get("code"),
        "activite_principale_registre_metier": None,
        "ancien_siege": None,
        "annee_tranche_effectif_salarie": tranche.get("date_reference"),
        "adresse": _adresse(a),
        "caractere_employeur": None,
        "cedex": a.get("code_cedex"),
        "code_pays_etranger": a.get("code_pays_etranger"),
        "code_postal": a.get("code_postal"),
        "commune": a.get("code_commune"),
        "complement_adresse": a.get("complement_adresse"),
        "coordonnees": None if lat is None or lon is None else f"{_coordinate(lat)},{_coordinate(lon)}",
        "date_creation": _day(d.get("date_creation")),
        "date_debut_activite": None,
        "date_fermeture": _day(d.get("date_fermeture")),
        "date_mise_a_jour": None,
        "date_mise_a_jour_insee": _day((doc.get("meta") or {}).get("date_derniere_mise_a_jour")),
        "departement": row[5],
        "distribution_speciale": a.get("distribution_speciale"),
        "epci": row[7],
        "est_siege": bool(d.get("siege_social")),
        "etat_administratif": d.get("etat_administratif"),
        "geo_adresse": None,
        "geo_id": None,
        "indice_repetition": a.get("indice_repetition_voie"),
        "latitude": _coordinate(lat),
        "libelle_cedex": a.get("libelle_cedex"),
        "libelle_commune": a.get("libelle_commune"),
        "libelle_commune_etranger": a.get("libelle_commune_etranger"),
        "libelle_pays_etranger": a.get("libelle_pays_etranger"),
        "libelle_voie": a.get("libelle_voie"),
        "liste_enseignes": [enseigne] if enseigne else None,
        "liste_finess": None,
        "liste_id_bio": None,
        "liste_idcc": None,
        "liste_id_organisme_formation": None,
        "liste_rge": None,
        "liste_uai": None,
        "longitude": _coordinate(lon),
        "nom_commercial": None,
        "numero_voie": a.get("numero_voie"),
        "region": row[6],
        "siret": siret,
        "statut_diffusion_etablissement": statut,
        "tranche_effectif_salarie": tranche.get("code"),
        "type_voie": a.get("type_voie"),
    }
    return values


def _unit_values(statut: str | None, doc: dict) -> tuple[str | None, dict]:
    """The fields of a result that come from the unit's v3 document (kept per state in DECODED)."""
    d = doc["data"]
    return statut, {
        "nom_raison_sociale": _known((d.get("personne_morale_attributs") or {}).get("raison_sociale")),
        "date_creation": _day(d.get("date_creation")),
        "date_fermeture": _day(d.get("date_cessation")),
        "date_mise_a_jour": _day((doc.get("meta") or {}).get("date_derniere_mise_a_jour")),
        "annee_tranche_effectif_salarie": (d.get("tranche_effectif_salarie") or {}).get("date_reference"),
        "identifiant_association": d.get("rna"),
    }


def _indexed(db: sqlite3.Connection, unit_ids: list[int]) -> dict[int, tuple[tuple, list[tuple]]]:
    """{unit id: (its search_units fields, its siège and open établissements in siret order)} of the units
    the index holds among `unit_ids`: a page's in two queries (each query hands the GIL over and back, and
    a page of 25 results made 50 of them)."""
    ids = json.dumps(sorted(set(unit_ids)))
    units = {r[0]: r[1:] for r in db.execute(_sql("recherche_units"), [ids])}
    etablissements: dict[int, list[tuple]] = {u: [] for u in units}
    for row in db.execute(_sql("recherche_units_etablissements"), [ids]):
        etablissements[row[0] // 100000].append(row)
    return {u: (units[u], etablissements[u]) for u in units}


def _result(
    store,
    indexed: tuple[tuple, list[tuple]] | None,
    query: Query,
    score=None,
    matching_ids: list[tuple[int, float]] | None = None,
    siret: int | None = None,
) -> dict | None:
    """One recherche-entreprises result from its unit's `_indexed` rows (None: not in the index).
    matching_ids: the (établissement id, distance) of a near_point hit; siret: a SIRET typed as q (its
    établissement is the one match); else the établissement-level filters."""
    if indexed is None:
        return None
    su, rows = indexed
    (
        siren,
        nom_complet,
        sigle,
        siret_siege,
        naf,
        etat,
        nature,
        tranche,
        ouverts,
        total,
        section,
        categorie,
        flags,
    ) = su
    key = ("unit", _request.token, siren)
    cached = DECODED.get(key) if _request.token is not None else None
    if cached is None:
        found = store.unit(siren)
        if found is None:
            return None
        statut, _siege, variants = found
        cached = _unit_values(statut, json.loads(variants.get("v3d") or variants["v3"]))
        if _request.token is not None:
            DECODED.put(key, cached)
    statut, u = cached
    flag_set = set((flags or "").split())
    seen: dict[int, dict | None] = {}

    out: dict = {
        "siren": siren,
        "nom_complet": nom_complet,
        "nom_raison_sociale": u["nom_raison_sociale"],
        "sigle": sigle,
        "nombre_etablissements": total,
        "nombre_etablissements_ouverts": ouverts,
    }
    if "siege" in query.include:
        siege_row = next((r for r in rows if f"{r[0]:014d}" == siret_siege), None)
        out["siege"] = (_etablissement(store, siege_row, "siege", seen) if siege_row else None) or {}
    out.update(
        {
            "activite_principale": naf,
            "activite_principale_naf25": None,
            "categorie_entreprise": categorie,
            "caractere_employeur": None,
            "annee_categorie_entreprise": None,
            "date_creation": u["date_creation"],
            "date_fermeture": u["date_fermeture"],
            "date_mise_a_jour": u["date_mise_a_jour"],
            "date_mise_a_jour_insee": u["date_mise_a_jour"],
            "date_mise_a_jour_rne": None,
        }
    )
    if "dirigeants" in query.include:
        out["dirigeants"] = []
    out.update(
        {
            "etat_administratif": etat,
            "nature_juridique": nature,
            "section_activite_principale": section,
            "tranche_effectif_salarie": tranche,
            "annee_tranche_effectif_salarie": u["annee_tranche_effectif_salarie"],
            "statut_diffusion": statut,
        }
    )
    distance = None
    if "matching_etablissements" in query.include or matching_ids is not None:
        if matching_ids is not None:
            by_id = {r[0]: r for r in rows}
            picked = [(by_id[i], dist) for i, dist in matching_ids if i in by_id]
            distance = matching_ids[0][1] if matching_ids else None
        elif siret is not None:
            picked = [(r, None) for r in rows if r[0] == siret]
            if not picked and store.etablissement(f"{siret:014d}") is not None:
                # A closed établissement (search_etablissements holds the siège and the open ones): its
                # document alone; the codes the index derives (département, région, EPCI, point) unknown.
                picked = [((siret, 0, None, None, None, None, None, None, None, None), None)]
        elif query.terms is not None and _IDENTIFIER.match(query.terms):
            picked = []  # a SIREN typed: no établissement "matched" (search-api, a deliberate choice, #709)
        else:
            picked = [(r, None) for r in rows if query.matches(r)]
            picked.sort(key=lambda p: not p[0][1])  # the siège first, then siret order
        if "matching_etablissements" in query.include:
            matching = []
            for row, dist in picked[: query.matching]:
                et = _etablissement(store, row, "matching", seen)
                if et is not None:
                    if dist is not None:
                        et["distance"] = round(dist, 4)
                    matching.append(et)
            out["matching_etablissements"] = matching
    if "finances" in query.include:
        out["finances"] = None
    if "complements" in query.include:
        known = {
            "est_association": "asso1" in flag_set,
            "est_entrepreneur_individuel": "ei1" in flag_set,
            "est_ess": "ess1" in flag_set,
            "est_societe_mission": "mission1" in flag_set,
            "identifiant_association": u["identifiant_association"],
        }
        out["complements"] = {k: known.get(k) for k in COMPLEMENTS_KEYS}
    if "score" in query.include:
        out["score"] = score
    if distance is not None:
        out["distance"] = round(distance, 4)
    return out


# ------------------------------------------------------------------------------------------------
# Queries
# ------------------------------------------------------------------------------------------------


def _sql(name: str, **values) -> str:
    return render_cached(f"http/{name}.sql", **values)


def _head(db, expression: str, words: list[str] | None, text: str | None, query: Query):
    """(total, [(unit id, score)] of the re-ranked window, its set of ids, the exact match list or None);
    filter only: (total, [], set(), ...). With several address filters the FTS5 match is a superset (each
    filter may be met by another établissement): the exact list keeps the units one of whose établissements
    meets them all, as search-api's nested query and `mirror export` do."""
    token = _request.token
    exact = len(query.et_filters) >= 2
    key = (
        token,
        expression,
        None if words is None else tuple(words),
        WINDOW,
        repr(query.et_filters) if exact else None,
    )
    cached = HEADS.get(key) if token is not None else None
    if cached is None:
        universe = None
        if exact:
            et = dict(query.et_filters)
            lists = [json.dumps(sorted(et[i])) if i in et else None for i in (3, 4, 5, 6, 7)]
            universe = [i for (i,) in db.execute(_sql("recherche_exact"), [expression, *lists])]
        if words is not None:
            total, window = fts.ranked(db, expression, words, WINDOW, text)
            head = [(int(r[0]), fts.score(r)) for r in window]  # r[0]: the siren (fts.FIELDS)
        else:
            total, head = fts.count(db, expression), []
        if universe is not None:
            allowed = set(universe)
            total, head = len(universe), [(i, score) for i, score in head if i in allowed]
        cached = (total, head, frozenset(i for i, _ in head), universe)
        if token is not None and (universe is None or len(universe) <= EXACT_CACHE_MAX):
            HEADS.put(key, cached)
    return cached


def _text_page(db, expression: str, words: list[str] | None, text: str | None, query: Query):
    """(total, [(unit id, score)], next cursor) of a /search page. Text: the re-ranked window of
    mirror.lookup.search, then the other matches by id; filter only: every match by id."""
    limit = query.per_page
    start = (query.page - 1) * limit
    cursor = query.cursor
    total, head, in_head, universe = _head(db, expression, words, text, query)
    if cursor is not None and cursor[0] == "w":
        start = int(cursor[1:])
    picked: list[tuple[int, float | None]] = []
    tail_after = None
    if cursor is None or cursor[0] == "w":
        picked = head[start : start + limit]
        if len(picked) < limit:
            skip = max(0, start - len(head))
            tail_after, tail_skip = 0, skip
    else:
        tail_after, tail_skip = int(cursor[1:]), 0
    more = False
    if tail_after is not None:
        want = limit - len(picked)
        n = tail_skip + want + 1 + len(head)
        if universe is None:
            ids = fts.ids_after(db, expression, tail_after, n)
        else:
            first = bisect.bisect_right(universe, tail_after)
            ids = universe[first : first + n]
        rest = [i for i in ids if i not in in_head][tail_skip:]
        picked += [(i, None) for i in rest[:want]]
        more = len(rest) > want
        next_cursor = f"s{picked[-1][0]}" if more and picked else None
    else:
        end = start + len(picked)
        if end < len(head):
            next_cursor = f"w{end}"
        elif total > len(head):
            next_cursor = "s0"
        else:
            next_cursor = None
    return total, picked, next_cursor


def _pages(total: int, per_page: int) -> int:
    quotient, remainder = divmod(total, per_page)
    return quotient + 1 if remainder else quotient


def _envelope(results: list[dict], total: int, query: Query, next_cursor: str | None) -> dict:
    return {
        "results": results,
        "total_results": total,
        "page": None if query.cursor is not None else query.page,
        "per_page": query.per_page,
        "total_pages": _pages(total, query.per_page),
        "next_cursor": next_cursor,
    }


def _open(data_dir: Path):
    store = open_store(Path(data_dir))
    if store is None:
        return None
    if not store.begin():
        # Not current (a new snapshot's store still building): answer from the state it holds, one step
        # behind but consistent (the index and the documents of one commit), in one read transaction too.
        store.db.execute("BEGIN")
    return store


def _unavailable(exc: BaseException | None = None) -> tuple[int, dict]:
    detail = f" ({str(exc).splitlines()[0]})" if exc is not None and str(exc) else ""
    return 503, {
        "erreur": "L'index de recherche du miroir n'est pas disponible : lancez `mirror store` "
        f"(ou `mirror load` / `mirror sync`) pour le construire.{detail}"
    }


def _run(data_dir: Path, params, geo: bool) -> tuple[int, dict]:
    try:
        query = Query(list(params), geo)
    except BadRequest as exc:
        return _error(str(exc))
    try:
        store = _open(data_dir)
    except sqlite3.Error as exc:  # a writer's commit holding its lock past the busy timeout
        log.warning("recherche: the lookup store cannot be read", exc_info=True)
        return _unavailable(exc)
    if store is None:
        return _unavailable()
    try:
        (token,) = store.db.execute(_sql("recherche_token")).fetchone() or (None,)
        _request.token = None if token is None else (str(store.path), token)  # the store file and its state
        return 200, (_near(store, query) if geo else _search(store, query))
    except BadRequest as exc:
        return _error(str(exc))
    except (sqlite3.Error, zstandard.ZstdError, ValueError, KeyError) as exc:  # an index of an older format,
        log.warning("recherche: the lookup store cannot answer", exc_info=True)  # a damaged row: a JSON 503
        return _unavailable(exc)
    finally:
        store.end()


def _search(store, query: Query) -> dict:
    db = store.db
    terms = query.terms
    if terms is not None and _IDENTIFIER.match(terms):
        digits = "".join(terms.split())
        if len(digits) in (9, 14):  # a direct lookup: the filters are ignored (as search-api does)
            siret, unit = (int(digits) if len(digits) == 14 else None), int(digits[:9])
            result = _result(store, _indexed(db, [unit]).get(unit), query, siret=siret)
            results = [result] if result is not None and (query.cursor is None and query.page == 1) else []
            return _envelope(results, 1 if result is not None else 0, query, None)
    filters = query.unit_filters() + query.et_column_filters()
    words = None
    if terms is not None:
        words = fts.tokens(terms)
        if len(words) > fts.MAX_WORDS:
            raise BadRequest(f"Le paramètre `q` est limité à {fts.MAX_WORDS} mots.")
        if not words and not filters:
            return _envelope([], 0, query, None)
    text = None
    if words:
        text = fts.text_expression(db, words)  # once: the cache key's expression and the ranking share it
        expression = fts.match_expression(db, words, filters, text)
    else:
        expression, words = fts.filter_expression(filters), None
    total, picked, next_cursor = _text_page(db, expression, words, text, query)
    indexed = _indexed(db, [uid for uid, _score in picked])
    results = [
        r for uid, score in picked if (r := _result(store, indexed.get(uid), query, score)) is not None
    ]
    return _envelope(results, total, query, next_cursor)


def _near(store, query: Query) -> dict:
    db = store.db
    lat, lon, radius = query.lat, query.lon, query.radius
    # The bounding box of mirror.export.filters (`mirror export --near`).
    dlat = radius / 110.574
    dlon = min(radius / (111.320 * max(math.cos(math.radians(lat)), 1e-6)), 180.0)
    lon_min, lon_max = (lon - dlon, lon + dlon) if dlon < 180 else (-180.0, 180.0)
    unit_filters = query.unit_filters()

    def js(values):
        return json.dumps(sorted(values)) if values else None

    et = dict(query.et_filters)
    args = [
        lat - dlat,
        lat + dlat,
        lon_min,
        lon_max,
        lat,
        lon,
        radius,
        js(et.get(3)),
        js(et.get(4)),
        js(et.get(5)),
        js(et.get(6)),
        js(et.get(7)),
    ]
    if unit_filters:
        args.append(fts.filter_expression(unit_filters))
        sql = _sql("recherche_near", units=render_sql("http/recherche_near_units.sql"))
    else:  # no per-row FTS5 probe at all (an `?13 IS NULL OR EXISTS (...)` is evaluated anyway)
        sql = _sql("recherche_near", units="")
    key = ("near", _request.token, tuple(args))
    cached = NEAR.get(key) if _request.token is not None else None
    if cached is None:
        hits: dict[int, list[tuple[int, float]]] = {}
        for et_id, dist in db.execute(sql, args):
            hits.setdefault(et_id // 100000, []).append((et_id, dist))
        ranked = sorted(((min(d for _, d in ets), uid) for uid, ets in hits.items()))
        cached = (hits, ranked)
        if _request.token is not None and len(ranked) <= NEAR_CACHE_MAX:
            NEAR.put(key, cached)
    hits, ranked = cached
    total = len(ranked)
    if query.cursor is not None:
        dist_s, uid_s = query.cursor[1:].split("_")
        key = (float.fromhex(dist_s), int(uid_s))
        start = bisect.bisect_right(ranked, key)
    else:
        start = (query.page - 1) * query.per_page
    page = ranked[start : start + query.per_page]
    more = start + len(page) < total
    # The exact float in hexadecimal: the next request compares with the same value, so no row is repeated.
    next_cursor = f"d{page[-1][0].hex()}_{page[-1][1]}" if more and page else None
    results = []
    indexed = _indexed(db, [uid for _dist, uid in page])
    for _dist, uid in page:
        ets = sorted(hits[uid], key=lambda p: (p[1], p[0]))
        result = _result(store, indexed.get(uid), query, matching_ids=ets)
        if result is not None:
            results.append(result)
    return _envelope(results, total, query, next_cursor)


def search_response(data_dir: Path, params: list[tuple[str, str]], base_url: str) -> tuple[int, dict]:
    """GET /search: (HTTP status, JSON body). 400 {"erreur": ...} on a bad parameter; 503 without an index."""
    return _run(data_dir, params, geo=False)


def near_point_response(data_dir: Path, params: list[tuple[str, str]], base_url: str) -> tuple[int, dict]:
    """GET /near_point: (HTTP status, JSON body), results sorted by distance (km) to (lat, long)."""
    return _run(data_dir, params, geo=True)
