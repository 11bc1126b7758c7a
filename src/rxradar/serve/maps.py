"""County outlines for maps, decoded from the us-atlas TopoJSON that ships with rxradar and
projected here, so the dashboard draws its maps as plain SVG: no JavaScript, no map server, no
network (PDMP environments are often air-gapped).

TopoJSON stores each boundary line once as an *arc* of delta-encoded, quantized points; a
polygon ring lists the arcs it follows, a negative index ``~i`` meaning arc ``i`` reversed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cache

from rxradar.reference.counties import topojson_path

Point = tuple[float, float]
Ring = list[Point]


@cache
def _topology() -> dict:
    return json.loads(topojson_path("counties").read_text())


@cache
def _geometries() -> dict[str, dict]:
    return {g["id"]: g for g in _topology()["objects"]["counties"]["geometries"]}


def decode_arc(arc: list[list[int]], scale: tuple[float, float], translate: tuple[float, float]) -> Ring:
    """An arc's points as (lon, lat): running sums of the quantized deltas, then scaled."""
    x = y = 0
    points = []
    for dx, dy in arc:
        x += dx
        y += dy
        points.append((x * scale[0] + translate[0], y * scale[1] + translate[1]))
    return points


@cache
def _arc(i: int) -> tuple[Point, ...]:
    topo = _topology()
    t = topo["transform"]
    return tuple(decode_arc(topo["arcs"][i], t["scale"], t["translate"]))


def ring_points(arc_indexes: list[int], arc: Callable[[int], Sequence[Point]] = _arc) -> Ring:
    """A closed ring from the arcs it follows; each arc after the first starts where the previous
    one ended, so that shared point is kept once."""
    ring: Ring = []
    for a in arc_indexes:
        points = list(arc(a)) if a >= 0 else list(reversed(arc(~a)))
        ring.extend(points if not ring else points[1:])
    return ring


def county_rings(fips: str) -> list[Ring]:
    """Every ring (outer boundaries and holes) of a county, as (lon, lat) points; [] for a FIPS
    code the boundary file does not have."""
    g = _geometries().get(fips)
    if g is None:
        return []
    polygons = g["arcs"] if g["type"] == "MultiPolygon" else [g["arcs"]]
    return [ring_points(ring) for polygon in polygons for ring in polygon]


def county_name(fips: str) -> str | None:
    g = _geometries().get(fips)
    return g["properties"]["name"] if g else None


@dataclass(frozen=True)
class Projection:
    """Equirectangular projection centred on the mapped area (x scaled by the cosine of its middle
    latitude), fitted to ``width`` pixels: true to shape within a state."""

    west: float
    north: float
    k: float
    cos_lat: float
    width: float
    height: float

    @classmethod
    def fit(cls, rings: Iterable[Ring], width: float, margin: float = 4.0) -> Projection:
        points = [p for ring in rings for p in ring]
        if not points:
            raise ValueError("nothing to map")
        west, east = min(p[0] for p in points), max(p[0] for p in points)
        south, north = min(p[1] for p in points), max(p[1] for p in points)
        cos_lat = math.cos(math.radians((south + north) / 2))
        k = (width - 2 * margin) / max((east - west) * cos_lat, 1e-9)
        height = (north - south) * k + 2 * margin
        return cls(west - margin / (k * cos_lat), north + margin / k, k, cos_lat, width, height)

    def __call__(self, p: Point) -> Point:
        return ((p[0] - self.west) * self.cos_lat * self.k, (self.north - p[1]) * self.k)


def svg_path(rings: list[Ring], project: Projection) -> str:
    """The SVG path data of these rings (even-odd fill makes the holes)."""
    parts = []
    for ring in rings:
        xy = [project(p) for p in ring]
        parts.append("M" + "L".join(f"{x:.1f},{y:.1f}" for x, y in xy) + "Z")
    return "".join(parts)


def county_paths(fips: Iterable[str], width: float = 640) -> tuple[dict[str, str], Projection]:
    """SVG path data for each county that has a boundary, fitted together to ``width`` pixels."""
    rings = {f: county_rings(f) for f in fips}
    rings = {f: r for f, r in rings.items() if r}
    project = Projection.fit((ring for rs in rings.values() for ring in rs), width)
    return {f: svg_path(r, project) for f, r in rings.items()}, project
