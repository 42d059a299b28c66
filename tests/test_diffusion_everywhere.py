"""One diffusion answer everywhere (README "Diffusion rules"): the same identifiers, one of each case (a
partially diffusible unit, an 'O' établissement of a 'P' unit, a 'P' établissement of an 'O' unit, a
doublon, an opted-out natural person, a closed unit), through the real `mirror get` (every format, with and
without --diffusibles), `mirror batch` (CSV at both levels, JSON Lines), `mirror export`, `mirror search`
and a real `mirror serve`, each asserting the one rule: an answer is diffusible when everything it carries
is ('O' unit; 'O' établissement of an 'O' unit), a doublon is a doublon, a closed unit is only closed."""

from __future__ import annotations

import csv
import importlib.util
import json
import re
import sys

import pytest
from conftest import REPO, run_mirror

from mirror.core.config import LOOKUP_STORE_ENV

pytestmark = pytest.mark.slow

ND = "[ND]"
PERSON_CJ = "(u.categorieJuridiqueUniteLegale = '1000' OR u.categorieJuridiqueUniteLegale LIKE '2%')"
NOT_DOUBLON = "u.siren NOT IN (SELECT sirenDoublon FROM doublons)"


def _http_fixtures():
    """tests/http/conftest.py (its real-server helper), loaded under its own name."""
    spec = importlib.util.spec_from_file_location("_http_conftest", REPO / "tests" / "http" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)  # its dataclasses look their module up there
    spec.loader.exec_module(sys.modules[spec.name])
    return sys.modules[spec.name]


@pytest.fixture(scope="module")
def cases(loaded_stock) -> dict:
    """One identifier per case, read from the session's generated mirror, with the raw values to compare."""
    from mirror.catalog.build import connect

    con = connect(loaded_stock)
    try:

        def one(sql: str) -> tuple:
            row = con.execute(sql + " ORDER BY 1 LIMIT 1").fetchone()
            assert row is not None, sql
            return row

        siege = (
            "JOIN etablissements s ON s.siren = u.siren AND s.siret = u.siren || u.nicSiegeUniteLegale "
            "AND s.statutDiffusionEtablissement = '{}'"
        )
        out = {
            "p_unit": one(
                f"SELECT u.siren, u.denominationUniteLegale FROM unites_legales u {siege.format('O')} "
                f"WHERE u.statutDiffusionUniteLegale = 'P' AND NOT {PERSON_CJ} AND {NOT_DOUBLON} "
                "AND u.denominationUniteLegale IS NOT NULL AND u.etatAdministratifUniteLegale = 'A'"
            ),
            "o_etab_of_p_unit": one(
                "SELECT e.siret, e.libelleVoieEtablissement, e.codePostalEtablissement FROM etablissements e "
                "JOIN unites_legales u USING (siren) WHERE e.statutDiffusionEtablissement = 'O' "
                f"AND u.statutDiffusionUniteLegale = 'P' AND {NOT_DOUBLON} AND e.libelleVoieEtablissement "
                "IS NOT NULL AND e.codePostalEtablissement IS NOT NULL"
            ),
            "p_etab": one(
                "SELECT e.siret FROM etablissements e JOIN unites_legales u USING (siren) "
                "WHERE e.statutDiffusionEtablissement = 'P' AND u.statutDiffusionUniteLegale = 'O' "
                f"AND {NOT_DOUBLON}"
            ),
            "doublon": one(
                "SELECT d.sirenDoublon, min(d.siren) FROM doublons d JOIN unites_legales u "
                "ON u.siren = d.sirenDoublon JOIN etablissements e ON e.siren = d.sirenDoublon GROUP BY 1"
            ),
            "person": one(
                f"SELECT u.siren FROM unites_legales u {siege.format('P')} "
                f"WHERE u.statutDiffusionUniteLegale = 'P' AND {PERSON_CJ} AND {NOT_DOUBLON}"
            ),
            "closed": one(
                f"SELECT u.siren FROM unites_legales u {siege.format('O')} "
                f"WHERE u.statutDiffusionUniteLegale = 'O' AND u.etatAdministratifUniteLegale = 'C' "
                f"AND {NOT_DOUBLON} AND NOT EXISTS (SELECT 1 FROM etablissements x WHERE x.siren = u.siren "
                "AND x.etatAdministratifEtablissement = 'A')"
            ),
        }
        sieges = dict(
            con.execute(
                "SELECT siren, siren || nicSiegeUniteLegale FROM unites_legales WHERE siren IN (?, ?, ?, ?, ?)",
                [out["p_unit"][0], out["person"][0], out["closed"][0], out["doublon"][0],
                 out["o_etab_of_p_unit"][0][:9]],
            ).fetchall()
        )  # fmt: skip
        doublon_siret = one(f"SELECT siret FROM etablissements WHERE siren = '{out['doublon'][0]}'")[0]
    finally:
        con.close()
    return {
        "raw": out,
        "ids": {k: v[0] for k, v in out.items()},
        "sieges": sieges,
        "doublon_siret": doublon_siret,
        "replacing": out["doublon"][1],
    }


