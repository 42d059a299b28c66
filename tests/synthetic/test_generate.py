"""The synthetic stock generator: headers, CSV dialect, identifiers, invariants, distributions, quirks,
[ND] masking, history consistency, determinism, Parquet variant and the `mirror generate` command.

Expected headers are copied from the headers of INSEE's published stock files (not derived from
mirror.core.schema, so that a schema error is caught here)."""

from __future__ import annotations

import csv
import hashlib
import io
import re
import zipfile
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import run_mirror
from pyproj import Transformer

from mirror.core.identifiers import is_valid_siren, is_valid_siret, luhn_ok
from mirror.core.schema import MASKABLE_COLUMNS
from mirror.core.sql import REF_DIR
from mirror.synthetic.generate import generate_stock
from mirror.synthetic.generate.refdata import DEP_POINTS

REF = REF_DIR

# ---- reference headers (section 2 of the reference, current layout) -------------------------------
UL_CURRENT = (
    "siren,statutDiffusionUniteLegale,unitePurgeeUniteLegale,dateCreationUniteLegale,sigleUniteLegale,"
    "sexeUniteLegale,prenom1UniteLegale,prenom2UniteLegale,prenom3UniteLegale,prenom4UniteLegale,"
    "prenomUsuelUniteLegale,pseudonymeUniteLegale,identifiantAssociationUniteLegale,trancheEffectifsUniteLegale,"
    "anneeEffectifsUniteLegale,dateDernierTraitementUniteLegale,nombrePeriodesUniteLegale,categorieEntreprise,"
    "anneeCategorieEntreprise,dateDebut,etatAdministratifUniteLegale,nomUniteLegale,nomUsageUniteLegale,"
    "denominationUniteLegale,denominationUsuelle1UniteLegale,denominationUsuelle2UniteLegale,"
    "denominationUsuelle3UniteLegale,categorieJuridiqueUniteLegale,activitePrincipaleUniteLegale,"
    "nomenclatureActivitePrincipaleUniteLegale,nicSiegeUniteLegale,economieSocialeSolidaireUniteLegale,"
    "societeMissionUniteLegale,caractereEmployeurUniteLegale,activitePrincipaleNAF25UniteLegale"
)
ET_CURRENT = (
    "siren,nic,siret,statutDiffusionEtablissement,dateCreationEtablissement,trancheEffectifsEtablissement,"
    "anneeEffectifsEtablissement,activitePrincipaleRegistreMetiersEtablissement,dateDernierTraitementEtablissement,"
    "etablissementSiege,nombrePeriodesEtablissement,complementAdresseEtablissement,numeroVoieEtablissement,"
    "indiceRepetitionEtablissement,dernierNumeroVoieEtablissement,indiceRepetitionDernierNumeroVoieEtablissement,"
    "typeVoieEtablissement,libelleVoieEtablissement,codePostalEtablissement,libelleCommuneEtablissement,"
    "libelleCommuneEtrangerEtablissement,distributionSpecialeEtablissement,codeCommuneEtablissement,"
    "codeCedexEtablissement,libelleCedexEtablissement,codePaysEtrangerEtablissement,"
    "libellePaysEtrangerEtablissement,identifiantAdresseEtablissement,coordonneeLambertAbscisseEtablissement,"
    "coordonneeLambertOrdonneeEtablissement,complementAdresse2Etablissement,numeroVoie2Etablissement,"
    "indiceRepetition2Etablissement,typeVoie2Etablissement,libelleVoie2Etablissement,codePostal2Etablissement,"
    "libelleCommune2Etablissement,libelleCommuneEtranger2Etablissement,distributionSpeciale2Etablissement,"
    "codeCommune2Etablissement,codeCedex2Etablissement,libelleCedex2Etablissement,codePaysEtranger2Etablissement,"
    "libellePaysEtranger2Etablissement,dateDebut,etatAdministratifEtablissement,enseigne1Etablissement,"
    "enseigne2Etablissement,enseigne3Etablissement,denominationUsuelleEtablissement,"
    "activitePrincipaleEtablissement,nomenclatureActivitePrincipaleEtablissement,caractereEmployeurEtablissement,"
    "activitePrincipaleNAF25Etablissement"
)
ULH = (
    "siren,dateFin,dateDebut,etatAdministratifUniteLegale,changementEtatAdministratifUniteLegale,nomUniteLegale,"
    "changementNomUniteLegale,nomUsageUniteLegale,changementNomUsageUniteLegale,denominationUniteLegale,"
    "changementDenominationUniteLegale,denominationUsuelle1UniteLegale,denominationUsuelle2UniteLegale,"
    "denominationUsuelle3UniteLegale,changementDenominationUsuelleUniteLegale,categorieJuridiqueUniteLegale,"
    "changementCategorieJuridiqueUniteLegale,activitePrincipaleUniteLegale,"
    "nomenclatureActivitePrincipaleUniteLegale,changementActivitePrincipaleUniteLegale,nicSiegeUniteLegale,"
    "changementNicSiegeUniteLegale,economieSocialeSolidaireUniteLegale,"
    "changementEconomieSocialeSolidaireUniteLegale,societeMissionUniteLegale,changementSocieteMissionUniteLegale,"
    "caractereEmployeurUniteLegale,changementCaractereEmployeurUniteLegale"
)
EH = (
    "siren,nic,siret,dateFin,dateDebut,etatAdministratifEtablissement,changementEtatAdministratifEtablissement,"
    "enseigne1Etablissement,enseigne2Etablissement,enseigne3Etablissement,changementEnseigneEtablissement,"
    "denominationUsuelleEtablissement,changementDenominationUsuelleEtablissement,activitePrincipaleEtablissement,"
    "nomenclatureActivitePrincipaleEtablissement,changementActivitePrincipaleEtablissement,"
    "caractereEmployeurEtablissement,changementCaractereEmployeurEtablissement"
)
LIENS = (
    "siretEtablissementPredecesseur,siretEtablissementSuccesseur,dateLienSuccession,transfertSiege,"
    "continuiteEconomique,dateDernierTraitementLienSuccession"
)
DOUBLONS = "siren,sirenDoublon,dateDernierTraitementDoublon"

