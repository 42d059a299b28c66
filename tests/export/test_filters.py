"""Every export filter against an independent computation over the raw stock files.

The stock (zipped INSEE CSV) is loaded through the real loader and catalog; the expected sets are
computed in Python from the same zip files (csv module, pyproj, the sql/ref CSV files), without
the export code.
"""

from __future__ import annotations

import csv
import gzip
import itertools
import unicodedata
from datetime import date

import pyarrow.parquet as pq
import pytest
from export_helpers import build_catalog, haversine_km, read_raw, wgs84, write_edge_stock

from mirror.core.errors import MirrorError
from mirror.core.schema import ETABLISSEMENTS, UNITES_LEGALES
from mirror.core.sql import REF_DIR
from mirror.export.exporter import export
from mirror.export.filters import Filters

_counter = itertools.count()


def _ref(name: str) -> list[dict]:
    path = REF_DIR / name
    opener = gzip.open if name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def make_world(root, stock, opener=None):
    opener = opener or build_catalog(root / "data", stock)
    uls = {r["siren"]: r for r in read_raw(stock, UNITES_LEGALES)}
    ets = read_raw(stock, ETABLISSEMENTS)
    sieges = {e["siren"]: e for e in ets if e["siret"] == e["siren"] + uls[e["siren"]]["nicSiegeUniteLegale"]}
    return {"con": opener(), "uls": uls, "ets": ets, "sieges": sieges, "out": root}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The edge-case stock of export_helpers (accents, P units, old nomenclatures, junk dates...)."""
    root = tmp_path_factory.mktemp("filters")
    w = make_world(root, write_edge_stock(root / "stock", n_units=400, seed=3))
    yield w
    w["con"].close()


@pytest.fixture(scope="module")
def generated(tmp_path_factory, stock_dir, loaded_stock):
    """The project's generated stock (conftest `stock_dir`), as loaded for the whole run (`loaded_stock`)."""
    from mirror.catalog.build import connect

    w = make_world(
        tmp_path_factory.mktemp("filters_generated"), stock_dir, lambda: connect(loaded_stock, read_only=True)
    )
    yield w
    w["con"].close()


def exported(world, level="etablissement", **kwargs) -> set[str]:
    key = "siret" if level == "etablissement" else "siren"
    out = world["out"] / f"keys{next(_counter)}.parquet"
    summary = export(world["con"], out, level=level, filters=Filters(**kwargs), columns=[key])
    values = pq.read_table(out).column(0).to_pylist()
    assert summary["rows"] == len(values)
    assert len(values) == len(set(values))
    return set(values)


def expected_et(world, pred, etat="active") -> set[str]:
    ok = {"active": ("A",), "closed": ("F",), "all": ("A", "F")}[etat]
    return {
        e["siret"]
        for e in world["ets"]
        if e["etatAdministratifEtablissement"] in ok and pred(e, world["uls"][e["siren"]])
    }


def expected_ul(world, pred, etat="active") -> set[str]:
    ok = {"active": ("A",), "closed": ("C",), "all": ("A", "C")}[etat]
    empty = dict.fromkeys(ETABLISSEMENTS.columns, "")
    return {
        u["siren"]
        for u in world["uls"].values()
        if u["etatAdministratifUniteLegale"] in ok and pred(u, world["sieges"].get(u["siren"], empty))
    }


# --- independent helpers over raw values --------------------------------------------------------

NAF_SECTIONS = {r["code"]: r["section"] for r in _ref("naf_rev2.csv")}
NAF25_SECTIONS = {r["code"]: r["section"] for r in _ref("naf_2025.csv")}
TRANCHES = {r["code"]: (r["de"], r["a"]) for r in _ref("tranches_effectifs.csv")}
COMMUNES = {
    r["code"]: r
    for r in _ref("communes.csv.gz")
    if r["type"] in ("commune-actuelle", "arrondissement-municipal")
}


