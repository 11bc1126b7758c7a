"""The people of a synthetic state, and the noisy ways pharmacies and certifiers report them."""

from __future__ import annotations

from datetime import date

import numpy as np
import pyarrow as pa

from rxradar.reference.counties import counties
from rxradar.synth import catalog
from rxradar.synth.config import SynthConfig
from rxradar.synth.world import IDENTITY_VARIANTS, PERSONS

STREETS = ["MAIN", "OAK", "MAPLE", "PINE", "CEDAR", "ELM", "WALNUT", "HILL", "RIVER", "CHURCH", "MILL", "SPRING",
           "PARK", "RIDGE", "HOLLOW", "CREEK", "SCHOOL", "COAL", "VALLEY", "LAUREL"]
SUFFIXES = ["ST", "AVE", "RD", "DR", "LN", "PIKE"]
MIDDLE_INITIALS = list("ABCDEFGHJKLMNPRSTW")
NOISE_KINDS = ("typo_last", "nickname", "no_middle", "hyphenated", "changed_last", "swapped_day_month", "moved")


def county_table(config: SynthConfig) -> pa.Table:
    """The state's counties with 2019 population, centroid and a fixed set of synthetic ZIP codes.

    No ZIP-to-county crosswalk ships with rxradar, so each county gets its own ZIPs (one per
    ~40,000 residents, at least one) from a block reserved for the state; the truth keeps them.
    """
    table = counties(config.state).sort_by("fips")
    pops = np.asarray(table["pop2019"].to_numpy(zero_copy_only=False), dtype=np.int64)
    base = 24700 if config.state == "WV" else 10000 + (int(table["state_fips"][0].as_py()) * 1693) % 85000
    zips = [[f"{base + 10 * i + k:05d}" for k in range(min(5, 1 + int(p) // 40_000))] for i, p in enumerate(pops)]
    return table.append_column("zips", pa.array(zips, pa.list_(pa.string())))


def overpopulated(config: SynthConfig) -> str | None:
    """Why a state of this many persons would mislead, if it would: more persons than the real
    state's residents make every rate per resident impossible (the dashboard's county rates use
    the census population). None when the persons fit."""
    totals = counties().group_by("state").aggregate([("pop2019", "sum")]).to_pylist()
    residents = {row["state"]: row["pop2019_sum"] or 0 for row in totals}
    if config.persons <= residents[config.state]:
        return None
    larger = sorted((pop, state) for state, pop in residents.items() if pop >= config.persons)[:3]
    return (f"{config.persons:,} persons is more than {config.state}'s {residents[config.state]:,} residents (2019), "
            "so rates per resident will come out impossible"
            + (f"; states with as many people: {', '.join(state for _, state in larger)} (--state)" if larger else ""))


def make_persons(config: SynthConfig, rng: np.random.Generator, county: pa.Table) -> pa.Table:
    n = config.persons
    fips = county["fips"].to_pylist()
    pops = np.asarray(county["pop2019"].to_numpy(zero_copy_only=False), dtype=float)
    county_idx = rng.choice(len(fips), size=n, p=pops / pops.sum())
    ages = catalog.age_sex_distribution(config.state)
    band = rng.choice(ages.num_rows, size=n, p=_normalised(ages["share"]))
    lo = np.asarray(ages["age_from"].to_numpy(zero_copy_only=False))[band]
    hi = np.asarray(ages["age_to"].to_numpy(zero_copy_only=False))[band]
    age = lo + rng.random(n) * (hi - lo + 1)
    sex = np.asarray(ages["sex"].to_pylist(), dtype=object)[band]
    birth = np.array(config.start, dtype="datetime64[D]") - (age * 365.25).astype("timedelta64[D]")
    first = np.empty(n, dtype=object)
    for s in ("F", "M"):
        names, weights = catalog.first_names(s)
        mask = sex == s
        first[mask] = np.asarray(names, dtype=object)[rng.choice(len(names), size=int(mask.sum()), p=_normalised(weights))]
    last_names, last_weights = catalog.last_names()
    last = np.asarray(last_names, dtype=object)[rng.choice(len(last_names), size=n, p=_normalised(last_weights))]
    middle = np.asarray(MIDDLE_INITIALS, dtype=object)[rng.integers(0, len(MIDDLE_INITIALS), n)]
    middle[rng.random(n) < 0.15] = None  # no middle name on file
    zips = county["zips"].to_pylist()
    zip_code = [zips[c][int(u * len(zips[c]))] for c, u in zip(county_idx, rng.random(n))]
    city = [name.replace(" County", "").upper() for name in county["name"].to_pylist()]
    return pa.Table.from_pydict({
        "person_id": np.arange(n, dtype=np.int64),
        "last_name": last, "first_name": first, "middle_name": middle, "sex": sex,
        "birth_date": birth,
        "ssn": _ssns(rng, n),
        "address": _addresses(rng, n),
        "city": np.asarray(city, dtype=object)[county_idx],
        "state": [config.state] * n,
        "zip": zip_code,
        "county_fips": np.asarray(fips, dtype=object)[county_idx],
        "user_type": ["none"] * n,
    }, schema=PERSONS)


def _normalised(weights) -> np.ndarray:
    w = np.asarray(weights.to_numpy(zero_copy_only=False) if hasattr(weights, "to_numpy") else weights, dtype=float)
    return w / w.sum()


def _ssns(rng: np.random.Generator, n: int) -> list[str]:
    # Issued-looking SSNs: area 001-665 or 667-899, group 01-99, serial 0001-9999.
    area = rng.integers(1, 899, n)
    area[area == 666] = 667
    return [f"{a:03d}{g:02d}{s:04d}" for a, g, s in zip(area, rng.integers(1, 100, n), rng.integers(1, 10_000, n))]


def _addresses(rng: np.random.Generator, n: int) -> list[str]:
    numbers = rng.integers(1, 9999, n)
    streets = rng.integers(0, len(STREETS), n)
    suffixes = rng.integers(0, len(SUFFIXES), n)
    return [f"{a} {STREETS[s]} {SUFFIXES[x]}" for a, s, x in zip(numbers, streets, suffixes)]


def make_variants(persons: pa.Table, people: np.ndarray, rng: np.random.Generator, county: pa.Table,
                  first_id: int) -> pa.Table:
    """One noisy report of each person in ``people`` (person_id array), each with one kind of noise."""
    rows = persons.take(pa.array(people)).to_pylist()
    nick = catalog.nicknames()
    last_names, _ = catalog.last_names()
    zips = [z for zs in county["zips"].to_pylist() for z in zs]
    out = []
    for i, row in enumerate(rows):
        kind = _kind_for(row, rng, nick)
        v = {k: row[k] for k in ("person_id", "last_name", "first_name", "middle_name", "sex", "birth_date",
                                  "address", "city", "zip")}
        if kind == "typo_last":
            v["last_name"] = _typo(row["last_name"], rng)
        elif kind == "nickname":
            v["first_name"] = nick[row["first_name"]][int(rng.integers(len(nick[row["first_name"]])))]
        elif kind == "no_middle":
            v["middle_name"] = None
        elif kind == "hyphenated":
            v["last_name"] = f"{row['last_name']}-{last_names[int(rng.integers(len(last_names)))]}"
        elif kind == "changed_last":
            v["last_name"] = last_names[int(rng.integers(len(last_names)))]
        elif kind == "swapped_day_month":
            b: date = row["birth_date"]
            v["birth_date"] = date(b.year, b.day, b.month)
        else:  # moved
            v["address"] = _addresses(rng, 1)[0]
            v["zip"] = zips[int(rng.integers(len(zips)))]
        v["variant_id"] = first_id + i
        v["noise"] = kind
        out.append(v)
    return pa.Table.from_pylist(out, schema=IDENTITY_VARIANTS)


def _kind_for(row: dict, rng: np.random.Generator, nick: dict[str, list[str]]) -> str:
    possible = ["typo_last", "no_middle", "moved"]
    if row["first_name"] in nick:
        possible += ["nickname", "nickname"]
    if row["middle_name"] is None:
        possible.remove("no_middle")
    if row["sex"] == "F":
        possible += ["hyphenated", "changed_last"]
    if row["birth_date"].day <= 12 and row["birth_date"].day != row["birth_date"].month:
        possible.append("swapped_day_month")
    return possible[int(rng.integers(len(possible)))]


def _typo(name: str, rng: np.random.Generator) -> str:
    """One keying error: a dropped, doubled, swapped or replaced letter."""
    if len(name) < 3:
        return name + name[-1]
    i = int(rng.integers(1, len(name) - 1))
    how = int(rng.integers(4))
    if how == 0:
        return name[:i] + name[i + 1:]
    if how == 1:
        return name[:i] + name[i] + name[i:]
    if how == 2:
        return name[:i - 1] + name[i] + name[i - 1] + name[i + 1:]
    return name[:i] + "AEIOUNRSTL"[int(rng.integers(10))] + name[i + 1:]


def true_variants(persons: pa.Table) -> pa.Table:
    """Variant 0 of everyone: the identity exactly as it is (variant_id = person_id)."""
    columns = {"variant_id": persons["person_id"], "noise": pa.array(["none"] * persons.num_rows, pa.string())}
    return pa.table({f.name: columns.get(f.name, persons[f.name] if f.name in persons.column_names else None)
                     for f in IDENTITY_VARIANTS}, schema=IDENTITY_VARIANTS)


def dates_between(rng: np.random.Generator, start: date, end: date, n: int) -> np.ndarray:
    days = (end - start).days + 1
    return np.array(start, dtype="datetime64[D]") + rng.integers(0, days, n).astype("timedelta64[D]")

