"""Reference data for the generator: official nomenclatures from sql/ref/, word pools, weights and
approximate département points (all loaded once, as NumPy / Arrow arrays for vectorised picking)."""

from __future__ import annotations

import csv
import functools
import gzip
import io
import unicodedata
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from mirror.core.sql import REF_DIR


def upper_ascii(text: str) -> str:
    """INSEE label style: upper case, no accents (ligatures spelled out)."""
    text = text.replace("œ", "oe").replace("Œ", "OE").replace("æ", "ae").replace("Æ", "AE")
    text = text.replace("’", "'")
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return text.upper()


def _read(name: str) -> list[dict[str, str]]:
    path = REF_DIR / name
    if name.endswith(".gz"):
        with gzip.open(path, "rt", encoding="utf-8", newline="") as fh:
            return list(csv.DictReader(fh))
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(io.StringIO(fh.read())))


def _probs(weights) -> np.ndarray:
    w = np.asarray(weights, dtype=np.float64)
    return w / w.sum()


@dataclass(frozen=True)
class Pool:
    """Values to pick from, with their cumulative probabilities (for vectorised weighted sampling)."""

    values: pa.Array  # string array
    cum: np.ndarray

    def pick(self, rng: np.random.Generator, n: int) -> np.ndarray:
        idx = np.searchsorted(self.cum, rng.random(n), side="right")
        return np.minimum(idx, len(self.cum) - 1)

    def __len__(self) -> int:
        return len(self.values)


def _pool(values, weights=None) -> Pool:
    values = list(values)
    w = np.ones(len(values)) if weights is None else np.asarray(weights, dtype=np.float64)
    return Pool(pa.array(values, pa.string()), np.cumsum(_probs(w)))


# ---------------------------------------------------------------------------------------------
# Catégories juridiques: a realistic skew over the real list (1000 is handled apart, ~56 %).
# ---------------------------------------------------------------------------------------------
_CJ_WEIGHTS = {
    "5499": 22.0, "5710": 16.0, "6540": 12.0, "9220": 11.0, "5498": 0.0, "5599": 1.2, "6599": 2.5,
    "5202": 0.8, "5306": 0.2, "5485": 0.7, "5785": 0.3, "6220": 0.3, "2110": 1.0, "2900": 0.6,
    "3120": 0.4, "7210": 0.4, "7389": 0.1, "8210": 0.1, "9210": 0.3, "9260": 0.3, "6541": 0.6,
    "6542": 0.3, "6585": 0.5, "6588": 0.4, "5307": 0.1, "5560": 0.1, "5505": 0.1, "5720": 0.0,
    "6316": 0.2, "6317": 0.1, "6532": 0.2, "6533": 0.2, "6534": 0.1, "9221": 0.1, "9300": 0.2,
}  # fmt: skip


@functools.lru_cache(maxsize=1)
def categories_juridiques() -> Pool:
    codes = [r["code"] for r in _read("categories_juridiques.csv") if r["code"] not in ("1000", "0000")]
    weights = [_CJ_WEIGHTS.get(c, 0.02) for c in codes]
    return _pool(codes, weights)


@functools.lru_cache(maxsize=1)
def association_mask() -> np.ndarray:
    """True for the association codes (92xx) of `categories_juridiques()`."""
    return np.array([c.startswith("92") for c in categories_juridiques().values.to_pylist()])


# ---------------------------------------------------------------------------------------------
# Activity nomenclatures.
# ---------------------------------------------------------------------------------------------
# Heavier NAF rév. 2 classes (sole traders, real estate, retail, construction, consulting...).
_NAF_HEAVY = {
    "68.20B": 40, "68.20A": 15, "70.22Z": 25, "47.91B": 15, "62.01Z": 12, "62.02A": 8, "43.22A": 8,
    "43.21A": 8, "43.31Z": 6, "43.99C": 8, "41.20A": 6, "56.10A": 12, "56.10C": 10, "56.30Z": 8,
    "96.02A": 10, "96.09Z": 12, "85.59A": 10, "85.59B": 12, "86.90E": 8, "86.21Z": 8, "86.90D": 6,
    "49.32Z": 12, "49.41A": 5, "53.20Z": 8, "74.10Z": 10, "73.11Z": 5, "90.01Z": 8, "90.03A": 10,
    "93.13Z": 4, "93.19Z": 6, "94.99Z": 30, "81.21Z": 6, "81.30Z": 6, "01.11Z": 6, "01.50Z": 5,
    "01.21Z": 5, "45.11Z": 6, "45.20A": 5, "47.11B": 4, "47.71Z": 6, "47.89Z": 6, "64.20Z": 18,
    "66.19B": 4, "69.10Z": 4, "69.20Z": 4, "71.12B": 5, "82.99Z": 8, "88.10B": 4, "55.20Z": 6,
    "46.90Z": 5, "32.12Z": 1,
}  # fmt: skip


