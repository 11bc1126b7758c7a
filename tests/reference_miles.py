"""Great-circle miles the other way: the spherical law of cosines, where the product uses
haversine (sql/places.sql), so tests check its distances without sharing its formula."""

from __future__ import annotations

import math
from functools import cache

from rxradar.reference.counties import counties

EARTH_RADIUS_MILES = 3958.8


@cache
def _centroids(state: str) -> dict[str, tuple[float, float]]:
    return {r["fips"]: (r["lat"], r["lon"]) for r in counties(state).to_pylist()}


def miles_by_cosines(a: str | tuple[float, float], b: str | tuple[float, float], state: str = "WV") -> float:
    """Miles between two places: county centroids (by FIPS) or (lat, lon) points."""
    where = _centroids(state)
    (la1, lo1), (la2, lo2) = (map(math.radians, where[x] if isinstance(x, str) else x) for x in (a, b))
    cos = math.sin(la1) * math.sin(la2) + math.cos(la1) * math.cos(la2) * math.cos(lo2 - lo1)
    return EARTH_RADIUS_MILES * math.acos(min(1.0, cos))
