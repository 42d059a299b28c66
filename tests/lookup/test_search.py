"""Company search (mirror.lookup.search_index + mirror.lookup.search) on real mirrors: INSEE-format stock zips
-> mirror.load.stock.load_snapshot -> catalog -> SQLite FTS5 index -> search."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pyarrow as pa
import pytest
from serve.test_documents import et, make_siren, make_siret, ul, write_stock

from mirror.catalog.build import connect
from mirror.core.errors import BadInput, MirrorError
from mirror.load.stock import load_snapshot
from mirror.lookup.search import match_expression, ranked, render, search, tokens
from mirror.lookup.search_index import create_schema, index_units

COMMUNES = {
    "35000": ("35238", "RENNES"),
    "75002": ("75102", "PARIS 2"),
    "69003": ("69383", "LYON 3E ARRONDISSEMENT"),
    "13001": ("13201", "MARSEILLE 1ER ARRONDISSEMENT"),
    "42000": ("42218", "SAINT-ETIENNE"),
    "67000": ("67482", "STRASBOURG"),
    "44000": ("44109", "NANTES"),
}


def siege(siren: str, cp: str, n: str = "0001", **kw) -> dict:
    code, commune = COMMUNES[cp]
    return et(
        make_siret(siren, n),
        etablissementSiege=True,
        codePostalEtablissement=cp,
        codeCommuneEtablissement=code,
        libelleCommuneEtablissement=commune,
        **kw,
    )


def second(siren: str, cp: str, n: str, **kw) -> dict:
    row = siege(siren, cp, n, **kw)
    row["etablissementSiege"] = False
    return row


S = {
    name: make_siren(f"{10000000 + i}")
    for i, name in enumerate(
        """
    ouest dupont dupont_fils martin epicerie otacos otacos2 stetienne alsace pp_p pm_p acme_a acme_c
    delta_small delta_big fournil_nom fournil_ens plomberie gone renamed person gamma_small gamma_big
    """.split()
    )
}
# The closed ACME has the smaller siren: it would come first on a siren tie-break alone.
S["acme_c"], S["acme_a"] = sorted([S["acme_c"], S["acme_a"]])
S["delta_small"], S["delta_big"] = sorted([S["delta_small"], S["delta_big"]])


def company(key: str, name: str, cp: str, naf: str = "10.71C", etat: str = "A", **kw) -> tuple[dict, dict]:
    siren = S[key]
    unit = ul(
        siren,
        "00017",
        categorieJuridiqueUniteLegale=kw.pop("cj", "5710"),
        denominationUniteLegale=name,
        activitePrincipaleUniteLegale=naf,
        nomenclatureActivitePrincipaleUniteLegale="NAFRev2",
        etatAdministratifUniteLegale=etat,
        **kw,
    )
    unit["nicSiegeUniteLegale"] = make_siret(siren, "0001")[9:]
    return unit, siege(siren, cp, etatAdministratifEtablissement="A" if etat == "A" else "F")


def base_rows() -> dict[str, list[dict]]:
    units, etabs = [], []
    for key, name, cp, kw in [
        ("ouest", "BOULANGERIE DE L'OUEST", "35000", {}),
        ("dupont", "BOULANGERIE DUPONT", "75002", {}),
        ("dupont_fils", "BOULANGERIE DUPONT ET FILS REUNIS", "69003", {"naf": "47.24Z", "etat": "C"}),
        ("martin", "BOULANGERIE PATISSERIE MARTIN", "44000", {}),
        ("epicerie", "ÉPICERIE DU MARCHÉ", "67000", {"naf": "47.11B"}),
        ("otacos", "O’TACOS", "42000", {"naf": "56.10C"}),
        ("otacos2", "O'TACOS LYON", "69003", {"naf": "56.10C"}),
        ("stetienne", "SAINT-ETIENNE AUTOMOBILES", "42000", {"naf": "45.11Z"}),
        ("alsace", "CAVE D'ALSACE", "67000", {"naf": "47.25Z"}),
        (
            "pm_p",
            "MEGACORP INDUSTRIES",
            "75002",
            {"naf": "62.01Z", "sigleUniteLegale": "MGCP", "statutDiffusionUniteLegale": "P"},
        ),
        ("acme_a", "ACME CONSEIL", "75002", {"naf": "70.22Z"}),
        ("acme_c", "ACME CONSEIL", "75002", {"naf": "70.22Z", "etat": "C"}),
        ("delta_small", "DELTA SERVICES", "44000", {"naf": "81.21Z"}),
        ("delta_big", "DELTA SERVICES", "44000", {"naf": "81.21Z"}),
        ("fournil_nom", "FOURNIL DU CENTRE", "35000", {}),
        ("fournil_ens", "SARL GAUTIER", "35000", {}),
        ("plomberie", "PLOMBERIE GENERALE", "13001", {"naf": "43.22A"}),
        ("gone", "BOUCHERIE DISPARUE", "13001", {"naf": "47.22Z"}),
        ("renamed", "ANCIEN NOM TRANSPORTS", "13001", {"naf": "49.41A"}),
        ("gamma_small", "GAMMA RESEAU", "75002", {"naf": "49.41A"}),
        ("gamma_big", "GAMMA RESEAU", "35000", {"naf": "49.41A"}),
    ]:
        unit, etab = company(key, name, cp, **kw)
        units.append(unit)
        etabs.append(etab)
    # An open secondary établissement in Marseille: filters match any (open) établissement.
    etabs.append(second(S["martin"], "13001", "0002"))
    # Two more open établissements for one of the DELTA SERVICES (a closed one does not count).
    etabs += [second(S["delta_big"], "44000", n) for n in ("0002", "0003")]
    etabs.append(second(S["delta_small"], "44000", "0002", etatAdministratifEtablissement="F"))
    # A network: the same name as GAMMA's other unit, open établissements in six more places.
    elsewhere = [cp for cp in sorted(COMMUNES) if cp != "35000"]
    etabs += [second(S["gamma_big"], cp, f"{n:04d}") for n, cp in enumerate(elsewhere, 2)]
    # The enseigne of an open établissement is searchable, weighing less than a name.
    for e in etabs:
        if e["siren"] == S["fournil_ens"]:
            e["enseigne1Etablissement"] = "LE FOURNIL DORE"
    # A diffusible natural person, and a partially diffusible one (raw names in the stock file: the masks are
    # the catalog's diffusibles views), with an unmasked dénomination and enseigne that must not be indexed.
    for key, statut, nom, prenom in (
        ("person", "O", "LEGRAND", "ODILE"),
        ("pp_p", "P", "ZORGLUB", "ALPHONSE"),
    ):
        unit = ul(
            S[key],
            "00017",
            statutDiffusionUniteLegale=statut,
            categorieJuridiqueUniteLegale="1000",
            nomUniteLegale=nom,
            prenom1UniteLegale=prenom,
            prenomUsuelUniteLegale=prenom,
            activitePrincipaleUniteLegale="96.02A",
            nomenclatureActivitePrincipaleUniteLegale="NAFRev2",
        )
        unit["nicSiegeUniteLegale"] = make_siret(S[key], "0001")[9:]
        if statut == "P":
            unit["denominationUniteLegale"] = "ZORGLUB COIFFURE"
        units.append(unit)
        etabs.append(
            siege(S[key], "69003", statutDiffusionEtablissement="O", enseigne1Etablissement=f"CHEZ {nom}")
        )
    return {"unites_legales": units, "etablissements": etabs}


def build_mirror(root: Path, rows: dict) -> Path:
    write_stock(root / "stock", rows)
    load_snapshot(root / "data", [root / "stock"], month="2026-10", force=True)
    return root / "data"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return build_mirror(tmp_path_factory.mktemp("search"), base_rows())


@pytest.fixture(scope="module")
def index(data_dir) -> Path:
    path = data_dir.parent / "lookup.sqlite"
    db = sqlite3.connect(path)
    con = connect(data_dir, read_only=True)
    try:
        create_schema(db)
        assert index_units(db, con) == len(base_rows()["unites_legales"])
        db.commit()
    finally:
        con.close()
        db.close()
    return path


def sirens(index, text, **kw) -> list[str]:
    return [r["siren"] for r in search(index, text, **kw).results]


@pytest.mark.slow
def test_accents_case_and_apostrophes(index):
    assert sirens(index, "epicerie") == [S["epicerie"]]
    assert sirens(index, "ÉPICERIE du marché") == [S["epicerie"]]
    assert sirens(index, "Epicérie") == [S["epicerie"]]
    curly, straight = sirens(index, "O’TACOS"), sirens(index, "O'TACOS")
    assert curly == straight and set(curly) == {S["otacos"], S["otacos2"]}
    assert sirens(index, "otacos") == curly  # joined as one word too


@pytest.mark.slow
def test_elisions_and_hyphens(index):
    assert sirens(index, "l'ouest") == sirens(index, "l ouest") == sirens(index, "L’OUEST") == [S["ouest"]]
    assert sirens(index, "boulangerie de l'ouest")[0] == S["ouest"]
    assert sirens(index, "d'alsace") == sirens(index, "alsace") == [S["alsace"]]
    for text in ("saint etienne", "saint-etienne", "saintetienne", "SAINT-ÉTIENNE automobiles"):
        assert sirens(index, text) == [S["stetienne"]], text


def test_prefixes_and_typos(index):
    boulangeries = {S["ouest"], S["dupont"], S["dupont_fils"], S["martin"]}
    assert set(sirens(index, "boul")) == boulangeries
    assert sirens(index, "pl") == [S["plomberie"]]
    assert set(sirens(index, "boulengerie")) == boulangeries  # substitution
    assert set(sirens(index, "boulangrie")) == boulangeries  # deletion
    assert set(sirens(index, "bouloangerie dupont")) == {S["dupont"], S["dupont_fils"]}  # insertion
    assert sirens(index, "plombreie generale") == [S["plomberie"]]  # transposition
    assert sirens(index, "boulxngerie patisserie martin") == [S["martin"]]


def test_identifiers_typed(index):
    pp = S["pp_p"]
    for text in (
        pp,
        f"{pp[:3]} {pp[3:6]} {pp[6:]}",
        make_siret(pp, "0001"),
        f" {make_siret(pp, '0001')[:9]} 00017 ",
    ):
        result = search(index, text)
        assert [r["siren"] for r in result.results] == [pp], text
    row = search(index, pp).results[0]
    assert row["nom_complet"] == "[ND]" and row["siret_siege"] == make_siret(pp, "0001")
    assert search(index, make_siren("99999998")).total == 0


def test_partially_diffusible_units(index):
    # The P natural person: no name, prénom, dénomination or enseigne finds it.
    for text in ("zorglub", "alphonse", "zorglub coiffure", "chez zorglub"):
        assert search(index, text).total == 0, text
    # ... while the diffusible one is found by name and enseigne.
    assert sirens(index, "odile legrand") == [S["person"]]
    assert sirens(index, "chez legrand") == [S["person"]]
    assert search(index, S["person"]).results[0]["nom_complet"] == "ODILE LEGRAND"
    # The P company: found by dénomination, not by its masked sigle.
    assert sirens(index, "megacorp") == [S["pm_p"]]
    assert search(index, "mgcp").total == 0
    row = search(index, "megacorp").results[0]
    assert row["nom_complet"] == "MEGACORP INDUSTRIES" and row["sigle"] == "[ND]"


def test_ranking(index):
    assert sirens(index, "boulangerie dupont") == [S["dupont"], S["dupont_fils"]]  # exact name first
    assert sirens(index, "acme conseil") == [S["acme_a"], S["acme_c"]]  # active first
    assert sirens(index, "delta services") == [S["delta_big"], S["delta_small"]]  # more open établissements
    big, small = search(index, "delta services").results
    assert (big["etablissements_ouverts"], small["etablissements_ouverts"]) == (3, 1)
    assert sirens(index, "fournil") == [S["fournil_nom"], S["fournil_ens"]]  # name above enseigne
    assert sirens(index, "gautier fournil") == [S["fournil_ens"]]  # one word in the name, one in an enseigne
    assert search(index, "fournil", limit=1).total == 2  # the enseigne match counted, not read
    scores = [r["score"] for r in search(index, "fournil").results]
    assert scores[0] > scores[1] > 0


def test_a_network_ranks_by_its_name_not_by_its_etablissements(index):
    """bm25 divides by the length of the row it scores: the ranking reads an index of the names alone, so
    the codes of a unit's établissements (filter terms) do not lower its relevance (over the whole row, the
    unit with most établissements of 1 M ranked 12,318th of 12,323 for a word of its name); the same
    relevance, then more open établissements first, filtered or not."""
    big, small = search(index, "gamma reseau").results
    assert (big["siren"], small["siren"]) == (S["gamma_big"], S["gamma_small"])
    assert (big["etablissements_ouverts"], small["etablissements_ouverts"]) == (7, 1)
    assert big["score"] == small["score"] > 0
    (filtered,) = search(index, "gamma reseau", departement=["13"]).results
    assert (filtered["siren"], filtered["score"]) == (S["gamma_big"], big["score"])
    assert sirens(index, "gam") == [S["gamma_big"], S["gamma_small"]]  # a prefix too


def test_filters(index):
    assert sirens(index, "boulangerie", departement=["35"]) == [S["ouest"]]
    assert set(sirens(index, "boulangerie", departement=["35", "75"])) == {S["ouest"], S["dupont"]}
    # Any open établissement: MARTIN's siège is in Nantes, a second établissement in Marseille.
    assert sirens(index, "boulangerie", departement=["13"]) == [S["martin"]]
    assert sirens(index, "boulangerie", code_postal=["13001"]) == [S["martin"]]
    assert sirens(index, "boulangerie", code_postal=["44000"]) == [S["martin"]]
    with_dot = sirens(index, "boulangerie", naf=["10.71C"])
    assert with_dot == sirens(index, "boulangerie", naf=["1071c"]) and S["dupont_fils"] not in with_dot
    assert len(with_dot) == 3
    assert sirens(index, "boulangerie", etat="C") == [S["dupont_fils"]]
    assert S["dupont_fils"] not in sirens(index, "boulangerie", etat="A")
    assert search(index, "boulangerie", etat="A").total == 3
    assert sirens(index, "acme", etat="C", code_postal="75002", departement=["75"]) == [S["acme_c"]]
    assert search(index, "boulangerie", departement=["2A"]).total == 0


def test_paging_is_deterministic(index):
    everything = search(index, "b", limit=100)  # one letter: an exact word, not a prefix
    assert everything.total == 0
    full = sirens(index, "bo", limit=100)
    assert len(full) == search(index, "bo").total >= 5
    pages = [sirens(index, "bo", limit=2, offset=o) for o in range(0, len(full), 2)]
    assert [s for page in pages for s in page] == full
    assert sirens(index, "bo", limit=100) == full
    assert search(index, "bo", offset=len(full)).results == []


@pytest.mark.parametrize(
    "text",
    [
        '"',
        '""',
        "'",
        "*",
        "^",
        "^boulangerie",
        "boul*",
        '"boulangerie" OR "acme"',
        "NEAR(boulangerie acme)",
        "boulangerie NOT dupont",
        "siren: 1",
        "nom : acme",
        "{nom enseignes} : acme",
        "etat:a",
        "((boulangerie",
        "boulangerie)",
        "- + ; -- /* DROP TABLE search_units",
        "…",
    ],
)
def test_injection_attempts(index, text):
    result = search(index, text, limit=100)
    assert result.total < 5, (text, result.total)  # never everything (22 units)
    assert result.total == len(result.results)


def test_injection_words_are_words(index):
    assert sirens(index, "boulangerie OR acme") == []  # OR is a word here: no unit has all three
    assert set(sirens(index, "^boulangerie dupont")) == {S["dupont"], S["dupont_fils"]}
    assert search(index, "!!! ... ’’’").total == 0


@pytest.mark.parametrize(
    "kw",
    [
        {"text": ""},
        {"text": "   "},
        {"text": None},
        {"text": "x" * 201},
        {"text": " ".join(["boulangerie"] * 21)},
        {"text": "a " * 21},
        {"limit": 0},
        {"limit": 101},
        {"limit": True},
        {"limit": "10"},
        {"offset": -1},
        {"offset": 995},
        {"etat": "X"},
        {"etat": "a"},
        {"departement": []},
        {"departement": ["7"]},
        {"departement": ["75 OR 1"]},
        {"departement": [75]},
        {"code_postal": ["7500"]},
        {"code_postal": ['75002" OR "']},
        {"naf": ["10.71"]},
        {"naf": ["1071CC"]},
    ],
)
def test_bad_input(index, kw):
    args = {"text": "boulangerie", **kw}
    with pytest.raises(BadInput) as exc:
        search(index, args.pop("text"), **args)
    assert "\n" not in str(exc.value)


def test_render(index):
    result = search(index, "boulangerie", limit=2)
    table = render(result, "table").splitlines()
    assert table[0].split()[:3] == ["siren", "nom", "état"]
    assert table[0].index("nom") == table[1].index("BOULANGERIE")  # aligned columns
    assert table[-1].startswith("4 résultat")
    body = json.loads(render(result, "json"))
    assert body["total"] == 4 and [r["siren"] for r in body["results"]] == [
        r["siren"] for r in result.results
    ]
    csv_lines = render(result, "csv").splitlines()
    assert csv_lines[0].startswith("siren,nom_complet,") and len(csv_lines) == 3
    with pytest.raises(BadInput):
        render(result, "xml")


def test_reader_imports_neither_duckdb_nor_pyarrow():
    code = "import sys, mirror.lookup.search; print(sorted(m for m in sys.modules if m in ('duckdb', 'pyarrow')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_incremental_reindex(tmp_path, index):
    path = tmp_path / "lookup.sqlite"
    path.write_bytes(index.read_bytes())
    rows = base_rows()
    for unit in rows["unites_legales"]:
        if unit["siren"] == S["renamed"]:
            unit["denominationUniteLegale"] = "NOUVEAU NOM LOGISTIQUE"
    rows["unites_legales"] = [u for u in rows["unites_legales"] if u["siren"] != S["gone"]]
    rows["etablissements"] = [e for e in rows["etablissements"] if e["siren"] != S["gone"]]
    data = build_mirror(tmp_path / "next", rows)
    assert sirens(path, "ancien transports") == [S["renamed"]] and sirens(path, "boucherie") == [S["gone"]]
    db = sqlite3.connect(path)
    con = connect(data, read_only=True)
    try:
        con.register("changed", pa.table({"siren": [S["renamed"], S["gone"]]}))
        assert index_units(db, con, sirens="changed") == 1
        db.commit()
    finally:
        con.close()
        db.close()
    assert search(path, "ancien transports").total == 0
    assert sirens(path, "nouveau nom logistique") == [S["renamed"]]
    assert sirens(path, "nouv") == [S["renamed"]]
    assert search(path, "boucherie").total == 0 and search(path, S["gone"]).total == 0
    assert sirens(path, "boulangerie dupont") == [S["dupont"], S["dupont_fils"]]  # the others untouched
    with sqlite3.connect(path) as check:
        assert check.execute("SELECT count(*) FROM search_units").fetchone()[0] == len(rows["unites_legales"])
        assert check.execute("SELECT count(*) FROM search_fts").fetchone()[0] == len(rows["unites_legales"])
    # Every table (the FTS rows, the units, the établissements and their R*Tree points) equals a full build.
    full = tmp_path / "full.sqlite"
    db = sqlite3.connect(full)
    con = connect(data, read_only=True)
    try:
        create_schema(db)
        index_units(db, con)
        db.commit()
    finally:
        con.close()
        db.close()
    tables = (
        "SELECT rowid, * FROM search_fts ORDER BY rowid",
        "SELECT * FROM search_units ORDER BY id",
        "SELECT * FROM search_etablissements ORDER BY id",
        "SELECT * FROM search_geo ORDER BY id",
        "SELECT * FROM search_exact ORDER BY key, id",
    )
    with sqlite3.connect(path) as a, sqlite3.connect(full) as b:
        for query in tables:
            assert a.execute(query).fetchall() == b.execute(query).fetchall(), query
        # The ranking indexes (contentless) hold the same terms at the same places, and the same row sizes.
        for table in ("search_nom", "search_enseignes"):
            terms = f"SELECT term, doc, col, offset FROM temp.{table} ORDER BY term, doc, col, offset"
            for db in (a, b):
                db.execute(f"CREATE VIRTUAL TABLE temp.{table} USING fts5vocab(main, {table}, instance)")
            assert a.execute(terms).fetchall() == b.execute(terms).fetchall() != []
            sizes = f"SELECT id, sz FROM {table}_docsize ORDER BY id"
            assert a.execute(sizes).fetchall() == b.execute(sizes).fetchall()
        assert a.execute("SELECT count(*) FROM search_exact").fetchone()[0] >= len(rows["unites_legales"]) - 1
        assert (
            b.execute("SELECT count(*) FROM search_etablissements").fetchone()[0]
            == len(rows["etablissements"]) - 1
        )


@pytest.mark.slow
def test_a_network_keeps_the_same_fifty_enseignes(tmp_path):
    """At most 50 enseignes per unit are indexed: the first 50 in sorted order, whatever order the
    établissements come in (an arbitrary 50 made a unit's text, and what found it, change between builds)."""
    rows = base_rows()
    names = [f"ENSEIGNE {n:03d}" for n in range(60)]
    extra = [
        second(S["gamma_big"], "35000", f"{n:04d}", enseigne1Etablissement=e) for n, e in enumerate(names, 20)
    ]
    rows["etablissements"] += extra[::-1]  # the stock file in the reverse order
    data = build_mirror(tmp_path, rows)
    db = sqlite3.connect(tmp_path / "lookup.sqlite")
    con = connect(data, read_only=True)
    try:
        create_schema(db)
        index_units(db, con)
        db.commit()
        (enseignes,) = db.execute(
            "SELECT enseignes FROM search_fts WHERE rowid = ?", [int(S["gamma_big"])]
        ).fetchone()
    finally:
        con.close()
        db.close()
    assert enseignes.split() == " ".join(sorted(names)[:50]).split()
    assert search(tmp_path / "lookup.sqlite", "enseigne 049").total == 1
    assert search(tmp_path / "lookup.sqlite", "enseigne 050").total == 0


def test_an_index_of_an_older_format_is_one_clear_error(tmp_path, index):
    """An index built before the ranking tables existed (format 5 had no search_nom, search_enseignes,
    search_exact) is refused with what to run, not a traceback from the first query."""
    for table in ("search_nom", "search_enseignes", "search_exact"):
        path = tmp_path / f"without-{table}.sqlite"
        path.write_bytes(index.read_bytes())
        with sqlite3.connect(path) as db:
            db.execute(f"DROP TABLE {table}")
        with pytest.raises(MirrorError, match=r"older version: run `mirror store`"):
            search(path, "boulangerie")


def test_failed_insert_stops_the_reader_thread(tmp_path, data_dir):
    db = sqlite3.connect(tmp_path / "lookup.sqlite")
    con = connect(data_dir, read_only=True)
    try:
        create_schema(db)
        db.execute(
            "CREATE TRIGGER boom BEFORE INSERT ON search_units BEGIN SELECT RAISE(ABORT, 'disk full'); END"
        )
        with pytest.raises(sqlite3.IntegrityError, match="disk full"):
            index_units(db, con)
        db.rollback()
        assert con.execute("SELECT count(*) FROM unites_legales").fetchone()[0] == len(S)  # still usable
        assert not [t for t in threading.enumerate() if t.name == "search-index"]
    finally:
        con.close()
        db.close()


# ------------------------------------------------------------------------------------------------
# The generated synthetic stock (3000 units)
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def synthetic(loaded_stock, tmp_path_factory):
    root = tmp_path_factory.mktemp("search-synthetic")
    path = root / "lookup.sqlite"
    con = connect(loaded_stock, read_only=True)
    db = sqlite3.connect(path)
    try:
        create_schema(db)
        count = index_units(db, con)
        db.commit()
        yield path, con, count
    finally:
        db.close()
        con.close()


@pytest.mark.slow
def test_synthetic_every_denomination_found(synthetic):
    path, con, count = synthetic
    assert count == con.execute("SELECT count(*) FROM unites_legales").fetchone()[0]
    known = con.execute(
        "SELECT siren, denominationUniteLegale FROM unites_legales_diffusibles "
        "WHERE denominationUniteLegale IS NOT NULL AND denominationUniteLegale <> '[ND]' ORDER BY siren"
    ).fetchall()
    same = {}
    for _siren, name in known:
        same[name] = same.get(name, 0) + 1
    sample = known[:: max(1, len(known) // 50)][:50]
    assert len(sample) == 50
    for siren, name in sample:
        found = sirens(path, name, limit=100)
        assert siren in found[: max(10, same[name])], (siren, name, found[:10])


def test_synthetic_pages_are_slices_of_the_window(synthetic):
    """search() reads only what its page needs (whole relevance buckets, the exact names by one key): every
    page is the slice of the whole window's order that ranked() gives the HTTP API, the total the same."""
    path, _con, _count = synthetic
    with sqlite3.connect(path) as db:
        db.execute("CREATE VIRTUAL TABLE temp.nom_terms USING fts5vocab(main, search_nom, row)")
        common = [t for (t,) in db.execute("SELECT term FROM temp.nom_terms ORDER BY doc DESC, term LIMIT 3")]
        (name,) = db.execute(
            "SELECT nom_complet FROM search_units WHERE nom_complet LIKE '% %' LIMIT 1"
        ).fetchone()
        (dep,) = db.execute(
            "SELECT departement FROM search_units GROUP BY 1 ORDER BY count(*) DESC"
        ).fetchone()
        cases = [(w, {}) for w in common] + [
            (common[0][:2], {}),
            (name, {}),
            (common[0], {"departement": [dep]}),
        ]
        for text, kw in cases:
            words = tokens(text)
            expression = match_expression(db, words, [("departement", kw["departement"])] if kw else [])
            total, window = ranked(db, expression, words)
            assert total >= len(window) > 0, text
            for size in (1, 3):  # windows the name matches fill: the total counted, not read
                assert ranked(db, expression, words, window=size, first=size)[0] == total, (text, size)
            for offset, limit in ((0, 1), (0, 20), (7, 13), (40, 60), (100, 100), (900, 100)):
                page = search(path, text, limit=limit, offset=offset, **kw)
                assert page.total == total, text
                assert [r["siren"] for r in page.results] == [
                    r[0] for r in window[offset : offset + limit]
                ], (
                    text,
                    offset,
                )


def test_synthetic_no_partially_diffusible_person_name_indexed(synthetic):
    path, con, _count = synthetic
    persons = con.execute(
        "SELECT siren, nomUniteLegale, nomUsageUniteLegale, prenom1UniteLegale FROM unites_legales "
        "WHERE statutDiffusionUniteLegale = 'P' AND (categorieJuridiqueUniteLegale IS NULL "
        "OR categorieJuridiqueUniteLegale = '1000' OR categorieJuridiqueUniteLegale LIKE '2%')"
    ).fetchall()
    assert len(persons) >= 10
    with sqlite3.connect(path) as db:
        for siren, *names in persons:
            nom, enseignes = db.execute(
                "SELECT nom, enseignes FROM search_fts WHERE rowid = ?", [int(siren)]
            ).fetchone()
            assert nom.strip() == "" and enseignes.strip() == "", siren
            for name in filter(None, names):
                if name != "[ND]":
                    hits = db.execute(
                        "SELECT count(*) FROM search_fts WHERE search_fts MATCH ? AND rowid = ?",
                        ['{nom enseignes} : "' + name.replace('"', '""') + '"', int(siren)],
                    ).fetchone()[0]
                    assert hits == 0, (siren, name)
            assert search(path, siren).results[0]["nom_complet"] == "[ND]"
