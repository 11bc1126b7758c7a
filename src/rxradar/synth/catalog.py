"""What a synthetic state is made of: names, ages, mortality, prescribers, products, causes of death.

Every number is data in ``data/*.csv``; ``data/SOURCE.md`` says where each comes from (a public
source, or an assumption and its reasoning). Weights and shares are relative: they need not sum to
1, the generator normalises. Loaders are cached; tables are read-only Arrow tables and arrays are
read-only, so callers cannot change what the next caller sees.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyarrow import csv

from rxradar.icd10 import classify_death

S, B, F64, I32 = pa.string(), pa.bool_(), pa.float64(), pa.int32()

# Share of opioid analgesic fills that go to long-term (chronic) users. Long-term users are a
# minority of patients but fill every month, so they take most fills; see SOURCE.md.
CHRONIC_FILL_FRACTION = 0.6
MAX_AGE = 100  # annual_mortality covers ages 0..MAX_AGE; treat older ages as MAX_AGE
SEXES = ("M", "F")


def _read(name: str, types: dict[str, pa.DataType]) -> pa.Table:
    path = Path(str(files("rxradar.synth").joinpath("data", name)))
    # Empty strings stay empty (a natural death may have no other conditions); empty numbers are null.
    return csv.read_csv(path, convert_options=csv.ConvertOptions(column_types=types))


def _check_sex(sex: str) -> str:
    if sex not in SEXES:
        raise ValueError(f"sex must be one of {SEXES}, not {sex!r}")
    return sex


def _readonly(values) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    array.flags.writeable = False
    return array


@cache
def _first_names(sex: str) -> tuple[tuple[str, ...], np.ndarray]:
    t = _read("first_names.csv", {"name": S, "sex": S, "weight": F64}).filter(pc.field("sex") == sex)
    return tuple(t["name"].to_pylist()), _readonly(t["weight"])


def first_names(sex: str) -> tuple[list[str], np.ndarray]:
    """Common US first names of one sex ('M' or 'F'), upper case, with relative frequencies
    (approximate SSA national counts for people born 1940–2000, in thousands)."""
    names, weights = _first_names(_check_sex(sex))
    return list(names), weights


@cache
def _last_names(state: str) -> tuple[tuple[str, ...], np.ndarray]:
    t = _read("last_names.csv", {"name": S, "census2010_count": F64, "wv_factor": F64})
    weights = t["census2010_count"].to_numpy()
    if state == "WV":  # Central Appalachian names up, Hispanic and Asian names down (SOURCE.md)
        weights = weights * t["wv_factor"].to_numpy()
    return tuple(t["name"].to_pylist()), _readonly(weights)


def last_names(state: str = "WV") -> tuple[list[str], np.ndarray]:
    """Common US surnames, upper case, with relative frequencies: approximate Census 2010 surname
    counts, reweighted for West Virginia when ``state`` is 'WV' (national counts otherwise)."""
    names, weights = _last_names(state.upper())
    return list(names), weights


@cache
def _nicknames() -> tuple[tuple[str, tuple[str, ...]], ...]:
    t = _read("nicknames.csv", {"name": S, "nicknames": S})
    return tuple((n, tuple(k.split())) for n, k in zip(t["name"].to_pylist(), t["nicknames"].to_pylist()))


def nicknames() -> dict[str, list[str]]:
    """Formal first name -> its common nicknames and short forms (``WILLIAM: [BILL, BILLY, ...]``)."""
    return {name: list(short) for name, short in _nicknames()}


@cache
def age_sex_distribution(state: str = "WV") -> pa.Table:
    """Population share by age band and sex: ``(age_from, age_to, sex, share)``, ``age_to``
    inclusive, the last band ending at MAX_AGE. West Virginia, or the US for any other state."""
    t = _read("age_sex.csv", {"state": S, "age_from": I32, "age_to": I32, "sex": S, "share": F64})
    known = set(t["state"].to_pylist())
    chosen = state.upper() if state.upper() in known else "US"
    return t.filter(pc.field("state") == chosen).drop_columns(["state"])


@cache
def annual_mortality(sex: str) -> np.ndarray:
    """Probability of dying within a year at each age 0..MAX_AGE (length MAX_AGE + 1).

    Log-linear interpolation between anchor ages of the US life table, 2019 (Arias E, Xu J.
    United States Life Tables, 2019. National Vital Statistics Reports 70(19), NCHS 2022),
    values rounded; see SOURCE.md. West Virginia's age-adjusted death rate is about 1.3 times the
    US rate; the generator may scale these.
    """
    t = _read("mortality.csv", {"age": I32, "sex": S, "q": F64}).filter(pc.field("sex") == _check_sex(sex))
    t = t.sort_by("age")
    ages = np.arange(MAX_AGE + 1)
    return _readonly(np.exp(np.interp(ages, t["age"].to_numpy(), np.log(t["q"].to_numpy()))))


@cache
def specialties() -> pa.Table:
    """One row per prescriber specialty, labelled as in rxradar's taxonomy mapping.

    Columns: specialty, taxonomy_code (its most common NUCC code), credential (most common),
    prescriber_share (share of a state's opioid prescribers), opioid_rx_per_year (mean opioid
    analgesic prescriptions per prescriber-year), chronic_share (share of the specialty's opioid
    patients on long-term therapy), typical_days_acute, daily_mme_acute, daily_mme_chronic,
    cash_share, buprenorphine_share (share of its prescribers treating opioid use disorder with
    buprenorphine) and prescribes_buprenorphine (buprenorphine_share > 0). All assumptions with
    their basis in SOURCE.md.
    """
    t = _read("specialties.csv", {
        "specialty": S, "taxonomy_code": S, "credential": S, "prescriber_share": F64,
        "opioid_rx_per_year": F64, "chronic_share": F64, "typical_days_acute": I32,
        "daily_mme_acute": F64, "daily_mme_chronic": F64, "cash_share": F64, "buprenorphine_share": F64,
    })  # fmt: skip
    return t.append_column("prescribes_buprenorphine", pc.greater(t["buprenorphine_share"], 0))


@cache
def specialty_variants() -> pa.Table:
    """How prescribers of each specialty appear in NPPES: ``(specialty, taxonomy_code, credential,
    share)``, share within the specialty. Optional variety on top of :func:`specialties`."""
    return _read("specialty_variants.csv", {"specialty": S, "taxonomy_code": S, "credential": S, "share": F64})


_PRODUCT_TYPES = {
    "ndc11": S, "label": S, "drug": S, "drug_class": S, "strength_per_unit": F64, "strength_unit": S,
    "form_group": S, "long_acting": B, "share": F64, "share_acute": F64, "share_chronic": F64,
    "units_per_day": F64, "units_per_day_acute": F64, "units_per_day_chronic": F64, "typical_days": I32,
}  # fmt: skip


def _products(name: str) -> pa.Table:
    header = _read(name, {}).column_names
    return _read(name, {c: _PRODUCT_TYPES[c] for c in header})


@cache
def opioid_products() -> pa.Table:
    """Real opioid analgesic NDCs (all in :func:`rxradar.reference.ndc.ndc_products`) in a
    realistic mix.

    Columns: ndc11, label, drug, strength_per_unit, strength_unit, form_group, long_acting,
    share_acute (mix for acute fills), share_chronic (mix for long-term users' fills),
    share (= (1 - CHRONIC_FILL_FRACTION) * share_acute + CHRONIC_FILL_FRACTION * share_chronic),
    units_per_day_acute, units_per_day_chronic (a fentanyl patch is 1/3 a day: one per 72 hours).
    """
    t = _products("opioid_products.csv")
    share = pc.add(pc.multiply(t["share_acute"], 1 - CHRONIC_FILL_FRACTION),
                   pc.multiply(t["share_chronic"], CHRONIC_FILL_FRACTION))
    return t.add_column(t.column_names.index("share_acute"), "share", share)


@cache
def treatment_products() -> pa.Table:
    """Buprenorphine products for opioid use disorder (drug_class 'moud'): ndc11, label, drug,
    drug_class, strength_per_unit, strength_unit, form_group, share, units_per_day, typical_days."""
    return _products("treatment_products.csv")


@cache
def benzodiazepine_products() -> pa.Table:
    """Benzodiazepine NDCs, same columns as :func:`treatment_products`."""
    return _products("benzodiazepine_products.csv")


@cache
def overdose_causes() -> pa.Table:
    """Drug-overdose death patterns for 2019–2023.

    Columns: underlying_cause (ICD-10, no dot), manner (IJE code: A accident, S suicide,
    H homicide, C could not be determined), multiple_causes (record-axis T-codes separated by
    spaces, the underlying cause not repeated), share, prescription_related (T40.2 or T40.3
    involved: CDC's "commonly prescribed opioids"), opioid_involved (an opioid overdose under
    :func:`rxradar.icd10.classify_death`), description.
    """
    t = _read("overdose_causes.csv", {
        "underlying_cause": S, "manner": S, "multiple_causes": S, "share": F64,
        "prescription_related": B, "description": S,
    })  # fmt: skip
    opioid = [classify_death(u, c.split()).is_opioid_overdose
              for u, c in zip(t["underlying_cause"].to_pylist(), t["multiple_causes"].to_pylist())]
    return t.add_column(t.column_names.index("description"), "opioid_involved", pa.array(opioid, B))


@cache
def natural_causes() -> pa.Table:
    """Common underlying causes of deaths that are not drug overdoses: underlying_cause, manner
    (N natural, A accident, S suicide, H homicide), multiple_causes (may be empty), share,
    first_year (null, or the first year the cause can occur: COVID-19 from 2020), description."""
    return _read("natural_causes.csv", {
        "underlying_cause": S, "manner": S, "multiple_causes": S, "share": F64, "first_year": I32,
        "description": S,
    })  # fmt: skip


@cache
def payment_types(drug_class: str = "opioid") -> pa.Table:
    """ASAP DSP16 payment type mix for West Virginia fills of one drug class ('opioid',
    'benzodiazepine' or 'moud'): ``(code, description, share)``."""
    t = _read("payment_types.csv", {"drug_class": S, "code": S, "description": S, "share": F64})
    classes = sorted(set(t["drug_class"].to_pylist()))
    if drug_class not in classes:
        raise ValueError(f"unknown drug class {drug_class!r}; choose one of {classes}")
    return t.filter(pc.field("drug_class") == drug_class).drop_columns(["drug_class"])
