"""The synthetic-state catalogue: real codes, plausible numbers, clean names."""

from __future__ import annotations

import re

import numpy as np
import pytest

from rxradar.icd10 import HOMICIDE, SUICIDE, UNDETERMINED, UNINTENTIONAL, classify_death
from rxradar.reference.ndc import ndc_products
from rxradar.reference.taxonomy import specialty_for
from rxradar.synth import catalog

SPECIALTIES = {
    "Family Medicine", "Internal Medicine", "Nurse Practitioner", "Physician Assistant", "Dentist",
    "Oral and Maxillofacial Surgery", "Orthopaedic Surgery", "General Surgery", "Emergency Medicine",
    "Pain Medicine", "Hematology/Oncology", "Hospice and Palliative Medicine",
    "Physical Medicine and Rehabilitation", "Obstetrics and Gynecology", "Psychiatry", "Addiction Medicine",
}  # fmt: skip
INTENT_OF_MANNER = {"A": UNINTENTIONAL, "S": SUICIDE, "H": HOMICIDE, "C": UNDETERMINED}
NAME = re.compile(r"[A-Z]+")


@pytest.fixture(scope="module")
def reference() -> dict[str, dict]:
    return {row["ndc11"]: row for row in ndc_products().to_pylist()}


# Names ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("sex", ["M", "F"])
def test_first_names_are_upper_case_unique_and_weighted(sex):
    names, weights = catalog.first_names(sex)
    assert len(names) >= 140 and len(names) == len(set(names)) == len(weights)
    assert all(NAME.fullmatch(n) for n in names)
    assert (weights > 0).all()
    top = names[int(np.argmax(weights))]
    assert top == {"M": "MICHAEL", "F": "MARY"}[sex]


def test_first_names_reject_unknown_sex():
    with pytest.raises(ValueError, match="sex"):
        catalog.first_names("X")


def test_last_names_are_unique_and_appalachian_in_west_virginia():
    names, wv = catalog.last_names("WV")
    national_names, us = catalog.last_names("OH")
    assert names == national_names and len(names) >= 300 and len(set(names)) == len(names)
    assert all(NAME.fullmatch(n) for n in names) and (wv > 0).all()
    for name in ["ADKINS", "MULLINS", "COLLINS", "MAYNARD", "HATFIELD", "MCCOY", "BALL", "SIZEMORE"]:
        assert name in names
    wv_share, us_share = wv / wv.sum(), us / us.sum()
    at = names.index
    assert names[int(np.argmax(wv))] == "SMITH"
    assert wv_share[at("ADKINS")] > 5 * us_share[at("ADKINS")]  # a top-20 name in West Virginia
    assert wv_share[at("GARCIA")] < us_share[at("GARCIA")] / 5  # WV is ~2% Hispanic


def test_nicknames_cover_listed_first_names():
    names = set(catalog.first_names("M")[0]) | set(catalog.first_names("F")[0])
    table = catalog.nicknames()
    assert len(table) >= 80
    assert table["WILLIAM"][:2] == ["BILL", "BILLY"] and "BETH" in table["ELIZABETH"]
    for formal, short in table.items():
        assert formal in names, formal
        assert short and all(NAME.fullmatch(s) and s != formal for s in short)


# People ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("state", ["WV", "US"])
def test_age_sex_bands_tile_zero_to_one_hundred(state):
    t = catalog.age_sex_distribution(state)
    for sex in "MF":
        rows = [r for r in t.to_pylist() if r["sex"] == sex]
        assert rows[0]["age_from"] == 0 and rows[-1]["age_to"] == catalog.MAX_AGE
        assert all(a["age_to"] + 1 == b["age_from"] for a, b in zip(rows, rows[1:]))
    assert sum(t["share"].to_pylist()) == pytest.approx(1, abs=0.01)


def test_west_virginia_is_older_than_the_us_and_other_states_get_the_us():
    def share_65_plus(t):
        return sum(r["share"] for r in t.to_pylist() if r["age_from"] >= 65) / sum(t["share"].to_pylist())

    assert share_65_plus(catalog.age_sex_distribution("WV")) > share_65_plus(catalog.age_sex_distribution("US")) + 0.02
    assert catalog.age_sex_distribution("ZZ").equals(catalog.age_sex_distribution("US"))


