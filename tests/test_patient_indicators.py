"""Daily MME and patient indicators: hand-checked cases, and the engine against the plain-Python
reference (tests/reference_daily_mme.py) on random prescriptions."""

from __future__ import annotations

import tempfile
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reference_daily_mme import Fill, daily, summary
from rxradar.analytics.patients import Period, build_patient_indicators
from rxradar.engine import Engine
from rxradar.indicators import indicators, parse_overrides

PERIOD = Period(date(2023, 1, 1), date(2023, 12, 31))


def dispensations(fills: list[Fill]) -> pa.Table:
    n = len(fills)
    return pa.table({
        "dispensation_id": [f.fill_id or f"D{i}" for i, f in enumerate(fills)],
        "identity_id": [f"ID-{f.person}" for f in fills],
        "prescriber_id": [f.prescriber for f in fills], "pharmacy_id": [f.pharmacy for f in fills],
        "fill_date": pa.array([f.fill_date for f in fills], pa.date32()),
        "days_supply": pa.array([f.days_supply for f in fills], pa.int32()),
        "quantity": pa.array([30.0] * n), "drug": [f.drug for f in fills], "drug_class": [f.drug_class for f in fills],
        "long_acting": pa.array([f.drug.endswith(" er") for f in fills]),
        "dea_schedule": ["2"] * n, "payment_type": ["01" if f.pharmacy == "CASH" else "04" for f in fills],
        "mme_per_day": pa.array([f.mme_per_day for f in fills], pa.float64()),
    })


def run(fills: list[Fill], period: Period = PERIOD, mode: str = "overlap", params: str = "",
        extra: str | None = None, buckets: int = 1) -> tuple[dict[str, dict], list[dict]]:
    """Patient indicators by person from the engine (and the rows of ``extra``, a query run after)."""
    people = sorted({f.person for f in fills})
    with Engine(memory_limit="1GB", threads=2) as engine:
        engine.register("dispensations", dispensations(fills))
        pids = list(range(1, len(people) + 1))
        engine.register("identity_persons", pa.table({"identity_id": [f"ID-{p}" for p in people], "person_id": people,
                                                      "pid": pa.array(pids, pa.int32())}))
        engine.register("persons", pa.table({"pid": pa.array(pids, pa.int32()), "person_id": people}))
        with tempfile.TemporaryDirectory() as stage:
            build_patient_indicators(engine, period, indicators(parse_overrides(params)), early_refill=mode,
                                     lookback_days=425, stage_dir=Path(stage), buckets=buckets)
            rows = {r["person_id"]: r for r in engine.query("SELECT * FROM patient_indicators").to_pylist()}
            return rows, (engine.query(extra).to_pylist() if extra else [])


def opioid(person: str, day: date, days: int, mme: float | None, drug: str = "oxycodone", **kw) -> Fill:
    return Fill(person, day, days, "opioid", drug, mme, **kw)


def benzo(person: str, day: date, days: int) -> Fill:
    return Fill(person, day, days, "benzodiazepine", "alprazolam", None)


# --- hand-checked ----------------------------------------------------------------------------------


def test_overlapping_prescriptions_add_up_on_the_days_they_share():
    # 30 MME/day for 30 days from 1 March (1-30 March) and 60 MME/day for 11 days from 21 March
    # (21-31 March): 21-30 March carry 90 MME, 31 March 60, 1-20 March 30.
    rows, _ = run([opioid("A", date(2023, 3, 1), 30, 30.0), opioid("A", date(2023, 3, 21), 11, 60.0, drug="morphine")])
    a = rows["A"]
    assert a["opioid_days"] == 31
    assert a["max_daily_mme"] == Decimal("90")
    assert a["days_ge_90mme"] == 10 and a["days_ge_50mme"] == 11
    assert a["opioid_overlap_days"] == 10
    # total = 30 x 30 + 60 x 11 = 1560 MME over 31 days
    assert a["avg_daily_mme"] == pytest.approx(1560 / 31)


def test_shift_starts_an_early_refill_of_the_same_drug_when_the_supply_runs_out():
    fills = [opioid("A", date(2023, 3, 1), 30, 40.0), opioid("A", date(2023, 3, 21), 30, 40.0)]
    overlap, _ = run(fills, mode="overlap")
    shift, _ = run(fills, mode="shift")
    assert overlap["A"]["max_daily_mme"] == 80 and overlap["A"]["opioid_overlap_days"] == 10
    assert overlap["A"]["opioid_days"] == 50
    # Shifted: 1 March - 29 April, 60 days at 40 MME, never two at once.
    assert shift["A"]["max_daily_mme"] == 40 and shift["A"]["opioid_overlap_days"] == 0
    assert shift["A"]["opioid_days"] == 60