@dataclass(frozen=True)
class Activities:
    naf2: Pool  # NAF rév. 2 codes, skewed
    naf25_of_naf2: pa.Array  # NAF 2025 code for each naf2 code (same order), "" when none
    nafa: pa.Array  # an artisan (NAFA) code per naf2 code, e.g. 32.12Z -> 3212ZZ
    old_codes: pa.Array  # NAP, NAF1993 and NAFRev1 codes, concatenated
    old_nomenclature: pa.Array  # matching nomenclature names
    n_nap: int
    n_naf1993: int
    n_rev1: int


@functools.lru_cache(maxsize=1)
def activities() -> Activities:
    rev2 = [r["code"] for r in _read("naf_rev2.csv")]
    weights = [_NAF_HEAVY.get(c, 1.0) for c in rev2]
    naf25 = _read("naf_2025.csv")
    by_class: dict[str, list[str]] = {}
    for r in naf25:
        by_class.setdefault(r["classe"], []).append(r["code"])
    by_group: dict[str, list[str]] = {}
    for r in naf25:
        by_group.setdefault(r["groupe"], []).append(r["code"])
        by_group.setdefault(r["division"], []).append(r["code"])
    mapped = []
    for code in rev2:
        # Same class, preferring its 'Y' code (32.12Z -> 32.12Y); else the first code of the same group,
        # else of the same division (an approximation of INSEE's NAF rév. 2 -> NAF 2025 table).
        cands = by_class.get(code[:5], [])
        same_letter = [c for c in cands if c[5:] == "Y"]
        fallback = cands or by_group.get(code[:4], []) or by_group.get(code[:2], [])
        mapped.append(same_letter[0] if same_letter else (fallback[0] if fallback else ""))
    nafa = [code.replace(".", "")[:4] + code[5] + "Z" if len(code) == 6 else "" for code in rev2]
    nap = [r["code"] for r in _read("nap.csv")]
    n93 = [r["code"] for r in _read("naf_1993.csv")]
    rv1 = [r["code"] for r in _read("naf_rev1.csv")]
    return Activities(
        naf2=_pool(rev2, weights),
        naf25_of_naf2=pa.array(mapped, pa.string()),
        nafa=pa.array(nafa, pa.string()),
        old_codes=pa.array(nap + n93 + rv1, pa.string()),
        old_nomenclature=pa.array(["NAP"] * len(nap) + ["NAF1993"] * len(n93) + ["NAFRev1"] * len(rv1)),
        n_nap=len(nap),
        n_naf1993=len(n93),
        n_rev1=len(rv1),
    )


# ---------------------------------------------------------------------------------------------
# Geography: COG communes weighted like the register, with their postcodes and INSEE-style names.
# ---------------------------------------------------------------------------------------------
# Extra weight of some départements relative to their population (the register is denser in Paris and
# the business districts around it, and in the big metropolitan areas).
_DEP_BOOST = {"75": 3.2, "92": 1.8, "93": 1.2, "94": 1.1, "13": 1.25, "69": 1.3, "06": 1.5, "33": 1.2,
              "31": 1.2, "59": 1.0, "34": 1.25, "83": 1.3, "44": 1.1, "67": 1.0, "2A": 1.6, "2B": 1.6}  # fmt: skip


def _commune_label(row: dict[str, str]) -> str:
    if row["type"] == "arrondissement-municipal":
        # "Paris 1er Arrondissement" -> "PARIS 1" [uncertain: exact INSEE label of arrondissements]
        city = row["nom"].split(" ")[0]
        num = int(row["code"][2:]) - {"75": 100, "69": 380, "13": 200}[row["code"][:2]]
        return f"{upper_ascii(city)} {num}"
    return upper_ascii(row["nom"])


