"""Courses of treatment, and the fills they produce.

A course is one patient's run of prescriptions for one purpose: an acute opioid course (a few
days after an injury, surgery or dental work), long-term opioid therapy, recurring
benzodiazepines, or buprenorphine treatment. Courses are drawn as arrays and expanded into fills
with numpy, never a Python loop per fill, so a state of 100 million fills is cheap to make.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

# Schedule II opioids cannot be refilled; each month is a new prescription. Schedule III-V
# (tramadol, codeine combinations, benzodiazepines) carry refills.
REFILLS_PER_RX_UNSCHEDULED_II = 5


@dataclass
class Courses:
    """Parallel arrays, one element per course."""

    person: np.ndarray  # int64 person_id
    prescriber: np.ndarray  # int32 prescriber_key
    pharmacy: np.ndarray  # int32 pharmacy_key (home pharmacy)
    product: np.ndarray  # int32 row in the product table
    start: np.ndarray  # datetime64[D]
    fills: np.ndarray  # int32 number of fills
    days: np.ndarray  # int32 days supply per fill
    units_per_day: np.ndarray  # float64
    refillable: np.ndarray  # bool: later fills are refills of the first Rx
    cash: np.ndarray  # float64 probability a fill is paid in cash
    other_pharmacy: np.ndarray  # float64 probability a fill goes to another pharmacy
    kind: np.ndarray  # object: acute, chronic, benzodiazepine, oud, pill_mill, shopper

    @staticmethod
    def concat(parts: list[Courses]) -> Courses:
        return Courses(**{f: np.concatenate([getattr(p, f) for p in parts]) for f in Courses.__dataclass_fields__})

    def __len__(self) -> int:
        return len(self.person)


@dataclass
class Fills:
    """Parallel arrays, one element per fill, before identities, payment and faults."""

    person: np.ndarray
    prescriber: np.ndarray
    pharmacy: np.ndarray
    product: np.ndarray
    written: np.ndarray
    filled: np.ndarray
    refill: np.ndarray
    refills_authorized: np.ndarray
    quantity: np.ndarray
    days: np.ndarray
    cash: np.ndarray
    course: np.ndarray
    rx_serial: np.ndarray  # one number per prescription (shared by its refills)


def expand(c: Courses, rng: np.random.Generator, other_pharmacies: np.ndarray) -> Fills:
    """Every fill of every course: fill k of a course comes about one supply period after fill k-1.

    Patients refill a little early or late (-3..+4 days), as dispensing data show. A fill that
    goes elsewhere picks one of ``other_pharmacies[course]`` (an alternative pharmacy per course).
    """
    n_fills = c.fills.astype(np.int64)
    course = np.repeat(np.arange(len(c)), n_fills)
    first = np.cumsum(n_fills) - n_fills
    k = np.arange(len(course)) - first[course]
    gap = c.days[course].astype(np.int64) + rng.integers(-3, 5, len(course))
    gap[k == 0] = 0
    # Cumulative offset within each course: a running sum restarted at each course's first fill.
    offset = np.cumsum(gap)
    offset -= np.repeat(offset[first] - gap[first], n_fills)
    filled = c.start[course] + offset.astype("timedelta64[D]")
    refillable = c.refillable[course]
    per_rx = np.where(refillable, REFILLS_PER_RX_UNSCHEDULED_II + 1, 1)
    refill = (k % per_rx).astype(np.int32)
    rx_serial = (np.cumsum(refill == 0) - 1).astype(np.int64)  # a course's first fill is always a new Rx
    written = filled - (refill.astype(np.int64) * c.days[course] + rng.integers(0, 3, len(course))).astype(
        "timedelta64[D]")
    elsewhere = rng.random(len(course)) < c.other_pharmacy[course]
    pharmacy = np.where(elsewhere, other_pharmacies[course], c.pharmacy[course]).astype(np.int32)
    days = c.days[course].astype(np.int32)
    quantity = np.maximum(1, np.round(c.units_per_day[course] * days))
    return Fills(
        person=c.person[course], prescriber=c.prescriber[course], pharmacy=pharmacy, product=c.product[course],
        written=written, filled=filled, refill=refill,
        refills_authorized=np.where(refillable, REFILLS_PER_RX_UNSCHEDULED_II, 0).astype(np.int32),
        quantity=quantity.astype(np.float64), days=days, cash=rng.random(len(course)) < c.cash[course],
        course=course, rx_serial=rx_serial,
    )


def take(f: Fills, keep: np.ndarray) -> Fills:
    return Fills(**{name: getattr(f, name)[keep] for name in Fills.__dataclass_fields__})


def products_table(*tables: pa.Table) -> pa.Table:
    """One product table (opioid, treatment, benzodiazepine rows) with a class column."""
    cols = ["drug", "ndc11", "strength_per_unit", "strength_unit", "form_group", "share", "units_per_day_acute",
            "units_per_day_chronic", "product_class", "long_acting"]
    return pa.concat_tables([t.select(cols) for t in tables])
