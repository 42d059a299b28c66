"""recherche-entreprises /search and /near_point (mirror.http.recherche), called in-process on a real mirror:
generated INSEE-format stock -> mirror.load.stock.load_snapshot (catalog + lookup store + search index).

The answers are checked against the mirror's other readers: `mirror export` (mirror.export.exporter) with
the same filters must select the same SIRENs, and `mirror search` (mirror.lookup.search) must rank the same
text query the same way."""

from __future__ import annotations

import csv
import itertools
import json
import math
import sqlite3
from pathlib import Path

import pytest

from mirror.catalog.build import connect
from mirror.export.exporter import export
from mirror.export.filters import Filters
from mirror.http import recherche
from mirror.http.recherche import near_point_response, search_response
from mirror.lookup.search import search
from mirror.lookup.store import open_store

pytestmark = pytest.mark.lookup_store
SIEGE_OR_OPEN = "etablissementSiege OR etatAdministratifEtablissement = 'A'"


@pytest.fixture(scope="module")
def data(loaded_stock) -> Path:
    """The run's mirror of 3,000 generated units, with its lookup store (read only)."""
    mirror = loaded_stock
    store = open_store(mirror)
    assert store is not None and store.begin()
    store.end()
    return mirror


@pytest.fixture(scope="module")
def sql(data):
    con = connect(data)

    def run(query: str, params=()):
        return con.execute(query, list(params)).fetchall()

    yield run
    con.close()


def ok(fn, data: Path, params: list[tuple[str, str]]) -> dict:
    status, body = fn(data, params, "http://127.0.0.1:8000")
    assert status == 200, body
    json.dumps(body)  # serialisable as it is
    return body


def every_result(fn, data: Path, params: list[tuple[str, str]], per_page: int = 1000) -> list[dict]:
    """Every result of a query, following next_cursor; asserts that no SIREN comes twice."""
    out, cursor = [], None
    for _ in range(10_000):
        page = [*params, ("per_page", str(per_page))] + ([("cursor", cursor)] if cursor else [])
        body = ok(fn, data, page)
        out += body["results"]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    sirens = [r["siren"] for r in out]
    assert len(sirens) == len(set(sirens)), "a SIREN came twice"
    assert len(sirens) == body["total_results"]
    return out


def export_sirens(data: Path, tmp_path: Path, level: str, **filters) -> set[str]:
    out = tmp_path / f"export-{len(list(tmp_path.iterdir()))}.csv"
    con = connect(data)
    try:
        export(con, out, level=level, filters=Filters(**filters), columns=["siren"])
    finally:
        con.close()
    with open(out, encoding="utf-8", newline="") as fh:
        return {row["siren"] for row in csv.DictReader(fh)}


def most_common(sql, column: str, view: str = "unites_legales", where: str = "true") -> str:
    return sql(
        f"SELECT {column} FROM {view} WHERE {column} IS NOT NULL AND {where} "
        f"GROUP BY ALL ORDER BY count(*) DESC, 1 LIMIT 1"
    )[0][0]


def common_word(sql) -> str:
    """The most frequent word (5 letters or more) of the diffusible units' dénominations."""
    return sql(
        "SELECT w FROM (SELECT unnest(string_split(lower(denominationUniteLegale), ' ')) AS w "
        "FROM unites_legales WHERE statutDiffusionUniteLegale = 'O') WHERE length(w) >= 5 "
        "GROUP BY w ORDER BY count(*) DESC, w LIMIT 1"
    )[0][0]


def haversine(lat1, lon1, lat2, lon2) -> float:
    p = math.pi / 180
    a = (
        math.sin((lat2 - lat1) * p / 2) ** 2
        + math.cos(lat1 * p) * math.cos(lat2 * p) * math.sin((lon2 - lon1) * p / 2) ** 2
    )
    return 2 * 6371.0088 * math.asin(math.sqrt(a))


# ------------------------------------------------------------------------------------------------