@dataclass(frozen=True)
class Geography:
    communes: Pool  # code commune
    labels: pa.Array  # INSEE-style label per commune
    dep_index: np.ndarray  # index into DEP_POINTS codes per commune (-1: no point)
    pc_offsets: np.ndarray  # start of each commune's postcodes in `postcodes`
    pc_counts: np.ndarray
    postcodes: pa.Array
    # Where the établissements of each commune are placed (WGS84 degrees, NaN: no point): the commune's
    # centre (sql/ref/communes_centres.csv.gz) or, for a commune missing there, a fixed point inside its
    # département (see _commune_points); `spread`: the standard deviation in degrees of latitude, growing
    # with the population.
    lat: np.ndarray
    lon: np.ndarray
    spread: np.ndarray
    population: np.ndarray


@functools.lru_cache(maxsize=1)
def geography() -> Geography:
    rows = []
    for r in _read("communes.csv.gz"):
        if not r["codes_postaux"]:
            continue
        if r["type"] == "arrondissement-municipal" or (
            r["type"] == "commune-actuelle" and r["code"] not in ("75056", "69123", "13055")
        ):
            rows.append(r)
    rows.sort(key=lambda r: r["code"])
    dep_codes = [d for d, _lat, _lon in DEP_POINTS]
    dep_pos = {d: i for i, d in enumerate(dep_codes)}
    weights, labels, dep_index, offsets, counts, postcodes = [], [], [], [], [], []
    for r in rows:
        pop = float(r["population"] or 50)
        dep = r["departement"]
        weights.append((pop**0.92 + 30.0) * _DEP_BOOST.get(dep, 1.0))
        labels.append(_commune_label(r))
        dep_index.append(dep_pos.get(dep, -1))
        pcs = r["codes_postaux"].split("|")
        offsets.append(len(postcodes))
        counts.append(len(pcs))
        postcodes.extend(pcs)
    population = np.array([float(r["population"] or 0) for r in rows])
    lat, lon = _commune_points([r["code"] for r in rows], np.array(dep_index, dtype=np.int32))
    return Geography(
        communes=_pool([r["code"] for r in rows], weights),
        labels=pa.array(labels, pa.string()),
        dep_index=np.array(dep_index, dtype=np.int32),
        pc_offsets=np.array(offsets, dtype=np.int64),
        pc_counts=np.array(counts, dtype=np.int64),
        postcodes=pa.array(postcodes, pa.string()),
        lat=lat,
        lon=lon,
        # ~300 m for a village, ~600 m for a town of 50,000, ~750 m for the largest arrondissements
        spread=np.minimum(0.0025 + 0.0004 * np.sqrt(population / 1000.0), 0.02),
        population=population,
    )