# The rule, written out per case: (identifier kind, answer of a lookup): "451" not diffusible, "301"
# doublon, "200" diffusible. An 'O' établissement of a 'P' unit carries its unit: not diffusible.
LOOKUP = {
    "p_unit": "451",
    "o_etab_of_p_unit": "451",
    "p_etab": "451",
    "doublon": "301",
    "person": "451",
    "closed": "200",
}
BATCH_STATUS = {"451": "non_diffusible", "301": "doublon", "200": "ok"}
EXIT = {"451": 4, "301": 5, "200": 0}


def _kind(ident: str) -> str:
    return "siret" if len(ident) == 14 else "siren"


@pytest.mark.parametrize("fmt", ["v2", "v3", "v4"])
def test_get_every_format_with_and_without_diffusibles(loaded_stock, cases, fmt):
    env = {LOOKUP_STORE_ENV: "on"}  # v3/v4 from the lookup store, v2 from the views
    for case, ident in cases["ids"].items():
        want = LOOKUP[case]
        r = run_mirror("get", ident, "--format", fmt, "--compact", data_dir=loaded_stock, env=env)
        assert r.returncode == EXIT[want], (case, fmt, r.stdout, r.stderr)
        body = json.loads(r.stdout)
        if want == "451":
            assert "non diffusable" in json.dumps(body, ensure_ascii=False)
            assert "--non-diffusables" in r.stderr and "Traceback" not in r.stderr, r.stderr
            protected = run_mirror("get", ident, "--format", fmt, "--non-diffusables", data_dir=loaded_stock)
            assert protected.returncode == 0, (case, protected.stderr)
        elif want == "301":
            assert cases["replacing"] in json.dumps(body)
        else:
            etat = (body.get("data") or body.get("entreprise"))["etat_administratif"]
            assert (etat["value"] if isinstance(etat, dict) else etat) == "C", body
        # --diffusibles: the v3/v4 /diffusibles/ document of anything found; v2 has none, and says so.
        r = run_mirror("get", ident, "--format", fmt, "--diffusibles", data_dir=loaded_stock, env=env)
        if fmt == "v2":
            assert r.returncode == 2 and "--non-diffusables" in r.stderr and r.stdout == "", r.stderr
            continue
        assert r.returncode == (5 if want == "301" else 0), (case, r.stderr)
        if want == "451":
            data = json.loads(r.stdout)["data"]
            assert ND in json.dumps(data), (case, data)
            partial = data["status_diffusion"] == "partiellement_diffusible"
            nested = data.get("unite_legale", {}).get("status_diffusion") == "partiellement_diffusible"
            assert partial or nested, (case, data)


def test_get_o_etablissement_of_p_unit_keeps_its_address_and_masks_its_unit(loaded_stock, cases):
    siret, voie, code_postal = cases["raw"]["o_etab_of_p_unit"]
    r = run_mirror("get", siret, "--format", "v3", "--diffusibles", data_dir=loaded_stock)
    data = json.loads(r.stdout)["data"]
    assert data["status_diffusion"] == "diffusible"
    assert (data["adresse"]["libelle_voie"], data["adresse"]["code_postal"]) == (voie, code_postal)
    assert data["unite_legale"]["status_diffusion"] == "partiellement_diffusible"
    assert ND in json.dumps(data["unite_legale"])


def _summary(stderr: str) -> dict:
    """The counts of `mirror batch`'s summary line: 'N rows written to F (ok 1, non_diffusible 2, ...)'."""
    found = re.search(r"\(([^()]*)\)\s*$", stderr.strip())
    assert found, stderr
    return {k: int(v.replace(",", "")) for k, v in (p.rsplit(" ", 1) for p in found.group(1).split(", "))}


def _batch(data_dir, tmp_path, name, ids, *args):
    src = tmp_path / f"{name}.txt"
    src.write_text("\n".join(ids) + "\n", encoding="utf-8")
    out = tmp_path / name
    r = run_mirror("batch", str(src), "-o", str(out), "-q", *args, data_dir=data_dir)
    assert r.returncode == 0, r.stderr
    return out, _summary(r.stderr)


