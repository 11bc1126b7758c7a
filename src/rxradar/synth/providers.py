"""Prescribers and pharmacies of a synthetic state, placed where people live (rural areas thinner)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from rxradar.codes import dea_with_check_digit, npi_with_check_digit
from rxradar.synth import catalog
from rxradar.synth.config import SynthConfig
from rxradar.synth.population import _addresses, _normalised
from rxradar.synth.world import PHARMACIES, PRESCRIBERS

# Providers concentrate in populous counties more than people do (HRSA shortage areas are
# mostly rural): placement weight is population ** URBAN_PULL.
URBAN_PULL = 1.25
ASAP_VERSIONS = (("4.2", 0.5), ("4.2A", 0.3), ("5.0", 0.2))
TERMINATORS = (("~", 0.7), ("\\", 0.3))
# NCPDP provider IDs start with a 2-digit state code: states in alphabetical order of their names,
# DC 09, Puerto Rico 40 (formats.md §4.3).
NCPDP_STATE_ORDER = ("AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ "
                     "NM NY NC ND OH OK OR PA PR RI SC SD TN TX UT VT VA WA WV WI WY").split()
SOFTWARE = ("RXPERT", "PHARMASYS", "QS/1", "PIONEERRX", "LIBERTY")
CHAINS = ("RITE AID", "CVS PHARMACY", "WALGREENS", "KROGER PHARMACY", "WALMART PHARMACY")


def _placement(county: pa.Table, rng: np.random.Generator, n: int) -> np.ndarray:
    pops = np.asarray(county["pop2019"].to_numpy(zero_copy_only=False), dtype=float) ** URBAN_PULL
    return rng.choice(county.num_rows, size=n, p=pops / pops.sum())


def _unique_numbers(rng: np.random.Generator, n: int, digits: int, lead: str) -> list[str]:
    space = 10 ** (digits - 1)
    values = rng.choice(space, size=n, replace=False)
    return [f"{lead}{v:0{digits - 1}d}" for v in values]


def make_prescribers(config: SynthConfig, rng: np.random.Generator, county: pa.Table) -> pa.Table:
    n = max(40, config.persons // config.persons_per_prescriber)
    spec = catalog.specialties()
    which = rng.choice(spec.num_rows, size=n, p=_normalised(spec["prescriber_share"]))
    # Every specialty at least twice, so each has peers to be compared with.
    which[: 2 * spec.num_rows] = np.repeat(np.arange(spec.num_rows), 2)[:n]
    place = _placement(county, rng, n)
    gender = np.where(rng.random(n) < 0.45, "F", "M")
    first = [_first_name(rng, g) for g in gender]
    last_names, last_weights = catalog.last_names()
    last = np.asarray(last_names, dtype=object)[rng.choice(len(last_names), n, p=_normalised(last_weights))]
    npis = [npi_with_check_digit(b) for b in _unique_numbers(rng, n, 9, "1")]
    # DEA registrant type M is a mid-level practitioner (nurse practitioner, physician assistant).
    dea_letters = ["M" if s in ("Nurse Practitioner", "Physician Assistant") else "B" for s in spec["specialty"].to_pylist()]
    deas = [dea_with_check_digit(dea_letters[w] + last[i][0], f"{rng.integers(10**6):06d}")
            for i, w in enumerate(which)]
    fips = np.asarray(county["fips"].to_pylist(), dtype=object)
    cities = np.asarray([c.replace(" County", "").upper() for c in county["name"].to_pylist()], dtype=object)
    zips = county["zips"].to_pylist()
    return pa.Table.from_pydict({
        "prescriber_key": np.arange(n, dtype=np.int32), "npi": npis, "dea": deas,
        "last_name": last, "first_name": first, "middle_name": [None] * n,
        "credential": np.asarray(spec["credential"].to_pylist(), dtype=object)[which],
        "taxonomy_code": np.asarray(spec["taxonomy_code"].to_pylist(), dtype=object)[which],
        "specialty": np.asarray(spec["specialty"].to_pylist(), dtype=object)[which],
        "address": _addresses(rng, n), "city": cities[place], "state": [config.state] * n,
        "zip": [zips[p][0] for p in place], "county_fips": fips[place], "gender": gender,
    }, schema=PRESCRIBERS)


def _first_name(rng: np.random.Generator, sex: str) -> str:
    names, weights = catalog.first_names(sex)
    return names[int(rng.choice(len(names), p=_normalised(weights)))]


def make_pharmacies(config: SynthConfig, rng: np.random.Generator, county: pa.Table) -> pa.Table:
    n = max(30, config.persons // config.persons_per_pharmacy)
    place = _placement(county, rng, n)
    chain = rng.random(n) < 0.6
    fips = np.asarray(county["fips"].to_pylist(), dtype=object)
    cities = np.asarray([c.replace(" County", "").upper() for c in county["name"].to_pylist()], dtype=object)
    lat = np.asarray(county["lat"].to_numpy(zero_copy_only=False))[place] + rng.normal(0, 0.05, n)
    lon = np.asarray(county["lon"].to_numpy(zero_copy_only=False))[place] + rng.normal(0, 0.05, n)
    # A chain store's number within its chain: in its name, and reported as the chain site ID (PHA12).
    site = [str(1000 + i) if c else None for i, c in enumerate(chain)]
    names = [f"{CHAINS[int(rng.integers(len(CHAINS)))]} #{s}" if s else f"{cities[p]} {_independent(rng)}"
             for s, p in zip(site, place)]
    zips = county["zips"].to_pylist()
    versions = [v for v, _ in ASAP_VERSIONS]
    terms = [t for t, _ in TERMINATORS]
    return pa.Table.from_pydict({
        "pharmacy_key": np.arange(n, dtype=np.int32),
        "npi": [npi_with_check_digit(b) for b in _unique_numbers(rng, n, 9, "1")],
        "ncpdp": [f"{NCPDP_STATE_ORDER.index(config.state) + 1:02d}{v:05d}" for v in rng.choice(100_000, n, replace=False)],
        "dea": [dea_with_check_digit("F" + name[0] if name[0].isalpha() else "F9", f"{rng.integers(10**6):06d}")
                for name in names],
        "name": names, "address": _addresses(rng, n), "city": cities[place], "state": [config.state] * n,
        "zip": [zips[p][int(rng.integers(len(zips[p])))] for p in place], "county_fips": fips[place],
        "lat": lat, "lon": lon, "chain_site_id": site,
        "asap_version": np.asarray(versions, dtype=object)[rng.choice(len(versions), n, p=[w for _, w in ASAP_VERSIONS])],
        "terminator": np.asarray(terms, dtype=object)[rng.choice(len(terms), n, p=[w for _, w in TERMINATORS])],
        "software": np.asarray(SOFTWARE, dtype=object)[rng.integers(0, len(SOFTWARE), n)],
    }, schema=PHARMACIES)


def _independent(rng: np.random.Generator) -> str:
    return ["PHARMACY", "DRUG", "APOTHECARY", "FAMILY PHARMACY", "DISCOUNT DRUGS"][int(rng.integers(5))]
