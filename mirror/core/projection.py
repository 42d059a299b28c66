"""Projected Sirene coordinates (Lambert-93, overseas UTM, Lambert NC) -> WGS84, vectorised with numpy.

Why not pyproj here: the conversion runs inside a DuckDB UDF, called from DuckDB's worker threads,
where pyproj Transformers crash (segfault, pyproj 3.7 + duckdb 1.5), whether shared, created per
thread or serialised behind a lock: those threads are not Python threads and pyproj's PROJ contexts
do not survive there. The formulas below are the
standard inverse projections (Lambert conformal conic 2SP, Snyder 1987 eq. 14-15; transverse
Mercator, Krüger series as in Karney 2011 / PROJ's etmerc) with the EPSG parameters of
mirror.core.geo's territories; tests/test_load.py checks them against pyproj (< 1e-7 degree; 1e-5 for RGPF,
where PROJ applies a small Helmert shift). The
datums (RGF93, RGAF09, RGFG95, RGR92, RGSPM06, RGM04, RGPF, RGNC91-93) are ITRF-based: no datum
shift to WGS84 (the same null transformation PROJ applies).
"""

from __future__ import annotations

import numpy as np

_GRS80 = (6378137.0, 1 / 298.257222101)
_WGS84 = (6378137.0, 1 / 298.257223563)

# EPSG -> ("lcc", ellipsoid, lat_0, lon_0, lat_1, lat_2, x_0, y_0) or ("utm", ellipsoid, zone, south)
PARAMS: dict[int, tuple] = {
    2154: ("lcc", _GRS80, 46.5, 3.0, 49.0, 44.0, 700000.0, 6600000.0),  # RGF93 / Lambert-93
    3163: ("lcc", _GRS80, -21.5, 166.0, -20.0 - 2 / 3, -22.0 - 1 / 3, 400000.0, 300000.0),  # RGNC91-93
    5490: ("utm", _GRS80, 20, False),  # RGAF09 / UTM 20N (Antilles)
    2972: ("utm", _GRS80, 22, False),  # RGFG95 / UTM 22N (Guyane)
    2975: ("utm", _GRS80, 40, True),  # RGR92 / UTM 40S (Réunion)
    4467: ("utm", _GRS80, 21, False),  # RGSPM06 / UTM 21N (Saint-Pierre-et-Miquelon)
    4471: ("utm", _GRS80, 38, True),  # RGM04 / UTM 38S (Mayotte)
    32701: ("utm", _WGS84, 1, True),  # WGS 84 / UTM 1S (Wallis-et-Futuna)
    3297: ("utm", _GRS80, 6, True),  # RGPF / UTM 6S (Polynésie)
}


def _lcc_inverse(x, y, ellps, lat0, lon0, lat1, lat2, x0, y0):
    a, f = ellps
    e = np.sqrt(f * (2 - f))
    p0, p1, p2 = np.radians([lat0, lat1, lat2])

    def m(p):
        return np.cos(p) / np.sqrt(1 - (e * np.sin(p)) ** 2)

    def t(p):
        return np.tan(np.pi / 4 - p / 2) / ((1 - e * np.sin(p)) / (1 + e * np.sin(p))) ** (e / 2)

    n = (np.log(m(p1)) - np.log(m(p2))) / (np.log(t(p1)) - np.log(t(p2)))
    big_f = m(p1) / (n * t(p1) ** n)
    rho0 = a * big_f * t(p0) ** n
    dx = x - x0
    dy = rho0 - (y - y0)
    s = np.sign(n)
    rho = s * np.sqrt(dx * dx + dy * dy)
    theta = np.arctan2(s * dx, s * dy)
    tt = (rho / (a * big_f)) ** (1 / n)
    phi = np.pi / 2 - 2 * np.arctan(tt)
    for _ in range(8):
        es = e * np.sin(phi)
        phi = np.pi / 2 - 2 * np.arctan(tt * ((1 - es) / (1 + es)) ** (e / 2))
    lam = theta / n + np.radians(lon0)
    return np.degrees(phi), np.degrees(lam)


def _utm_inverse(x, y, ellps, zone, south):
    a, f = ellps
    k0 = 0.9996
    lon0 = np.radians(zone * 6 - 183)
    n = f / (2 - f)
    big_a = a / (1 + n) * (1 + n**2 / 4 + n**4 / 64)
    beta = (n / 2 - 2 * n**2 / 3 + 37 * n**3 / 96, n**2 / 48 + n**3 / 15, 17 * n**3 / 480)
    delta = (2 * n - 2 * n**2 / 3 - 2 * n**3, 7 * n**2 / 3 - 8 * n**3 / 5, 56 * n**3 / 15)
    xi = (y - (10_000_000.0 if south else 0.0)) / (k0 * big_a)
    eta = (x - 500_000.0) / (k0 * big_a)
    xi_p, eta_p = xi.copy(), eta.copy()
    for j, b in enumerate(beta, start=1):
        xi_p -= b * np.sin(2 * j * xi) * np.cosh(2 * j * eta)
        eta_p -= b * np.cos(2 * j * xi) * np.sinh(2 * j * eta)
    chi = np.arcsin(np.sin(xi_p) / np.cosh(eta_p))
    phi = chi.copy()
    for j, d in enumerate(delta, start=1):
        phi += d * np.sin(2 * j * chi)
    lam = lon0 + np.arctan2(np.sinh(eta_p), np.cos(xi_p))
    return np.degrees(phi), np.degrees(lam)


def to_wgs84(x: np.ndarray, y: np.ndarray, epsg: int) -> tuple[np.ndarray, np.ndarray]:
    """(latitude, longitude) in degrees for projected x/y (metres) in one of the PARAMS EPSG codes."""
    p = PARAMS[epsg]
    x = np.asarray(x, dtype="float64")
    y = np.asarray(y, dtype="float64")
    with np.errstate(all="ignore"):
        if p[0] == "lcc":
            return _lcc_inverse(x, y, *p[1:])
        return _utm_inverse(x, y, *p[1:])
