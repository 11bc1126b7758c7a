"""Planted truth: pill mills, the pharmacies that fill for them, doctor-shopping rings, an
overdose cluster and a treatment desert. Every one is recorded with its parameters."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rxradar.synth.care import Geography
from rxradar.synth.config import SynthConfig
from rxradar.synth.courses import Courses
from rxradar.synth.products import Products
from rxradar.synth.world import ANOMALIES

# Pill mills are mostly pain clinics and primary care, but a dentist or physician assistant
# writing far above their peers is the case peer comparison exists for (HHS-OIG 2017).
PILL_MILL_SPECIALTIES = ("Pain Medicine", "Family Medicine", "Dentist", "Physician Assistant", "Nurse Practitioner",
                         "Internal Medicine")
LOW_VOLUME_SPECIALTIES = ("Dentist", "Physician Assistant")
LOW_VOLUME_PANEL = 0.35  # their mills write for fewer patients: extreme for their peers, not for everyone


@dataclass
class Plan:
    prescribers: pa.Table
    pill_mills: np.ndarray = field(default_factory=lambda: np.array([], dtype=np.int64))
    mill_patients: np.ndarray = field(default_factory=lambda: np.array([], dtype=np.int64))
    patient_mill: np.ndarray = field(default_factory=lambda: np.array([], dtype=np.int64))
    disproportionate: np.ndarray = field(default_factory=lambda: np.array([], dtype=np.int64))
    shoppers: np.ndarray = field(default_factory=lambda: np.array([], dtype=np.int64))
    rings: list[dict] = field(default_factory=list)
    cluster: list[str] = field(default_factory=list)
    desert: str | None = None
    records: list[dict] = field(default_factory=list)

    def pill_mill_mask(self, n: int) -> np.ndarray:
        mask = np.zeros(n, dtype=bool)
        mask[self.pill_mills] = True
        return mask

    def disproportionate_mask(self, n: int) -> np.ndarray:
        mask = np.zeros(n, dtype=bool)
        mask[self.disproportionate] = True
        return mask

    def anomalies(self) -> pa.Table:
        return pa.Table.from_pylist(self.records, schema=ANOMALIES)

    def record(self, kind: str, entity_type: str, entity_id: str, **parameters: object) -> None:
        self.records.append({"kind": kind, "entity_type": entity_type, "entity_id": entity_id,
                             "parameters": json.dumps(parameters, sort_keys=True, default=str)})


def plan_anomalies(config: SynthConfig, rng: np.random.Generator, county: pa.Table, persons: pa.Table,
                   prescribers: pa.Table, pharmacies: pa.Table) -> Plan:
    plan = Plan(prescribers)
    fips = county["fips"].to_pylist()
    pops = np.asarray(county["pop2019"].to_numpy(zero_copy_only=False), dtype=float)
    _plan_geography(plan, config, rng, county, fips, pops)
    geo = Geography(county, config.state, plan.prescribers, pharmacies)
    _plan_pill_mills(plan, config, rng, geo, persons)
    _plan_pharmacies(plan, config, rng, pharmacies)
    _plan_shoppers(plan, config, rng, persons, plan.prescribers, pharmacies)
    return plan


def _plan_geography(plan: Plan, config: SynthConfig, rng: np.random.Generator, county: pa.Table, fips: list[str],
                    pops: np.ndarray) -> None:
    a = config.anomalies
    geo = Geography(county, config.state, plan.prescribers, _no_pharmacies())
    order = np.argsort(pops)
    middle = order[len(order) // 3: 2 * len(order) // 3]
    seeds = [c for c in middle if geo.nb_count[c] >= a.cluster_size - 1] or list(middle)
    seed = int(rng.choice(seeds))
    neighbours = list(geo.nb_flat[geo.nb_start[seed]:geo.nb_start[seed] + geo.nb_count[seed]])
    members = [seed] + [int(x) for x in rng.permutation(neighbours)[: a.cluster_size - 1]]
    plan.cluster = [fips[c] for c in members]
    for c in members:
        plan.record("overdose_cluster", "county", fips[c], relative_risk=config.mortality.rr_cluster_county,
                    seed_county=fips[seed])
    touching = set(members) | {int(x) for c in members
                               for x in geo.nb_flat[geo.nb_start[c]:geo.nb_start[c] + geo.nb_count[c]]}
    candidates = [int(c) for c in order[: 2 * len(order) // 3] if int(c) not in touching]
    desert = int(rng.choice(candidates)) if candidates else int(order[0])
    plan.desert = fips[desert]
    # No buprenorphine prescriber practises in the desert: any who would are placed in the
    # most populous county instead.
    spec = np.asarray(plan.prescribers["specialty"].to_pylist(), dtype=object)
    where = np.asarray(plan.prescribers["county_fips"].to_pylist(), dtype=object)
    move = (where == plan.desert) & (spec == "Addiction Medicine")
    where[move] = fips[int(order[-1])]
    plan.prescribers = plan.prescribers.set_column(plan.prescribers.schema.get_field_index("county_fips"),
                                                   "county_fips", pa.array(where, pa.string()))
    plan.record("treatment_desert", "county", plan.desert, relative_risk=config.mortality.rr_desert_county,
                buprenorphine_prescribers_moved=int(move.sum()))


def _no_pharmacies() -> pa.Table:
    return pa.table({"county_fips": pa.array([], pa.string())})


def _plan_pill_mills(plan: Plan, config: SynthConfig, rng: np.random.Generator, geo: Geography,
                     persons: pa.Table) -> None:
    a, b = config.anomalies, config.behaviour
    n_prescribers = plan.prescribers.num_rows
    count = max(a.pill_mill_min, n_prescribers // a.pill_mill_per_prescribers)
    spec = np.asarray(plan.prescribers["specialty"].to_pylist(), dtype=object)
    of_specialty = {s: spec == s for s in PILL_MILL_SPECIALTIES}
    chosen = np.zeros(n_prescribers, dtype=bool)
    mills_in_order: list[int] = []
    for i in range(count):
        wanted = PILL_MILL_SPECIALTIES[i % len(PILL_MILL_SPECIALTIES)]
        pool = np.flatnonzero(of_specialty[wanted] & ~chosen)
        if not len(pool):
            pool = np.flatnonzero(~chosen)
        mills_in_order.append(int(rng.choice(pool)))
        chosen[mills_in_order[-1]] = True
    plan.pill_mills = np.array(mills_in_order, dtype=np.int64)
    home = geo.of(persons["county_fips"])
    birth = np.asarray(persons["birth_date"].to_numpy(zero_copy_only=False), dtype="datetime64[D]")
    age = (np.datetime64(config.start) - birth).astype(np.int64) / 365.25
    free = (age >= 20) & (age < 65)
    panel = config.persons * b.chronic_share / n_prescribers * 2.0
    patients, mills = [], []
    for mill in plan.pill_mills:
        size = int(max(12, a.pill_mill_patient_factor * panel * (LOW_VOLUME_PANEL if spec[mill] in
                                                                  LOW_VOLUME_SPECIALTIES else 1.0)))
        c = geo.prescriber_county[mill]
        near_county = np.zeros(len(geo.fips), dtype=bool)
        near_county[np.r_[c, geo.nb_flat[geo.nb_start[c]:geo.nb_start[c] + geo.nb_count[c]]]] = True
        near = near_county[home]
        n_far = int(round(size * a.pill_mill_far_patients))
        pick = np.r_[_sample(rng, np.flatnonzero(free & ~near), n_far), _sample(rng, np.flatnonzero(free & near),
                                                                                 size - n_far)]
        free[pick] = False
        patients.append(pick)
        mills.append(np.full(len(pick), mill))
        plan.record("pill_mill", "prescriber", plan.prescribers["npi"][int(mill)].as_py(), specialty=spec[mill],
                    patients=len(pick), far_share=a.pill_mill_far_patients, cash_share=a.pill_mill_cash_share,
                    daily_mme=a.pill_mill_daily_mme)
    plan.mill_patients = np.concatenate(patients)
    plan.patient_mill = np.concatenate(mills)


def _sample(rng: np.random.Generator, pool: np.ndarray, n: int) -> np.ndarray:
    return rng.choice(pool, size=min(n, len(pool)), replace=False) if n > 0 and len(pool) else np.array([], np.int64)


def _plan_pharmacies(plan: Plan, config: SynthConfig, rng: np.random.Generator, pharmacies: pa.Table) -> None:
    a = config.anomalies
    count = max(a.disproportionate_min, pharmacies.num_rows // a.disproportionate_per_pharmacies)
    independent = np.flatnonzero(pc.is_null(pharmacies["chain_site_id"]).to_numpy(zero_copy_only=False))
    pool = independent if len(independent) >= count else np.arange(pharmacies.num_rows)
    plan.disproportionate = rng.choice(pool, size=count, replace=False).astype(np.int64)
    for p in plan.disproportionate:
        plan.record("disproportionate_pharmacy", "pharmacy", pharmacies["npi"][int(p)].as_py(),
                    share_of_pill_mill_fills=a.disproportionate_share_of_mill_fills / count,
                    cash_share=a.pill_mill_cash_share)


def _plan_shoppers(plan: Plan, config: SynthConfig, rng: np.random.Generator, persons: pa.Table,
                   prescribers: pa.Table, pharmacies: pa.Table) -> None:
    a = config.anomalies
    n = max(6, config.persons // a.shoppers_per_persons)
    taken = np.zeros(persons.num_rows, dtype=bool)
    taken[plan.mill_patients] = True
    people = rng.choice(np.flatnonzero(~taken), size=n, replace=False)
    not_mill = np.setdiff1d(np.arange(prescribers.num_rows), plan.pill_mills)
    start, days = np.datetime64(config.start), (config.end - config.start).days
    i = 0
    while i < n:
        size = int(rng.integers(a.shopper_ring_size[0], a.shopper_ring_size[1] + 1))
        members = people[i:i + size]
        ring = {
            "members": members,
            "prescribers": rng.choice(not_mill, size=int(rng.integers(*a.shopper_prescribers) + 1), replace=False),
            "pharmacies": rng.choice(pharmacies.num_rows, size=int(rng.integers(*a.shopper_pharmacies) + 1),
                                     replace=False),
            "start": start + np.timedelta64(int(rng.integers(0, max(1, days - 365))), "D"),
            "days": int(rng.integers(180, 366)),
        }
        plan.rings.append(ring)
        for m in members:
            plan.record("doctor_shopper", "person", str(int(m)), ring=len(plan.rings), ring_size=len(members),
                        prescribers=len(ring["prescribers"]), pharmacies=len(ring["pharmacies"]),
                        start=str(ring["start"]), days=ring["days"])
        i += size
    plan.shoppers = people


def pill_mill_courses(config: SynthConfig, rng: np.random.Generator, plan: Plan, geo: Geography, products: Products,
                      persons: pa.Table, home: np.ndarray, home_pharmacy: np.ndarray) -> Courses:
    """Each pill-mill patient: months of high-dose immediate-release opioids, much of it for cash,
    filled mostly at the disproportionate pharmacies."""
    a = config.anomalies
    person = plan.mill_patients
    n = len(person)
    product = products.draw("pill_mill", n, rng)
    units = a.pill_mill_daily_mme / np.maximum(products.mme_per_unit[product], 1e-9) * rng.lognormal(0, 0.15, n)
    months = 3 + rng.exponential(9, n).astype(np.int64)
    start = np.datetime64(config.start) + rng.integers(0, (config.end - config.start).days, n).astype("timedelta64[D]")
    to_disproportionate = rng.random(n) < a.disproportionate_share_of_mill_fills
    pharmacy = np.where(to_disproportionate, rng.choice(plan.disproportionate, n), home_pharmacy[person])
    return Courses(
        person=person.astype(np.int64), prescriber=plan.patient_mill.astype(np.int32), pharmacy=pharmacy.astype(np.int32),
        product=product.astype(np.int32), start=start, fills=months.astype(np.int32), days=np.full(n, 30, np.int32),
        units_per_day=units, refillable=np.zeros(n, dtype=bool), cash=np.full(n, a.pill_mill_cash_share),
        other_pharmacy=np.full(n, 0.1), kind=np.full(n, "pill_mill", dtype=object),
    )


def shopper_courses(config: SynthConfig, rng: np.random.Generator, plan: Plan, products: Products) -> Courses:
    """Doctor shoppers: a 30-day supply every week or two, from many prescribers and pharmacies."""
    parts = []
    for ring in plan.rings:
        for person in ring["members"]:
            visits = max(6, ring["days"] // int(rng.integers(7, 15)))
            offsets = np.sort(rng.integers(0, ring["days"], visits))
            product = products.draw("shopper", visits, rng)
            parts.append(Courses(
                person=np.full(visits, person, np.int64),
                prescriber=rng.choice(ring["prescribers"], visits).astype(np.int32),
                pharmacy=rng.choice(ring["pharmacies"], visits).astype(np.int32),
                product=product.astype(np.int32), start=ring["start"] + offsets.astype("timedelta64[D]"),
                fills=np.ones(visits, np.int32), days=np.full(visits, 30, np.int32),
                units_per_day=products.units(product, "chronic") * 1.5, refillable=np.zeros(visits, dtype=bool),
                cash=np.full(visits, 0.4), other_pharmacy=np.zeros(visits), kind=np.full(visits, "shopper", dtype=object),
            ))
    return Courses.concat(parts)