def departement(e):
    code = e["codeCommuneEtablissement"]
    if not code:
        return "99" if e["codePaysEtrangerEtablissement"] else None
    return code[:3] if code[:2] in ("97", "98") else code[:2]


def region(e):
    c = COMMUNES.get(e["codeCommuneEtablissement"])
    return c["region"] if c else None


def epci(e):
    c = COMMUNES.get(e["codeCommuneEtablissement"])
    if not c:
        return None
    return c["epci"] or (COMMUNES[c["commune_parent"]]["epci"] if c["commune_parent"] else None)


def band_overlaps(code, lo, hi):
    de, a = TRANCHES.get(code, ("", ""))
    return de != "" and int(de) <= hi and (a == "" or int(a) >= lo)


def norm(text):
    return "".join(c for c in unicodedata.normalize("NFKD", text.lower()) if not unicodedata.combining(c))


def public_names(u, e):
    """The names as the diffusible views show them (reference sirene-stock-files.md §5.2)."""
    person_p = u["statutDiffusionUniteLegale"] == "P" and (
        u["categorieJuridiqueUniteLegale"] in ("", "1000")
        or u["categorieJuridiqueUniteLegale"].startswith("2")
    )
    et_person_p = e["statutDiffusionEtablissement"] == "P" and (
        u["categorieJuridiqueUniteLegale"] in ("", "1000")
        or u["categorieJuridiqueUniteLegale"].startswith("2")
    )
    if person_p:  # an opted-out natural person is found by no name (README "Diffusion rules")
        return ""
    names = [
        u["denominationUniteLegale"],
        u["sigleUniteLegale"] if u["statutDiffusionUniteLegale"] != "P" else "",
    ]
    if not person_p:
        names += [u[f"denominationUsuelle{i}UniteLegale"] for i in (1, 2, 3)]
        names += [u["nomUniteLegale"], u["nomUsageUniteLegale"]]
    if not et_person_p:
        names += [e[f"enseigne{i}Etablissement"] for i in (1, 2, 3)] + [e["denominationUsuelleEtablissement"]]
    return norm(" ".join(n for n in names if n))


def d(text):
    return date.fromisoformat(text) if text else None


def is_nafrev2(code_col, nom_col):
    return lambda r: r[nom_col] == "NAFRev2" and r[code_col]


def _with_sirens(world, kwargs, pred):
    """The --siren case: two real SIRENs of the stock (the one with most établissements first)."""
    if "sirens" not in kwargs:
        return kwargs, pred
    counts = {}
    for e in world["ets"]:
        counts[e["siren"]] = counts.get(e["siren"], 0) + 1
    chosen = sorted(counts, key=lambda s: (-counts[s], s))[:2]
    return {
        **kwargs,
        "sirens": [chosen[0], f"{chosen[1][:3]} {chosen[1][3:]}"],
    }, lambda e, u: e["siren"] in chosen


# --- établissement level --------------------------------------------------------------------------

