"""Vectorised generation of one chunk of the synthetic register (a contiguous range of unités légales).

Each chunk is generated with its own NumPy generator seeded by (seed, chunk index), so the output only
depends on the arguments, never on timing. All values are built as Arrow string arrays, exactly as they
appear in INSEE's CSV files (empty string for null, lowercase booleans); `writer` serialises them.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyproj import Transformer

from mirror.core.geo import epsg_for_commune
from mirror.core.schema import ND
from mirror.synthetic.generate import refdata as R

CHUNK_UNITS = 100_000  # fixed: the output must not depend on anything but the arguments
SIREN_SPACE = 100_000_000  # 8-digit SIREN bodies
LA_POSTE_BODY = 35_600_000  # SIREN 356000000
EPOCH = dt.date(1970, 1, 1)
MIGRATION_TS = "2024-03-22T14:26:06"
MIGRATION_DAY = (dt.date(2024, 3, 22) - EPOCH).days
NAF2008_DAY = (dt.date(2008, 1, 1) - EPOCH).days
EMPTY = pa.scalar("", pa.string())
TRUE = pa.scalar("true", pa.string())
FALSE = pa.scalar("false", pa.string())

TRANCHES = [
    "NN",
    "",
    "00",
    "01",
    "02",
    "03",
    "11",
    "12",
    "21",
    "22",
    "31",
    "32",
    "41",
    "42",
    "51",
    "52",
    "53",
]
_TRANCHE_ACTIVE = [44, 14, 8, 13, 7, 5, 4, 2.5, 0.9, 0.4, 0.1, 0.1, 0.05, 0.03, 0.02, 0.005, 0.003]
_TRANCHE_CLOSED = [42, 50, 3, 2.5, 1.2, 0.6, 0.4, 0.2, 0.05, 0.02, 0.01, 0.01, 0, 0, 0, 0, 0]
TRANCHE_ACTIVE = R._pool(TRANCHES, _TRANCHE_ACTIVE)
TRANCHE_CLOSED = R._pool(TRANCHES, _TRANCHE_CLOSED)
ESS_VALUES = pa.array(["", "N", "O"])
EMPLOYER_VALUES = pa.array(["O", "N", ""])


@dataclass(frozen=True)
class Context:
    """Per-run parameters shared by all chunks."""

    n_units: int
    seed: int
    layout: str
    end_day: int  # the stock is the register on this day (last day of the previous month)
    geolocation: bool = False  # also build the rows of the geolocation file (Chunk.geolocalisation)

    @property
    def after_migration(self) -> bool:
        return self.end_day > MIGRATION_DAY


# ---------------------------------------------------------------------------------------------
# Small vectorised helpers.
# ---------------------------------------------------------------------------------------------


def luhn_check_digits(body: np.ndarray, ndigits: int) -> np.ndarray:
    """Check digit to append to each `ndigits`-digit number so that the result passes Luhn."""
    total = np.zeros(len(body), dtype=np.int64)
    v = body.astype(np.int64, copy=True)
    for k in range(ndigits):
        d = v % 10
        v //= 10
        if k % 2 == 0:  # doubled: 2nd, 4th... digit from the right of the final number
            d = d * 2
            d = np.where(d > 9, d - 9, d)
        total += d
    return (10 - total % 10) % 10


def digit_sum(body: np.ndarray, ndigits: int) -> np.ndarray:
    total = np.zeros(len(body), dtype=np.int64)
    v = body.astype(np.int64, copy=True)
    for _ in range(ndigits):
        total += v % 10
        v //= 10
    return total


def padded(values: np.ndarray, width: int) -> pa.Array:
    return pc.utf8_lpad(pa.array(values.astype(np.int64)).cast(pa.string()), width, "0")


def ints(values: np.ndarray) -> pa.Array:
    return pa.array(values.astype(np.int64)).cast(pa.string())


def take(values: pa.Array, idx: np.ndarray) -> pa.Array:
    return values.take(pa.array(idx.astype(np.int64)))


def where(mask: np.ndarray, a, b) -> pa.Array:
    return pc.if_else(pa.array(mask, pa.bool_()), a, b)


def bools(mask: np.ndarray) -> pa.Array:
    return where(mask, TRUE, FALSE)


def dates(days: np.ndarray) -> pa.Array:
    return pa.array(days.astype(np.int32), pa.date32()).cast(pa.string())


def join(*parts, sep: str = " ") -> pa.Array:
    return pc.binary_join_element_wise(*parts, sep)


def timestamps(rng: np.random.Generator, lo_day: np.ndarray, ctx: Context) -> pa.Array:
    """dateDernierTraitement: the 3.11 migration stamp on many rows, else a time after `lo_day`,
    with milliseconds on some rows (INSEE's API form) and without on others."""
    n = len(lo_day)
    end = ctx.end_day
    if ctx.after_migration:
        migrated = (lo_day < MIGRATION_DAY) & (rng.random(n) < 0.72)
        lo = np.maximum(lo_day, MIGRATION_DAY + 1)
    else:
        migrated = np.zeros(n, dtype=bool)
        lo = lo_day
    lo = np.minimum(lo, end)
    day = lo + (rng.random(n) * (end - lo + 1)).astype(np.int64)
    ms = day * 86_400_000 + rng.integers(5 * 3_600_000, 23 * 3_600_000, n)
    with_ms = rng.random(n) < 0.3
    ms = np.where(with_ms, ms, ms - ms % 1000)
    text = pa.array(ms, pa.timestamp("ms")).cast(pa.string())  # "YYYY-MM-DD HH:MM:SS.fff"
    text = pc.replace_substring(text, " ", "T", max_replacements=1)
    text = where(with_ms, text, pc.utf8_slice_codeunits(text, 0, 19))
    return where(migrated, pa.scalar(MIGRATION_TS), text)


def blank(n: int) -> pa.Array:
    """n empty strings (built from buffers: no Python objects)."""
    return pa.StringArray.from_buffers(n, pa.py_buffer(np.zeros(n + 1, dtype=np.int32)), pa.py_buffer(b""))


def _mask(n: int, positions: np.ndarray) -> pa.Array:
    mask = np.zeros(n, dtype=bool)
    mask[positions] = True
    return pa.array(mask)


def group_starts(counts: np.ndarray) -> np.ndarray:
    starts = np.zeros(len(counts), dtype=np.int64)
    np.cumsum(counts[:-1], out=starts[1:])
    return starts


def excl_cumsum_in_groups(x: np.ndarray, group: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """For rows laid out group after group: sum of x over the previous rows of the same group."""
    cs = np.cumsum(x) - x
    return cs - cs[starts][group]


def pick(rng: np.random.Generator, cum: np.ndarray, n: int) -> np.ndarray:
    return np.minimum(np.searchsorted(cum, rng.random(n), side="right"), len(cum) - 1)


@functools.lru_cache(maxsize=16)
def _transformer(epsg: int) -> Transformer:
    return Transformer.from_crs(4326, epsg, always_xy=True)


@functools.lru_cache(maxsize=1)
def _dep_tables():
    codes = [d for d, _, _ in R.DEP_POINTS]
    lat = np.array([p[1] for p in R.DEP_POINTS])
    lon = np.array([p[2] for p in R.DEP_POINTS])
    jitter = np.array([R.DEP_JITTER.get(d, R.DEFAULT_JITTER) for d in codes])
    epsg = np.array([epsg_for_commune(d + "001" if len(d) == 2 else d + "01") or 0 for d in codes])
    return lat, lon, jitter, epsg


def around_commune(
    rng: np.random.Generator, com_idx: np.ndarray, ok: np.ndarray, widen: np.ndarray | float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """WGS84 points around each commune's centre (refdata.Geography.lat/lon), a normal spread of the
    commune's `spread` (times `widen`), cut at 2.5 spreads; NaN where not `ok` or without a point. Draws
    two uniforms per row, whatever `ok`."""
    geo = R.geography()
    u1, u2 = rng.random(len(com_idx)), rng.random(len(com_idx))
    c = np.where(ok, com_idx, 0)
    lat0, lon0 = geo.lat[c], geo.lon[c]
    r = np.minimum(np.sqrt(-2 * np.log1p(-u1)), 2.5) * geo.spread[c] * widen
    lat = lat0 + r * np.cos(2 * np.pi * u2)
    lon = lon0 + r * np.sin(2 * np.pi * u2) / np.maximum(np.cos(np.radians(lat0)), 0.1)
    bad = ~ok | np.isnan(lat0)
    return np.where(bad, np.nan, lat), np.where(bad, np.nan, lon)


def project(
    lat: np.ndarray, lon: np.ndarray, dep_idx: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, y, epsg) of WGS84 points in their territory's projection (EPSG 0 and NaN where unknown)."""
    epsg = _dep_tables()[3]
    ok = (dep_idx >= 0) & ~np.isnan(lat)
    eps = np.where(ok, epsg[np.where(ok, dep_idx, 0)], 0)
    x = np.full(len(lat), np.nan)
    y = np.full(len(lat), np.nan)
    for code in np.unique(eps):
        if code == 0:
            continue
        sel = eps == code
        x[sel], y[sel] = _transformer(int(code)).transform(lon[sel], lat[sel])
    return x, y, eps


def lambert(
    rng: np.random.Generator, com_idx: np.ndarray, ok: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x, y, epsg, lat, lon): projected coordinates around each établissement's commune (where `ok`), in
    the territory's EPSG, and the same points in WGS84."""
    lat, lon = around_commune(rng, com_idx, ok)
    x, y, eps = project(lat, lon, np.where(ok, R.geography().dep_index[com_idx], -1))
    return x, y, eps, lat, lon


# ---------------------------------------------------------------------------------------------
# The chunk.
# ---------------------------------------------------------------------------------------------


@dataclass
class Chunk:
    """Arrow string columns of the six files for one range of unités légales (current header names)."""

    unites_legales: dict[str, pa.Array]
    etablissements: dict[str, pa.Array]
    unites_legales_historique: dict[str, pa.Array]
    etablissements_historique: dict[str, pa.Array]
    liens_succession: dict[str, pa.Array]
    doublons: dict[str, pa.Array]
    geolocalisation: dict[str, pa.Array] | None = None  # only when Context.geolocation


def generate_chunk(ctx: Context, index: int) -> Chunk:
    rng = np.random.default_rng([ctx.seed, index, 0x5EE])
    lo = index * CHUNK_UNITS
    hi = min(ctx.n_units, lo + CHUNK_UNITS)
    return _Builder(ctx, rng, lo, hi).build()


class _Builder:
    def __init__(self, ctx: Context, rng: np.random.Generator, lo: int, hi: int):
        self.ctx, self.rng, self.lo, self.hi = ctx, rng, lo, hi
        self.n = hi - lo

    # -- unités légales ------------------------------------------------------------------------
    def units(self):
        ctx, rng, n = self.ctx, self.rng, self.n
        i = np.arange(self.lo, self.hi, dtype=np.int64)
        b_lo = i * SIREN_SPACE // ctx.n_units
        b_hi = (i + 1) * SIREN_SPACE // ctx.n_units
        body = b_lo + (rng.random(n) * (b_hi - b_lo)).astype(np.int64)
        poste = (b_lo <= LA_POSTE_BODY) & (LA_POSTE_BODY < b_hi)
        body = np.where(poste, LA_POSTE_BODY, body)
        self.siren_int = body * 10 + luhn_check_digits(body, 8)
        self.poste = poste

        person = (rng.random(n) < 0.562) & ~poste
        purged = (rng.random(n) < 0.035) & ~poste
        active = np.where(person, rng.random(n) < 0.42, rng.random(n) < 0.58) & ~purged | poste
        status_p = np.where(person, rng.random(n) < 0.045, rng.random(n) < 0.012) & ~poste
        self.person, self.purged, self.active, self.status_p = person, purged, active, status_p

        # Number of établissements: a Zipf long tail, heavier for companies; La Poste has many.
        n_et = np.where(person, rng.zipf(3.5, n), rng.zipf(2.5, n))
        n_et = np.minimum(n_et, int(np.clip(ctx.n_units // 100, 25, 4000)))  # the tail grows with the scale
        n_et = np.where(poste, int(np.clip(ctx.n_units // 2500, 12, 4000)), n_et)
        n_et = np.where(purged, np.minimum(n_et, 2), n_et)
        self.n_et = n_et.astype(np.int64)

        # Dates: creation, then the start of the current period (closure date for ceased units).
        end = ctx.end_day
        age = rng.exponential(13.0 * 365.25, n)
        creation = np.maximum(end - age.astype(np.int64), (dt.date(1902, 1, 1) - EPOCH).days)
        purge_end = min((dt.date(2002, 12, 31) - EPOCH).days, end)
        p_creation = purge_end - 400 - (rng.exponential(12 * 365.25, n)).astype(np.int64)
        creation = np.where(purged, p_creation, creation)
        creation = np.where(poste, (dt.date(1991, 1, 1) - EPOCH).days, creation)
        creation = np.minimum(creation, end - 2)
        limit = np.where(purged, purge_end, end)
        frac = np.where(active, rng.random(n), rng.random(n) ** 0.6)
        dcur = creation + (frac * (limit - creation)).astype(np.int64)
        dcur = np.where(~active, np.maximum(dcur, creation + 2), dcur)  # a closure is a change
        p = np.where(purged, 1, rng.geometric(1 / 2.25, n))
        p = np.where(~active & ~purged, np.maximum(p, 2), p)
        p = np.minimum(np.minimum(p, 40), dcur - creation + 1)
        dcur = np.where((p == 1) & ~purged, creation, dcur)  # purged units keep only their last period
        self.creation, self.dcur, self.p = creation, dcur, p.astype(np.int64)
        # ceased units: their établissements close on or before the unit's closure date
        self.limit = np.where(active, end, dcur)

        # Identity and activity.
        self.cj_idx = R.categories_juridiques().pick(rng, n)
        acts = R.activities()
        self.naf_idx = acts.naf2.pick(rng, n)
        self.old_idx = rng.integers(0, len(acts.old_codes), n)
        self.last_idx = rng.integers(0, len(R.LAST_NAMES), n)
        self.w1 = rng.integers(0, len(R.COMPANY_WORDS), n)
        self.w2 = rng.integers(0, len(R.COMPANY_WORDS), n)
        self.ess_idx = np.where(self.is_asso(), pick(rng, np.cumsum([0.3, 0.3, 0.4]), n),
                                pick(rng, np.cumsum([0.68, 0.30, 0.02]), n))  # fmt: skip
        self.du_idx = np.where(rng.random(n) < 0.03, rng.integers(0, len(R.ENSEIGNES), n), -1)
        self.nomusage_idx = np.where(
            person & (rng.random(n) < 0.08), rng.integers(0, len(R.LAST_NAMES), n), -1
        )

    def is_asso(self):
        return R.association_mask()[self.cj_idx] & ~self.person

    # -- établissements ------------------------------------------------------------------------
    def etabs(self):
        rng, n = self.rng, self.n
        n_et = self.n_et
        m = int(n_et.sum())
        self.m = m
        unit = np.repeat(np.arange(n), n_et)
        starts = group_starts(n_et)
        j = np.arange(m) - starts[unit]
        self.e_unit, self.e_j, self.e_starts = unit, j, starts
        gaps = np.where(rng.random(m) < 0.7, 0, rng.integers(1, 4, m))
        seq = 1 + j + excl_cumsum_in_groups(gaps, unit, starts)
        seq = np.minimum(seq, 9999)
        body13 = self.siren_int[unit] * 10_000 + seq
        check = luhn_check_digits(body13, 13)
        siege_j = np.where(self.person | (rng.random(n) < 0.6), 0, (rng.random(n) * n_et).astype(np.int64))
        siege_j = np.where(self.poste, 0, siege_j)
        self.siege_j = siege_j
        is_siege = j == siege_j[unit]
        poste_e = self.poste[unit] & ~is_siege
        s5 = digit_sum(body13, 13) % 5
        d5 = (5 - s5) % 5
        d5 = np.where(d5 == check, d5 + 5, d5)  # La Poste: digit sum % 5 == 0 but not Luhn
        check = np.where(poste_e, d5, check)
        self.nic_int = seq * 10 + check
        self.siret_int = self.siren_int[unit] * 100_000 + self.nic_int
        self.is_siege = is_siege
        # Former siège (for units whose siège moved: see the history).
        self.old_siege_j = np.where(n_et >= 2, (siege_j + 1) % np.maximum(n_et, 1), -1)

        # States.
        u_active = self.active[unit]
        e_active = u_active & np.where(is_siege, rng.random(m) < 0.97, rng.random(m) < 0.40)
        self.e_active = e_active
        # Dates: établissements are created between the unit's creation and its closure.
        ucre, ulim = self.creation[unit], self.limit[unit]
        ecre = np.where(is_siege & (j == 0), ucre, ucre + (rng.random(m) * (ulim - ucre)).astype(np.int64))
        ecre = np.minimum(ecre, ulim - 1)
        close = ecre + 1 + (rng.random(m) ** 0.7 * (ulim - ecre - 1)).astype(np.int64)
        pe = rng.geometric(1 / 1.75, m)
        pe = np.where(~e_active, np.maximum(pe, 2), pe)
        edcur = np.where(e_active, ecre + (rng.random(m) * (self.ctx.end_day - ecre)).astype(np.int64), close)
        pe = np.minimum(np.minimum(pe, 40), edcur - ecre + 1)
        edcur = np.where(pe == 1, ecre, edcur)
        self.ecre, self.edcur, self.pe = ecre, edcur, pe.astype(np.int64)

    # -- history: shared period machinery ------------------------------------------------------
    def periods(self, p: np.ndarray, creation: np.ndarray, dcur: np.ndarray):
        """Periods, most recent first within each owner: (owner, rank r, start day, end day or -1)."""
        rng = self.rng
        owner = np.repeat(np.arange(len(p)), p)
        starts = group_starts(p)
        r = np.arange(len(owner)) - starts[owner]
        k = p[owner] - 1 - r  # chronological index
        span = (dcur - creation)[owner]
        u = rng.random(len(owner))
        # sort the random fractions within each owner, descending with r (ascending in time)
        u = u[np.lexsort((-u, owner))]
        t = (u * (span - p[owner] + 2)).astype(np.int64)
        start = creation[owner] + t + k
        start = np.where(k == 0, creation[owner], start)
        start = np.where(r == 0, dcur[owner], start)
        nxt = np.empty_like(start)
        nxt[1:] = start[:-1]
        end = np.where(r == 0, -1, nxt - 1)
        return owner, r, start, end, starts

    def build(self) -> Chunk:
        self.units()
        self.etabs()
        chunk = Chunk(*self.tables())
        if self.ctx.geolocation:
            chunk.geolocalisation = self.geolocation_table(chunk.etablissements["siret"])
        return chunk

    # -- tables --------------------------------------------------------------------------------
    def tables(self):
        ctx, rng, n = self.ctx, self.rng, self.n
        acts = R.activities()
        person, purged, active = self.person, self.purged, self.active
        siren = padded(self.siren_int, 9)
        nic = padded(self.nic_int, 5)
        siret = padded(self.siret_int, 14)

        # ---- unit identity --------------------------------------------------------------------
        last = pa.array(R.LAST_NAMES)
        fm = pa.array(R.FIRST_NAMES_M)
        ff = pa.array(R.FIRST_NAMES_F)
        female = rng.random(n) < 0.42
        firsts = []
        has = person.copy()
        for share in (1.0, 0.5, 0.4, 0.25):  # prenom2 only with a prenom1, etc.
            idx_m = rng.integers(0, len(fm), n)
            idx_f = rng.integers(0, len(ff), n)
            name = where(female, take(ff, idx_f), take(fm, idx_m))
            has &= rng.random(n) < share
            firsts.append(where(has, name, EMPTY))
        sexe = where(person, where(female, pa.scalar("F"), pa.scalar("M")), EMPTY)
        prenom_usuel = where(person & (rng.random(n) < 0.93), firsts[0], EMPTY)
        pseudo = where(person & (rng.random(n) < 0.002), take(pa.array(R.COMPANY_WORDS), self.w1), EMPTY)
        words = pa.array(R.COMPANY_WORDS)

        def nom_variant(mv):
            return take(last, (self.last_idx + mv * 13) % len(last))

        def denom_variant(mv):
            d = join(take(words, (self.w1 + mv * 7) % len(words)), take(words, self.w2))
            return d

        special = rng.random(n)
        denom_special = pa.array(['ASSOCIATION "LES AMIS DU VIEUX MOULIN"', "DUPONT\\, MARTIN ET ASSOCIES",
                                  'SARL "LE FOURNIL"', "SCI DES LILAS\\, DES ROSES"])  # fmt: skip
        base_denom = denom_variant(np.zeros(n, dtype=np.int64))
        cur_denom = where(special < 0.0015, take(denom_special, rng.integers(0, 4, n)), base_denom)
        nom = where(person, nom_variant(np.zeros(n, dtype=np.int64)), EMPTY)
        denom = where(person, EMPTY, cur_denom)
        nomusage = where(self.nomusage_idx >= 0, take(last, np.maximum(self.nomusage_idx, 0)), EMPTY)
        ens = pa.array(R.ENSEIGNES)
        du1 = where(self.du_idx >= 0, take(ens, np.maximum(self.du_idx, 0)), EMPTY)
        letters = rng.integers(65, 91, (n, 4)).astype(np.uint8)
        sigle = pa.array(letters.view("S4").ravel()).cast(pa.string())
        sigle = where(~person & (rng.random(n) < 0.09), sigle, EMPTY)
        cj_codes = R.categories_juridiques().values
        cj = where(person, pa.scalar("1000"), take(cj_codes, self.cj_idx))
        asso_ok = self.is_asso() & (rng.random(n) < 0.6)
        rna = pc.binary_join_element_wise(pa.scalar("W"), padded(rng.integers(0, 10**9, n), 9), "")
        rna = where(asso_ok, rna, EMPTY)

        # activity: current NAF rév. 2, old nomenclatures on purged units
        naf = where(purged, take(acts.old_codes, self.old_idx), take(acts.naf2.values, self.naf_idx))
        nomen = where(purged, take(acts.old_nomenclature, self.old_idx), pa.scalar("NAFRev2"))
        naf25 = where(active & ~purged, take(acts.naf25_of_naf2, self.naf_idx), EMPTY)

        tranche_i = np.where(active, TRANCHE_ACTIVE.pick(rng, n), TRANCHE_CLOSED.pick(rng, n))
        tranche_i = np.where(self.poste, len(TRANCHES) - 1, tranche_i)
        tranche = take(pa.array(TRANCHES), tranche_i)
        annee_eff = where(
            tranche_i >= 2, where(rng.random(n) < 0.9, pa.scalar("2023"), pa.scalar("2022")), EMPTY
        )
        cat_r = rng.random(n)
        cat = np.where(
            cat_r < 0.70, "PME", np.where(cat_r < 0.7025, "ETI", np.where(cat_r < 0.7028, "GE", ""))
        )
        cat = np.where(active, cat, "")
        cat = np.where(self.poste, "GE", cat)
        categorie = pa.array(cat)
        annee_cat = where(cat != "", pa.scalar("2023"), EMPTY)
        employer_ul = where(tranche_i >= 3, pa.scalar("O"), pa.scalar("N")) if ctx.layout == "3.9" else None
        if employer_ul is None:
            employer_ul = blank(n)
        ess = take(ESS_VALUES, self.ess_idx)
        mission = where(~person & active & (rng.random(n) < 0.25),
                        where(rng.random(n) < 0.015, pa.scalar("O"), pa.scalar("N")), EMPTY)  # fmt: skip

        creation_txt = dates(self.creation)
        junk = rng.choice(
            n, size=min(n, max(2, int(n * 2e-5))), replace=False
        )  # implausible dates on a few rows
        junk_dates = np.where(np.arange(len(junk)) % 2 == 0, "0001-01-16", "2028-01-01")
        creation_txt = pc.replace_with_mask(
            creation_txt, _mask(n, junk), pa.array(junk_dates[np.argsort(junk)])
        )
        creation_txt = where(purged & (rng.random(n) < 0.3), EMPTY, creation_txt)
        ts_ul = timestamps(rng, self.dcur, ctx)

        nic_siege = take(nic, self.e_starts + self.siege_j)

        # P units: identity of persons, sigle of companies.
        sp = self.status_p
        sp_person = sp & person

        def mask_ul(col, mask):
            return where(mask & pc.not_equal(col, EMPTY).to_numpy(zero_copy_only=False), pa.scalar(ND), col)

        ul = {
            "siren": siren,
            "statutDiffusionUniteLegale": where(sp, pa.scalar("P"), pa.scalar("O")),
            "unitePurgeeUniteLegale": where(purged, TRUE, EMPTY),
            "dateCreationUniteLegale": creation_txt,
            "sigleUniteLegale": mask_ul(sigle, sp & ~person),
            "sexeUniteLegale": mask_ul(sexe, sp_person),
            "prenom1UniteLegale": mask_ul(firsts[0], sp_person),
            "prenom2UniteLegale": mask_ul(firsts[1], sp_person),
            "prenom3UniteLegale": mask_ul(firsts[2], sp_person),
            "prenom4UniteLegale": mask_ul(firsts[3], sp_person),
            "prenomUsuelUniteLegale": mask_ul(prenom_usuel, sp_person),
            "pseudonymeUniteLegale": mask_ul(pseudo, sp_person),
            "identifiantAssociationUniteLegale": rna,
            "trancheEffectifsUniteLegale": tranche,
            "anneeEffectifsUniteLegale": annee_eff,
            "dateDernierTraitementUniteLegale": ts_ul,
            "nombrePeriodesUniteLegale": ints(self.p),
            "categorieEntreprise": categorie,
            "anneeCategorieEntreprise": annee_cat,
            "dateDebut": dates(self.dcur),
            "etatAdministratifUniteLegale": where(active, pa.scalar("A"), pa.scalar("C")),
            "nomUniteLegale": mask_ul(nom, sp_person),
            "nomUsageUniteLegale": mask_ul(nomusage, sp_person),
            "denominationUniteLegale": denom,
            "denominationUsuelle1UniteLegale": du1,
            "denominationUsuelle2UniteLegale": where(rng.random(n) < 0.003, du1, EMPTY),
            "denominationUsuelle3UniteLegale": blank(n),
            "categorieJuridiqueUniteLegale": cj,
            "activitePrincipaleUniteLegale": naf,
            "nomenclatureActivitePrincipaleUniteLegale": nomen,
            "nicSiegeUniteLegale": nic_siege,
            "economieSocialeSolidaireUniteLegale": ess,
            "societeMissionUniteLegale": mission,
            "caractereEmployeurUniteLegale": employer_ul,
            "activitePrincipaleNAF25UniteLegale": naf25,
        }
        if self.poste.any():
            k = int(np.flatnonzero(self.poste)[0])
            arr = ul["denominationUniteLegale"].to_pylist()
            arr[k] = "LA POSTE"
            ul["denominationUniteLegale"] = pa.array(arr)
            ul["categorieJuridiqueUniteLegale"] = where(
                self.poste, pa.scalar("5510"), ul["categorieJuridiqueUniteLegale"]
            )
            ul["activitePrincipaleUniteLegale"] = where(self.poste, pa.scalar("53.10Z"), naf)
            ul["activitePrincipaleNAF25UniteLegale"] = where(self.poste, pa.scalar("53.10Y"), naf25)
            naf = ul["activitePrincipaleUniteLegale"]
            naf25 = ul["activitePrincipaleNAF25UniteLegale"]

        # ---- unit history -------------------------------------------------------------------
        ulh, transfers = self.unit_history(ul, nom_variant, denom_variant, nic)

        # ---- établissements -----------------------------------------------------------------
        et, e_fields = self.etab_table(ul, siren, nic, siret, naf, nomen, naf25)
        eh = self.etab_history(et, e_fields)
        liens = self.liens(siret, transfers)
        doublons = self.doublons(siren)
        return ul, et, ulh, eh, liens, doublons

    def unit_history(self, ul, nom_variant, denom_variant, nic):
        ctx, rng = self.ctx, self.rng
        acts = R.activities()
        owner, r, start, end, starts = self.periods(self.p, self.creation, self.dcur)
        q = len(owner)
        person, purged = self.person[owner], self.purged[owner]
        oldest = r == self.p[owner] - 1
        # event at the start of each period except the oldest: which field changed
        # 0 etat, 1 activite, 2 nicSiege, 3 nom/denomination, 4 cj, 5 ess, 6 employeur, 7 denom usuelle, 8 nomUsage
        w = np.array([0, 38, 22, 12, 4, 5, 14 if ctx.layout == "3.9" else 0, 3, 2], dtype=float)
        ev = pick(rng, np.cumsum(w / w.sum()), q)
        closed_now = ~self.active[owner] & (r == 0)
        ev = np.where(closed_now, 0, ev)
        ev = np.where((ev == 2) & (self.n_et[owner] < 2), 1, ev)
        ev = np.where((ev == 4) & person, 1, ev)
        ev = np.where((ev == 8) & ~person, 7, ev)
        ev = np.where(((ev == 3) | (ev == 8)) & person & self.status_p[owner], 1, ev)
        # only the most recent siège move (the former siège is one known établissement)
        is2 = (ev == 2).astype(np.int64)
        ev = np.where((ev == 2) & (excl_cumsum_in_groups(is2, owner, starts) > 0), 1, ev)
        ev = np.where(oldest & ~(purged & closed_now), -1, ev)

        def variant(kind):
            hit = (ev == kind).astype(np.int64)
            return hit, excl_cumsum_in_groups(hit, owner, starts)

        def own(col):
            return take(col, owner)

        cols: dict[str, pa.Array] = {"siren": own(ul["siren"])}
        cols["dateFin"] = where(r == 0, EMPTY, dates(np.where(r == 0, 0, end)))
        cols["dateDebut"] = dates(start)
        hit, cnt = variant(0)
        cols["etatAdministratifUniteLegale"] = where(
            cnt > 0, pa.scalar("A"), own(ul["etatAdministratifUniteLegale"])
        )
        cols["changementEtatAdministratifUniteLegale"] = bools(hit > 0)
        hit3, cnt3 = variant(3)
        o_last = self.last_idx[owner]
        nom_alt = take(pa.array(R.LAST_NAMES), (o_last + cnt3 * 13) % len(R.LAST_NAMES))
        cols["nomUniteLegale"] = where(person & (cnt3 > 0), nom_alt, own(ul["nomUniteLegale"]))
        cols["changementNomUniteLegale"] = bools((hit3 > 0) & person)
        hit8, cnt8 = variant(8)
        alt_usage = take(pa.array(R.LAST_NAMES), (o_last + 1 + cnt8 * 17) % len(R.LAST_NAMES))
        cols["nomUsageUniteLegale"] = where(cnt8 > 0, alt_usage, own(ul["nomUsageUniteLegale"]))
        cols["changementNomUsageUniteLegale"] = bools(hit8 > 0)
        words = pa.array(R.COMPANY_WORDS)
        alt_den = join(take(words, (self.w1[owner] + cnt3 * 7) % len(words)), take(words, self.w2[owner]))
        cols["denominationUniteLegale"] = where(
            ~person & (cnt3 > 0), alt_den, own(ul["denominationUniteLegale"])
        )
        cols["changementDenominationUniteLegale"] = bools((hit3 > 0) & ~person)
        hit7, cnt7 = variant(7)
        ens = pa.array(R.ENSEIGNES)
        alt_du = take(ens, (np.maximum(self.du_idx[owner], 0) + 1 + cnt7 * 5) % len(ens))
        cols["denominationUsuelle1UniteLegale"] = where(
            cnt7 > 0, alt_du, own(ul["denominationUsuelle1UniteLegale"])
        )
        cols["denominationUsuelle2UniteLegale"] = own(ul["denominationUsuelle2UniteLegale"])
        cols["denominationUsuelle3UniteLegale"] = own(ul["denominationUsuelle3UniteLegale"])
        cols["changementDenominationUsuelleUniteLegale"] = bools(hit7 > 0)
        hit4, cnt4 = variant(4)
        cjv = R.categories_juridiques().values
        alt_cj = take(cjv, (self.cj_idx[owner] + cnt4 * 5) % len(cjv))
        cols["categorieJuridiqueUniteLegale"] = where(
            cnt4 > 0, alt_cj, own(ul["categorieJuridiqueUniteLegale"])
        )
        cols["changementCategorieJuridiqueUniteLegale"] = bools(hit4 > 0)
        hit1, cnt1 = variant(1)
        pre2008 = (r > 0) & (end < NAF2008_DAY)
        alt_naf = take(acts.naf2.values, (self.naf_idx[owner] + cnt1 * 37) % len(acts.naf2))
        rev1_lo = acts.n_nap + acts.n_naf1993
        alt_rev1 = take(acts.old_codes, rev1_lo + (self.naf_idx[owner] + cnt1 * 37) % acts.n_rev1)
        changed_naf = (cnt1 > 0) & ~purged
        cols["activitePrincipaleUniteLegale"] = where(
            changed_naf, where(pre2008, alt_rev1, alt_naf), own(ul["activitePrincipaleUniteLegale"])
        )
        cols["nomenclatureActivitePrincipaleUniteLegale"] = where(
            changed_naf, where(pre2008, pa.scalar("NAFRev1"), pa.scalar("NAFRev2")),
            own(ul["nomenclatureActivitePrincipaleUniteLegale"]),
        )  # fmt: skip
        cols["changementActivitePrincipaleUniteLegale"] = bools(hit1 > 0)
        hit2, cnt2 = variant(2)
        old_siege = take(nic, self.e_starts[owner] + np.maximum(self.old_siege_j[owner], 0))
        cols["nicSiegeUniteLegale"] = where(cnt2 > 0, old_siege, own(ul["nicSiegeUniteLegale"]))
        cols["changementNicSiegeUniteLegale"] = bools(hit2 > 0)
        hit5, cnt5 = variant(5)
        cols["economieSocialeSolidaireUniteLegale"] = where(
            cnt5 > 0,
            take(ESS_VALUES, (self.ess_idx[owner] + cnt5) % 3),
            own(ul["economieSocialeSolidaireUniteLegale"]),
        )
        cols["changementEconomieSocialeSolidaireUniteLegale"] = bools(hit5 > 0)
        cols["societeMissionUniteLegale"] = own(ul["societeMissionUniteLegale"])
        cols["changementSocieteMissionUniteLegale"] = bools(np.zeros(q, dtype=bool))
        hit6, cnt6 = variant(6)
        emp = own(ul["caractereEmployeurUniteLegale"])
        emp_alt = where(pc.equal(emp, pa.scalar("O")), pa.scalar("N"), pa.scalar("O"))
        flip = (cnt6 % 2) == 1
        cols["caractereEmployeurUniteLegale"] = where(flip, emp_alt, emp)
        cols["changementCaractereEmployeurUniteLegale"] = bools(hit6 > 0)
        # siège moves: (unit, date) for the liens de succession
        moved = np.flatnonzero(hit2 > 0)
        transfers = (owner[moved], start[moved])
        return cols, transfers

    def etab_table(self, ul, siren, nic, siret, naf, nomen, naf25):
        ctx, rng, m = self.ctx, self.rng, self.m
        unit = self.e_unit
        acts = R.activities()
        geo = R.geography()
        e_active = self.e_active
        person = self.person[unit]
        u_p = self.status_p[unit]
        e_p = np.where(person, u_p, np.where(u_p, rng.random(m) < 0.5, rng.random(m) < 0.012))
        e_p &= ~self.poste[unit]
        self.e_p = e_p

        # activity: most établissements share their unit's
        own_naf = rng.random(m) < 0.88
        e_naf_idx = np.where(own_naf, self.naf_idx[unit], acts.naf2.pick(rng, m))
        self.e_naf_idx = e_naf_idx
        purged = self.purged[unit]
        e_naf = where(own_naf | purged, take(naf, unit), take(acts.naf2.values, e_naf_idx))
        e_nomen = where(own_naf | purged, take(nomen, unit), pa.scalar("NAFRev2"))
        e_naf25 = where(
            e_active & ~purged, where(own_naf, take(naf25, unit), take(acts.naf25_of_naf2, e_naf_idx)), EMPTY
        )

        tranche_i = np.where(e_active, TRANCHE_ACTIVE.pick(rng, m), TRANCHE_CLOSED.pick(rng, m))
        tranche = take(pa.array(TRANCHES), tranche_i)
        annee = where(tranche_i >= 2, where(rng.random(m) < 0.9, pa.scalar("2023"), pa.scalar("2022")), EMPTY)
        rm = where(e_active & ~purged & (rng.random(m) < 0.06), take(acts.nafa, e_naf_idx), EMPTY)
        emp_i = np.where(e_active, np.where(tranche_i >= 3, 0, np.where(rng.random(m) < 0.9, 1, 2)),
                         np.where(rng.random(m) < 0.4, 1, 2))  # fmt: skip
        self.e_emp_i = emp_i

        # address: commune (weighted), postcode, street
        com_idx = geo.communes.pick(rng, m)
        # the établissements of a unit cluster: the siège's commune for 60 % of the others
        first = self.e_starts[unit]
        com_idx = np.where(rng.random(m) < 0.6, com_idx[first], com_idx)
        abroad = rng.random(m) < 0.003
        abroad &= ~self.poste[unit]
        codes = geo.communes.values
        commune = where(abroad, EMPTY, take(codes, com_idx))
        self.e_commune = commune
        commune_label = where(abroad, EMPTY, take(geo.labels, com_idx))
        pc_idx = geo.pc_offsets[com_idx] + (rng.random(m) * geo.pc_counts[com_idx]).astype(np.int64)
        postcode = where(abroad, EMPTY, take(geo.postcodes, pc_idx))
        fr = R.foreign()
        f_idx = pick(rng, fr.cum, m)
        pays = where(abroad, take(fr.codes, f_idx), EMPTY)
        pays_lib = where(abroad, take(fr.countries, f_idx), EMPTY)
        ville = where(abroad, take(fr.cities, f_idx), EMPTY)

        has_street = rng.random(m) < 0.93
        num = np.minimum(rng.zipf(1.6, m), 999)
        has_num = has_street & (rng.random(m) < 0.8)
        numero = where(has_num, ints(num), EMPTY)
        ind_r = rng.random(m)
        indice = where(has_num & (ind_r < 0.035), take(pa.array(["B", "T", "Q", "C", "A"]),
                                                       pick(rng, np.cumsum([0.75, 0.15, 0.04, 0.02, 0.04]), m)), EMPTY)  # fmt: skip
        v311 = ctx.layout != "3.9"
        dernier = where(has_num & (rng.random(m) < 0.01), ints(num + 2 * rng.integers(1, 4, m)), EMPTY)
        types = R.street_types(ctx.layout)
        type_voie = where(has_street, take(types.values, types.pick(rng, m)), EMPTY)
        streets = pa.array(R.STREET_NAMES)
        libelle_voie = where(has_street, take(streets, rng.integers(0, len(streets), m)), EMPTY)
        cpl_r = rng.random(m)
        cpl = where(cpl_r < 0.1, take(pa.array(R.COMPLEMENTS), rng.integers(0, len(R.COMPLEMENTS), m)), EMPTY)
        cpl = where(
            cpl_r < 0.002, take(pa.array(R.BACKSLASH_COMMA), rng.integers(0, len(R.BACKSLASH_COMMA), m)), cpl
        )
        libelle_voie = where((cpl_r > 0.998) & has_street, pa.scalar("DES CHENES\\, DES PINS"), libelle_voie)
        dist_r = rng.random(m)
        distrib = where(dist_r < 0.01, join(pa.scalar("BP"), ints(rng.integers(1, 999, m))), EMPTY)
        cedex = where((dist_r < 0.004) & ~abroad, postcode, EMPTY)
        cedex_lib = where((dist_r < 0.004) & ~abroad, join(commune_label, pa.scalar("CEDEX")), EMPTY)

        # coordinates (3.11+): ~30 % of active, fewer closed ones (~13 % of all rows, as in the real stock),
        # around the établissement's commune, in the territory's EPSG
        dep_idx = np.where(abroad, -1, geo.dep_index[com_idx])
        geo_ok = np.where(e_active, rng.random(m) < 0.3, rng.random(m) < 0.05) & (dep_idx >= 0) & has_street
        x, y, _, lat, lon = lambert(rng, com_idx, geo_ok)
        geo_ok &= ~np.isnan(x)
        self.e_geo = {"com_idx": com_idx, "abroad": abroad, "has_street": has_street, "stock_xy": geo_ok,
                      "lat": lat, "lon": lon, "x": x, "y": y}  # fmt: skip
        xs = where(geo_ok, pa.array(np.nan_to_num(x)).cast(pa.string()), EMPTY)
        ys = where(geo_ok, pa.array(np.nan_to_num(y)).cast(pa.string()), EMPTY)
        alnum = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz0123456789", dtype=np.uint8)
        tail = alnum[rng.integers(0, 36, (m, 4))].view("S4").ravel()
        ident = join(commune, pa.array(tail).cast(pa.string()), sep="")
        ident = join(ident, pa.scalar("B"), sep="_")  # looks like 84007cvsr_B [inferred]
        ident = where(geo_ok & (rng.random(m) < 0.9), ident, EMPTY)

        # secondary address (rare, never on P établissements)
        sec = (rng.random(m) < 0.01) & ~abroad & ~e_p
        sec_num = where(sec, ints(rng.integers(1, 60, m)), EMPTY)
        sec_type = where(sec, take(types.values, types.pick(rng, m)), EMPTY)
        sec_lib = where(sec, take(streets, rng.integers(0, len(streets), m)), EMPTY)
        sec_pc = where(sec, postcode, EMPTY)
        sec_com_lib = where(sec, commune_label, EMPTY)
        sec_com = where(sec, commune, EMPTY)

        ens = pa.array(R.ENSEIGNES)
        ens_idx = np.where(rng.random(m) < 0.16, rng.integers(0, len(ens), m), -1)
        self.e_ens_idx = ens_idx
        ens1 = where(ens_idx >= 0, take(ens, np.maximum(ens_idx, 0)), EMPTY)
        ens2 = where((ens_idx >= 0) & (rng.random(m) < 0.05), take(ens, rng.integers(0, len(ens), m)), EMPTY)
        ens3 = where((ens_idx >= 0) & (rng.random(m) < 0.01), take(ens, rng.integers(0, len(ens), m)), EMPTY)
        du = where(rng.random(m) < 0.03, take(ens, rng.integers(0, len(ens), m)), EMPTY)

        created = dates(self.ecre)
        junk = rng.choice(m, size=min(m, max(2, int(m * 2e-5))), replace=False)
        junk_dates = np.where(np.arange(len(junk)) % 2 == 0, "5015-04-05", "0001-01-16")
        created = pc.replace_with_mask(created, _mask(m, junk), pa.array(junk_dates[np.argsort(junk)]))

        cols = {
            "siren": take(siren, unit),
            "nic": nic,
            "siret": siret,
            "statutDiffusionEtablissement": where(e_p, pa.scalar("P"), pa.scalar("O")),
            "dateCreationEtablissement": created,
            "trancheEffectifsEtablissement": tranche,
            "anneeEffectifsEtablissement": annee,
            "activitePrincipaleRegistreMetiersEtablissement": rm,
            "dateDernierTraitementEtablissement": timestamps(rng, self.edcur, ctx),
            "etablissementSiege": bools(self.is_siege),
            "nombrePeriodesEtablissement": ints(self.pe),
            "complementAdresseEtablissement": cpl,
            "numeroVoieEtablissement": numero,
            "indiceRepetitionEtablissement": indice,
            "dernierNumeroVoieEtablissement": dernier if v311 else EMPTY,
            "indiceRepetitionDernierNumeroVoieEtablissement": blank(m),
            "typeVoieEtablissement": type_voie,
            "libelleVoieEtablissement": libelle_voie,
            "codePostalEtablissement": postcode,
            "libelleCommuneEtablissement": commune_label,
            "libelleCommuneEtrangerEtablissement": ville,
            "distributionSpecialeEtablissement": distrib,
            "codeCommuneEtablissement": commune,
            "codeCedexEtablissement": cedex,
            "libelleCedexEtablissement": cedex_lib,
            "codePaysEtrangerEtablissement": pays,
            "libellePaysEtrangerEtablissement": pays_lib,
            "identifiantAdresseEtablissement": ident,
            "coordonneeLambertAbscisseEtablissement": xs,
            "coordonneeLambertOrdonneeEtablissement": ys,
            "complementAdresse2Etablissement": blank(m),
            "numeroVoie2Etablissement": sec_num,
            "indiceRepetition2Etablissement": blank(m),
            "typeVoie2Etablissement": sec_type,
            "libelleVoie2Etablissement": sec_lib,
            "codePostal2Etablissement": sec_pc,
            "libelleCommune2Etablissement": sec_com_lib,
            "libelleCommuneEtranger2Etablissement": blank(m),
            "distributionSpeciale2Etablissement": blank(m),
            "codeCommune2Etablissement": sec_com,
            "codeCedex2Etablissement": blank(m),
            "libelleCedex2Etablissement": blank(m),
            "codePaysEtranger2Etablissement": blank(m),
            "libellePaysEtranger2Etablissement": blank(m),
            "dateDebut": dates(self.edcur),
            "etatAdministratifEtablissement": where(e_active, pa.scalar("A"), pa.scalar("F")),
            "enseigne1Etablissement": ens1,
            "enseigne2Etablissement": ens2,
            "enseigne3Etablissement": ens3,
            "denominationUsuelleEtablissement": du,
            "activitePrincipaleEtablissement": e_naf,
            "nomenclatureActivitePrincipaleEtablissement": e_nomen,
            "caractereEmployeurEtablissement": take(EMPLOYER_VALUES, emp_i),
            "activitePrincipaleNAF25Etablissement": e_naf25,
        }
        for k, v in cols.items():
            if isinstance(v, pa.Scalar):
                cols[k] = pc.if_else(pa.array(np.ones(m, dtype=bool)), v, EMPTY)
        # P établissements: street part of the address, postcode and coordinates; names for persons.
        from mirror.core.schema import MASKED_ETABLISSEMENT_COLUMNS, MASKED_ETABLISSEMENT_PERSON_COLUMNS

        nd = pa.scalar(ND)
        for name in MASKED_ETABLISSEMENT_COLUMNS:
            col = cols[name]
            cols[name] = where(e_p & pc.not_equal(col, EMPTY).to_numpy(zero_copy_only=False), nd, col)
        for name in MASKED_ETABLISSEMENT_PERSON_COLUMNS:
            col = cols[name]
            cols[name] = where(
                e_p & person & pc.not_equal(col, EMPTY).to_numpy(zero_copy_only=False), nd, col
            )
        return cols, {"naf_idx": e_naf_idx}

    def geolocation_table(self, siret: pa.Array) -> dict[str, pa.Array]:
        """The rows of the geolocation file (GeolocalisationEtablissement_Sirene_pour_etudes_statistiques,
        mirror.core.schema.GEOLOCALISATION_FILE_COLUMNS) for this chunk's établissements, in their order.

        Coverage as in the real file (~37.9 M of ~44 M sirets, ~86 %): every établissement with stock
        coordinates (same point), most others in France with a street; none abroad nor in Mayotte
        (reference: the file does not cover it). qualite_xy 11 / 12 / 21 / 22 / 33 in the published shares
        (33, "voie inconnue", for the établissements without a street: a point anywhere in the commune).
        IRIS: "0000" in a commune under 10,000 inhabitants (not divided), else one of ~population/2,000
        codes by position; QPV (plg_qp24 and plg_qp15): "CSZ" in a commune under 15,000 inhabitants (no
        zoning), a code for ~10 % of the others, else "HZ". [uncertain] The 2024 QPV codes look like
        QN07501M; the zone qualities ("1" / "2") and distance_precision (metres) are invented. Partially
        diffusible établissements: "[ND]" coordinates, zones kept [uncertain]. Drawn from a generator of
        its own: the six stock files are the same bytes with or without this file."""
        g = self.e_geo
        rng = np.random.default_rng([self.ctx.seed, self.lo, 0x6E0])
        geo = R.geography()
        m = len(siret)
        com_idx, stock_xy = g["com_idx"], g["stock_xy"]
        dep_idx = np.where(g["abroad"], -1, geo.dep_index[com_idx])
        dep_codes = np.array([d for d, _, _ in R.DEP_POINTS] + [""], dtype=object)[dep_idx]
        covered = np.where(g["has_street"], rng.random(m) < 0.90, rng.random(m) < 0.45)
        covered = (covered | stock_xy) & (dep_idx >= 0) & (dep_codes != "976") & ~np.isnan(geo.lat[com_idx])
        quality = np.where(
            g["has_street"], pick(rng, np.cumsum([0.64, 0.17, 0.02, 0.02, 0.15]), m), 4
        )  # 11, 12, 21, 22, 33
        quality = np.where(stock_xy, np.minimum(quality, 1), quality)
        lat, lon = around_commune(rng, com_idx, covered & ~stock_xy, np.where(quality == 4, 2.0, 1.0))
        lat = np.where(stock_xy, g["lat"], lat)
        lon = np.where(stock_xy, g["lon"], lon)
        x, y, epsg = project(lat, lon, np.where(covered, dep_idx, -1))
        x = np.where(stock_xy, g["x"], x)
        y = np.where(stock_xy, g["y"], y)
        rows = np.flatnonzero(covered & ~np.isnan(x))
        pop = geo.population[com_idx[rows]]
        # IRIS: a cell of ~500 m around the point, numbered among the commune's ~population/2,000 IRIS
        n_iris = np.maximum((pop / 2000).astype(np.int64), 1)
        cell = np.floor(lat[rows] / 0.0045).astype(np.int64) * 7919 + np.floor(lon[rows] / 0.0065).astype(
            np.int64
        )
        k = cell % n_iris
        iris = np.where(pop >= 10_000, (k // 99 + 1) * 100 + k % 99 + 1, 0)
        n_qpv = np.maximum((pop / 40_000).astype(np.int64), 1)
        in_qpv = rng.random(len(rows)) < 0.10
        qpv_k = rng.integers(0, 1 << 30, len(rows)) % n_qpv + 1
        deps = pa.array(dep_codes[rows].astype(str))
        dep3 = pc.utf8_lpad(pc.replace_substring(pc.replace_substring(deps, "2A", "20"), "2B", "20"), 3, "0")
        qp24 = join(
            join(pa.scalar("QN"), dep3, sep=""), join(padded(qpv_k, 2), pa.scalar("M"), sep=""), sep=""
        )
        qp15 = join(join(pa.scalar("QP"), dep3, sep=""), padded(qpv_k, 3), sep="")
        zoned = pop >= 15_000
        qp24 = where(zoned & in_qpv, qp24, where(zoned, pa.scalar("HZ"), pa.scalar("CSZ")))
        qp15 = where(zoned & in_qpv & (rng.random(len(rows)) < 0.8), qp15,
                     where(zoned, pa.scalar("HZ"), pa.scalar("CSZ")))  # fmt: skip
        q = quality[rows]
        qualite = take(pa.array(["11", "12", "21", "22", "33"]), q)
        precision = np.where(
            q == 0, 0.0, np.where(q == 4, 250 + rng.random(len(rows)) * 1500, 5 + rng.random(len(rows)) * 80)
        )
        zone_quality = where(q == 4, pa.scalar("2"), pa.scalar("1"))
        p = self.e_p[rows]
        nd = pa.scalar(ND)

        def number(values: np.ndarray, digits: int) -> pa.Array:
            return where(p, nd, pa.array(np.round(values, digits)).cast(pa.string()))

        commune = take(self.e_commune, rows)
        cols = {
            "siret": take(siret, rows),
            "x": number(x[rows], 2),
            "y": number(y[rows], 2),
            "qualite_xy": qualite,
            "epsg": ints(epsg[rows]),
            "plg_qp24": qp24,
            "plg_iris": padded(iris, 4),
            "plg_zus": where(np.zeros(len(rows), dtype=bool), EMPTY, EMPTY),
            "plg_qp15": qp15,
            "plg_qva": where(zoned, pa.scalar("HZ"), pa.scalar("CSZ")),
            "plg_code_commune": commune,
            "distance_precision": pa.array(np.round(precision, 1)).cast(pa.string()),
            "qualite_qp24": zone_quality,
            "qualite_iris": zone_quality,
            "qualite_zus": where(np.zeros(len(rows), dtype=bool), EMPTY, EMPTY),
            "qualite_qp15": zone_quality,
            "qualite_qva": zone_quality,
            "y_latitude": number(lat[rows], 6),
            "x_longitude": number(lon[rows], 6),
        }
        return cols

    def etab_history(self, et, e_fields):
        rng = self.rng
        acts = R.activities()
        owner, r, start, end, starts = self.periods(self.pe, self.ecre, self.edcur)
        q = len(owner)
        oldest = r == self.pe[owner] - 1
        # 0 etat, 1 activite, 2 enseigne, 3 caractereEmployeur, 4 denominationUsuelle
        w = np.array([0, 45, 22, 28, 5], dtype=float)
        ev = pick(rng, np.cumsum(w / w.sum()), q)
        ev = np.where(~self.e_active[owner] & (r == 0), 0, ev)
        masked_names = self.e_p[owner] & self.person[self.e_unit[owner]]
        ev = np.where(((ev == 2) | (ev == 4)) & masked_names, 1, ev)
        ev = np.where(oldest, -1, ev)

        def variant(kind):
            hit = (ev == kind).astype(np.int64)
            return hit, excl_cumsum_in_groups(hit, owner, starts)

        def own(name):
            return take(et[name], owner)

        cols = {"siren": own("siren"), "nic": own("nic"), "siret": own("siret")}
        cols["dateFin"] = where(r == 0, EMPTY, dates(np.where(r == 0, 0, end)))
        cols["dateDebut"] = dates(start)
        hit, cnt = variant(0)
        cols["etatAdministratifEtablissement"] = where(
            cnt > 0, pa.scalar("A"), own("etatAdministratifEtablissement")
        )
        cols["changementEtatAdministratifEtablissement"] = bools(hit > 0)
        hit2, cnt2 = variant(2)
        ens = pa.array(R.ENSEIGNES)
        alt = take(ens, (np.maximum(self.e_ens_idx[owner], 0) + 1 + cnt2 * 3) % len(ens))
        cols["enseigne1Etablissement"] = where(cnt2 > 0, alt, own("enseigne1Etablissement"))
        cols["enseigne2Etablissement"] = own("enseigne2Etablissement")
        cols["enseigne3Etablissement"] = own("enseigne3Etablissement")
        cols["changementEnseigneEtablissement"] = bools(hit2 > 0)
        hit4, cnt4 = variant(4)
        alt4 = take(ens, (owner + cnt4 * 11) % len(ens))
        cur_du = own("denominationUsuelleEtablissement")
        alt4 = where(pc.equal(alt4, cur_du), pa.scalar("AUTRE NOM"), alt4)
        cols["denominationUsuelleEtablissement"] = where(cnt4 > 0, alt4, cur_du)
        cols["changementDenominationUsuelleEtablissement"] = bools(hit4 > 0)
        hit1, cnt1 = variant(1)
        pre2008 = (r > 0) & (end < NAF2008_DAY)
        nidx = self.e_naf_idx[owner]
        alt_naf = take(acts.naf2.values, (nidx + cnt1 * 37) % len(acts.naf2))
        alt_rev1 = take(acts.old_codes, acts.n_nap + acts.n_naf1993 + (nidx + cnt1 * 37) % acts.n_rev1)
        purged = self.purged[self.e_unit[owner]]
        changed = (cnt1 > 0) & ~purged
        cols["activitePrincipaleEtablissement"] = where(
            changed, where(pre2008, alt_rev1, alt_naf), own("activitePrincipaleEtablissement")
        )
        cols["nomenclatureActivitePrincipaleEtablissement"] = where(
            changed, where(pre2008, pa.scalar("NAFRev1"), pa.scalar("NAFRev2")),
            own("nomenclatureActivitePrincipaleEtablissement"),
        )  # fmt: skip
        cols["changementActivitePrincipaleEtablissement"] = bools(hit1 > 0)
        hit3, cnt3 = variant(3)
        emp = take(EMPLOYER_VALUES, (self.e_emp_i[owner] + cnt3) % 3)
        cols["caractereEmployeurEtablissement"] = emp
        cols["changementCaractereEmployeurEtablissement"] = bools(hit3 > 0)
        return cols

    def liens(self, siret, transfers):
        ctx, rng = self.ctx, self.rng
        t_unit, t_day = transfers
        pred = self.e_starts[t_unit] + self.old_siege_j[t_unit]
        succ = self.e_starts[t_unit] + self.siege_j[t_unit]
        # other links: a closed établissement taken over by another one (business transfer)
        closed = np.flatnonzero(~self.e_active & (rng.random(self.m) < 0.04))
        other = rng.integers(0, self.m, len(closed))
        keep = other != closed
        closed, other = closed[keep], other[keep]
        p_all = np.concatenate([pred, closed])
        s_all = np.concatenate([succ, other])
        d_all = np.concatenate([t_day, self.edcur[closed]])
        transfer = np.concatenate([np.ones(len(pred), bool), np.zeros(len(closed), bool)])
        order = np.lexsort((self.siret_int[s_all], self.siret_int[p_all]))
        p_all, s_all, d_all, transfer = p_all[order], s_all[order], d_all[order], transfer[order]
        k = len(p_all)
        cont = transfer | (rng.random(k) < 0.55)
        return {
            "siretEtablissementPredecesseur": take(siret, p_all),
            "siretEtablissementSuccesseur": take(siret, s_all),
            "dateLienSuccession": dates(d_all),
            "transfertSiege": bools(transfer),
            "continuiteEconomique": bools(cont),
            "dateDernierTraitementLienSuccession": timestamps(rng, d_all, ctx),
        }

    def doublons(self, siren):
        rng, n = self.rng, self.n
        k = max(1, int(round(n * 0.0005)))
        closed = np.flatnonzero(~self.active)
        if len(closed) == 0 or n < 2:
            k = 0
        a = rng.integers(0, n, k)
        b = closed[rng.integers(0, max(len(closed), 1), k)] if k else np.zeros(0, np.int64)
        keep = a != b
        a, b = a[keep], b[keep]
        pairs = np.unique(np.stack([a, b], axis=1), axis=0) if len(a) else np.zeros((0, 2), np.int64)
        a, b = pairs[:, 0], pairs[:, 1]
        return {
            "siren": take(siren, a),
            "sirenDoublon": take(siren, b),
            "dateDernierTraitementDoublon": timestamps(rng, np.maximum(self.dcur[a], self.dcur[b]), self.ctx),
        }