# Section 2 history: 3.11 = current minus the NAF25 column; 3.9 = 3.11 minus the 3.11 additions.
ET_311_ADDED = {
    "dernierNumeroVoieEtablissement",
    "indiceRepetitionDernierNumeroVoieEtablissement",
    "identifiantAdresseEtablissement",
    "coordonneeLambertAbscisseEtablissement",
    "coordonneeLambertOrdonneeEtablissement",
}


def _without(header: str, drop: set[str]) -> list[str]:
    return [c for c in header.split(",") if c not in drop]


EXPECTED = {
    "current": {
        "StockUniteLegale": UL_CURRENT.split(","),
        "StockEtablissement": ET_CURRENT.split(","),
        "StockUniteLegaleHistorique": ULH.split(","),
        "StockEtablissementHistorique": EH.split(","),
        "StockEtablissementLiensSuccession": LIENS.split(","),
        "StockDoublons": DOUBLONS.split(","),
    },
    "3.11": {
        "StockUniteLegale": _without(UL_CURRENT, {"activitePrincipaleNAF25UniteLegale"}),
        "StockEtablissement": _without(ET_CURRENT, {"activitePrincipaleNAF25Etablissement"}),
        "StockUniteLegaleHistorique": ULH.split(","),
        "StockEtablissementHistorique": EH.split(","),
        "StockEtablissementLiensSuccession": LIENS.split(","),
        "StockDoublons": DOUBLONS.split(","),
    },
    "3.9": {
        "StockUniteLegale": _without(
            UL_CURRENT, {"activitePrincipaleNAF25UniteLegale", "societeMissionUniteLegale"}
        ),
        "StockEtablissement": _without(ET_CURRENT, ET_311_ADDED | {"activitePrincipaleNAF25Etablissement"}),
        # [inferred in mirror.core.schema] the société à mission columns of the history arrived with 3.11
        "StockUniteLegaleHistorique": _without(
            ULH, {"societeMissionUniteLegale", "changementSocieteMissionUniteLegale"}
        ),
        "StockEtablissementHistorique": EH.split(","),
        "StockEtablissementLiensSuccession": LIENS.split(","),
    },
}
COUNTS = {"current": (35, 54), "3.11": (34, 53), "3.9": (33, 48)}
NAMES = list(EXPECTED["current"])


def _member_text(path: Path) -> str:
    with zipfile.ZipFile(path) as zf:
        assert zf.namelist() == [path.name.replace(".zip", ".csv")]
        return zf.read(zf.namelist()[0]).decode("utf-8")


def _rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(_member_text(path))))


@pytest.fixture(scope="module")
def layouts(tmp_path_factory) -> dict[str, Path]:
    out = {}
    for layout in ("3.9", "3.11"):
        d = tmp_path_factory.mktemp(f"layout{layout}")
        generate_stock(
            d, month="2024-02" if layout == "3.9" else "2025-06", scale=1200, seed=3, layout=layout
        )
        out[layout] = d
    return out


@pytest.fixture(scope="module")
def stock(stock_dir) -> dict[str, list[dict[str, str]]]:
    return {name: _rows(stock_dir / f"{name}_utf8.zip") for name in NAMES}


def _connect(d: Path, names=NAMES):
    c = duckdb.connect()
    for name in names:
        c.execute(
            f"CREATE TABLE {name} AS SELECT * FROM read_csv(?, header=true, all_varchar=true, quote='\"', escape='\"')",
            [_extract(d, name)],
        )
    return c


@pytest.fixture(scope="module")
def con(stock_dir):
    c = _connect(stock_dir)
    yield c
    c.close()