ET_CASES = [
    ({"naf": ["62.01Z"]}, lambda e, u: e["activitePrincipaleEtablissement"] == "62.01Z"),
    ({"naf": ["6201Z", "56.10A"]}, lambda e, u: e["activitePrincipaleEtablissement"] in ("62.01Z", "56.10A")),
    (
        {"naf": ["45"]},
        lambda e, u: (
            e["nomenclatureActivitePrincipaleEtablissement"] == "NAFRev2"
            and e["activitePrincipaleEtablissement"].startswith("45")
        ),
    ),
    (
        {"naf": ["C", "62.0"]},
        lambda e, u: (
            e["nomenclatureActivitePrincipaleEtablissement"] == "NAFRev2"
            and (
                NAF_SECTIONS.get(e["activitePrincipaleEtablissement"]) == "C"
                or e["activitePrincipaleEtablissement"].startswith("62.0")
            )
        ),
    ),
    ({"naf25": ["62.10Y"]}, lambda e, u: e["activitePrincipaleNAF25Etablissement"] == "62.10Y"),
    (
        {"naf25": ["G", "01"]},
        lambda e, u: (
            NAF25_SECTIONS.get(e["activitePrincipaleNAF25Etablissement"]) == "G"
            or e["activitePrincipaleNAF25Etablissement"].startswith("01")
        ),
    ),
    ({"tranches": ["11", "nn"]}, lambda e, u: e["trancheEffectifsEtablissement"] in ("11", "NN")),
    ({"effectif_min": 10}, lambda e, u: band_overlaps(e["trancheEffectifsEtablissement"], 10, 2**31)),
    (
        {"effectif_min": 3, "effectif_max": 9},
        lambda e, u: band_overlaps(e["trancheEffectifsEtablissement"], 3, 9),
    ),
    ({"effectif_max": 0}, lambda e, u: e["trancheEffectifsEtablissement"] == "00"),
    ({"categories_juridiques": ["5710"]}, lambda e, u: u["categorieJuridiqueUniteLegale"] == "5710"),
    (
        {"categories_juridiques": ["57", "1*"]},
        lambda e, u: (
            u["categorieJuridiqueUniteLegale"][:2] == "57" or u["categorieJuridiqueUniteLegale"][:1] == "1"
        ),
    ),
    ({"categories_entreprise": ["PME", "ge"]}, lambda e, u: u["categorieEntreprise"] in ("PME", "GE")),
    ({"siege_only": True}, lambda e, u: e["etablissementSiege"] == "true"),
    (  # Paris covers its arrondissements (COG commune_parent 75056)
        {"communes": ["75056", "2A004"]},
        lambda e, u: (
            e["codeCommuneEtablissement"] in ("75056", "2A004")
            or COMMUNES.get(e["codeCommuneEtablissement"], {}).get("commune_parent") == "75056"
        ),
    ),
    ({"codes_postaux": ["75001"]}, lambda e, u: e["codePostalEtablissement"] == "75001"),
    ({"departements": ["2A", "974", "99"]}, lambda e, u: departement(e) in ("2A", "974", "99")),
    ({"regions": ["11"]}, lambda e, u: region(e) == "11"),
    ({"epcis": ["200054781"]}, lambda e, u: epci(e) == "200054781"),
    (
        {"created_from": date(1990, 1, 1), "created_to": date(2005, 12, 31)},
        lambda e, u: (
            d(e["dateCreationEtablissement"]) is not None
            and date(1990, 1, 1) <= d(e["dateCreationEtablissement"]) <= date(2005, 12, 31)
        ),
    ),
    (
        {"created_to": date(1900, 1, 1), "etat": "all"},
        lambda e, u: d(e["dateCreationEtablissement"]) <= date(1900, 1, 1),
    ),
    (
        {"updated_from": date(2025, 6, 1), "updated_to": date(2025, 6, 30)},
        lambda e, u: "2025-06-01" <= e["dateDernierTraitementEtablissement"][:10] <= "2025-06-30",
    ),
    ({"sirens": ["<first>", "<second>"], "etat": "all"}, None),
    ({"ess": True}, lambda e, u: u["economieSocialeSolidaireUniteLegale"] == "O"),
    ({"societe_mission": True}, lambda e, u: u["societeMissionUniteLegale"] == "O"),
    ({"name": "ecole"}, lambda e, u: "ecole" in public_names(u, e)),
    (
        {"name": "  BOULANGERIE   élodie "},
        lambda e, u: "boulangerie" in public_names(u, e) and "elodie" in public_names(u, e),
    ),
    ({"name": "100%"}, lambda e, u: "100%" in public_names(u, e)),
    ({"name": "o'brien"}, lambda e, u: "o'brien" in public_names(u, e)),
    (
        {"where": "etablissementSiege AND trancheEffectifsEtablissement = '11'"},
        lambda e, u: e["etablissementSiege"] == "true" and e["trancheEffectifsEtablissement"] == "11",
    ),
    (
        {"where": "year(dateCreationEtablissement) >= 2000 AND categorieJuridiqueUniteLegale = '1000'"},
        lambda e, u: (
            e["dateCreationEtablissement"][:4] >= "2000"
            and len(e["dateCreationEtablissement"]) == 10
            and u["categorieJuridiqueUniteLegale"] == "1000"
        ),
    ),
]


