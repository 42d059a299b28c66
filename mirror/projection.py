"""Projected Sirene coordinates (Lambert-93, overseas UTM, Lambert NC) -> WGS84, with pyproj (PROJ).

The conversion runs inside a DuckDB UDF, called from DuckDB's worker threads. A pyproj Transformer
must not be shared between threads (that crashed), so each thread builds and caches its own.
"""

from __future__ import annotations

import threading

import numpy as np
from pyproj import Transformer

from mirror.geo import LAMBERT_93, OVERSEAS_EPSG

SUPPORTED_EPSG = frozenset({LAMBERT_93, *OVERSEAS_EPSG.values()})
WGS84 = 4326

_local = threading.local()


def _transformer(epsg: int) -> Transformer:
    cache = getattr(_local, "transformers", None)
    if cache is None:
        cache = _local.transformers = {}
    transformer = cache.get(epsg)
    if transformer is None:
        transformer = cache[epsg] = Transformer.from_crs(epsg, WGS84, always_xy=True)
    return transformer


def to_wgs84(x: np.ndarray, y: np.ndarray, epsg: int) -> tuple[np.ndarray, np.ndarray]:
    """(latitude, longitude) in degrees for projected x/y (metres) in one of SUPPORTED_EPSG."""
    if epsg not in SUPPORTED_EPSG:
        raise ValueError(f"unsupported EPSG {epsg}")
    lon, lat = _transformer(epsg).transform(
        np.asarray(x, dtype="float64"), np.asarray(y, dtype="float64"), errcheck=False
    )
    return np.asarray(lat), np.asarray(lon)