def test_supply_from_before_the_period_counts_only_inside_it():
    rows, _ = run([opioid("A", date(2022, 12, 22), 20, 100.0)])
    assert rows["A"]["opioid_days"] == 10  # 1-10 January 2023
    assert rows["A"]["opioid_fills"] == 0  # filled before the period
    assert rows["A"]["days_ge_90mme"] == 10


def test_oig_high_amounts_needs_the_average_over_some_90_days_above_120():
    # 130 MME for 85 days then nothing: the best 90-day window averages 130 x 85 / 90 = 122.8 > 120.
    yes, _ = run([opioid("A", date(2023, 2, 1), 85, 130.0)])
    # 125 MME for 80 days: 111.1 over the best window, never above 120 on average.
    no, _ = run([opioid("B", date(2023, 2, 1), 80, 125.0)])
    assert yes["A"]["oig_high_amounts"] is True
    assert no["B"]["oig_high_amounts"] is False


def test_oig_extreme_use_averages_over_every_day_of_the_year():
    # 300 MME on 300 days = 90,000 MME over 365 days = 246.6 > 240; 280 days would be 230.1.
    yes, _ = run([opioid("A", date(2023, 1, 1), 300, 300.0)])
    no, _ = run([opioid("B", date(2023, 1, 1), 280, 300.0)])
    assert yes["A"]["oig_extreme_use"] is True and no["B"]["oig_extreme_use"] is False


def test_doctor_shopping_and_multiple_provider_episodes():
    # Four prescribers and four pharmacies within 100 days, each 40 days at 130 MME.
    fills = [opioid("A", date(2023, 1, 1) + timedelta(days=25 * i), 40, 130.0, prescriber=f"P{i}", pharmacy=f"H{i}",
                    fill_id=f"F{i}") for i in range(4)]
    rows, _ = run(fills)
    a = rows["A"]
    assert (a["opioid_prescribers"], a["opioid_pharmacies"]) == (4, 4)
    assert a["oig_high_amounts"] and a["oig_doctor_shopping"]
    assert a["omp_pqa"] is True  # 4 and 4 within 180 days
    assert a["mpe_pbss"] is False  # PBSS needs 5 and 5
    # Spread the same four fills over more than 180 days: no PQA episode any more.
    spread = [opioid("B", date(2023, 1, 1) + timedelta(days=70 * i), 40, 130.0, prescriber=f"P{i}", pharmacy=f"H{i}",
                     fill_id=f"G{i}") for i in range(4)]
    rows, _ = run(spread)
    assert rows["B"]["omp_pqa"] is False


def test_pbss_episode_needs_five_and_five_within_182_days():
    # Five prescribers and five pharmacies: fills on days 0-160 fall in one 182-day window; with
    # the last on day 182 the window ending there, days 1-182, leaves the first out.
    def five(person: str, days: list[int]) -> list[Fill]:
        return [opioid(person, date(2023, 1, 1) + timedelta(days=d), 20, 30.0, prescriber=f"P{i}", pharmacy=f"H{i}",
                       fill_id=f"{person}{i}") for i, d in enumerate(days)]
    rows, _ = run(five("A", [0, 40, 80, 120, 160]) + five("B", [0, 45, 90, 135, 182]))
    assert rows["A"]["mpe_pbss"] is True and rows["A"]["omp_pqa"] is True
    assert rows["B"]["mpe_pbss"] is False
    assert rows["B"]["omp_pqa"] is True  # days 45-182: four and four within 180 days
    # Many providers but a low dose: not doctor shopping in HHS-OIG's sense (needs high amounts).
    assert rows["A"]["oig_high_amounts"] is False and rows["A"]["oig_doctor_shopping"] is False


def test_oig_doctor_shopping_needs_four_prescribers_and_four_pharmacies():
    # High amounts (130 MME every day for 160 days) from three prescribers and four pharmacies.
    fills = [opioid("A", date(2023, 1, 1) + timedelta(days=40 * i), 40, 130.0, prescriber=f"P{min(i, 2)}",
                    pharmacy=f"H{i}", fill_id=f"F{i}") for i in range(4)]
    rows, _ = run(fills)
    assert (rows["A"]["opioid_prescribers"], rows["A"]["opioid_pharmacies"]) == (3, 4)
    assert rows["A"]["oig_high_amounts"] is True
    assert rows["A"]["oig_doctor_shopping"] is False


def test_benzodiazepine_overlap_and_opioid_naive_long_acting_start():
    fills = [opioid("A", date(2023, 5, 1), 30, 60.0, drug="oxycodone er"), benzo("A", date(2023, 5, 11), 30),
             opioid("B", date(2023, 5, 1), 30, 20.0), opioid("B", date(2023, 6, 10), 30, 60.0, drug="morphine er")]
    rows, _ = run(fills)
    assert rows["A"]["opioid_benzo_overlap_days"] == 20  # 11-30 May
    assert rows["A"]["opioid_benzo_overlap"] is False  # PQA COB needs 30 days
    assert rows["A"]["naive_long_acting"] is True  # nothing on hand before 1 May
    assert rows["B"]["naive_long_acting"] is False  # oxycodone supply ended 30 May, within 60 days