@pytest.mark.slow
@pytest.mark.parametrize("kwargs, pred", ET_CASES, ids=[str(k) for k, _ in ET_CASES])
def test_etablissement_filter_matches_raw_files(world, kwargs, pred):
    kwargs, pred = _with_sirens(world, kwargs, pred)
    got = exported(world, **kwargs)
    want = expected_et(world, pred, etat=kwargs.get("etat", "active"))
    assert got == want
    assert want, "the fixture should give at least one match for every filter"


@pytest.mark.parametrize("etat", ["closed", "all"])
def test_etat_filters(world, etat):
    got = exported(world, etat=etat)
    assert got == expected_et(world, lambda e, u: True, etat=etat)
    assert got


def test_nafrev1_codes_are_not_matched_by_nafrev2_prefixes(world):
    """The fixture has NAFRev1 '45.3F' units; a NAF rév. 2 prefix 45 must not return them."""
    got = exported(world, level="unite-legale", naf=["45"])
    rev1 = {u["siren"] for u in world["uls"].values() if u["activitePrincipaleUniteLegale"] == "45.3F"}
    assert rev1 and not (got & rev1)


def test_radius_search(world):
    lat, lon = 48.8566, 2.3522

    def near(e, u):
        ll = wgs84(
            e["coordonneeLambertAbscisseEtablissement"],
            e["coordonneeLambertOrdonneeEtablissement"],
            e["codeCommuneEtablissement"],
        )
        return ll is not None and haversine_km(lat, lon, *ll) <= 5.0

    want = expected_et(world, near)
    assert exported(world, near=(lat, lon), radius_km=5.0) == want
    assert want
    # Around a SIRET: the same search centred on an établissement's own coordinates.
    centre = next(
        e
        for e in world["ets"]
        if e["statutDiffusionEtablissement"] == "O"
        and e["coordonneeLambertAbscisseEtablissement"]
        and e["codeCommuneEtablissement"].startswith("69")
    )
    clat, clon = wgs84(
        centre["coordonneeLambertAbscisseEtablissement"],
        centre["coordonneeLambertOrdonneeEtablissement"],
        centre["codeCommuneEtablissement"],
    )

    def near_centre(e, u):
        ll = wgs84(
            e["coordonneeLambertAbscisseEtablissement"],
            e["coordonneeLambertOrdonneeEtablissement"],
            e["codeCommuneEtablissement"],
        )
        return ll is not None and haversine_km(clat, clon, *ll) <= 3.0

    got = exported(world, near_siret=centre["siret"], radius_km=3.0, etat="all")
    assert got == expected_et(world, near_centre, etat="all")
    assert centre["siret"] in got


def test_combined_filters(world):
    kwargs = {"naf": ["J", "56"], "departements": ["75", "92", "69"], "effectif_max": 49, "siege_only": False}
    want = expected_et(
        world,
        lambda e, u: (
            e["nomenclatureActivitePrincipaleEtablissement"] == "NAFRev2"
            and (
                NAF_SECTIONS.get(e["activitePrincipaleEtablissement"]) == "J"
                or e["activitePrincipaleEtablissement"].startswith("56")
            )
            and departement(e) in ("75", "92", "69")
            and band_overlaps(e["trancheEffectifsEtablissement"], 0, 49)
        ),
    )
    assert exported(world, **kwargs) == want and want
    both = exported(world, categories_juridiques=["5"], ess=True, created_from=date(1980, 1, 1), etat="all")
    assert both == expected_et(
        world,
        lambda e, u: (
            u["categorieJuridiqueUniteLegale"].startswith("5")
            and u["economieSocialeSolidaireUniteLegale"] == "O"
            and e["dateCreationEtablissement"] >= "1980-01-01"
        ),
        etat="all",
    )


