"""Where people get care: prescribers and pharmacies in their county, a neighbour, or further away."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from rxradar.reference.counties import adjacency


class Geography:
    """County indexes, adjacency and providers grouped by county, for vectorised choices."""

    def __init__(self, county: pa.Table, state: str, prescribers: pa.Table, pharmacies: pa.Table):
        self.fips = county["fips"].to_pylist()
        self.index = {f: i for i, f in enumerate(self.fips)}
        neighbours = adjacency(state)
        lists = [[self.index[n] for n in neighbours.get(f, []) if n in self.index] for f in self.fips]
        self.nb_count = np.array([len(x) for x in lists])
        self.nb_start = np.cumsum(self.nb_count) - self.nb_count
        self.nb_flat = np.array([n for x in lists for n in x], dtype=np.int64)
        self.prescriber_county = self.of(prescribers["county_fips"])
        self.prescriber_specialty = np.asarray(prescribers["specialty"].to_pylist(), dtype=object)
        self.pharmacy_county = self.of(pharmacies["county_fips"])

    def of(self, fips: pa.ChunkedArray | pa.Array) -> np.ndarray:
        return np.array([self.index[f] for f in fips.to_pylist()], dtype=np.int64)

    def care_county(self, home: np.ndarray, rng: np.random.Generator, own: float, neighbour: float) -> np.ndarray:
        """Own county, else a random neighbour, else anywhere in the state."""
        u = rng.random(len(home))
        out = home.copy()
        go_nb = (u >= own) & (u < own + neighbour) & (self.nb_count[home] > 0)
        pick = self.nb_start[home[go_nb]] + (rng.random(go_nb.sum()) * self.nb_count[home[go_nb]]).astype(np.int64)
        out[go_nb] = self.nb_flat[pick]
        far = u >= own + neighbour
        out[far] = rng.integers(0, len(self.fips), far.sum())
        return out

    def choose_prescribers(self, county: np.ndarray, specialty: np.ndarray, rng: np.random.Generator,
                           allowed: np.ndarray | None = None) -> np.ndarray:
        """A prescriber of ``specialty`` (a label per row) in ``county``; else of that specialty
        anywhere; else anyone. ``allowed`` (bool per prescriber) leaves some out (e.g. planted
        pill mills, whose patients are drawn separately)."""
        ok = np.ones(len(self.prescriber_county), dtype=bool) if allowed is None else allowed
        labels, spec = np.unique(specialty, return_inverse=True)
        out = np.full(len(county), -1, dtype=np.int64)
        for rows, (c, s) in _groups(county * len(labels) + spec, len(labels)):
            label = labels[s]
            pool = np.flatnonzero(ok & (self.prescriber_county == c) & (self.prescriber_specialty == label))
            if len(pool) == 0:
                pool = np.flatnonzero(ok & (self.prescriber_specialty == label))
            if len(pool) == 0:
                pool = np.flatnonzero(ok)
            out[rows] = pool[rng.integers(0, len(pool), len(rows))]
        return out

    def choose_pharmacies(self, county: np.ndarray, rng: np.random.Generator,
                          allowed: np.ndarray | None = None) -> np.ndarray:
        """A pharmacy in ``county``; where the county has none, one in a neighbour or anywhere."""
        ok = np.ones(len(self.pharmacy_county), dtype=bool) if allowed is None else allowed
        out = np.full(len(county), -1, dtype=np.int64)
        for rows, (c, _) in _groups(county, 1):
            pool = np.flatnonzero(ok & (self.pharmacy_county == c))
            if len(pool) == 0 and self.nb_count[c]:
                nbs = self.nb_flat[self.nb_start[c]:self.nb_start[c] + self.nb_count[c]]
                pool = np.flatnonzero(ok & np.isin(self.pharmacy_county, nbs))
            if len(pool) == 0:
                pool = np.flatnonzero(ok)
            out[rows] = pool[rng.integers(0, len(pool), len(rows))]
        return out


def _groups(keys: np.ndarray, width: int):
    """(row indexes, (key // width, key % width)) for each distinct key, without a pass per key."""
    order = np.argsort(keys, kind="stable")
    values, starts, counts = np.unique(keys[order], return_index=True, return_counts=True)
    for v, a, n in zip(values, starts, counts):
        yield order[a:a + n], (int(v) // width, int(v) % width)
