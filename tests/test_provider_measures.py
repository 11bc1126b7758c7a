"""Persons (deterministic stage) and the raw prescriber and pharmacy measures, on a hand-checked
state of three identities, two prescribers and two pharmacies."""

from __future__ import annotations

import hashlib
import hmac
from datetime import date

import pyarrow as pa
import pytest
from reference_miles import miles_by_cosines

from rxradar.analytics.patients import Period, build_patient_indicators, resolve_persons
from rxradar.engine import Engine
from rxradar.indicators import indicators
from rxradar.reference.counties import counties
from rxradar.schema import IDENTITIES, PHARMACIES, PRESCRIBERS, ZIP_COUNTIES, conform

KEY = bytes(range(32))
PERIOD = Period(date(2023, 1, 1), date(2023, 12, 31))


def person_id(match_key: str) -> str:
    return hmac.new(KEY, match_key.encode(), hashlib.sha256).hexdigest()[:32]


def table(spec, rows: list[dict]) -> pa.Table:
    return conform(spec, pa.Table.from_pylist(rows))


IDENTITY_ROWS = [
    {"identity_id": "i1", "last_name": "SMITH", "first_name": "JOHN", "birth_date": date(1960, 5, 1), "sex": "M",
     "zip": "25301", "ingest_id": 1},
    # The same man reported later by another pharmacy, in mixed case, after moving to Huntington.
    {"identity_id": "i2", "last_name": "Smith", "first_name": "John ", "birth_date": date(1960, 5, 1), "sex": "M",
     "zip": "25701", "ingest_id": 2},
    {"identity_id": "i3", "last_name": "O'BRIEN", "first_name": "MARY", "birth_date": date(1990, 1, 1), "sex": "F",
     "zip": "25601", "ingest_id": 1},
    # No first name: cannot be matched, stays a person of its own.
    {"identity_id": "i4", "last_name": "DOE", "first_name": None, "birth_date": date(1970, 1, 1), "sex": "F",
     "zip": "25301", "ingest_id": 1},
]
CROSSWALK = [{"zip_county": f"{z}|{c}", "zip": z, "county_fips": c, "res_ratio": 1.0}
             for z, c in (("25301", "54039"), ("25701", "54011"), ("25601", "54045"))]
PRESCRIBER_ROWS = [{"prescriber_id": "P1", "specialty": "Family Medicine", "state": "WV", "zip": "25301", "source": "nppes"},
                   {"prescriber_id": "P2", "specialty": "Dentist", "state": "WV", "zip": "25601", "source": "nppes"}]
PHARMACY_ROWS = [{"pharmacy_id": "H1", "county_fips": "54039", "lat": 38.35, "lon": -81.63, "chain_site_id": None,
                  "source": "csv"},
                 {"pharmacy_id": "H2", "county_fips": "54011", "chain_site_id": "0417", "source": "asap"}]


def fill(i: int, identity: str, prescriber: str, pharmacy: str, day: date, days: int, mme: float, pay: str = "04",
         drug: str = "oxycodone", schedule: str = "2") -> dict:
    return {"dispensation_id": f"D{i}", "identity_id": identity, "prescriber_id": prescriber, "pharmacy_id": pharmacy,
            "fill_date": day, "days_supply": days, "quantity": float(days * 2), "drug": drug, "drug_class": "opioid",
            "long_acting": False, "dea_schedule": schedule, "payment_type": pay, "mme_per_day": mme}


FILLS = [
    fill(1, "i1", "P1", "H1", date(2023, 3, 1), 30, 30.0),
    fill(2, "i2", "P1", "H2", date(2023, 3, 20), 30, 100.0, pay="01"),  # 19 of 30 days passed: early at 75%
    fill(3, "i3", "P1", "H1", date(2023, 4, 1), 10, 20.0),
    fill(4, "i3", "P2", "H1", date(2023, 6, 1), 5, 15.0, drug="hydrocodone"),
]


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    with Engine(memory_limit="1GB", threads=2) as e:
        e.register("identities", table(IDENTITIES, IDENTITY_ROWS))
        e.register("zip_counties", table(ZIP_COUNTIES, CROSSWALK))
        e.register("prescribers", table(PRESCRIBERS, PRESCRIBER_ROWS))
        e.register("pharmacies", table(PHARMACIES, PHARMACY_ROWS))
        e.register("ref_counties", counties("WV").select(["fips", "lat", "lon", "pop2019"]))
        e.register("dispensations", pa.Table.from_pylist(FILLS))
        resolve_persons(e, KEY)
        build_patient_indicators(e, PERIOD, indicators(), early_refill="overlap", lookback_days=425,
                                 stage_dir=tmp_path_factory.mktemp("stage"))
        e.set_variables(high_dose_mme=90.0)
        e.execute("places")
        e.execute("prescriber_measures")
        e.register("flagged_prescribers", pa.table({"prescriber_id": ["P1"]}))
        e.execute("pharmacy_measures")
        yield e