def test_empty_result(world):
    assert exported(world, naf=["62.01Z"], naf25=["01.11Y"], departements=["2B"]) == set()
    out = world["out"] / "empty.csv"
    summary = export(world["con"], out, filters=Filters(departements=["2B"]), columns=["siret", "siren"])
    assert summary["rows"] == 0
    assert out.read_text() == "siret,siren\n"


# --- unité légale level -----------------------------------------------------------------------------

UL_CASES = [
    ({"naf": ["62.01Z"]}, lambda u, s: u["activitePrincipaleUniteLegale"] == "62.01Z"),
    (
        {"naf": ["M"]},
        lambda u, s: (
            u["nomenclatureActivitePrincipaleUniteLegale"] == "NAFRev2"
            and NAF_SECTIONS.get(u["activitePrincipaleUniteLegale"]) == "M"
        ),
    ),
    ({"naf25": ["62.10Y"]}, lambda u, s: u["activitePrincipaleNAF25UniteLegale"] == "62.10Y"),
    ({"tranches": ["53"]}, lambda u, s: u["trancheEffectifsUniteLegale"] == "53"),
    ({"effectif_min": 200}, lambda u, s: band_overlaps(u["trancheEffectifsUniteLegale"], 200, 2**31)),
    ({"departements": ["75"]}, lambda u, s: departement(s) == "75"),  # the siège's address
    (
        {"regions": ["11"], "categories_juridiques": ["5499"]},
        lambda u, s: region(s) == "11" and u["categorieJuridiqueUniteLegale"] == "5499",
    ),
    ({"created_from": date(2000, 1, 1)}, lambda u, s: u["dateCreationUniteLegale"] >= "2000-01-01"),
    ({"name": "noel"}, lambda u, s: "noel" in public_names(u, s)),
    (
        {"where": "categorieEntreprise = 'ETI' OR societeMissionUniteLegale = 'O'"},
        lambda u, s: u["categorieEntreprise"] == "ETI" or u["societeMissionUniteLegale"] == "O",
    ),
]


@pytest.mark.parametrize("kwargs, pred", UL_CASES, ids=[str(k) for k, _ in UL_CASES])
def test_unite_legale_filter_matches_raw_files(world, kwargs, pred):
    got = exported(world, level="unite-legale", **kwargs)
    want = expected_ul(world, pred)
    assert got == want
    assert want


def test_unite_legale_closed(world):
    assert exported(world, level="unite-legale", etat="closed") == expected_ul(
        world, lambda u, s: True, etat="closed"
    )


# --- user mistakes and injection attempts through the options ----------------------------------------


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"departements": ["75' OR '1'='1"]}, "invalid département"),
        ({"communes": ["75056); DROP TABLE x; --"]}, "invalid commune code"),
        ({"naf": ["62.01Z' OR 1=1 --"]}, "invalid NAF rév. 2 code"),
        ({"naf25": ["x"]}, "invalid NAF 2025 code"),
        ({"tranches": ["11 OR 1=1"]}, "invalid tranche"),
        ({"categories_juridiques": ["57%"]}, "invalid catégorie juridique"),
        ({"categories_entreprise": ["PME' --"]}, "invalid catégorie d'entreprise"),
        ({"codes_postaux": ["7500"]}, "invalid code postal"),
        ({"epcis": ["abc"]}, "invalid EPCI"),
        ({"regions": ["1; select"]}, "invalid région"),
        ({"radius_km": 5}, "--radius-km needs"),
        ({"near": (48.0, 2.0)}, "--radius-km"),
        ({"near_siret": "12345678901234", "radius_km": 1}, "not a valid SIRET"),
        ({"effectif_min": 50, "effectif_max": 10}, "headcount range"),
        ({"siege_only": True, "level": "unite-legale"}, "--siege-only"),
        ({"sirens": ["123456789"]}, "invalid SIREN"),
        ({"sirens": ["552100554' OR 1=1"]}, "invalid SIREN"),
        ({"where": "siret IN (SELECT siret FROM etablissements)"}, "subqueries"),
        ({"where": "read_csv('/etc/passwd') IS NULL"}, "read_csv"),
    ],
)
def test_bad_values_are_refused(world, kwargs, message):
    level = kwargs.pop("level", "etablissement")
    with pytest.raises(MirrorError) as info:
        export(world["con"], world["out"] / "x.csv", level=level, filters=Filters(**kwargs))
    assert message in str(info.value)
    assert not (world["out"] / "x.csv").exists()