def test_filters_select_what_mirror_export_selects(data, sql, tmp_path):
    """Each filter and combination: the same SIRENs as `mirror export` with the same filters (unit-level
    filters at --level unite-legale; address filters: the siège or an open établissement)."""
    naf = most_common(sql, "activitePrincipaleUniteLegale", where="etatAdministratifUniteLegale = 'A'")
    got = {
        r["siren"]
        for r in every_result(
            search_response, data, [("activite_principale", naf), ("etat_administratif", "A")]
        )
    }
    assert got and got == export_sirens(data, tmp_path, "unite-legale", naf=[naf], etat="active")

    section, tranche, cat = sql(
        "SELECT n.section, trancheEffectifsUniteLegale, categorieEntreprise FROM unites_legales u "
        "JOIN ref_naf_rev2 n ON n.code = u.activitePrincipaleUniteLegale "
        "WHERE trancheEffectifsUniteLegale IS NOT NULL AND categorieEntreprise IS NOT NULL "
        "GROUP BY ALL ORDER BY count(*) DESC LIMIT 1"
    )[0]
    params = [
        ("section_activite_principale", section),
        ("tranche_effectif_salarie", tranche),
        ("categorie_entreprise", cat),
    ]
    got = {r["siren"] for r in every_result(search_response, data, params)}
    expected = export_sirens(
        data,
        tmp_path,
        "unite-legale",
        naf=[section],
        tranches=[tranche],
        categories_entreprise=[cat],
        etat="all",
    )
    assert got and got == expected

    cj = most_common(sql, "categorieJuridiqueUniteLegale")
    closed = {
        r["siren"]
        for r in every_result(search_response, data, [("nature_juridique", cj), ("etat_administratif", "C")])
    }
    assert closed == export_sirens(data, tmp_path, "unite-legale", categories_juridiques=[cj], etat="closed")

    ess = {r["siren"] for r in every_result(search_response, data, [("est_ess", "true")])}
    assert ess and ess == export_sirens(data, tmp_path, "unite-legale", ess=True, etat="all")
    not_ess = {r["siren"] for r in every_result(search_response, data, [("est_ess", "false")])}
    assert not_ess and not (ess & not_ess)
    mission = {r["siren"] for r in every_result(search_response, data, [("est_societe_mission", "true")])}
    assert mission == export_sirens(data, tmp_path, "unite-legale", societe_mission=True, etat="all")
    ei = ok(search_response, data, [("est_entrepreneur_individuel", "true"), ("per_page", "50")])["results"]
    assert ei
    for r in ei:
        assert r["nature_juridique"] == "1000" and r["complements"]["est_entrepreneur_individuel"] is True

    dep = most_common(sql, "departement", "etablissements")
    cp = sql(
        "SELECT codePostalEtablissement FROM etablissements e JOIN unites_legales u USING (siren) "
        "WHERE activitePrincipaleUniteLegale = ? AND etatAdministratifEtablissement = 'A' "
        "GROUP BY ALL ORDER BY count(*) DESC, 1 LIMIT 1",
        [naf],
    )[0][0]
    region = most_common(sql, "region", "etablissements")
    epci = most_common(sql, "epci", "etablissements")
    for params, filters in (
        ([("departement", dep)], {"departements": [dep]}),
        ([("code_postal", cp), ("activite_principale", naf)], {"codes_postaux": [cp]}),
        ([("region", region)], {"regions": [region]}),
        ([("epci", epci)], {"epcis": [epci]}),
    ):
        got = {r["siren"] for r in every_result(search_response, data, params)}
        where = SIEGE_OR_OPEN
        if any(name == "activite_principale" for name, _ in params):
            where += f" AND activitePrincipaleUniteLegale = '{naf}'"  # the unit's activity, as the API's
        expected = export_sirens(data, tmp_path, "etablissement", etat="all", where=f"({where})", **filters)
        assert got and got == expected, params


def test_text_query_ranks_as_mirror_search_and_filters_as_export(data, sql, tmp_path):
    word = common_word(sql)
    body = ok(search_response, data, [("q", word), ("per_page", "20")])
    cli = search(data, word, limit=20)
    assert [r["siren"] for r in body["results"]] == [r["siren"] for r in cli.results]
    assert body["total_results"] == cli.total > 20
    assert body["total_pages"] == math.ceil(cli.total / 20) and body["page"] == 1 and body["per_page"] == 20
    # With a filter: a subset, each result meeting it on its siège or a matching établissement.
    dep = most_common(sql, "departement", "etablissements")
    filtered = every_result(search_response, data, [("q", word), ("departement", dep)])
    assert {r["siren"] for r in filtered} <= {
        r["siren"] for r in every_result(search_response, data, [("q", word)])
    }
    for r in filtered:
        assert r["matching_etablissements"] and all(
            e["siret"][:9] == r["siren"] for e in r["matching_etablissements"]
        )