@pytest.mark.parametrize("sex", ["M", "F"])
def test_mortality_has_life_table_shape(sex):
    q = catalog.annual_mortality(sex)
    assert q.shape == (catalog.MAX_AGE + 1,) and ((q > 0) & (q < 1)).all()
    assert (np.diff(q[30:]) > 0).all()
    assert q[0] > q[1] > q[10]  # infant mortality, then the childhood low
    assert 0.0012 < q[40] < 0.004 and 0.03 < q[80] < 0.08
    with pytest.raises(ValueError):
        q[0] = 0.5  # shared cached array


def test_men_die_younger():
    men, women = catalog.annual_mortality("M"), catalog.annual_mortality("F")
    assert (men[:96] > women[:96]).all()
    assert men[60] == pytest.approx(0.0113, rel=0.1) and women[60] == pytest.approx(0.0072, rel=0.1)


# Prescribers -----------------------------------------------------------------------------------


def test_specialties_use_taxonomy_labels_and_real_codes():
    t = catalog.specialties()
    assert set(t["specialty"].to_pylist()) == SPECIALTIES and t.num_rows == len(SPECIALTIES)
    for row in t.to_pylist():
        assert specialty_for(row["taxonomy_code"]) == row["specialty"], row
        for column in ("prescriber_share", "opioid_rx_per_year", "daily_mme_acute", "daily_mme_chronic"):
            assert row[column] > 0, (row["specialty"], column)
        assert 0 <= row["chronic_share"] <= 1 and 0 < row["cash_share"] < 1
        assert row["daily_mme_chronic"] >= row["daily_mme_acute"]
    assert sum(t["prescriber_share"].to_pylist()) == pytest.approx(1, abs=0.05)


def test_specialty_volumes_follow_the_known_pattern():
    rows = {r["specialty"]: r for r in catalog.specialties().to_pylist()}
    volume = {s: r["prescriber_share"] * r["opioid_rx_per_year"] for s, r in rows.items()}
    total = sum(volume.values())
    primary_care = sum(volume[s] for s in ("Family Medicine", "Internal Medicine", "Nurse Practitioner",
                                           "Physician Assistant")) / total
    assert 0.55 < primary_care < 0.8  # primary care and NPs/PAs write most opioid prescriptions
    assert max(rows, key=lambda s: rows[s]["opioid_rx_per_year"]) == "Pain Medicine"
    assert max(rows, key=lambda s: rows[s]["daily_mme_chronic"]) == "Hospice and Palliative Medicine"
    for short in ("Dentist", "Emergency Medicine", "Oral and Maxillofacial Surgery"):
        assert rows[short]["typical_days_acute"] <= 3 and rows[short]["chronic_share"] < 0.02
    assert rows["Addiction Medicine"]["prescribes_buprenorphine"]
    assert not rows["Dentist"]["prescribes_buprenorphine"]


def test_specialty_variants_are_real_codes_of_their_specialty():
    t = catalog.specialty_variants()
    assert set(t["specialty"].to_pylist()) == SPECIALTIES
    totals: dict[str, float] = {}
    for row in t.to_pylist():
        assert specialty_for(row["taxonomy_code"]) == row["specialty"], row
        assert row["share"] > 0 and row["credential"]
        totals[row["specialty"]] = totals.get(row["specialty"], 0) + row["share"]
    assert all(v == pytest.approx(1) for v in totals.values()), totals


# Products --------------------------------------------------------------------------------------


@pytest.mark.parametrize("loader,drug_class", [
    (catalog.opioid_products, "opioid"),
    (catalog.treatment_products, "moud"),
    (catalog.benzodiazepine_products, "benzodiazepine"),
])  # fmt: skip
def test_products_are_real_ndcs_as_described(loader, drug_class, reference):
    t = loader()
    assert t["ndc11"].to_pylist() and len(set(t["ndc11"].to_pylist())) == t.num_rows
    for row in t.to_pylist():
        ref = reference.get(row["ndc11"])
        assert ref is not None, row["ndc11"]
        assert ref["drug_class"] == drug_class and row.get("drug_class", drug_class) == drug_class
        for column in ("drug", "strength_per_unit", "strength_unit", "form_group"):
            assert row[column] == ref[column], (row["ndc11"], column, row[column], ref[column])
        if "long_acting" in row:
            assert row["long_acting"] == ref["long_acting"], row["ndc11"]
        assert row["share"] > 0
        for column in ("units_per_day", "units_per_day_acute", "units_per_day_chronic", "typical_days"):
            assert row.get(column, 1) > 0