def test_batch_csv_both_levels_and_jsonl_give_the_lookup_answer(loaded_stock, cases, tmp_path):
    ids = cases["ids"]
    sirens = [ids["p_unit"], ids["person"], ids["closed"], ids["doublon"]]
    sirets = [ids["o_etab_of_p_unit"], ids["p_etab"], cases["doublon_siret"]] + [
        cases["sieges"][s] for s in (ids["p_unit"], ids["person"], ids["closed"])
    ]
    case_of = {v: k for k, v in ids.items()}
    case_of.update({cases["sieges"][ids[k]]: k for k in ("p_unit", "person", "closed")})
    case_of[cases["doublon_siret"]] = "doublon"

    # A SIREN list: CSV at unit level and JSON Lines answer about the units; statuses = get's answers.
    out, counts = _batch(loaded_stock, tmp_path, "units.csv", sirens)
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert [r["status"] for r in rows] == [BATCH_STATUS[LOOKUP[case_of[s]]] for s in sirens]
    _out, jsonl_counts = _batch(loaded_stock, tmp_path, "units.jsonl", sirens)
    assert jsonl_counts == counts and counts["non_diffusible"] == 2 and counts["doublon"] == 1, counts

    # A SIRET list: CSV at établissement level and JSON Lines answer about the établissements.
    out, counts = _batch(loaded_stock, tmp_path, "etabs.csv", sirets, "--level", "etablissement")
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert [r["status"] for r in rows] == [BATCH_STATUS[LOOKUP[case_of[s]]] for s in sirets]
    jsonl, jsonl_counts = _batch(loaded_stock, tmp_path, "etabs.jsonl", sirets)
    assert jsonl_counts == counts and counts["non_diffusible"] == 4 and counts["ok"] == 1, counts
    lines = [json.loads(line) for line in jsonl.read_text(encoding="utf-8").splitlines()]
    for siret, line in zip(sirets, lines, strict=True):
        if LOOKUP[case_of[siret]] == "301":
            assert line["errors"][0]["meta"]["siren"] == cases["replacing"]
        elif LOOKUP[case_of[siret]] == "451":  # the /diffusibles/ document, its masks in place
            assert ND in json.dumps(line["data"]), siret

    # Level établissement, SIRENs: their sièges, the same answers as the sièges' SIRETs.
    out, _counts = _batch(loaded_stock, tmp_path, "sieges.csv", sirens, "--level", "etablissement")
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert [r["status"] for r in rows] == [BATCH_STATUS[LOOKUP[case_of[s]]] for s in sirens]

    # Level unite-legale, SIRETs: their units. The 'O' établissement of a 'P' unit: its unit is P; the 'P'
    # établissement of an 'O' unit: its unit is diffusible.
    out, _counts = _batch(
        loaded_stock, tmp_path, "units-of-sirets.csv", [ids["o_etab_of_p_unit"], ids["p_etab"]]
    )
    assert [r["status"] for r in csv.DictReader(out.open(encoding="utf-8"))] == ["non_diffusible", "ok"]

    # --include-non-diffusible shows what the open files hold; the status still names the diffusion.
    _out, raw_counts = _batch(loaded_stock, tmp_path, "raw.jsonl", sirets, "--include-non-diffusible")
    assert raw_counts == counts


def test_export_masks_per_field_and_keeps_every_row(loaded_stock, cases, tmp_path):
    ids = cases["ids"]
    sirens = [ids["p_unit"], ids["o_etab_of_p_unit"][:9], ids["p_etab"][:9], ids["doublon"], ids["person"]]
    sirens.append(ids["closed"])
    columns = (
        "siret,siren,statutDiffusionEtablissement,statutDiffusionUniteLegale,libelleVoieEtablissement,"
        "codePostalEtablissement,latitude,sigleUniteLegale,nomUniteLegale,etatAdministratifUniteLegale"
    )
    out = tmp_path / "export.csv"
    args = [a for s in sirens for a in ("--siren", s)]
    r = run_mirror("export", *args, "--all", "--columns", columns, "-o", str(out), data_dir=loaded_stock)
    assert r.returncode == 0, r.stderr
    rows = {row["siret"]: row for row in csv.DictReader(out.open(encoding="utf-8"))}
    assert {row["siren"] for row in rows.values()} == set(sirens)  # doublon and closed rows included
    for row in rows.values():
        if row["statutDiffusionEtablissement"] == "P":
            assert row["codePostalEtablissement"] == ND and row["latitude"] == "", row
        if row["statutDiffusionUniteLegale"] == "P":
            assert row["sigleUniteLegale"] == ND, row
    siret, voie, code_postal = cases["raw"]["o_etab_of_p_unit"]
    assert (rows[siret]["libelleVoieEtablissement"], rows[siret]["codePostalEtablissement"]) == (
        voie,
        code_postal,
    )
    assert rows[cases["sieges"][ids["person"]]]["nomUniteLegale"] == ND
    # A closed unit is left out by default (active établissements), like any closed unit.
    r = run_mirror("export", "--siren", ids["closed"], "--count", data_dir=loaded_stock)
    assert r.returncode == 0 and r.stdout.strip().replace(",", "") == "0", (r.stdout, r.stderr)
    # JSON Lines: the /diffusibles/ documents; the doublon has none (301), counted.
    out = tmp_path / "export.jsonl"
    r = run_mirror("export", *args, "--all", "-o", str(out), data_dir=loaded_stock)
    assert r.returncode == 0 and "HTTP 301" in r.stderr, r.stderr
    docs = {json.loads(x)["data"]["siret"]: json.loads(x)["data"] for x in out.read_text().splitlines()}
    assert set(docs) == {s for s, row in rows.items() if row["siren"] != ids["doublon"]}
    assert docs[ids["p_etab"]]["adresse"]["code_postal"] == ND
    assert docs[siret]["adresse"]["code_postal"] == code_postal