def _extract(d: Path, name: str) -> str:
    target = d / "csv" / f"{name}_utf8.csv"
    if not target.exists():
        target.parent.mkdir(exist_ok=True)
        with zipfile.ZipFile(d / f"{name}_utf8.zip") as zf:
            target.write_bytes(zf.read(f"{name}_utf8.csv"))
    return str(target)


# ---- headers and dialect -------------------------------------------------------------------------


def test_headers_current_layout(stock_dir):
    for name in NAMES:
        header = _member_text(stock_dir / f"{name}_utf8.zip").split("\n", 1)[0].split(",")
        assert header == EXPECTED["current"][name], name
    assert len(EXPECTED["current"]["StockUniteLegale"]) == 35
    assert len(EXPECTED["current"]["StockEtablissement"]) == 54


@pytest.mark.parametrize("layout", ["3.9", "3.11"])
def test_headers_older_layouts(layouts, layout):
    d = layouts[layout]
    written = sorted(p.name for p in d.glob("*.zip"))
    assert written == sorted(f"{n}_utf8.zip" for n in EXPECTED[layout])  # no StockDoublons in 3.9
    for name, expected in EXPECTED[layout].items():
        header = _member_text(d / f"{name}_utf8.zip").split("\n", 1)[0].split(",")
        assert header == expected, name
    ul, et = COUNTS[layout]
    assert (
        len(EXPECTED[layout]["StockUniteLegale"]) == ul and len(EXPECTED[layout]["StockEtablissement"]) == et
    )


def test_csv_dialect_is_insee(stock_dir):
    """LF, UTF-8, quotes only where needed (identical to a QUOTE_MINIMAL re-serialisation), `\\,` kept."""
    seen_backslash = seen_quote = False
    for name in NAMES:
        text = _member_text(stock_dir / f"{name}_utf8.zip")
        assert "\r" not in text and text.endswith("\n")
        rows = list(csv.reader(io.StringIO(text)))
        width = len(rows[0])
        assert all(len(r) == width for r in rows)
        buf = io.StringIO()
        csv.writer(buf, quoting=csv.QUOTE_MINIMAL, lineterminator="\n").writerows(rows)
        assert buf.getvalue() == text, name
        assert "NULL" not in text and ",True," not in text and ",FALSE," not in text
        seen_backslash |= "\\," in text
        seen_quote |= '""' in text
    assert seen_backslash and seen_quote


def test_duckdb_reads_with_types_and_no_rejects(stock_dir):
    c = duckdb.connect()
    expected_types = {
        "StockUniteLegale": {"dateCreationUniteLegale": "DATE", "dateDernierTraitementUniteLegale": "TIMESTAMP",
                             "unitePurgeeUniteLegale": "BOOLEAN", "nombrePeriodesUniteLegale": "BIGINT",
                             "siren": "VARCHAR", "nicSiegeUniteLegale": "VARCHAR"},
        "StockEtablissement": {"dateCreationEtablissement": "DATE", "etablissementSiege": "BOOLEAN",
                               "dateDernierTraitementEtablissement": "TIMESTAMP", "dateDebut": "DATE",
                               "nic": "VARCHAR", "siret": "VARCHAR", "coordonneeLambertAbscisseEtablissement": "DOUBLE"},
        "StockUniteLegaleHistorique": {"dateFin": "DATE", "changementNicSiegeUniteLegale": "BOOLEAN"},
        "StockEtablissementHistorique": {"dateDebut": "DATE", "changementEtatAdministratifEtablissement": "BOOLEAN"},
        "StockEtablissementLiensSuccession": {"transfertSiege": "BOOLEAN", "dateLienSuccession": "DATE",
                                              "dateDernierTraitementLienSuccession": "TIMESTAMP"},
        "StockDoublons": {"dateDernierTraitementDoublon": "TIMESTAMP"},
    }  # fmt: skip
    for name in NAMES:
        path = _extract(stock_dir, name)
        lines = _member_text(stock_dir / f"{name}_utf8.zip").count("\n") - 1
        for all_varchar in (False, True):
            rel = c.sql(
                f"SELECT * FROM read_csv('{path}', header=true, all_varchar={all_varchar}, quote='\"', escape='\"', "
                "store_rejects=true, sample_size=-1)"
            )
            types = dict(zip(rel.columns, [str(t) for t in rel.types], strict=True))
            assert len(rel.fetchall()) == lines
            assert c.sql("SELECT count(*) FROM reject_errors").fetchone()[0] == 0
            if all_varchar:
                assert set(types.values()) == {"VARCHAR"}
            else:
                for col, typ in expected_types[name].items():
                    if name == "StockEtablissement" and col.startswith("coordonnee"):
                        continue  # holds [ND] on P rows: sniffed as VARCHAR, as in the real file
                    assert types[col] == typ, (name, col, types[col])