def _commune_points(codes: list[str], dep_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(lat, lon) per commune: its centre from communes_centres.csv.gz; for the communes missing there
    (small ones: the file has 86 % of the population), a point fixed by the commune code (crc32) inside the
    box of the listed communes of its département (10th to 90th percentiles), else around its DEP_POINTS
    point. NaN where the département has no point."""
    import zlib

    centres = {
        r["code"]: (float(r["latitude"]), float(r["longitude"])) for r in _read("communes_centres.csv.gz")
    }
    n = len(codes)
    lat = np.full(n, np.nan)
    lon = np.full(n, np.nan)
    known = np.zeros(n, dtype=bool)
    for i, code in enumerate(codes):
        if code in centres:
            lat[i], lon[i] = centres[code]
            known[i] = True
    for d, (_code, dlat, dlon) in enumerate(DEP_POINTS):
        members = dep_index == d
        listed = members & known
        if listed.sum() >= 5:
            lat_lo, lat_hi = np.percentile(lat[listed], [10, 90])
            lon_lo, lon_hi = np.percentile(lon[listed], [10, 90])
        else:
            jitter = DEP_JITTER.get(_code, DEFAULT_JITTER)
            lat_lo, lat_hi, lon_lo, lon_hi = dlat - jitter, dlat + jitter, dlon - jitter, dlon + jitter
        for i in np.flatnonzero(members & ~known):
            h = zlib.crc32(codes[i].encode())
            lat[i] = lat_lo + (h & 0xFFFF) / 0xFFFF * (lat_hi - lat_lo)
            lon[i] = lon_lo + (h >> 16) / 0xFFFF * (lon_hi - lon_lo)
    return lat, lon


# Approximate WGS84 point (latitude, longitude) well inside each département (usually its préfecture,
# an inland town for coastal or border ones). Hand-written from public maps; accurate to a few km. Used only
# for the communes that sql/ref/communes_centres.csv.gz lacks, in départements with few listed communes.
DEP_POINTS: tuple[tuple[str, float, float], ...] = (
    ("01", 46.10, 5.35), ("02", 49.56, 3.62), ("03", 46.45, 3.20), ("04", 44.09, 6.24), ("05", 44.56, 6.08),
    ("06", 43.82, 7.12), ("07", 44.73, 4.48), ("08", 49.62, 4.60), ("09", 42.97, 1.60), ("10", 48.30, 4.08),
    ("11", 43.21, 2.35), ("12", 44.35, 2.57), ("13", 43.53, 5.44), ("14", 49.10, -0.40), ("15", 45.03, 2.62),
    ("16", 45.65, 0.16), ("17", 45.75, -0.63), ("18", 47.08, 2.40), ("19", 45.35, 1.85), ("2A", 41.85, 9.00),
    ("2B", 42.30, 9.15), ("21", 47.32, 4.95), ("22", 48.25, -2.76), ("23", 46.17, 1.87), ("24", 45.18, 0.72),
    ("25", 47.24, 6.02), ("26", 44.93, 5.05), ("27", 49.02, 1.15), ("28", 48.44, 1.49), ("29", 48.25, -3.95),
    ("30", 43.95, 4.30), ("31", 43.45, 1.35), ("32", 43.65, 0.59), ("33", 44.84, -0.58), ("34", 43.65, 3.60),
    ("35", 48.11, -1.68), ("36", 46.81, 1.69), ("37", 47.39, 0.69), ("38", 45.19, 5.72), ("39", 46.67, 5.55),
    ("40", 43.89, -0.50), ("41", 47.59, 1.33), ("42", 45.60, 4.20), ("43", 45.04, 3.88), ("44", 47.25, -1.60),
    ("45", 47.90, 1.95), ("46", 44.60, 1.60), ("47", 44.35, 0.60), ("48", 44.52, 3.50), ("49", 47.47, -0.55),
    ("50", 49.12, -1.09), ("51", 48.96, 4.36), ("52", 48.11, 5.14), ("53", 48.07, -0.77), ("54", 48.69, 6.18),
    ("55", 48.95, 5.40), ("56", 47.85, -2.85), ("57", 49.05, 6.55), ("58", 47.10, 3.45), ("59", 50.45, 3.30),
    ("60", 49.40, 2.40), ("61", 48.55, 0.05), ("62", 50.40, 2.40), ("63", 45.70, 3.10), ("64", 43.30, -0.37),
    ("65", 43.23, 0.08), ("66", 42.62, 2.70), ("67", 48.55, 7.55), ("68", 47.90, 7.25), ("69", 45.85, 4.60),
    ("70", 47.62, 6.15), ("71", 46.65, 4.40), ("72", 48.00, 0.20), ("73", 45.50, 6.40), ("74", 46.00, 6.35),
    ("75", 48.857, 2.345), ("76", 49.60, 1.00), ("77", 48.60, 2.95), ("78", 48.85, 1.85), ("79", 46.45, -0.35),
    ("80", 49.90, 2.30), ("81", 43.90, 2.15), ("82", 44.02, 1.35), ("83", 43.45, 6.20), ("84", 44.05, 5.10),
    ("85", 46.67, -1.35), ("86", 46.58, 0.34), ("87", 45.83, 1.26), ("88", 48.17, 6.45), ("89", 47.80, 3.57),
    ("90", 47.64, 6.86), ("91", 48.55, 2.25), ("92", 48.89, 2.21), ("93", 48.91, 2.46), ("94", 48.78, 2.47),
    ("95", 49.07, 2.15),
    ("971", 16.17, -61.68), ("972", 14.65, -61.02), ("973", 4.00, -53.00), ("974", -21.13, 55.52),
    ("976", -12.82, 45.15), ("975", 46.78, -56.18), ("977", 17.90, -62.83), ("978", 18.07, -63.05),
)  # fmt: skip
# Half-width (degrees) of the box around the point for those: smaller around Paris and for islands.
DEP_JITTER = {"75": 0.012, "92": 0.012, "93": 0.012, "94": 0.012, "90": 0.02, "975": 0.01, "977": 0.008,
              "978": 0.008, "976": 0.03, "972": 0.03, "971": 0.03}  # fmt: skip
DEFAULT_JITTER = 0.04


@dataclass(frozen=True)
class Foreign:
    codes: pa.Array
    countries: pa.Array
    cities: pa.Array
    cum: np.ndarray


_FOREIGN_CITIES = [
    ("99131", "BRUXELLES", 5), ("99131", "LIEGE", 2), ("99140", "GENEVE", 3), ("99140", "LAUSANNE", 2),
    ("99137", "LUXEMBOURG", 3), ("99109", "BERLIN", 2), ("99109", "FRANCFORT", 1), ("99134", "MADRID", 2),
    ("99134", "BARCELONE", 2), ("99127", "MILAN", 2), ("99132", "LONDRES", 3), ("99404", "NEW YORK", 2),
    ("99401", "MONTREAL", 2), ("99350", "CASABLANCA", 2), ("99351", "TUNIS", 1), ("99139", "LISBONNE", 1),
    ("99138", "MONACO", 2), ("99135", "AMSTERDAM", 1),
]  # fmt: skip


@functools.lru_cache(maxsize=1)
def foreign() -> Foreign:
    names = {r["code"]: upper_ascii(r["libelle"]) for r in _read("pays.csv")}
    rows = [(c, names[c], city, w) for c, city, w in _FOREIGN_CITIES if c in names]
    return Foreign(
        codes=pa.array([r[0] for r in rows]),
        countries=pa.array([r[1] for r in rows]),
        cities=pa.array([r[2] for r in rows]),
        cum=np.cumsum(_probs([r[3] for r in rows])),
    )


@functools.lru_cache(maxsize=2)
def street_types(layout: str) -> Pool:
    """Street types: INSEE 4-character codes in layout 3.9, full words in upper case since 3.11."""
    rows = _read("types_voie.csv")
    heavy = {"RUE": 48, "AV": 11, "CHE": 8, "RTE": 7, "BD": 4, "PL": 3.5, "IMP": 3.5, "ALL": 3, "LD": 2.5,
             "QUAI": 1, "CRS": 0.8, "LOT": 1.2, "HAM": 1, "ZI": 0.8, "ZA": 0.8, "RES": 0.8, "PAS": 0.6,
             "SQ": 0.3, "FG": 0.4, "QUA": 0.5, "VLA": 0.2, "CITE": 0.4, "ESP": 0.2, "PARC": 0.3}  # fmt: skip
    values = [r["code"] if layout == "3.9" else upper_ascii(r["libelle"]) for r in rows]
    return _pool(values, [heavy.get(r["code"], 0.05) for r in rows])


# ---------------------------------------------------------------------------------------------
# Word pools for names (upper case without accents, as in the register).
# ---------------------------------------------------------------------------------------------
LAST_NAMES = """MARTIN BERNARD THOMAS PETIT ROBERT RICHARD DURAND DUBOIS MOREAU LAURENT SIMON MICHEL LEFEBVRE
LEROY ROUX DAVID BERTRAND MOREL FOURNIER GIRARD BONNET DUPONT LAMBERT FONTAINE ROUSSEAU VINCENT MULLER LEFEVRE
FAURE ANDRE MERCIER BLANC GUERIN BOYER GARNIER CHEVALIER FRANCOIS LEGRAND GAUTHIER GARCIA PERRIN ROBIN CLEMENT
MORIN NICOLAS HENRY ROUSSEL MATHIEU GAUTIER MASSON MARCHAND DUVAL DENIS DUMONT MARIE LEMAIRE NOEL MEYER DUFOUR
MEUNIER BRUN BLANCHARD GIRAUD JOLY RIVIERE LUCAS BRUNET GAILLARD BARBIER ARNAUD MARTINEZ GERARD ROCHE RENARD
SCHMITT ROY LEROUX COLIN VIDAL CARON PICARD ROGER FABRE AUBERT LEMOINE RENAUD DUMAS LACROIX OLIVIER PHILIPPE
BOURGEOIS PIERRE BENOIT REY LECLERC PAYET ROLLAND LECLERCQ GUILLAUME LECOMTE LOPEZ JEAN DUPUY GUILLOT HUBERT
BERGER CARPENTIER SANCHEZ DUPUIS MOULIN LOUIS DESCHAMPS HUET VASSEUR PEREZ BOUCHER FLEURY ROYER KLEIN JACQUET
ADAM PARIS POIRIER MARTY AUBRY GUYOT CARRE CHARLES RENAULT CHARPENTIER MENARD MAILLARD BARON BERTIN BAILLY
HERVE SCHNEIDER FERNANDEZ LE GALL COLLET LEGER BOUVIER JULIEN PREVOST MILLET PERROT DANIEL LE ROUX COUSIN
GERMAIN BRETON BESSON LANGLOIS REMY LE GOFF PELLETIER LEVEQUE PERRIER LEBLANC BARRE LEBRUN MARCHAL WEBER
MALLET HAMON BOULANGER JACOB MONNIER MICHAUD RODRIGUEZ GUICHARD GILLET ETIENNE GRONDIN POULAIN TESSIER CHEVALLIER
COLLIN CHAUVIN DA SILVA BOUCHET GAY LEMAITRE BENARD MARECHAL HUMBERT REYNAUD ANTOINE HOARAU PERRET BARTHELEMY
CORDIER PICHON LEJEUNE GILBERT LAMY DELAUNAY PASQUIER CARLIER LAPORTE NGUYEN DIALLO TRAORE BENALI HADDAD""".split()
# Multi-word names above were split: rebuild the few known compounds.
LAST_NAMES = [n for n in LAST_NAMES if n not in ("LE", "DA", "GALL", "ROUX", "GOFF", "SILVA")] + [
    "LE GALL", "LE ROUX", "LE GOFF", "DA SILVA", "ROUX", "N'DIAYE", "DE LA FONTAINE", "SAINT-MARTIN",
]  # fmt: skip
FIRST_NAMES_M = """JEAN PIERRE MICHEL ANDRE PHILIPPE RENE LOUIS ALAIN JACQUES BERNARD MARCEL DANIEL ROGER ROBERT
PAUL CLAUDE CHRISTIAN HENRI GEORGES NICOLAS FRANCOIS PATRICK GERARD CHRISTOPHE JOSEPH JULIEN MAURICE LAURENT
FREDERIC ERIC DAVID STEPHANE PASCAL SEBASTIEN ALEXANDRE THIERRY OLIVIER THOMAS ANTOINE RAYMOND GUY DOMINIQUE
MARC VINCENT LUCAS HUGO MATHIEU YVES GILLES MAXIME KEVIN ROMAIN GUILLAUME JEROME BRUNO FRANCK DIDIER SERGE
MOHAMED KARIM ENZO NATHAN LEO GABRIEL ARTHUR RAPHAEL JEAN-PIERRE JEAN-CLAUDE JEAN-LUC JEAN-MARC""".split()
FIRST_NAMES_F = """MARIE JEANNE FRANCOISE MONIQUE CATHERINE NATHALIE ISABELLE JACQUELINE ANNE SYLVIE MARTINE MADELEINE
NICOLE SUZANNE HELENE CHRISTINE MARIE-THERESE DENISE LOUISE CHRISTIANE VALERIE SANDRINE SOPHIE STEPHANIE CELINE
JULIE AURELIE LAURENCE CAROLINE VERONIQUE EMILIE CHANTAL PATRICIA CLAIRE CAMILLE LEA MANON EMMA CHLOE INES
SARAH LAURA PAULINE MARION ELODIE AMELIE BRIGITTE ODILE COLETTE YVETTE GENEVIEVE AGNES MARIE-CLAIRE FATIMA
AICHA NADIA SOLENE MATHILDE ALICE LOUISE JADE ZOE ANAIS CHARLOTTE""".split()

COMPANY_WORDS = """ALPHA ATLANTIQUE AZUR BATI BOIS CAP CONSEIL CONSTRUCTIONS CREATIONS DEVELOPPEMENT DISTRIBUTION
ENERGIE ENVIRONNEMENT EUROPE EXPERTISE FINANCE FRANCE GESTION GROUPE HABITAT HOLDING IMMOBILIER IMMO INDUSTRIE
INFORMATIQUE INGENIERIE INVEST LOGISTIQUE MEDITERRANEE NORD OUEST PATRIMOINE PARTNERS PRESTIGE PROVENCE RENOVATION
SERVICES SOLUTIONS SUD SYSTEMES TECHNOLOGIES TRANSPORTS TRAVAUX VALLEE VISION CONSULTING DIGITAL DESIGN MEDIA
PLOMBERIE ELECTRICITE MENUISERIE PEINTURE BOULANGERIE PATISSERIE RESTAURATION TRAITEUR AUTO GARAGE CONCEPT
HORIZON OCEAN MONTAGNE SOLEIL LUMIERE AVENIR NOUVELLE ETOILE PHARMACIE CABINET AGENCE ATELIER COMPTOIR MAISON
FAMILLE DOMAINE CHATEAU FERME ECURIE TERRE NATURE BIO SANTE BEAUTE COIFFURE SPORT EDUCATION FORMATION""".split()
STREET_NAMES = [
    "DES LILAS", "DU MOULIN", "DE LA GARE", "DE LA REPUBLIQUE", "JEAN JAURES", "DU GENERAL DE GAULLE", "VICTOR HUGO",
    "PASTEUR", "DE LA PAIX", "DES ECOLES", "DU CHATEAU", "DE L EGLISE", "DES JARDINS", "DE PARIS", "DE LA LIBERATION",
    "FOCH", "GAMBETTA", "DE VERDUN", "DE LA MAIRIE", "DU STADE", "DES PRES", "DES VIGNES", "DU PORT",
    "DE LA FONTAINE", "DES TILLEULS", "NATIONALE", "DU COMMERCE", "DE LA POSTE", "SAINT-MARTIN", "DES ROSES",
    "DU MARECHAL LECLERC", "EMILE ZOLA", "ARISTIDE BRIAND", "LOUIS PASTEUR", "DES CHENES", "DE LA LIBERTE",
    "DU 8 MAI 1945", "DU 11 NOVEMBRE 1918", "DES ACACIAS", "DE BELLEVUE", "DES PINS", "DU BOURG", "DE LA CROIX",
    "DES CHAMPS", "DU CENTRE", "DE LA RIVIERE", "DES PLATANES", "DE L INDUSTRIE", "DES ARTISANS", "MOZART",
    "ALBERT CAMUS", "CHARLES DE GAULLE", "LEONCE DE SEYNES", "FRANCOIS MAURIAC", "DES MARTYRS DE LA RESISTANCE",
    "DU PRESIDENT WILSON", "D ALSACE LORRAINE", "DE LA MER", "DU LAVOIR", "DES GRANDS CHAMPS",
]  # fmt: skip
COMPLEMENTS = [
    "BATIMENT A", "BAT B", "RESIDENCE LES PINS", "ZI DES PRES", "ZA DU MOULIN", "CENTRE COMMERCIAL", "ETAGE 2",
    "LOCAL 3", "CHEZ M DUPONT", "PARC D ACTIVITES", "IMMEUBLE LE FORUM", "ESCALIER C", "APPARTEMENT 12",
    "LE BOURG", "LIEU DIT LA FERME", "HAMEAU DES CHENES", "ZAC DE LA GARE", "TOUR EUROPE",
]  # fmt: skip
# Values holding the literal backslash-comma quirk of the real files.
BACKSLASH_COMMA = [
    "BATIMENT A\\, ETAGE 2", "RESIDENCE LES PINS\\, BAT C", "CHEZ DUPONT\\, MARTIN", "ZI NORD\\, LOT 4",
]  # fmt: skip
ENSEIGNES = [w for w in COMPANY_WORDS] + ["LE PETIT BISTROT", "CHEZ MARCEL", "L ATELIER", "AU BON PAIN",
                                            "LA BELLE EPOQUE", "O'TACOS", "LE FOURNIL", "SALON BEAUTE"]  # fmt: skip
