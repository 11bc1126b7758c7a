"""US counties (2019 geography): names, internal points, land area, population 2010–2019,
neighbours, and TopoJSON boundaries for maps. Sources and terms: data/counties/SOURCE.md and
data/topojson/SOURCE.md.
"""

from __future__ import annotations

from collections import defaultdict
from functools import cache
from pathlib import Path
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc
from pyarrow import csv

from rxradar.reference import data_path
from rxradar.schema import Column, Table

S, F64, I64 = pa.string(), pa.float64(), pa.int64()
YEARS = range(2010, 2020)

COUNTIES = Table(
    "counties",
    "one county or county equivalent (50 states, DC, Puerto Rico), 2019 boundaries",
    (
        Column("fips", S, "5-digit state+county FIPS code"),
        Column("state", S, "USPS state abbreviation"),
        Column("state_fips", S, "2-digit state FIPS code"),
        Column("name", S, "county name with its type, e.g. 'Kanawha County'"),
        Column("lat", F64, "latitude of the Census Gazetteer internal point"),
        Column("lon", F64, "longitude of the Census Gazetteer internal point"),
        Column("land_sqmi", F64, "land area, square miles"),
        *(Column(f"pop{y}", I64, f"Census Vintage 2019 estimate, 1 July {y} (null for Puerto Rico)") for y in YEARS),
    ),
)


@cache
def _counties() -> pa.Table:
    types = dict(zip(COUNTIES.schema.names, COUNTIES.schema.types))
    return csv.read_csv(data_path("counties", "counties.csv"), convert_options=csv.ConvertOptions(column_types=types))


@cache
def _pairs() -> tuple[tuple[str, str], ...]:
    t = csv.read_csv(
        data_path("counties", "county_adjacency.csv"),
        convert_options=csv.ConvertOptions(column_types={"fips": S, "neighbor_fips": S}),
    )
    return tuple(zip(t["fips"].to_pylist(), t["neighbor_fips"].to_pylist()))


def _state_fips(state: str | None) -> set[str] | None:
    if state is None:
        return None
    t = _counties()
    fips = set(t.filter(pc.field("state") == state)["fips"].to_pylist())
    if not fips:
        states = sorted(set(t["state"].to_pylist()))
        raise ValueError(f"unknown state {state!r}; expected a USPS code, one of {states}")
    return fips


def counties(state: str | None = None) -> pa.Table:
    """All counties ordered by FIPS, or those of one state (USPS code, e.g. ``'WV'``)."""
    _state_fips(state)  # validates the code
    t = _counties()
    return t if state is None else t.filter(pc.field("state") == state)


def adjacency(state: str | None = None) -> dict[str, list[str]]:
    """Neighbours of each county (shared boundary, Census County Adjacency File).

    Every county in scope is a key, so counties without neighbours (the Hawaiian islands
    15001, 15003, 15007) map to ``[]``. With ``state``, both counties of a pair must be in that
    state: the neighbourhood a within-state spatial analysis can use.
    """
    scope = _state_fips(state) or set(_counties()["fips"].to_pylist())
    out: dict[str, list[str]] = defaultdict(list)
    for a, b in _pairs():
        if a in scope and b in scope:
            out[a].append(b)
    return {f: out.get(f, []) for f in sorted(scope)}


def topojson_path(layer: Literal["counties", "states"] = "counties") -> Path:
    """us-atlas TopoJSON (Census cartographic boundaries 2017, 1:10m, unprojected lon/lat).

    ``counties-10m.json`` has objects ``counties`` (id = 5-digit FIPS), ``states`` and ``nation``;
    ``states-10m.json`` is the smaller file without counties.
    """
    if layer not in ("counties", "states"):
        raise ValueError(f"unknown TopoJSON layer {layer!r}; choose 'counties' or 'states'")
    return data_path("topojson", f"{layer}-10m.json")