def test_persons_match_on_normalised_name_birth_date_and_sex(engine):
    links = {r["identity_id"]: r for r in engine.query("SELECT * FROM identity_persons").to_pylist()}
    smith = person_id("person|SMITH|JOHN|1960-05-01|M")
    assert links["i1"]["person_id"] == links["i2"]["person_id"] == smith
    assert links["i3"]["person_id"] == person_id("person|OBRIEN|MARY|1990-01-01|F")
    assert (links["i4"]["person_id"], links["i4"]["method"]) == (person_id("identity|i4"), "unmatched")
    persons = {r["person_id"]: r for r in engine.query("SELECT * FROM persons").to_pylist()}
    # The latest report's ZIP places him, through the crosswalk: Huntington, Cabell County.
    assert (persons[smith]["zip"], persons[smith]["county_fips"], persons[smith]["identities"]) == ("25701", "54011", 2)
    assert persons[smith]["birth_year"] == 1960


def test_prescriber_measures_by_hand(engine):
    rows = {r["prescriber_id"]: r for r in engine.query("SELECT * FROM prescriber_measures").to_pylist()}
    p1 = rows["P1"]
    assert (p1["patients"], p1["opioid_rx"], p1["high_dose_rx"], p1["cash_rx"]) == (2, 3, 1, 1)
    assert p1["mme_total"] == 30 * 30 + 100 * 30 + 20 * 10
    assert p1["mme_per_patient"] == pytest.approx(4100 / 2)
    # Smith: 62 at his first fill from P1 (1 March 2023); O'Brien: 33 on 1 April 2023.
    assert p1["mean_patient_age"] == pytest.approx((62 + 33) / 2)
    # P1 practises in Kanawha (ZIP 25301); patients live in Cabell and Logan.
    expected = (miles_by_cosines("54011", "54039") + miles_by_cosines("54045", "54039")) / 2
    assert p1["median_patient_miles"] == pytest.approx(expected, rel=1e-9)
    assert p1["county_fips"] == "54039"
    # Per-patient MME 3900 and 200: sample variance (3900 - 200)^2 / 2.
    assert p1["mme_per_patient_variance"] == pytest.approx((3900 - 200) ** 2 / 2)
    # O'Brien also saw P2, so one of P1's two patients sees another opioid prescriber.
    assert p1["patients_seeing_others"] == 1
    assert rows["P2"]["patients"] == 1 and rows["P2"]["mean_patient_age"] == 33


def test_pharmacy_measures_by_hand(engine):
    rows = {r["pharmacy_id"]: r for r in engine.query("SELECT * FROM pharmacy_measures").to_pylist()}
    h1, h2 = rows["H1"], rows["H2"]
    assert (h1["opioid_rx"], h1["patients"], h1["prescribers"], h1["flagged_prescriber_rx"]) == (3, 2, 2, 2)
    assert h1["opioid_units"] == 60 + 20 + 10
    kanawha = next(r["pop2019"] for r in counties("WV").to_pylist() if r["fips"] == "54039")
    assert h1["county_population"] == kanawha
    # Smith's second oxycodone fill came 19 days into a 30-day supply (< 75%): an early refill, at H2.
    assert (h2["opioid_rx"], h2["early_refill_rx"], h2["cash_rx"], h2["schedule_ii_rx"]) == (1, 1, 1, 1)
    assert h1["early_refill_rx"] == 0
    # Travel: H1 stands at its own coordinates; its patients live in Cabell (Smith, by his latest
    # ZIP) and Logan (O'Brien). H2 has no coordinates, so it sits at Cabell's centroid, where its
    # one patient, Smith, lives.
    expected = (miles_by_cosines("54011", (38.35, -81.63)) + miles_by_cosines("54045", (38.35, -81.63))) / 2
    assert h1["median_patient_miles"] == pytest.approx(expected, rel=1e-9)
    assert h2["median_patient_miles"] == pytest.approx(0.0, abs=1e-9)
    # Chain or not is known only from a chain site ID (ASAP PHA12).
    assert (h1["chain_known"], h2["chain_known"]) == (False, True)