def test_opioid_mix_matches_dispensing_data():
    t = catalog.opioid_products()
    by_drug: dict[str, float] = {}
    for drug, share in zip(t["drug"].to_pylist(), t["share"].to_pylist()):
        by_drug[drug] = by_drug.get(drug, 0) + share
    total = sum(t["share"].to_pylist())
    mix = {d: s / total for d, s in by_drug.items()}
    assert mix["hydrocodone"] == pytest.approx(0.40, abs=0.04)
    assert mix["oxycodone"] == pytest.approx(0.30, abs=0.04)
    assert mix["tramadol"] == pytest.approx(0.12, abs=0.03)
    assert mix["codeine"] == pytest.approx(0.05, abs=0.02)
    assert mix["morphine"] == pytest.approx(0.04, abs=0.02)
    assert all(mix[d] < 0.04 for d in ("methadone", "fentanyl", "hydromorphone", "tapentadol"))
    # Long-acting products are for opioid-tolerant patients only, never an acute fill.
    for row in t.to_pylist():
        if row["long_acting"]:
            assert row["share_acute"] == 0 and row["share_chronic"] > 0, row["ndc11"]


def test_fentanyl_patch_lasts_three_days():
    t = catalog.opioid_products()
    patches = [r for r in t.to_pylist() if r["form_group"] == "transdermal"]
    assert {r["strength_per_unit"] for r in patches} == {25, 50, 75}
    assert all(r["units_per_day_chronic"] == pytest.approx(1 / 3, abs=1e-3) for r in patches)


# Deaths ----------------------------------------------------------------------------------------


def test_overdose_causes_classify_as_overdoses_of_the_stated_manner():
    t = catalog.overdose_causes()
    for row in t.to_pylist():
        death = classify_death(row["underlying_cause"], row["multiple_causes"].split())
        assert death.is_overdose, row
        assert death.intent == INTENT_OF_MANNER[row["manner"]], row
        assert all(re.fullmatch(r"T[0-9]{3}", c) for c in row["multiple_causes"].split()), row
        has_opioid_code = any(c[:4] in {"T400", "T401", "T402", "T403", "T404", "T406"}
                              for c in row["multiple_causes"].split())
        assert death.is_opioid_overdose == has_opioid_code == row["opioid_involved"], row
        if row["prescription_related"]:
            assert {"natural_semisynthetic", "methadone"} & set(death.opioid_classes), row
        assert row["share"] > 0


def test_overdose_mix_is_mostly_unintentional_fentanyl():
    rows = catalog.overdose_causes().to_pylist()
    total = sum(r["share"] for r in rows)

    def share(predicate) -> float:
        return sum(r["share"] for r in rows if predicate(r)) / total

    assert share(lambda r: r["manner"] == "A") > 0.85
    assert share(lambda r: r["manner"] == "S") == pytest.approx(0.08, abs=0.02)
    assert share(lambda r: r["manner"] == "C") == pytest.approx(0.03, abs=0.01)
    assert 0.7 < share(lambda r: r["opioid_involved"]) < 0.9
    assert share(lambda r: "T404" in r["multiple_causes"]) > 0.5


def test_natural_causes_are_not_overdoses():
    t = catalog.natural_causes()
    assert t.num_rows >= 20 and len(set(t["underlying_cause"].to_pylist())) == t.num_rows
    for row in t.to_pylist():
        assert not classify_death(row["underlying_cause"], row["multiple_causes"].split()).is_overdose, row
        assert row["manner"] in {"N", "A", "S", "H"} and row["share"] > 0
    first_year = dict(zip(t["underlying_cause"].to_pylist(), t["first_year"].to_pylist()))
    assert first_year["U071"] == 2020 and first_year["I251"] is None
    for code in ("I251", "I219", "C349", "J449", "G309", "I64", "E119", "N189", "K746", "X599"):
        assert code in first_year


# Payment ---------------------------------------------------------------------------------------


def test_payment_types_are_asap_codes_with_a_small_cash_share():
    for drug_class in ("opioid", "benzodiazepine", "moud"):
        t = catalog.payment_types(drug_class)
        codes = t["code"].to_pylist()
        assert set(codes) <= {"01", "02", "03", "04", "05", "06", "07", "99"} and len(set(codes)) == len(codes)
        assert all(s > 0 for s in t["share"].to_pylist())
    opioid = dict(zip(*catalog.payment_types().select(["code", "share"]).to_pydict().values()))
    assert 0.02 <= opioid["01"] / sum(opioid.values()) <= 0.08
    moud = dict(zip(*catalog.payment_types("moud").select(["code", "share"]).to_pydict().values()))
    assert moud["02"] == max(moud.values())  # Medicaid pays for most buprenorphine in West Virginia
    with pytest.raises(ValueError, match="drug class"):
        catalog.payment_types("stimulant")
