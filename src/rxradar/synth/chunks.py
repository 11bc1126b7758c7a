"""A state too large for memory is generated a chunk of people at a time, with keys unique across chunks.

Counties, prescribers, pharmacies and the planted anomalies are made once; persons are made in
chunks of about :data:`CHUNK_PERSONS`, and each chunk brings its own fills, deaths and reported
identities. Pill-mill patients and doctor shoppers come from the first chunk only, so each
anomaly is planted once. Chunk 0 draws from ``default_rng(seed)`` right after the providers, as
the whole state always did, so a state that fits in one chunk is exactly the state an in-memory
build gives; chunk k > 0 draws from its own generator seeded with ``(seed, k)``.

Keys the rest of rxradar treats as identities must not repeat across chunks: ``person_id``
(chunk start + position), the ``variant_id`` of noisy reports (one counter from
``config.persons`` up), ``fill_key``, the serial in ``rx_number`` (``dispensation_id`` is
pharmacy, Rx number, refill, date and partial: a repeat would merge two fills) and the sequence
in ``death_id`` (year, state and six digits, so numbered per year).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rxradar.synth.world import World

# 1M people make ~10M fills and peak at about 4 GB (bench/synth.py); the medium preset (500k) is
# one chunk, so its output is the in-memory build's.
CHUNK_PERSONS = 1_000_000
DEATH_SEQUENCE_MAX = 999_999  # six digits in an NCHS IJE certificate number


def chunk_sizes(persons: int) -> list[int]:
    """People per chunk: as few chunks of at most CHUNK_PERSONS as will do, sizes differing by at most one."""
    count = max(1, -(-persons // CHUNK_PERSONS))
    return [persons // count + (k < persons % count) for k in range(count)]


def chunk_rng(seed: int, chunk: int) -> np.random.Generator:
    """The generator of chunk ``chunk`` > 0 (chunk 0 continues the state's own generator)."""
    return np.random.default_rng([seed, chunk])


@dataclass
class KeyRanges:
    """Where the next chunk's keys start."""

    person: int = 0
    variant: int = 0  # next noisy variant_id; true identities reuse the person_id
    fill: int = 0
    rx: int = 0
    death_sequence: dict[int, int] = field(default_factory=dict)  # year -> last sequence number used

    def advance(self, world: World, rx_serials: int) -> None:
        self.person += world.persons.num_rows
        self.variant += world.identity_variants.num_rows - world.persons.num_rows  # one true variant each
        self.fill += world.fills.num_rows
        self.rx += rx_serials

    def number_deaths(self, deaths: pa.Table, state: str, first_chunk: bool) -> pa.Table:
        """``death_id`` continuing each year's sequence from the chunks before.

        Chunk 0 keeps the generator's numbering (in date order over the whole period, which is
        what a one-chunk state has always had); later chunks number each year on from the
        highest number that year has used.
        """
        year = np.asarray(pc.year(deaths["death_date"]).to_numpy(zero_copy_only=False), dtype=np.int64)
        if first_chunk:
            seq = np.asarray(pc.cast(pc.utf8_slice_codeunits(deaths["death_id"], 6, 12), pa.int64())
                             .to_numpy(zero_copy_only=False), dtype=np.int64)
        else:
            order = np.argsort(year, kind="stable")  # deaths come in date order; keep it within a year
            seq = np.empty(len(year), dtype=np.int64)
            years, start, count = np.unique(year[order], return_index=True, return_counts=True)
            rank = np.arange(len(order)) - np.repeat(start, count) + 1
            last = np.array([self.death_sequence.get(int(y), 0) for y in years], dtype=np.int64)
            seq[order] = np.repeat(last, count) + rank
        for y in np.unique(year):
            self.death_sequence[int(y)] = max(self.death_sequence.get(int(y), 0), int(seq[year == y].max()))
        if len(seq) and seq.max() > DEATH_SEQUENCE_MAX:
            raise ValueError(f"more than {DEATH_SEQUENCE_MAX:,} deaths in one year: death_id has six digits")
        if first_chunk:
            return deaths
        ids = pc.binary_join_element_wise(pa.array(year.astype(str).astype(object), pa.string()), state,
                                          pc.utf8_lpad(pa.array(seq).cast(pa.string()), 6, "0"), "")
        return deaths.set_column(deaths.schema.get_field_index("death_id"), "death_id", ids)


def concat_worlds(worlds: list[World]) -> World:
    """One world from its chunks (which share providers, counties and anomalies)."""
    if len(worlds) == 1:
        return worlds[0]
    first = worlds[0]
    parts = {name: pa.concat_tables([getattr(w, name) for w in worlds])
             for name in ("persons", "identity_variants", "fills", "deaths")}
    notes = {k: v for k, v in first.notes.items() if k != "chunk"}
    return World(state=first.state, seed=first.seed, prescribers=first.prescribers, pharmacies=first.pharmacies,
                 anomalies=first.anomalies, counties=first.counties, notes=notes, **parts)