# ---- identifiers and invariants ------------------------------------------------------------------


def test_identifiers_valid_sorted_and_la_poste(stock):
    ul, et = stock["StockUniteLegale"], stock["StockEtablissement"]
    sirens = [r["siren"] for r in ul]
    assert sirens == sorted(sirens) and len(set(sirens)) == len(sirens)
    assert all(is_valid_siren(s) for s in sirens)
    keys = [(r["siren"], r["nic"]) for r in et]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    for r in et:
        assert re.fullmatch(r"\d{5}", r["nic"]) and r["siret"] == r["siren"] + r["nic"]
        assert is_valid_siret(r["siret"]), r["siret"]
    poste = [r["siret"] for r in et if r["siren"] == "356000000"]
    assert "356000000" in sirens and len(poste) >= 10
    non_luhn = [s for s in poste if not luhn_ok(s)]
    assert len(non_luhn) >= 5 and all(sum(map(int, s)) % 5 == 0 for s in non_luhn)
    assert not any(not luhn_ok(r["siret"]) for r in et if r["siren"] != "356000000")


def test_siege_and_state_invariants(stock):
    ul, et = stock["StockUniteLegale"], stock["StockEtablissement"]
    by_siren: dict[str, list[dict]] = {}
    for r in et:
        by_siren.setdefault(r["siren"], []).append(r)
    assert set(by_siren) == {r["siren"] for r in ul}
    for u in ul:
        rows = by_siren[u["siren"]]
        sieges = [r for r in rows if r["etablissementSiege"] == "true"]
        assert len(sieges) == 1 and sieges[0]["nic"] == u["nicSiegeUniteLegale"]
        assert all(r["etablissementSiege"] in ("true", "false") for r in rows)
        if u["etatAdministratifUniteLegale"] == "C":
            assert all(r["etatAdministratifEtablissement"] == "F" for r in rows)
        if any(r["etatAdministratifEtablissement"] == "A" for r in rows):
            assert u["etatAdministratifUniteLegale"] == "A"
    sizes = sorted(len(v) for v in by_siren.values())
    assert sizes[-1] >= 20  # a long tail (La Poste and big companies)


def test_distributions(stock):
    ul, et = stock["StockUniteLegale"], stock["StockEtablissement"]
    n, m = len(ul), len(et)
    assert 1.30 <= m / n <= 1.65
    assert abs(sum(r["categorieJuridiqueUniteLegale"] == "1000" for r in ul) / n - 0.56) < 0.03
    assert abs(sum(r["etatAdministratifEtablissement"] == "A" for r in et) / m - 0.38) < 0.04
    codes = {r["code"] for r in csv.DictReader(open(REF / "categories_juridiques.csv", encoding="utf-8"))}
    cj = [r["categorieJuridiqueUniteLegale"] for r in ul]
    assert set(cj) <= codes
    top = sorted({c: cj.count(c) for c in set(cj) - {"1000"}}.items(), key=lambda kv: -kv[1])[:4]
    assert {"5499", "5710"} <= {c for c, _ in top}
    for u in ul:
        person = u["categorieJuridiqueUniteLegale"] == "1000"
        assert bool(u["nomUniteLegale"]) == person and bool(u["denominationUniteLegale"]) == (not person)
        assert bool(u["sexeUniteLegale"]) == person and (person or not u["prenom1UniteLegale"])
        assert u["trancheEffectifsUniteLegale"] in {"", "NN", "00", "01", "02", "03", "11", "12", "21", "22", "31",
                                                    "32", "41", "42", "51", "52", "53"}  # fmt: skip
        assert (u["anneeEffectifsUniteLegale"] == "") == (u["trancheEffectifsUniteLegale"] in ("", "NN"))
        assert u["categorieEntreprise"] in ("PME", "ETI", "GE", "")
        assert u["caractereEmployeurUniteLegale"] == ""  # obsolete since 3.11
    naf2 = {r["code"] for r in csv.DictReader(open(REF / "naf_rev2.csv", encoding="utf-8"))}
    naf25 = {r["code"] for r in csv.DictReader(open(REF / "naf_2025.csv", encoding="utf-8"))}
    acts = [
        r["activitePrincipaleEtablissement"]
        for r in et
        if r["nomenclatureActivitePrincipaleEtablissement"] == "NAFRev2"
    ]
    assert set(acts) <= naf2 and len(set(acts)) > 150
    assert max(acts.count(a) for a in set(acts)) > 5 * len(acts) / len(naf2)  # skewed
    for rows, state, col, active in ((ul, "etatAdministratifUniteLegale", "activitePrincipaleNAF25UniteLegale", "A"),
                                     (et, "etatAdministratifEtablissement", "activitePrincipaleNAF25Etablissement", "A")):  # fmt: skip
        for r in rows:
            if r[col]:
                assert r[state] == active and r[col] in naf25 and re.fullmatch(r"\d\d\.\d\d[A-Z]", r[col])
        filled = [r for r in rows if r[state] == active and r[col]]
        assert len(filled) > 0.9 * sum(r[state] == active for r in rows)
    mapped = [r for r in ul if r["activitePrincipaleNAF25UniteLegale"]]
    assert sum(
        r["activitePrincipaleNAF25UniteLegale"][:5] == r["activitePrincipaleUniteLegale"][:5] for r in mapped
    ) > 0.6 * len(mapped)