def test_search_finds_by_identifier_with_the_masks(loaded_stock, cases):
    ids = cases["ids"]
    env = {LOOKUP_STORE_ENV: "on"}
    found = {}
    for case in ("p_unit", "person", "closed", "doublon"):
        r = run_mirror("search", ids[case], "--format", "json", data_dir=loaded_stock, env=env)
        assert r.returncode == 0, r.stderr
        (found[case],) = json.loads(r.stdout)["results"]
        assert found[case]["siren"] == ids[case]
    assert found["p_unit"]["sigle"] == ND
    assert found["person"]["nom_complet"] == ND
    assert found["closed"]["etat_administratif"] == "C" and found["doublon"]["etat_administratif"] == "C"
    # A legal person's dénomination stays public: found by it. The [ND] masks are no search key.
    r = run_mirror("search", cases["raw"]["p_unit"][1], "--format", "json", "--limit", "100",
                   data_dir=loaded_stock, env=env)  # fmt: skip
    assert ids["p_unit"] in {x["siren"] for x in json.loads(r.stdout)["results"]}
    r = run_mirror("search", "ND", "--format", "json", "--limit", "100", data_dir=loaded_stock, env=env)
    assert ids["person"] not in {x["siren"] for x in json.loads(r.stdout)["results"]}


def test_serve_answers_the_same(loaded_stock, cases, tmp_path):
    http = _http_fixtures()
    ids = cases["ids"]
    with http.running_server(loaded_stock, store=True, log_dir=tmp_path) as srv:
        for case, ident in ids.items():
            want = int(LOOKUP[case])
            kind = _kind(ident)
            resource = "unites_legales" if kind == "siren" else "etablissements"
            for fmt in ("v3", "v4"):
                r = srv.get(f"/{fmt}/insee/sirene/{resource}/{ident}", http.CONTEXT)
                assert r.status_code == want, (case, fmt, r.text)
                r = srv.get(f"/{fmt}/insee/sirene/{resource}/diffusibles/{ident}", http.CONTEXT)
                assert r.status_code == (301 if want == 301 else 200), (case, fmt, r.text)
            v2 = "entreprises" if kind == "siren" else "etablissements"
            r = srv.get(f"/v2/{v2}/{ident}", http.CONTEXT)
            assert r.status_code == want, (case, "v2", r.text)
            r = srv.get(f"/v2/{v2}/{ident}", {**http.CONTEXT, "non_diffusables": "true"})
            assert r.status_code == (301 if want == 301 else 200), (case, "v2 non_diffusables", r.text)
        for case in ("p_unit", "person", "closed", "doublon"):
            r = srv.get("/search", {"q": ids[case]})
            assert [x["siren"] for x in r.json()["results"]] == [ids[case]], (case, r.text)
        # A legal person's dénomination stays public: /search finds the 'P' unit by it, masked.
        r = srv.get("/search", {"q": cases["raw"]["p_unit"][1], "per_page": 100})
        (hit,) = [x for x in r.json()["results"] if x["siren"] == ids["p_unit"]]
        assert hit["sigle"] in (None, ND), hit


def test_readme_has_the_one_diffusion_table():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("### Diffusion rules", 1)[1].split("\n#", 1)[0]
    tables = [line for line in section.splitlines() if line.startswith("| rule |")]
    assert tables == [
        "| rule | `mirror get` | `mirror batch` | `mirror export` | `mirror search` | `mirror serve` |"
    ]
    rows = [line for line in section.splitlines() if line.startswith("| **")]
    assert len(rows) >= 6 and all(line.count(" | ") == 5 for line in rows), rows
    for source in ("insee.fr", "entreprise.api.gouv.fr", "A123-96", "legifrance.gouv.fr", "cnil.fr"):
        assert source in section, source
