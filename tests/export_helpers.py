"""Helpers for the export / batch / filter tests (owned by the export concern).

- `write_edge_stock(folder)`: a small stock in INSEE's format (zipped CSV, current layout) with the
  cases the filters must get right (accents, P units, masked coordinates, foreign addresses,
  old nomenclatures, junk dates, Corsica, overseas...).
- `build_catalog(data_dir, stock_folder)`: the real path (mirror.load.stock.load_snapshot + the catalog).
- `read_raw(stock_folder)`: the raw rows, read straight from the zip CSV with Python's csv module,
  for expected results computed independently of the export code.
"""

from __future__ import annotations

import csv
import functools
import io
import math
import random
import zipfile
from datetime import date, timedelta
from pathlib import Path

from mirror.core.identifiers import luhn_check_digit
from mirror.core.schema import ETABLISSEMENTS, UNITES_LEGALES

NAMES = [
    "Boulangerie Élodie",
    "ÉCOLE DES ÉTOILES",
    "Café du Commerce",
    "Société Générale des Eaux",
    "Garage Renée",
    "Crêperie de l'Océan",
    "Pâtisserie Noël",
    "Atelier 100% Bio_Test",
    "O'Brien & Fils",
    "Ça Marche",
]
NAF_REV2 = [
    "62.01Z",
    "62.02A",
    "56.10A",
    "10.71C",
    "47.11B",
    "85.20Z",
    "01.11Z",
    "70.10Z",
    "45.20A",
    "68.20A",
]
NAF_REV1 = ["45.3F", "52.4A"]
NAF25 = ["62.10Y", "56.11Y", "10.71Y", "01.11Y", "47.11Y"]
TRANCHES = ["NN", "00", "01", "02", "03", "11", "12", "21", "22", "31", "41", "53", ""]
CJS = ["1000", "5710", "5499", "9220", "6540", "5720", "7210"]
CATS = ["PME", "ETI", "GE", ""]
# (code commune, code postal, approx lat, lon, EPSG) — real COG codes.
COMMUNES = [
    ("75056", "75001", 48.8566, 2.3522, 2154),
    ("75101", "75001", 48.8625, 2.3364, 2154),
    ("69123", "69001", 45.7640, 4.8357, 2154),
    ("13055", "13001", 43.2965, 5.3698, 2154),
    ("2A004", "20000", 41.9192, 8.7386, 2154),
    ("92050", "92000", 48.8924, 2.2069, 2154),
    ("33063", "33000", 44.8378, -0.5792, 2154),
    ("97411", "97400", -20.8821, 55.4507, 2975),
    ("94080", "94300", 48.8474, 2.4390, 2154),
]


def _siren(rng: random.Random) -> str:
    body = f"{rng.randrange(10**7, 10**8 - 1):08d}"
    return body + luhn_check_digit(body)


def _siret(siren: str, nic_body: int) -> str:
    nic = f"{nic_body:04d}"
    return siren + nic + luhn_check_digit(siren + nic)


@functools.cache
def _from_wgs84(epsg: int):
    from pyproj import Transformer

    return Transformer.from_crs(4326, epsg, always_xy=True)


def _to_lambert(lat: float, lon: float, epsg: int) -> tuple[float, float]:
    x, y = _from_wgs84(epsg).transform(lon, lat)
    return round(x, 1), round(y, 1)