def test_paging_and_cursor_cover_every_result_exactly_once(data, sql, monkeypatch):
    # Filter-only (SIREN order) and text (the re-ranked window, then the rest by SIREN: a small window here).
    monkeypatch.setattr(recherche, "WINDOW", 40)
    for params in (
        [("etat_administratif", "A")],
        [("q", "sas"), ("etat_administratif", "A")],
        [("q", "ser")],
    ):
        total = ok(search_response, data, [*params, ("per_page", "1")])["total_results"]
        for per_page in (7, 1000):
            got = every_result(search_response, data, params, per_page)
            assert len(got) == total
        # Page mode gives the same sequence as the cursor.
        by_cursor = [r["siren"] for r in every_result(search_response, data, params, 9)]
        by_page = []
        for page in itertools.count(1):
            body = ok(search_response, data, [*params, ("per_page", "9"), ("page", str(page))])
            by_page += [r["siren"] for r in body["results"]]
            if page >= body["total_pages"]:
                break
        assert by_page == by_cursor, params


def test_near_point_sorted_by_distance_within_radius(data, sql, tmp_path):
    lat, lon = sql(
        "SELECT latitude, longitude FROM etablissements_diffusibles WHERE latitude IS NOT NULL "
        "AND etatAdministratifEtablissement = 'A' ORDER BY siret LIMIT 1"
    )[0]
    radius = 50.0
    results = every_result(
        near_point_response,
        data,
        [("lat", repr(lat)), ("long", repr(lon)), ("radius", str(radius))],
        per_page=3,
    )
    assert results
    distances = [r["distance"] for r in results]
    assert distances == sorted(distances) and distances[-1] <= radius
    for r in results:
        assert r["statut_diffusion"] == "O"
        nearest = min(
            haversine(lat, lon, float(e["latitude"]), float(e["longitude"]))
            for e in r["matching_etablissements"]
        )
        assert nearest == pytest.approx(r["distance"], abs=1e-3)
        assert all(e["distance"] <= radius for e in r["matching_etablissements"])
    # The units of `mirror export --near` (siège or open établissements; units diffusible 'O').
    expected = export_sirens(
        data,
        tmp_path,
        "etablissement",
        etat="all",
        near=(lat, lon),
        radius_km=radius,
        where=f"({SIEGE_OR_OPEN})",
    )
    o_units = {s for (s,) in sql("SELECT siren FROM unites_legales WHERE statutDiffusionUniteLegale = 'O'")}
    assert {r["siren"] for r in results} == expected & o_units
    # A unit-level filter narrows it.
    naf = results[0]["activite_principale"]
    narrowed = every_result(
        near_point_response,
        data,
        [("lat", repr(lat)), ("long", repr(lon)), ("radius", "50"), ("activite_principale", naf)],
    )
    assert narrowed and all(r["activite_principale"] == naf for r in narrowed)


def test_code_commune_of_paris_lyon_marseille_covers_their_arrondissements(data, sql, tmp_path):
    for city, prefix in (("75056", "751"), ("69123", "6938"), ("13055", "132")):
        arrondissements = [
            c
            for (c,) in sql(
                "SELECT DISTINCT codeCommuneEtablissement FROM etablissements WHERE starts_with(codeCommuneEtablissement, ?)",
                [prefix],
            )
        ]
        got = every_result(search_response, data, [("code_commune", city)])
        expected = (
            export_sirens(
                data,
                tmp_path,
                "etablissement",
                etat="all",
                communes=arrondissements,
                where=f"({SIEGE_OR_OPEN})",
            )
            if arrondissements
            else set()
        )
        assert {r["siren"] for r in got} == expected, city
        if city == "75056":
            assert got, "the generated stock has établissements in Paris"
            for r in got:
                assert any(e["commune"].startswith(prefix) for e in r["matching_etablissements"])


