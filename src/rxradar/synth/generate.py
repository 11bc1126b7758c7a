"""Build a synthetic state: people, providers, courses of treatment, planted anomalies, deaths."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rxradar.synth import catalog
from rxradar.synth.anomalies import Plan, plan_anomalies, pill_mill_courses, shopper_courses
from rxradar.synth.care import Geography
from rxradar.synth.chunks import KeyRanges, chunk_rng, chunk_sizes, concat_worlds
from rxradar.synth.config import SynthConfig
from rxradar.synth.courses import Courses, expand, take
from rxradar.synth.mortality import draw_deaths
from rxradar.synth.population import county_table, make_persons, make_variants, true_variants
from rxradar.synth.products import Products
from rxradar.synth.providers import make_pharmacies, make_prescribers
from rxradar.synth.world import FILLS, World

# Who prescribes recurring benzodiazepines (primary care and psychiatry).
BENZO_SPECIALTIES = ("Family Medicine", "Internal Medicine", "Nurse Practitioner", "Physician Assistant", "Psychiatry")
NOBODY = np.array([], dtype=np.int64)


def build_world(config: SynthConfig) -> World:
    """The whole state in memory (the small and medium presets are one chunk each)."""
    return concat_worlds(list(generate_worlds(config)))


def generate_worlds(config: SynthConfig) -> Iterator[World]:
    """The state a chunk of people at a time (see chunks.py): each World has the chunk's persons,
    identity variants, fills and deaths, with keys unique across chunks, and the same providers,
    counties and anomalies as every other chunk."""
    rng = np.random.default_rng(config.seed)
    sizes = chunk_sizes(config.persons)
    county = county_table(config)
    first = _offset_persons(make_persons(replace(config, persons=sizes[0]), rng, county), 0)
    prescribers = make_prescribers(config, rng, county)
    pharmacies = make_pharmacies(config, rng, county)
    plan = plan_anomalies(config, rng, county, first, prescribers, pharmacies)
    # Treatment-desert prescribers have been moved out in plan.prescribers.
    state = _State(config, county, Geography(county, config.state, plan.prescribers, pharmacies),
                   Products.load(), pharmacies, len(sizes))
    keys = KeyRanges(variant=config.persons)
    # The planted patients and shoppers are all in chunk 0.
    later_plan = replace(plan, mill_patients=NOBODY, patient_mill=NOBODY, shoppers=NOBODY, rings=[])
    for k, size in enumerate(sizes):
        if k == 0:
            persons, first, chunk_plan, chunk = first, None, plan, rng
        else:
            chunk, chunk_plan = chunk_rng(config.seed, k), later_plan
            persons = _offset_persons(make_persons(replace(config, persons=size), chunk, county), keys.person)
        # Arrow tables share buffers: the World's persons are these, so holding them costs nothing.
        yield _chunk_world(state, chunk, k, persons, chunk_plan, keys)


@dataclass
class _State:
    """What every chunk shares."""

    config: SynthConfig
    county: pa.Table
    geo: Geography
    products: Products
    pharmacies: pa.Table
    chunks: int


def _offset_persons(persons: pa.Table, first_id: int) -> pa.Table:
    ids = pa.array(np.arange(first_id, first_id + persons.num_rows, dtype=np.int64))
    return persons.set_column(persons.schema.get_field_index("person_id"), "person_id", ids)


def _chunk_world(state: _State, rng: np.random.Generator, k: int, persons: pa.Table, plan: Plan,
                 keys: KeyRanges) -> World:
    """One chunk's people and everything that happens to them; arrays are indexed by position in
    the chunk, and keys become global (``keys``) as the tables are made. Advances ``keys``."""
    config, geo, products, county = state.config, state.geo, state.products, state.county
    n_pharmacies = state.pharmacies.num_rows
    home = geo.of(persons["county_fips"])
    age = _age(persons, config)
    home_pharmacy = geo.choose_pharmacies(home, rng, allowed=~plan.disproportionate_mask(n_pharmacies))
    ctx = _Context(config, rng, geo, products, plan, home, age, home_pharmacy)
    parts = [_acute(ctx), _chronic(ctx), _benzodiazepines(ctx), _treatment(ctx)]
    if k == 0:
        parts += [pill_mill_courses(config, rng, plan, geo, products, persons, home, home_pharmacy),
                  shopper_courses(config, rng, plan, products)]
    courses = Courses.concat(parts)
    alternative = geo.choose_pharmacies(
        geo.care_county(home[courses.person], rng, 0.7, 0.3), rng,
        allowed=~plan.disproportionate_mask(n_pharmacies))
    fills = expand(courses, rng, alternative)
    in_period = (fills.filled >= np.datetime64(config.start)) & (fills.filled <= np.datetime64(config.end))
    fills = take(fills, in_period)
    deaths, died_on = draw_deaths(config, rng, persons, fills, products, plan, home, age, courses)
    fills = take(fills, fills.filled <= died_on[fills.person])
    variants, fill_variant, death_variants = _identities(config, rng, persons, county, fills, plan, deaths,
                                                         keys.variant, keys.person)
    deaths = deaths.set_column(deaths.schema.get_field_index("variant_id"), "variant_id", death_variants)
    deaths = deaths.set_column(deaths.schema.get_field_index("person_id"), "person_id",
                               pc.add(deaths["person_id"], keys.person))
    deaths = keys.number_deaths(deaths, config.state, first_chunk=k == 0)
    persons = persons.set_column(persons.schema.get_field_index("user_type"), "user_type",
                                 pa.array(_user_types(persons.num_rows, courses)))
    notes = {"start": config.start.isoformat(), "end": config.end.isoformat(), "persons": config.persons}
    if state.chunks > 1:
        notes |= {"chunk": k, "chunks": state.chunks}
    world = World(
        state=config.state, seed=config.seed, persons=persons, identity_variants=variants,
        prescribers=plan.prescribers, pharmacies=state.pharmacies,
        fills=_fills_table(fills, fill_variant, products, persons, rng, keys),
        deaths=deaths, anomalies=plan.anomalies(), counties=county, notes=notes,
    )
    keys.advance(world, rx_serials=int(fills.rx_serial.max()) + 1 if len(fills.rx_serial) else 0)
    return world


class _Context:
    def __init__(self, config, rng, geo, products, plan, home, age, home_pharmacy):
        self.config, self.rng, self.geo, self.products, self.plan = config, rng, geo, products, plan
        self.home, self.age, self.home_pharmacy = home, age, home_pharmacy
        self.spec = catalog.specialties()
        self.allowed = None  # pill mills see ordinary patients too; their mill patients come on top

    def specialty_draw(self, n: int, weights: np.ndarray, only: tuple[str, ...] | None = None) -> np.ndarray:
        labels = np.asarray(self.spec["specialty"].to_pylist(), dtype=object)
        w = weights.copy()
        if only is not None:
            w[~np.isin(labels, only)] = 0.0
        return labels[self.rng.choice(len(labels), size=n, p=w / w.sum())]

    def column(self, name: str) -> np.ndarray:
        return np.asarray(self.spec[name].to_numpy(zero_copy_only=False), dtype=float)

    def courses(self, person: np.ndarray, specialty: np.ndarray, product: np.ndarray, start: np.ndarray,
                fills: np.ndarray, days: np.ndarray, units: np.ndarray, kind: str, refillable: np.ndarray,
                cash: float = 0.03, other_pharmacy: float | None = None) -> Courses:
        b = self.config.behaviour
        care = self.geo.care_county(self.home[person], self.rng, b.care_in_own_county, b.care_in_neighbour_county)
        n = len(person)
        return Courses(
            person=person.astype(np.int64),
            prescriber=self.geo.choose_prescribers(care, specialty, self.rng, allowed=self.allowed).astype(np.int32),
            pharmacy=self.home_pharmacy[person].astype(np.int32), product=product.astype(np.int32),
            start=start, fills=fills.astype(np.int32), days=days.astype(np.int32), units_per_day=units,
            refillable=refillable, cash=np.full(n, cash), kind=np.full(n, kind, dtype=object),
            other_pharmacy=np.full(n, 1 - b.same_pharmacy_probability if other_pharmacy is None else other_pharmacy),
        )


def _age(persons: pa.Table, config: SynthConfig) -> np.ndarray:
    birth = np.asarray(persons["birth_date"].to_numpy(zero_copy_only=False), dtype="datetime64[D]")
    return (np.datetime64(config.start) - birth).astype(np.int64) / 365.25


def _starts(ctx: _Context, n: int, lead_days: int = 0) -> np.ndarray:
    days = (ctx.config.end - ctx.config.start).days + 1 + lead_days
    return np.datetime64(ctx.config.start) - np.timedelta64(lead_days, "D") + ctx.rng.integers(0, days, n).astype(
        "timedelta64[D]")


def _acute(ctx: _Context) -> Courses:
    b, rng = ctx.config.behaviour, ctx.rng
    eligible = ctx.age >= 12
    episodes = rng.poisson(b.acute_episodes_per_year * ctx.config.years, len(ctx.age)) * eligible
    person = np.repeat(np.arange(len(ctx.age)), episodes)
    n = len(person)
    weights = ctx.column("prescriber_share") * ctx.column("opioid_rx_per_year") * (1 - ctx.column("chronic_share"))
    specialty = ctx.specialty_draw(n, weights)
    typical = dict(zip(ctx.spec["specialty"].to_pylist(), ctx.column("typical_days_acute")))
    days = np.maximum(1, np.array([typical[s] for s in specialty]) + rng.integers(-1, 3, n))
    product = ctx.products.draw("acute", n, rng)
    units = ctx.products.units(product, "acute") * rng.lognormal(0, 0.2, n)
    fills = 1 + (rng.random(n) < b.acute_refill_probability)
    return ctx.courses(person, specialty, product, _starts(ctx, n), fills, days, units, "acute",
                       ctx.products.refillable(product))


def _chronic(ctx: _Context) -> Courses:
    b, rng = ctx.config.behaviour, ctx.rng
    # Long-term opioid therapy is most common in middle age (CDC NHIS estimates).
    p = b.chronic_share * np.clip((ctx.age - 20) / 25, 0, 1.4) * (ctx.age >= 25)
    person = np.flatnonzero(rng.random(len(ctx.age)) < p)
    n = len(person)
    weights = ctx.column("prescriber_share") * ctx.column("opioid_rx_per_year") * ctx.column("chronic_share")
    specialty = ctx.specialty_draw(n, weights)
    long_acting = rng.random(n) < b.long_acting_share_chronic
    product = np.where(long_acting, ctx.products.draw("chronic_la", n, rng), ctx.products.draw("chronic_sa", n, rng))
    units = ctx.products.units(product, "chronic") * rng.lognormal(0, 0.3, n)
    months = 1 + rng.exponential(b.chronic_months_mean, n).astype(np.int64)
    return ctx.courses(person, specialty, product, _starts(ctx, n, lead_days=365), months, np.full(n, 30), units,
                       "chronic", ctx.products.refillable(product))


def _benzodiazepines(ctx: _Context) -> Courses:
    b, rng = ctx.config.behaviour, ctx.rng
    p = np.where(ctx.age >= 18, b.benzo_share, 0.0)
    person = np.flatnonzero(rng.random(len(ctx.age)) < p)
    n = len(person)
    specialty = ctx.specialty_draw(n, ctx.column("prescriber_share"), only=BENZO_SPECIALTIES)
    product = ctx.products.draw("benzodiazepine", n, rng)
    units = ctx.products.units(product, "chronic") * rng.lognormal(0, 0.2, n)
    months = 1 + rng.exponential(b.benzo_months_mean, n).astype(np.int64)
    return ctx.courses(person, specialty, product, _starts(ctx, n, lead_days=365), months, np.full(n, 30), units,
                       "benzodiazepine", np.ones(n, dtype=bool))


def _treatment(ctx: _Context) -> Courses:
    b, rng = ctx.config.behaviour, ctx.rng
    p = np.where((ctx.age >= 18) & (ctx.age < 65), b.oud_share, 0.0)
    person = np.flatnonzero(rng.random(len(ctx.age)) < p)
    n = len(person)
    buprenorphine = np.asarray(ctx.spec["prescribes_buprenorphine"].to_pylist(), dtype=bool)
    weights = ctx.column("prescriber_share") * buprenorphine
    specialty = ctx.specialty_draw(n, weights)
    product = ctx.products.draw("treatment", n, rng)
    units = ctx.products.units(product, "chronic")
    months = 1 + rng.exponential(b.oud_months_mean, n).astype(np.int64)
    # Buprenorphine is usually dispensed for 7-14 days at a time early on; 14 throughout here.
    return ctx.courses(person, specialty, product, _starts(ctx, n, lead_days=365), 2 * months, np.full(n, 14), units,
                       "oud", np.zeros(n, dtype=bool), cash=0.08)


def _identities(config: SynthConfig, rng: np.random.Generator, persons: pa.Table, county: pa.Table, fills,
                plan: Plan, deaths: pa.Table, first_variant: int,
                first_person: int) -> tuple[pa.Table, np.ndarray, pa.Array]:
    """Reported identities: the truth for most fills, a noisy variant for some (and for shoppers, often).

    ``fills.person`` and the deaths' ``person_id`` are positions in the chunk; ``persons`` already
    has global ids (``first_person`` on); noisy variants are numbered from ``first_variant``."""
    b, a = config.behaviour, config.anomalies
    noisy_probability = np.full(persons.num_rows, b.noisy_report_probability)
    noisy_probability[plan.shoppers] = a.shopper_noisy_reports
    noisy = rng.random(len(fills.person)) < noisy_probability[fills.person]
    death_noisy = rng.random(deaths.num_rows) < 0.1
    death_people = np.asarray(deaths["person_id"].to_numpy(zero_copy_only=False))
    needs = np.unique(np.concatenate([fills.person[noisy], death_people[death_noisy]]))
    variants = make_variants(persons, needs, rng, county, first_id=first_variant)
    true_id = np.arange(first_person, first_person + persons.num_rows, dtype=np.int64)  # the person themself
    variant_of = true_id.copy()
    variant_of[needs] = np.asarray(variants["variant_id"].to_numpy(zero_copy_only=False))
    fill_variant = np.where(noisy, variant_of[fills.person], true_id[fills.person])
    death_variant = np.where(death_noisy, variant_of[death_people], true_id[death_people])
    return (pa.concat_tables([true_variants(persons), variants]), fill_variant,
            pa.array(death_variant, pa.int64()))


def _user_types(n: int, courses: Courses) -> np.ndarray:
    rank = {"none": 0, "acute": 1, "benzodiazepine": 1, "shopper": 2, "chronic": 2, "pill_mill": 2, "oud": 3}
    names = np.array(["none", "acute", "chronic", "oud"], dtype=object)
    level = np.zeros(n, dtype=np.int64)
    kinds = np.array([rank[k] for k in courses.kind])
    np.maximum.at(level, courses.person, kinds)
    return names[level]


def _fills_table(fills, fill_variant: np.ndarray, products: Products, persons: pa.Table,
                 rng: np.random.Generator, keys: KeyRanges) -> pa.Table:
    order = _by_date_then_person(fills.filled, fills.person)
    codes, payer = _payers(persons, rng)
    # Strings are taken from small Arrow arrays by index: no Python object per fill.
    payment = np.where(fills.cash, codes.index("01"), payer[fills.person])
    n = len(order)
    return pa.table({
        "fill_key": np.arange(keys.fill, keys.fill + n, dtype=np.int64),
        "person_id": fills.person[order].astype(np.int64) + keys.person,
        "variant_id": fill_variant[order].astype(np.int64),
        "prescriber_key": fills.prescriber[order].astype(np.int32),
        "pharmacy_key": fills.pharmacy[order].astype(np.int32),
        "rx_number": pc.binary_join_element_wise(
            "RX", pc.utf8_lpad(pa.array(fills.rx_serial[order] + keys.rx).cast(pa.string()), 8, "0"), ""),
        "written_date": fills.written[order], "fill_date": fills.filled[order],
        "refill_number": fills.refill[order], "refills_authorized": fills.refills_authorized[order],
        "partial_fill": np.zeros(n, dtype=np.int32),
        "ndc11": pa.array(products.ndc11, pa.string()).take(pa.array(fills.product[order])),
        "quantity": fills.quantity[order], "days_supply": fills.days[order],
        "payment_type": pa.array(codes, pa.string()).take(pa.array(payment[order])),
    }, schema=FILLS)


def _by_date_then_person(filled: np.ndarray, person: np.ndarray) -> np.ndarray:
    """``np.lexsort((person, filled))``, three times faster: one stable argsort of a combined key."""
    if not len(person):
        return np.zeros(0, dtype=np.int64)
    bits = int(person.max()).bit_length()
    days = filled.astype(np.int64) - filled.min().astype(np.int64)
    return np.argsort((days << bits) | person.astype(np.int64), kind="stable")


def _payers(persons: pa.Table, rng: np.random.Generator) -> tuple[list[str], np.ndarray]:
    """Each person's usual payer (ASAP DSP16 codes), from the catalogue's non-cash shares; 65+ Medicare.

    Returns the codes and, per person, the index of theirs."""
    pay = catalog.payment_types()
    codes = pay["code"].to_pylist()
    share = np.array(pay["share"].to_numpy(zero_copy_only=False), dtype=float)
    share[np.asarray(codes, dtype=object) == "01"] = 0
    payer = rng.choice(len(codes), persons.num_rows, p=share / share.sum())
    codes += [c for c in ("01", "03") if c not in codes]  # cash and Medicare, named below
    birth = np.asarray(persons["birth_date"].to_numpy(zero_copy_only=False), dtype="datetime64[D]")
    payer[(np.datetime64("2021-01-01") - birth).astype(np.int64) >= 65 * 365.25] = codes.index("03")
    return codes, payer