def write_edge_stock(folder: Path, n_units: int = 300, seed: int = 11) -> Path:
    """Writes StockUniteLegale_utf8.zip and StockEtablissement_utf8.zip; returns the folder."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    ul_rows, et_rows = [], []
    sirens: set[str] = set()
    for i in range(n_units):
        siren = _siren(rng)
        while siren in sirens:
            siren = _siren(rng)
        sirens.add(siren)
        cj = rng.choice(CJS)
        person = cj == "1000"
        statut = "P" if rng.random() < 0.15 else "O"
        old_naf = rng.random() < 0.05
        naf = rng.choice(NAF_REV1 if old_naf else NAF_REV2)
        ul = dict.fromkeys(UNITES_LEGALES.columns, "")
        nb_et = rng.choice([1, 1, 2, 3])
        etat_ul = "C" if rng.random() < 0.2 else "A"
        created = date(1950, 1, 1) + timedelta(days=rng.randrange(0, 27000))
        if i == 5:
            created = date(1, 1, 16)  # junk date, as in the real files
        ul.update(
            siren=siren,
            statutDiffusionUniteLegale=statut,
            dateCreationUniteLegale=created.isoformat(),
            trancheEffectifsUniteLegale=rng.choice(TRANCHES),
            dateDernierTraitementUniteLegale=f"202{rng.randrange(4, 7)}-{rng.randrange(1, 13):02d}-"
            f"{rng.randrange(1, 29):02d}T{rng.randrange(0, 24):02d}:12:06",
            nombrePeriodesUniteLegale="1",
            categorieEntreprise=rng.choice(CATS),
            anneeCategorieEntreprise="2023",
            dateDebut=created.isoformat(),
            etatAdministratifUniteLegale=etat_ul,
            categorieJuridiqueUniteLegale=cj,
            activitePrincipaleUniteLegale=naf,
            nomenclatureActivitePrincipaleUniteLegale="NAFRev1" if old_naf else "NAFRev2",
            activitePrincipaleNAF25UniteLegale="" if old_naf else rng.choice(NAF25),
            nicSiegeUniteLegale="",
            economieSocialeSolidaireUniteLegale=rng.choice(["O", "N", "N"]),
            societeMissionUniteLegale=rng.choice(["O", "N", "N", ""]),
        )
        name = rng.choice(NAMES)
        if person:
            ul.update(
                nomUniteLegale=rng.choice(["DUPONT", "LEFÈVRE", "MÜLLER", "NOËL"]),
                prenom1UniteLegale="JEAN",
                sexeUniteLegale="M",
            )
            if statut == "P":
                for c in (
                    "nomUniteLegale",
                    "prenom1UniteLegale",
                    "sexeUniteLegale",
                    "prenomUsuelUniteLegale",
                ):
                    ul[c] = "[ND]"
        else:
            ul.update(
                denominationUniteLegale=name.upper(), sigleUniteLegale="[ND]" if statut == "P" else "SG"
            )
            if rng.random() < 0.3:
                ul["denominationUsuelle1UniteLegale"] = rng.choice(NAMES)
        siege_index = rng.randrange(nb_et)
        for k in range(nb_et):
            siret = _siret(siren, k + 1)
            et = dict.fromkeys(ETABLISSEMENTS.columns, "")
            commune, cp, lat, lon, epsg = rng.choice(COMMUNES)
            et_statut = "P" if (statut == "P" or rng.random() < 0.1) else "O"
            etat_et = "F" if (etat_ul == "C" or rng.random() < 0.15) else "A"
            et_created = created + timedelta(days=rng.randrange(0, 4000)) if created.year > 1 else created
            et.update(
                siren=siren,
                nic=siret[9:],
                siret=siret,
                statutDiffusionEtablissement=et_statut,
                dateCreationEtablissement=et_created.isoformat(),
                trancheEffectifsEtablissement=rng.choice(TRANCHES),
                dateDernierTraitementEtablissement=f"202{rng.randrange(4, 7)}-{rng.randrange(1, 13):02d}-"
                f"{rng.randrange(1, 29):02d}T10:00:00",
                etablissementSiege="true" if k == siege_index else "false",
                nombrePeriodesEtablissement="1",
                dateDebut=et_created.isoformat(),
                etatAdministratifEtablissement=etat_et,
                activitePrincipaleEtablissement=naf if k == siege_index else rng.choice(NAF_REV2),
                nomenclatureActivitePrincipaleEtablissement="NAFRev1"
                if (old_naf and k == siege_index)
                else "NAFRev2",
                activitePrincipaleNAF25Etablissement=rng.choice(NAF25 + [""]),
                caractereEmployeurEtablissement=rng.choice(["O", "N"]),
            )
            if rng.random() < 0.3:
                et["enseigne1Etablissement"] = rng.choice(NAMES)
            if rng.random() < 0.07:  # foreign address
                et.update(
                    codePaysEtrangerEtablissement="99109",
                    libellePaysEtrangerEtablissement="ALLEMAGNE",
                    libelleCommuneEtrangerEtablissement="BERLIN",
                )
            else:
                jlat = lat + rng.uniform(-0.08, 0.08)
                jlon = lon + rng.uniform(-0.08, 0.08)
                x, y = _to_lambert(jlat, jlon, epsg)
                et.update(
                    codeCommuneEtablissement=commune,
                    codePostalEtablissement=cp,
                    libelleCommuneEtablissement="COMMUNE " + commune,
                    numeroVoieEtablissement=str(rng.randrange(1, 200)),
                    typeVoieEtablissement="RUE",
                    libelleVoieEtablissement="DE LA PAIX",
                    coordonneeLambertAbscisseEtablissement=str(x),
                    coordonneeLambertOrdonneeEtablissement=str(y),
                )
                if rng.random() < 0.08:
                    et["coordonneeLambertAbscisseEtablissement"] = ""
                    et["coordonneeLambertOrdonneeEtablissement"] = ""
                if et_statut == "P":
                    for c in (
                        "numeroVoieEtablissement",
                        "typeVoieEtablissement",
                        "libelleVoieEtablissement",
                        "codePostalEtablissement",
                        "coordonneeLambertAbscisseEtablissement",
                        "coordonneeLambertOrdonneeEtablissement",
                    ):
                        et[c] = "[ND]"
            if k == siege_index:
                ul["nicSiegeUniteLegale"] = siret[9:]
            et_rows.append(et)
        ul_rows.append(ul)
    _write_zip(folder, UNITES_LEGALES, ul_rows)
    _write_zip(folder, ETABLISSEMENTS, et_rows)
    return folder


def _write_zip(folder: Path, stock_file, rows: list[dict]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(stock_file.columns), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    with zipfile.ZipFile(folder / stock_file.zip_name, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(stock_file.csv_member, buf.getvalue())


def read_raw(folder: Path, stock_file) -> list[dict[str, str]]:
    """Rows of one zipped stock CSV, as strings (INSEE's CSV dialect: quote and escape are '"')."""
    with zipfile.ZipFile(folder / stock_file.zip_name) as z, z.open(stock_file.csv_member) as fh:
        return list(csv.DictReader(io.TextIOWrapper(fh, encoding="utf-8", newline="")))


def haversine_km(lat1, lon1, lat2, lon2) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0088 * math.asin(math.sqrt(a))


# EPSG of the Lambert columns per territory (as INSEE documents them), written out
# here rather than imported so that expected values do not depend on the code under test.
_EPSG_BY_PREFIX = {
    "971": 5490,
    "972": 5490,
    "977": 5490,
    "978": 5490,
    "973": 2972,
    "974": 2975,
    "975": 4467,
    "976": 4471,
    "986": 32701,
    "987": 3297,
    "988": 3163,
}


@functools.cache
def _to_wgs84(epsg: int):
    from pyproj import Transformer

    return Transformer.from_crs(epsg, 4326, always_xy=True)


def wgs84(x: str, y: str, code_commune: str) -> tuple[float, float] | None:
    """(lat, lon) of raw Lambert columns, computed with pyproj here (independently of the loader)."""
    if not x or not y or x == "[ND]" or y == "[ND]" or not code_commune:
        return None
    epsg = _EPSG_BY_PREFIX.get(code_commune[:3], 2154) if code_commune[:2] in ("97", "98") else 2154
    lon, lat = _to_wgs84(epsg).transform(float(x), float(y))
    if not (-90 <= lat <= 90 and -180 <= lon <= 180) or math.isinf(lat) or math.isinf(lon):
        return None
    return lat, lon


def build_catalog(data_dir: Path, stock_folder: Path):
    """Loads `stock_folder` into `data_dir` through the real loader and catalog
    (mirror.load.stock.load_snapshot); returns a function opening a read-only catalog connection."""
    from mirror.catalog.build import connect
    from mirror.load.stock import load_snapshot

    load_snapshot(data_dir, [stock_folder], month="2026-10", force=True)
    return lambda: connect(data_dir, read_only=True)