def test_partially_diffusible_units_keep_their_masks_and_persons_are_not_found_by_name(data, sql):
    pm = sql(
        "SELECT siren FROM unites_legales WHERE statutDiffusionUniteLegale = 'P' "
        "AND categorieJuridiqueUniteLegale NOT LIKE '1%' AND categorieJuridiqueUniteLegale NOT LIKE '2%' "
        "ORDER BY siren LIMIT 1"
    )[0][0]
    (r,) = ok(search_response, data, [("q", pm)])["results"]
    assert r["statut_diffusion"] == "P"
    siege = r["siege"]
    assert siege["latitude"] is None and siege["longitude"] is None and siege["coordonnees"] is None
    for key in ("numero_voie", "libelle_voie", "code_postal", "adresse"):
        assert siege[key] in ("[ND]", None), key
    assert ok(search_response, data, [("q", pm)])["results"][0]["sigle"] in ("[ND]", None)

    persons = sql(
        "SELECT siren, nomUniteLegale, prenom1UniteLegale FROM unites_legales WHERE statutDiffusionUniteLegale = 'P' "
        "AND categorieJuridiqueUniteLegale = '1000' AND nomUniteLegale IS NOT NULL ORDER BY siren LIMIT 5"
    )
    assert persons
    for siren, nom, prenom in persons:
        for q in (nom, f"{prenom} {nom}"):
            found = every_result(search_response, data, [("q", q)])
            assert siren not in {x["siren"] for x in found}, q
        (direct,) = ok(search_response, data, [("q", siren)])["results"]  # by its SIREN only, masked
        assert direct["nom_complet"] == "[ND]" and direct["nom_raison_sociale"] in (None, "[ND]")
        assert direct["matching_etablissements"] == []
    # near_point shows diffusible units only.
    assert all(
        r["statut_diffusion"] == "O"
        for r in ok(near_point_response, data, [("lat", "46.6"), ("long", "2.4"), ("radius", "50")])[
            "results"
        ]
    )


def test_direct_lookup_ignores_filters_and_result_shape(data, sql):
    siren, siret = sql(
        "SELECT siren, siret FROM etablissements WHERE NOT etablissementSiege AND etatAdministratifEtablissement = 'A' "
        "AND statutDiffusionEtablissement = 'O' ORDER BY siret LIMIT 1"
    )[0]
    body = ok(search_response, data, [("q", siren), ("departement", "2A"), ("est_ess", "true")])
    assert [r["siren"] for r in body["results"]] == [siren] and body["total_results"] == 1
    (r,) = ok(search_response, data, [("q", f"{siret[:9]} {siret[9:]}")])["results"]
    assert [e["siret"] for e in r["matching_etablissements"]] == [siret]
    closed = sql(
        "SELECT siret FROM etablissements WHERE NOT etablissementSiege AND etatAdministratifEtablissement = 'F' "
        "ORDER BY siret LIMIT 1"
    )[0][0]
    (c,) = ok(search_response, data, [("q", closed)])["results"]
    assert [(e["siret"], e["etat_administratif"]) for e in c["matching_etablissements"]] == [(closed, "F")]
    assert list(body) == ["results", "total_results", "page", "per_page", "total_pages", "next_cursor"]
    assert list(r) == [
        "siren", "nom_complet", "nom_raison_sociale", "sigle", "nombre_etablissements", "nombre_etablissements_ouverts",
        "siege", "activite_principale", "activite_principale_naf25", "categorie_entreprise", "caractere_employeur",
        "annee_categorie_entreprise", "date_creation", "date_fermeture", "date_mise_a_jour", "date_mise_a_jour_insee",
        "date_mise_a_jour_rne", "dirigeants", "etat_administratif", "nature_juridique", "section_activite_principale",
        "tranche_effectif_salarie", "annee_tranche_effectif_salarie", "statut_diffusion", "matching_etablissements",
        "finances", "complements",
    ]  # fmt: skip
    assert r["dirigeants"] == [] and r["finances"] is None and r["siege"]["est_siege"] is True
    assert (
        r["siege"]["siret"]
        == sql("SELECT siren || nicSiegeUniteLegale FROM unites_legales WHERE siren = ?", [siren])[0][0]
    )
    assert (
        r["nombre_etablissements"]
        == sql("SELECT count(*) FROM etablissements WHERE siren = ?", [siren])[0][0]
    )
    assert "ancien_siege" not in r["siege"] and "numero_voie" not in r["matching_etablissements"][0]
    minimal = ok(search_response, data, [("q", siren), ("minimal", "true"), ("include", "siege,score")])[
        "results"
    ][0]
    assert "siege" in minimal and "matching_etablissements" not in minimal and "complements" not in minimal