def test_pqa_high_dosage_needs_two_fills_fifteen_days_and_a_ninety_day_episode():
    two = [opioid("A", date(2023, 1, 1), 60, 100.0, fill_id="a1"), opioid("A", date(2023, 3, 2), 60, 100.0, fill_id="a2")]
    one = [opioid("B", date(2023, 1, 1), 120, 100.0)]
    rows, _ = run(two + one)
    assert rows["A"]["pqa_high_dosage_mme"] is True
    assert rows["B"]["pqa_high_dosage_mme"] is False  # one fill only


def test_cash_share_and_parameter_overrides():
    fills = [opioid("A", date(2023, 1, 1), 10, 50.0, pharmacy="CASH", fill_id="x"),
             opioid("A", date(2023, 2, 1), 10, 50.0, fill_id="y")]
    rows, _ = run(fills, params="days_ge_50mme.threshold=40")
    assert rows["A"]["cash_share"] == 0.5
    assert rows["A"]["days_ge_50mme"] == 20  # every day is >= 40 now
    with pytest.raises(ValueError, match="no parameter"):
        indicators(parse_overrides("days_ge_50mme.window=3"))


# --- against the reference -------------------------------------------------------------------------

SMALL_PERIOD = Period(date(2023, 3, 1), date(2023, 6, 28))  # 120 days
MME_VALUES = [None, 0.1234567, 12.5, 30.0, 44.7, 45.3, 60.0, 90.0, 135.0]

fill_strategy = st.builds(
    Fill,
    person=st.sampled_from(["A", "B", "C"]),
    fill_date=st.dates(date(2022, 12, 1), date(2023, 7, 31)),
    days_supply=st.integers(1, 45),
    drug_class=st.sampled_from(["opioid", "opioid", "benzodiazepine"]),
    drug=st.sampled_from(["oxycodone", "hydrocodone"]),
    mme_per_day=st.sampled_from(MME_VALUES),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(fill_strategy, min_size=1, max_size=14), st.sampled_from(["overlap", "shift"]), st.sampled_from([1, 2, 4]))
def test_engine_daily_mme_equals_the_day_by_day_reference(raw, mode, buckets):
    """Any mode, and any number of buckets of persons (some empty), gives the reference's numbers."""
    fills = [Fill(f.person, f.fill_date, f.days_supply, f.drug_class, f.drug,
                  f.mme_per_day if f.drug_class == "opioid" else None, fill_id=f"F{i:02d}") for i, f in enumerate(raw)]
    rows, windows = run(fills, SMALL_PERIOD, mode, extra="SELECT person_id, value FROM max_window_mme(30, 0) "
                                                         "JOIN persons USING (pid)", buckets=buckets)
    window = {w["person_id"]: w["value"] for w in windows}
    expected = daily(fills, SMALL_PERIOD.start, SMALL_PERIOD.end, mode)
    patients = {p for p, days in expected.items() if any(d.opioids for d in days.values())}
    assert set(rows) == patients
    for person in patients:
        ref = summary(expected[person], SMALL_PERIOD.start, SMALL_PERIOD.end, window=30)
        got = rows[person]
        for name in ("opioid_days", "days_ge_50mme", "days_ge_90mme", "opioid_overlap_days",
                     "opioid_benzo_overlap_days"):
            assert got[name] == ref[name], (person, name)
        assert got["max_daily_mme"] == ref["max_daily_mme"]
        assert got["avg_daily_mme"] == pytest.approx(float(ref["avg_daily_mme"]), rel=1e-12)
        if ref["max_window_average"]:
            assert float(window[person]) == pytest.approx(float(ref["max_window_average"]), rel=1e-12)
        else:
            assert person not in window


def test_indicator_reference_in_docs_is_generated_from_the_declarations():
    from pathlib import Path

    from rxradar.indicators import markdown

    docs = Path(__file__).parent.parent / "docs" / "indicators.md"
    assert docs.read_text() == markdown(), "run: rxradar indicators --markdown > docs/indicators.md"


def test_the_pqa_denominator_is_named_as_one_and_only_the_numerator_claims_a_dose():
    # pqa_high_dosage never checks the dose: profiles showed "High dosage (PQA)" for 1,824 of
    # 1,955 patients. It is the PQA measure's denominator; pqa_high_dosage_mme is its numerator.
    found = {i.id: i for i in indicators()}
    denominator, numerator = found["pqa_high_dosage"], found["pqa_high_dosage_mme"]
    assert "denominator" in denominator.title and "MME" not in denominator.title + denominator.sql
    assert "at least 90" not in denominator.description.split(":")[0]
    assert "MME of at least 90" in numerator.title and numerator.parameters == {"mme": 90}
    assert "avg_daily_mme >= $mme" in numerator.sql and "pqa_high_dosage" in numerator.sql