def test_geography(stock):
    et = stock["StockEtablissement"]
    m = len(et)
    deps = {}
    for r in et:
        code = r["codeCommuneEtablissement"]
        d = code[:3] if code[:2] in ("97", "98") else code[:2]
        deps[d] = deps.get(d, 0) + 1
    top = [d for d, _ in sorted(deps.items(), key=lambda kv: -kv[1]) if d][:10]
    assert top[0] == "75" and {"59", "13", "69", "92"} & set(top)
    assert any(d in deps for d in ("971", "972", "974"))
    communes = {}
    import gzip

    with gzip.open(REF / "communes.csv.gz", "rt", encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            if r["type"] in ("commune-actuelle", "arrondissement-municipal"):
                communes[r["code"]] = r["codes_postaux"].split("|")
    foreign = [r for r in et if r["codePaysEtrangerEtablissement"]]
    assert foreign and all(r["codePaysEtrangerEtablissement"].startswith("99") and r["libellePaysEtrangerEtablissement"]
                           and r["libelleCommuneEtrangerEtablissement"] and not r["codeCommuneEtablissement"]
                           for r in foreign)  # fmt: skip
    assert "75056" not in deps and any(r["codeCommuneEtablissement"].startswith("751") for r in et)
    for r in et:
        if r["codeCommuneEtablissement"]:
            assert r["codeCommuneEtablissement"] in communes
            assert r["libelleCommuneEtablissement"] == r["libelleCommuneEtablissement"].upper()
            if r["statutDiffusionEtablissement"] == "O":
                assert r["codePostalEtablissement"] in communes[r["codeCommuneEtablissement"]]
    words = {r["typeVoieEtablissement"] for r in et}
    assert {"RUE", "AVENUE", "PLACE", "BOULEVARD", "CHEMIN", "ROUTE"} <= words and "AV" not in words
    # Lambert coordinates: ~30 % of active établissements, in the territory's EPSG, around their own commune
    # (its centre in sql/ref/communes_centres.csv.gz; for a commune missing there, inside its département)
    active = [r for r in et if r["etatAdministratifEtablissement"] == "A"]
    located = [r for r in active if r["coordonneeLambertAbscisseEtablissement"] not in ("", "[ND]")]
    assert 0.2 < len(located) / len(active) < 0.4
    points = {d: (lat, lon) for d, lat, lon in DEP_POINTS}
    with gzip.open(REF / "communes_centres.csv.gz", "rt", encoding="utf-8") as fh:
        centres = {r["code"]: (float(r["latitude"]), float(r["longitude"])) for r in csv.DictReader(fh)}
    back = {e: Transformer.from_crs(e, 4326, always_xy=True) for e in (2154, 5490, 2972, 2975, 4471)}
    checked = 0
    for r in et:
        x = r["coordonneeLambertAbscisseEtablissement"]
        if x in ("", "[ND]"):
            continue
        assert re.fullmatch(r"-?\d+(\.\d+)?", x)
        code = r["codeCommuneEtablissement"]
        dep = code[:3] if code.startswith("97") else code[:2]
        epsg = {"971": 5490, "972": 5490, "977": 5490, "978": 5490, "973": 2972, "974": 2975, "975": 4467,
                "976": 4471}.get(dep, 2154)  # fmt: skip
        if epsg not in back:
            continue
        lon, lat = back[epsg].transform(float(x), float(r["coordonneeLambertOrdonneeEtablissement"]))
        if code in centres:  # within 2.5 spreads of at most 0.02° (latitude)
            assert abs(lat - centres[code][0]) < 0.051 and abs(lon - centres[code][1]) < 0.08, (
                code,
                lat,
                lon,
            )
        else:
            assert abs(lat - points[dep][0]) < 1.2 and abs(lon - points[dep][1]) < 1.6, (dep, lat, lon)
        checked += 1
    assert checked > 0.1 * m


def test_quirks(stock):
    ul, et = stock["StockUniteLegale"], stock["StockEtablissement"]
    years_et = {r["dateCreationEtablissement"][:4] for r in et}
    assert {"0001", "5015"} <= years_et
    assert "0001" in {r["dateCreationUniteLegale"][:4] for r in ul}
    stamps = [r["dateDernierTraitementUniteLegale"] for r in ul] + [
        r["dateDernierTraitementEtablissement"] for r in et
    ]
    assert sum(s == "2024-03-22T14:26:06" for s in stamps) > 0.3 * len(stamps)
    assert any(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}", s) for s in stamps)
    assert any(
        re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", s) and s != "2024-03-22T14:26:06" for s in stamps
    )
    assert max(s for s in stamps) < "2026-10-01"  # the register on 2026-09-30
    assert {r["unitePurgeeUniteLegale"] for r in ul} == {"true", ""}
    old = {}
    for f, nom in (("nap.csv", "NAP"), ("naf_1993.csv", "NAF1993"), ("naf_rev1.csv", "NAFRev1")):
        old[nom] = {r["code"] for r in csv.DictReader(open(REF / f, encoding="utf-8"))}
    purged = [r for r in ul if r["unitePurgeeUniteLegale"] == "true"]
    assert 0.01 < len(purged) / len(ul) < 0.08
    for r in purged:
        assert r["nombrePeriodesUniteLegale"] == "1" and r["etatAdministratifUniteLegale"] == "C"
        nom = r["nomenclatureActivitePrincipaleUniteLegale"]
        assert nom in old and r["activitePrincipaleUniteLegale"] in old[nom]
    assert {r["caractereEmployeurEtablissement"] for r in et} == {"O", "N", ""}
    assert any("\\," in v for r in et for v in r.values())


def test_nd_only_in_maskable_fields_of_p_rows(stock):
    ul, et = stock["StockUniteLegale"], stock["StockEtablissement"]
    units = {r["siren"]: r for r in ul}
    for name, status in (("StockUniteLegale", "statutDiffusionUniteLegale"), ("StockEtablissement", "statutDiffusionEtablissement")):  # fmt: skip
        allowed = MASKABLE_COLUMNS["unites_legales" if name == "StockUniteLegale" else "etablissements"]
        for r in stock[name]:
            for col, v in r.items():
                if v == "[ND]":
                    assert col in allowed and r[status] == "P", (name, col)
    for other in ("StockUniteLegaleHistorique", "StockEtablissementHistorique"):
        for r in stock[other]:
            for v in r.values():
                if v == "[ND]":
                    unit = units[r["siren"]]
                    assert unit["statutDiffusionUniteLegale"] == "P" or any(
                        e["statutDiffusionEtablissement"] == "P" for e in et if e["siret"] == r.get("siret")
                    )
    p_persons = [
        r
        for r in ul
        if r["statutDiffusionUniteLegale"] == "P" and r["categorieJuridiqueUniteLegale"] == "1000"
    ]
    assert p_persons and all(
        r["nomUniteLegale"] == "[ND]" and r["prenom1UniteLegale"] == "[ND]" for r in p_persons
    )
    assert all(r["prenom2UniteLegale"] in ("", "[ND]") for r in p_persons)
    p_comp = [
        r
        for r in ul
        if r["statutDiffusionUniteLegale"] == "P" and r["categorieJuridiqueUniteLegale"] != "1000"
    ]
    assert p_comp and all(r["denominationUniteLegale"] not in ("", "[ND]") for r in p_comp)
    p_et = [r for r in et if r["statutDiffusionEtablissement"] == "P"]
    assert all(
        r["codeCommuneEtablissement"] != "[ND]" and r["libelleCommuneEtablissement"] != "[ND]" for r in p_et
    )
    assert any(r["codePostalEtablissement"] == "[ND]" for r in p_et)
    assert any(
        units[r["siren"]]["statutDiffusionUniteLegale"] == "O" for r in p_et
    )  # P établissements of O units


# ---- history, liens, doublons --------------------------------------------------------------------

UL_HIST_FIELDS = [c for c in ULH.split(",")[3:] if not c.startswith("changement")]
ET_HIST_FIELDS = [c for c in EH.split(",")[5:] if not c.startswith("changement")]


def _check_history(con, stock_table, hist_table, key, n_periods, state, closed, fields):
    # one current period per key, equal to the stock row on the historised fields and dateDebut
    cond = " AND ".join(f"h.{f} IS NOT DISTINCT FROM s.{f}" for f in fields + ["dateDebut"])
    bad = con.sql(
        f"SELECT count(*) FROM {stock_table} s LEFT JOIN {hist_table} h ON h.{key} = s.{key} AND h.dateFin IS NULL "
        f"WHERE h.{key} IS NULL OR NOT ({cond})"
    ).fetchone()[0]
    assert bad == 0
    assert (
        con.sql(f"SELECT count(*) FROM {hist_table} WHERE dateFin IS NULL").fetchone()[0]
        == con.sql(f"SELECT count(*) FROM {stock_table}").fetchone()[0]
    )
    # number of periods
    assert (
        con.sql(
            f"SELECT count(*) FROM {stock_table} s JOIN (SELECT {key}, count(*) n FROM {hist_table} GROUP BY 1) h "
            f"USING ({key}) WHERE h.n <> s.{n_periods}::INT"
        ).fetchone()[0]
        == 0
    )
    # contiguous periods: dateFin = day before the next period's dateDebut
    assert (
        con.sql(
            f"SELECT count(*) FROM (SELECT dateFin, lead(dateDebut) OVER (PARTITION BY {key} ORDER BY dateDebut::DATE) nxt "
            f"FROM {hist_table}) WHERE nxt IS NOT NULL AND dateFin::DATE <> nxt::DATE - 1"
        ).fetchone()[0]
        == 0
    )
    # closed ones have the period where the state changed to closed
    assert (
        con.sql(
            f"SELECT count(*) FROM {stock_table} s WHERE s.{state} = '{closed}' AND NOT EXISTS (SELECT 1 FROM "
            f"{hist_table} h WHERE h.{key} = s.{key} AND h.{state} = '{closed}' AND h.changement{state[0].upper()}"
            f"{state[1:]} = 'true')"
        ).fetchone()[0]
        == 0
    )
    # every non-oldest period changed something
    flags = [c for c in con.sql(f"SELECT * FROM {hist_table} LIMIT 0").columns if c.startswith("changement")]
    any_change = " OR ".join(f"{f} = 'true'" for f in flags)
    assert (
        con.sql(
            f"SELECT count(*) FROM (SELECT *, row_number() OVER (PARTITION BY {key} ORDER BY dateDebut::DATE) k "
            f"FROM {hist_table}) WHERE k > 1 AND NOT ({any_change})"
        ).fetchone()[0]
        == 0
    )


def test_history_consistent_with_stock(con):
    _check_history(con, "StockUniteLegale", "StockUniteLegaleHistorique", "siren", "nombrePeriodesUniteLegale",
                   "etatAdministratifUniteLegale", "C", UL_HIST_FIELDS)  # fmt: skip
    _check_history(con, "StockEtablissement", "StockEtablissementHistorique", "siret", "nombrePeriodesEtablissement",
                   "etatAdministratifEtablissement", "F", ET_HIST_FIELDS)  # fmt: skip
    # a former siège appears in the history of units whose siège moved
    moved = con.sql(
        "SELECT count(*) FROM StockUniteLegaleHistorique WHERE changementNicSiegeUniteLegale = 'true'"
    ).fetchone()[0]
    assert moved > 0


def test_history_consistent_in_layout_39(layouts):
    c = _connect(layouts["3.9"], NAMES[:4])
    ul_fields = [f for f in UL_HIST_FIELDS if "societeMission" not in f]
    _check_history(c, "StockUniteLegale", "StockUniteLegaleHistorique", "siren", "nombrePeriodesUniteLegale",
                   "etatAdministratifUniteLegale", "C", ul_fields)  # fmt: skip
    _check_history(c, "StockEtablissement", "StockEtablissementHistorique", "siret", "nombrePeriodesEtablissement",
                   "etatAdministratifEtablissement", "F", ET_HIST_FIELDS)  # fmt: skip
    changed = c.sql(
        "SELECT count(*) FROM StockUniteLegaleHistorique WHERE changementCaractereEmployeurUniteLegale"
    )
    assert changed.fetchone()[0] > 0  # the employer flag still changed over time in 3.9
    c.close()


def test_liens_and_doublons(con):
    assert (
        con.sql(
            "SELECT count(*) FROM StockEtablissementLiensSuccession l WHERE siretEtablissementPredecesseur NOT IN "
            "(SELECT siret FROM StockEtablissement) OR siretEtablissementSuccesseur NOT IN (SELECT siret FROM StockEtablissement)"
        ).fetchone()[0]
        == 0
    )
    total, closed_pred = con.sql(
        "SELECT count(*), count(*) FILTER (e.etatAdministratifEtablissement = 'F') FROM "
        "StockEtablissementLiensSuccession l JOIN StockEtablissement e ON e.siret = l.siretEtablissementPredecesseur"
    ).fetchone()
    assert total > 20 and closed_pred > 0.5 * total
    # siège transfers: same unit, successor is the current siège, former siège in the history
    bad = con.sql(
        "SELECT count(*) FROM StockEtablissementLiensSuccession l JOIN StockUniteLegale u "
        "ON u.siren = left(l.siretEtablissementSuccesseur, 9) WHERE l.transfertSiege = 'true' AND "
        "(left(l.siretEtablissementPredecesseur, 9) <> u.siren OR right(l.siretEtablissementSuccesseur, 5) <> u.nicSiegeUniteLegale)"
    ).fetchone()[0]
    assert bad == 0
    assert (
        con.sql(
            "SELECT count(*) FROM StockEtablissementLiensSuccession WHERE transfertSiege = 'true'"
        ).fetchone()[0]
        > 0
    )
    rows = con.sql("SELECT siren, sirenDoublon FROM StockDoublons").fetchall()
    sirens = {r[0] for r in con.sql("SELECT siren FROM StockUniteLegale").fetchall()}
    assert rows and all(a in sirens and b in sirens and a != b for a, b in rows)


# ---- older layouts' content ------------------------------------------------------------------------


def test_layout_39_content(layouts):
    et = _rows(layouts["3.9"] / "StockEtablissement_utf8.zip")
    ul = _rows(layouts["3.9"] / "StockUniteLegale_utf8.zip")
    types = {r["typeVoieEtablissement"] for r in et} - {"", "[ND]"}
    assert {"RUE", "AV", "PL", "BD"} <= types and all(len(t) <= 4 for t in types)
    assert {r["caractereEmployeurUniteLegale"] for r in ul} == {"O", "N"}
    stamps = [r["dateDernierTraitementUniteLegale"] for r in ul]
    assert max(stamps) < "2024-02-01" and "2024-03-22T14:26:06" not in stamps
    et311 = _rows(layouts["3.11"] / "StockEtablissement_utf8.zip")
    assert "AVENUE" in {r["typeVoieEtablissement"] for r in et311}


# ---- determinism, Parquet, CLI ---------------------------------------------------------------------


def _digests(d: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.iterdir()) if p.is_file()}