@pytest.mark.parametrize(
    ("fn", "params", "message"),
    [
        (search_response, [], "au moins un paramètre"),
        (search_response, [("q", "ab")], "3 caractères minimum"),
        (search_response, [("q", "boulangerie"), ("page", "0")], "`page` entre `1` et `1000`"),
        (search_response, [("q", "boulangerie"), ("page", "x")], "`page` entier"),
        (search_response, [("q", "boulangerie"), ("per_page", "1001")], "`per_page` entre `1` et `1000`"),
        (search_response, [("q", "boulangerie"), ("page", "11"), ("per_page", "1000")], "restreint à 10 000"),
        (
            search_response,
            [("q", "boulangerie"), ("limite_matching_etablissements", "101")],
            "limite_matching",
        ),
        (search_response, [("activite_principale", "99.99Z")], "`activite_principale` est non valide"),
        (search_response, [("section_activite_principale", "Z")], "`section_activite_principale`"),
        (search_response, [("tranche_effectif_salarie", "99")], "`tranche_effectif_salarie`"),
        (search_response, [("categorie_entreprise", "TPE")], "`categorie_entreprise`"),
        (search_response, [("etat_administratif", "F")], "['A', 'C']"),
        (search_response, [("nature_juridique", "9999")], "`nature_juridique`"),
        (search_response, [("code_postal", "7500")], "code_postal est non valide"),
        (search_response, [("code_commune", "7505A")], "code_commune est non valide"),
        (search_response, [("departement", "100")], "`departement`"),
        (search_response, [("region", "99")], "`region`"),
        (search_response, [("epci", "12345")], "epci est non valide"),
        (search_response, [("departement", "75,")], "vide"),
        (search_response, [("est_ess", "oui")], "'true' ou 'false'"),
        (search_response, [("q", "boulangerie"), ("include", "siege")], "minimal=True"),
        (
            search_response,
            [("q", "boulangerie"), ("minimal", "true"), ("include", "tva2")],
            "champ à inclure",
        ),
        (search_response, [("q", "boulangerie"), ("lat", "48")], "géographique"),
        (search_response, [("q", "boulangerie"), ("est_bio", "true")], "`est_bio` n'est pas disponible"),
        (search_response, [("q", "boulangerie"), ("q", "patisserie")], "qu'une fois"),
        (search_response, [("q", "boulangerie"), ("cursor", "zz")], "`cursor` est non valide"),
        (search_response, [("q", "boulangerie"), ("cursor", "s0"), ("page", "2")], "ensemble"),
        (search_response, [("q", "x" * 201)], "200 caractères"),
        (near_point_response, [], "'lat' et 'long' sont obligatoires"),
        (near_point_response, [("lat", "48")], "'lat' et 'long' sont obligatoires"),
        (near_point_response, [("lat", "91"), ("long", "2")], "`lat` entre `-90` et `90`"),
        (near_point_response, [("lat", "nan"), ("long", "2")], "`lat` flottant"),
        (near_point_response, [("lat", "48"), ("long", "181")], "`long` entre"),
        (
            near_point_response,
            [("lat", "48"), ("long", "2"), ("radius", "0")],
            "`radius` entre `0.001` et `50`",
        ),
        (near_point_response, [("lat", "48"), ("long", "2"), ("radius", "inf")], "`radius` flottant"),
        (
            near_point_response,
            [("lat", "48"), ("long", "2"), ("q", "boulangerie")],
            "'terms' n'est pas autorisé",
        ),
        (near_point_response, [("lat", "48"), ("long", "2"), ("cursor", "s0")], "`cursor` est non valide"),
    ],
)
def test_every_bad_parameter_is_a_400_with_the_error_body(data, fn, params, message):
    status, body = fn(data, params, "http://127.0.0.1:8000")
    assert status == 400 and list(body) == ["erreur"] and message in body["erreur"], body


