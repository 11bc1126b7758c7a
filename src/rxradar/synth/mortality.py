"""Who dies, when, and of what: background mortality by age and sex, and overdose risk that rises
with dose, benzodiazepine overlap, multiple prescribers, pill-mill care and place."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rxradar.synth import catalog
from rxradar.synth.anomalies import Plan
from rxradar.synth.config import SynthConfig
from rxradar.synth.courses import Courses, Fills
from rxradar.synth.products import Products
from rxradar.synth.world import DEATHS

NEVER = np.datetime64("9999-12-31")
MULTIPLE_PROVIDERS = 4  # distinct opioid prescribers within one window (PQA OMP, HHS-OIG threshold)
PROVIDER_WINDOW_DAYS = 180  # PQA OMP's window: over a whole 5-year period most patients reach 4


def person_exposure(n: int, fills: Fills, products: Products) -> dict[str, np.ndarray]:
    """Per person: highest daily MME of any fill, benzodiazepine and opioid use, and the most
    distinct opioid prescribers within one PROVIDER_WINDOW_DAYS span of the calendar (fixed spans
    rather than sliding windows: one sort of packed keys, at 100M fills)."""
    opioid = products.product_class[fills.product] == "opioid"
    mme = products.mme_per_unit[fills.product] * fills.quantity / np.maximum(fills.days, 1)
    max_mme = np.zeros(n)
    np.maximum.at(max_mme, fills.person[opioid], mme[opioid])
    uses_opioid = np.bincount(fills.person[opioid], minlength=n) > 0
    benzo = products.product_class[fills.product] == "benzodiazepine"
    uses_benzo = np.bincount(fills.person[benzo], minlength=n) > 0
    prescribers = np.zeros(n, dtype=np.int64)
    if opioid.any():
        span = fills.filled[opioid].astype("datetime64[D]").astype(np.int64) // PROVIDER_WINDOW_DAYS
        span -= span.min()
        prescriber = fills.prescriber[opioid].astype(np.int64)
        spans, per_span = int(span.max()) + 1, int(prescriber.max()) + 1
        keys = np.sort((fills.person[opioid].astype(np.int64) * spans + span) * per_span + prescriber)
        keys = keys[np.r_[True, keys[1:] != keys[:-1]]]  # distinct (person, span, prescriber): np.unique, 50x faster
        groups = keys // per_span  # person x spans + span
        first = np.r_[True, groups[1:] != groups[:-1]]
        counts = np.diff(np.r_[np.flatnonzero(first), len(groups)])  # prescribers in each (person, span)
        np.maximum.at(prescribers, groups[first] // spans, counts)
    return {"max_mme": max_mme, "opioid": uses_opioid, "benzo": uses_benzo, "prescribers": prescribers}


def draw_deaths(config: SynthConfig, rng: np.random.Generator, persons: pa.Table, fills: Fills, products: Products,
                plan: Plan, home: np.ndarray, age: np.ndarray, courses: Courses) -> tuple[pa.Table, np.ndarray]:
    m = config.mortality
    n = persons.num_rows
    x = person_exposure(n, fills, products)
    rr = np.ones(n)
    rr *= np.where(x["max_mme"] >= 90, m.rr_mme_90, np.where(x["max_mme"] >= 50, m.rr_mme_50, 1.0))
    rr *= np.where(x["benzo"] & x["opioid"], m.rr_benzo_overlap, 1.0)
    rr *= np.where(x["prescribers"] >= MULTIPLE_PROVIDERS, m.rr_multiple_providers, 1.0)
    mill = np.zeros(n, dtype=bool)
    mill[plan.mill_patients] = True
    rr *= np.where(mill, m.rr_pill_mill_patient, 1.0)
    oud = np.zeros(n, dtype=bool)
    oud[courses.person[courses.kind == "oud"]] = True
    rr *= np.where(oud, m.rr_oud, 1.0)
    fips = np.asarray(persons["county_fips"].to_pylist(), dtype=object)
    rr *= np.where(np.isin(fips, plan.cluster), m.rr_cluster_county, 1.0)
    rr *= np.where(fips == plan.desert, m.rr_desert_county, 1.0)
    base = np.where(x["opioid"], m.overdose_base_per_year, m.overdose_population_per_year) * (age >= 15)
    overdose = rng.random(n) < 1 - np.exp(-base * rr * config.years)

    sex = np.asarray(persons["sex"].to_pylist(), dtype=object)
    q = np.where(sex == "F", catalog.annual_mortality("F")[np.clip((age + config.years / 2).astype(int), 0, 100)],
                 catalog.annual_mortality("M")[np.clip((age + config.years / 2).astype(int), 0, 100)])
    q = np.minimum(q * m.background_scale, 1.0)
    natural = ~overdose & (rng.random(n) < 1 - (1 - q) ** config.years)

    died_on = np.full(n, NEVER)
    start, days = np.datetime64(config.start), (config.end - config.start).days + 1
    died_on[natural | overdose] = start + rng.integers(0, days, int((natural | overdose).sum())).astype("timedelta64[D]")
    soon = overdose & x["opioid"] & (rng.random(n) < m.within_60_days_of_fill)
    died_on[soon] = _after_a_fill(rng, fills, products, np.flatnonzero(soon))
    died_on = np.minimum(died_on, NEVER)
    dead = np.flatnonzero((died_on <= np.datetime64(config.end)) & (natural | overdose))
    return _death_records(config, rng, persons, dead, died_on, overdose, mill | (x["max_mme"] >= 90)), died_on


def _after_a_fill(rng: np.random.Generator, fills: Fills, products: Products, people: np.ndarray) -> np.ndarray:
    """For each person, 0-60 days after one of their opioid fills, chosen at random."""
    opioid = np.flatnonzero(products.product_class[fills.product] == "opioid")
    order = opioid[np.argsort(fills.person[opioid], kind="stable")]
    owners = fills.person[order]
    first = np.searchsorted(owners, people, side="left")
    count = np.searchsorted(owners, people, side="right") - first
    pick = order[first + (rng.random(len(people)) * count).astype(np.int64)]
    return fills.filled[pick] + rng.integers(0, 61, len(people)).astype("timedelta64[D]")


def _death_records(config: SynthConfig, rng: np.random.Generator, persons: pa.Table, dead: np.ndarray,
                   died_on: np.ndarray, overdose: np.ndarray, prescription_pattern: np.ndarray) -> pa.Table:
    """One record per death, numbered in date order. Per death, two uniforms in turn: the cause
    (as ``rng.choice`` with the death's cause weights would draw it) and whether the SSN is
    reported; drawn for all deaths at once, the stream is the one a loop over deaths would use."""
    od = catalog.overdose_causes()
    od_share = np.asarray(od["share"].to_numpy(zero_copy_only=False), dtype=float)
    rx_related = np.asarray(od["prescription_related"].to_pylist(), dtype=bool)
    nat = catalog.natural_causes()
    nat_share = np.asarray(nat["share"].to_numpy(zero_copy_only=False), dtype=float)
    first_year = np.nan_to_num(np.asarray(nat["first_year"].to_numpy(zero_copy_only=False), dtype=float), nan=0)
    dead = dead[np.argsort(died_on[dead], kind="stable")]
    n = len(dead)
    u = rng.random(2 * n).reshape(n, 2)
    year = died_on[dead].astype("datetime64[Y]").astype(np.int64) + 1970
    # Causes: overdose rows first, then natural ones; which applies depends on the death.
    cause = np.zeros(n, dtype=np.int64)
    od_rx = overdose[dead] & prescription_pattern[dead]
    groups = [(od_rx, od_share * np.where(rx_related, 3.0, 1.0), 0),
              (overdose[dead] & ~prescription_pattern[dead], od_share, 0)]
    # Causes that did not exist yet (COVID-19 before 2020) are not drawn.
    groups += [(~overdose[dead] & (year == y), np.where(first_year <= y, nat_share, 0.0), od.num_rows)
               for y in np.unique(year)]
    for rows, w, first in groups:
        cdf = np.cumsum(w / w.sum())  # as Generator.choice does
        cdf /= cdf[-1]
        cause[rows] = first + cdf.searchsorted(u[rows, 0], side="right")
    causes = pa.array([c.split() for c in od["multiple_causes"].to_pylist()] +
                      [(c or "").split() for c in nat["multiple_causes"].to_pylist()], pa.list_(pa.string()))
    take = pa.array(cause)
    seq = pc.utf8_lpad(pa.array(np.arange(1, n + 1, dtype=np.int64)).cast(pa.string()), 6, "0")
    return pa.table({
        "death_id": pc.binary_join_element_wise(pa.array(year).cast(pa.string()), config.state, seq, ""),
        "person_id": dead.astype(np.int64), "variant_id": dead.astype(np.int64),
        "death_date": pa.array(died_on[dead], pa.date32()),
        "underlying_cause": pa.concat_arrays([od["underlying_cause"].combine_chunks().cast(pa.string()),
                                              nat["underlying_cause"].combine_chunks().cast(pa.string())]).take(take),
        "multiple_causes": causes.take(take),
        "manner": pa.concat_arrays([od["manner"].combine_chunks().cast(pa.string()),
                                    nat["manner"].combine_chunks().cast(pa.string())]).take(take),
        "ssn_reported": pc.if_else(pa.array(u[:, 1] < 0.9), persons["ssn"].combine_chunks().take(pa.array(dead)),
                                   pa.scalar(None, pa.string())),
    }, schema=DEATHS)