def test_deterministic(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    generate_stock(a, month="2026-10", scale=1500, seed=11)
    generate_stock(b, month="2026-10", scale=1500, seed=11)
    generate_stock(c, month="2026-10", scale=1500, seed=12)
    assert _digests(a) == _digests(b) and len(_digests(a)) == 6
    assert _digests(a) != _digests(c)
    assert not list(a.glob(".*"))  # no temporary files left


def test_parquet_variant_types(tmp_path):
    paths = generate_stock(tmp_path, month="2026-10", scale=800, seed=5, fmt="both")
    assert all(p.suffix == ".zip" for p in paths.values())
    ul = pq.read_table(tmp_path / "StockUniteLegale_utf8.parquet")
    et = pq.read_table(tmp_path / "StockEtablissement_utf8.parquet")
    assert ul.column_names == EXPECTED["current"]["StockUniteLegale"]
    assert et.column_names == EXPECTED["current"]["StockEtablissement"]
    t = {f.name: str(f.type) for f in ul.schema}
    assert t["categorieJuridiqueUniteLegale"] == "int64" and t["nicSiegeUniteLegale"] == "string"
    assert t["dateCreationUniteLegale"] == "date32[day]" and t["unitePurgeeUniteLegale"] == "bool"
    assert (
        t["dateDernierTraitementUniteLegale"].startswith("timestamp")
        and t["anneeEffectifsUniteLegale"] == "int64"
    )
    t = {f.name: str(f.type) for f in et.schema}
    assert (
        t["etablissementSiege"] == "bool"
        and t["nic"] == "string"
        and t["nombrePeriodesEtablissement"] == "int64"
    )
    assert (
        t["coordonneeLambertAbscisseEtablissement"] == "string" and t["codePostalEtablissement"] == "string"
    )
    h = pq.read_table(tmp_path / "StockUniteLegaleHistorique_utf8.parquet").schema
    assert str(h.field("changementEtatAdministratifUniteLegale").type) == "bool"
    assert str(h.field("categorieJuridiqueUniteLegale").type) == "string"
    zipped = _rows(tmp_path / "StockEtablissement_utf8.zip")
    assert et.num_rows == len(zipped)
    assert et.column("siret").to_pylist() == [r["siret"] for r in zipped]
    assert sorted(np.unique(et.column("etablissementSiege").to_numpy(zero_copy_only=False))) == [False, True]
    only = generate_stock(tmp_path / "pq", month="2026-10", scale=300, seed=5, fmt="parquet")
    assert all(p.suffix == ".parquet" and p.exists() for p in only.values())


@pytest.mark.slow
def test_cli_generate(tmp_path):
    out = tmp_path / "out"
    res = run_mirror("generate", "--out", str(out), "--month", "2026-10", "--scale", "500", "--seed", "2",
                     "--data-dir", str(tmp_path / "data"))  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "StockUniteLegale 500" in res.stdout and len(res.stdout.strip().splitlines()) == 1
    assert len(list(out.glob("*_utf8.zip"))) == 6
    assert "\r" not in res.stderr  # no progress bar when not on a terminal
    bad = run_mirror("generate", "--out", str(out), "--month", "2026-13")
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().startswith("Error:") and len(bad.stderr.strip().splitlines()) == 1
    for option, value, word in (
        ("--scale", "-5", "scale"),
        ("--layout", "4.0", "layout"),
        ("--format", "csv", "format"),
    ):
        bad = run_mirror("generate", "--out", str(out), "--month", "2026-10", option, value)
        assert bad.returncode != 0 and "Traceback" not in bad.stderr
        assert (
            bad.stderr.strip().startswith("Error:")
            and word in bad.stderr
            and len(bad.stderr.strip().splitlines()) == 1
        )