def test_unknown_parameters_are_ignored_as_the_real_api_does_and_no_index_is_a_503(data, tmp_path):
    a = ok(search_response, data, [("q", "marche"), ("utm_source", "x")])
    assert a == ok(search_response, data, [("q", "marche")])
    status, body = search_response(tmp_path, [("q", "marche")], "")
    assert status == 503 and "erreur" in body


def test_a_new_state_of_the_store_is_never_answered_from_the_cache(data, sql, tmp_path):
    """The ranked heads and decoded documents are kept per state (the store's token): a change published
    in one commit with a new token (what an update day does) is seen by the next request."""
    copy = tmp_path / "mirror"
    copy.mkdir()
    for name in ("lookup.sqlite", "state.json"):
        (copy / name).write_bytes((data / name).read_bytes())
    params = [("q", common_word(sql)), ("per_page", "5")]
    before = ok(search_response, copy, params)
    assert ok(search_response, copy, params) == before  # answered from the cache
    first = before["results"][0]["siren"]
    db = sqlite3.connect(copy / "lookup.sqlite")
    with db:  # the unit gone from every table of the index, as an update day removes it
        for table, columns, held in (
            ("search_nom", "nom", "true"),
            ("search_enseignes", "nom, enseignes", "trim(enseignes) <> ''"),
        ):
            db.execute(
                f"INSERT INTO {table}({table}, rowid, {columns}) "
                f"SELECT 'delete', rowid, {columns} FROM search_fts WHERE rowid = ? AND {held}",
                [int(first)],
            )
        db.execute("DELETE FROM search_exact WHERE id = ?", [int(first)])
        db.execute("DELETE FROM search_fts WHERE rowid = ?", [int(first)])
        db.execute("DELETE FROM search_units WHERE id = ?", [int(first)])
        (token,) = db.execute("SELECT value FROM lookup_meta WHERE name = 'token'").fetchone()
        token = json.loads(token)
        token["delta_seq"] = (token.get("delta_seq") or 0) + 1
        db.execute(
            "UPDATE lookup_meta SET value = ? WHERE name = 'token'", [json.dumps(token, sort_keys=True)]
        )
    db.close()
    after = ok(search_response, copy, params)
    assert after["total_results"] == before["total_results"] - 1
    assert first not in {r["siren"] for r in after["results"]}


def test_several_address_filters_are_met_by_one_etablissement(data, sql, tmp_path):
    """departement + code_postal: the units one of whose établissements (siège or open) is in both, as
    `mirror export` (and search-api's nested query) selects, not a unit with one in each."""
    siren, dep_a, cp_b = sql(
        "SELECT a.siren, a.departement, b.codePostalEtablissement FROM etablissements a "
        "JOIN etablissements b ON a.siren = b.siren AND a.departement <> b.departement "
        "WHERE (a.etablissementSiege OR a.etatAdministratifEtablissement = 'A') "
        "AND (b.etablissementSiege OR b.etatAdministratifEtablissement = 'A') "
        "AND b.codePostalEtablissement IS NOT NULL AND b.departement IS NOT NULL "
        "AND NOT starts_with(b.codePostalEtablissement, a.departement) ORDER BY a.siret, b.siret LIMIT 1"
    )[0]
    mixed = [("departement", dep_a), ("code_postal", cp_b)]
    got = {r["siren"] for r in every_result(search_response, data, mixed)}
    expected = export_sirens(
        data,
        tmp_path,
        "etablissement",
        etat="all",
        departements=[dep_a],
        codes_postaux=[cp_b],
        where=f"({SIEGE_OR_OPEN})",
    )
    assert siren not in got and got == expected
    dep_b = sql("SELECT departement FROM etablissements WHERE codePostalEtablissement = ? LIMIT 1", [cp_b])[
        0
    ][0]
    same = [("departement", dep_b), ("code_postal", cp_b), ("q", common_word(sql)[:3])]
    got = every_result(search_response, data, same, per_page=3)
    expected_all = export_sirens(
        data,
        tmp_path,
        "etablissement",
        etat="all",
        departements=[dep_b],
        codes_postaux=[cp_b],
        where=f"({SIEGE_OR_OPEN})",
    )
    assert {r["siren"] for r in got} <= expected_all
    assert siren in {
        r["siren"]
        for r in every_result(search_response, data, [("departement", dep_b), ("code_postal", cp_b)])
    }