def test_injection_in_free_text_is_only_data(world):
    """--name is a bound parameter: SQL in it is searched for literally and matches nothing."""
    assert exported(world, name="x' OR '1'='1") == set()
    assert exported(world, name="%%") == set()  # not a LIKE wildcard
    assert exported(world, name="_") == expected_et(world, lambda e, u: "_" in public_names(u, e))
    assert exported(world, name="') ; DROP VIEW etablissements; --") == set()
    assert world["con"].execute("SELECT count(*) FROM etablissements").fetchone()[0] == len(world["ets"])


# --- the same filters over the project's generated stock --------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("kwargs, pred", ET_CASES, ids=[str(k) for k, _ in ET_CASES])
def test_etablissement_filters_on_generated_stock(generated, kwargs, pred):
    kwargs, pred = _with_sirens(generated, kwargs, pred)
    assert exported(generated, **kwargs) == expected_et(generated, pred, etat=kwargs.get("etat", "active"))


@pytest.mark.parametrize("kwargs, pred", UL_CASES, ids=[str(k) for k, _ in UL_CASES])
def test_unite_legale_filters_on_generated_stock(generated, kwargs, pred):
    assert exported(generated, level="unite-legale", **kwargs) == expected_ul(generated, pred)


def test_combined_filters_on_generated_stock(generated):
    """NAF division + département + headcount band + active: the issue's benchmark query shape."""
    ets = [e for e in generated["ets"] if e["etatAdministratifEtablissement"] == "A"]
    # Pick the most frequent (division, département) so the expected set is not empty.
    pairs = {}
    for e in ets:
        if e["nomenclatureActivitePrincipaleEtablissement"] == "NAFRev2" and e["codeCommuneEtablissement"]:
            k = (e["activitePrincipaleEtablissement"][:2], departement(e))
            pairs[k] = pairs.get(k, 0) + 1
    (division, dep), _ = max(pairs.items(), key=lambda kv: kv[1])
    kwargs = {"naf": [division], "departements": [dep], "tranches": ["NN", "00", "01"]}
    want = expected_et(
        generated,
        lambda e, u: (
            e["nomenclatureActivitePrincipaleEtablissement"] == "NAFRev2"
            and e["activitePrincipaleEtablissement"].startswith(division)
            and departement(e) == dep
            and e["trancheEffectifsEtablissement"] in ("NN", "00", "01")
        ),
    )
    assert exported(generated, **kwargs) == want and want
    centre = next(
        e
        for e in ets
        if e["coordonneeLambertAbscisseEtablissement"] not in ("", "[ND]") and e["codeCommuneEtablissement"]
    )
    clat, clon = wgs84(
        centre["coordonneeLambertAbscisseEtablissement"],
        centre["coordonneeLambertOrdonneeEtablissement"],
        centre["codeCommuneEtablissement"],
    )

    def near(e, u):
        ll = wgs84(
            e["coordonneeLambertAbscisseEtablissement"],
            e["coordonneeLambertOrdonneeEtablissement"],
            e["codeCommuneEtablissement"],
        )
        return (
            e["statutDiffusionEtablissement"] != "P"
            and ll is not None
            and haversine_km(clat, clon, *ll) <= 20
        )

    got = exported(generated, near=(clat, clon), radius_km=20)
    assert got == expected_et(generated, near) and centre["siret"] in got
