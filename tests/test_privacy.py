"""Privacy by construction: keyed hashes agree wherever they are computed, identified values stay
in the restricted tables, and logs hold no row-level values.

Reference values come from Python's :mod:`hmac` (RFC 2104), independent of both implementations.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from datetime import date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rxradar.analytics import store
from rxradar.analytics.analyze import analyze
from rxradar.catalog import open_engine
from rxradar.ingest.asap_writer import AsapDispensation, AsapFile, AsapPatient, AsapPharmacy, write_asap
from rxradar.ingest.pipeline import ingest_files
from rxradar import privacy
from rxradar.privacy import HASH_HEX_CHARS, Pseudonymiser, keyed_hashes
from rxradar.settings import Settings
from rxradar.workspace import Workspace

OXYCODONE_10MG = "00603499321"  # OXYCODONE HCL 10 mg tablet, CDC 2017 file
PHARMACY_NPI, PRESCRIBER_NPI, PRESCRIBER_DEA = "1234567893", "9876543213", "BJ6543210"

# One patient whose every identified value is distinctive enough to search for as bytes.
LAST, FIRST, MIDDLE = "ZQUIBBLESON", "ÉLODIE", "QUENTINA"
BIRTH = "19710203"
LICENCE = "D7654321"
STREET, PHONE = "2907 XYLOPHONE LANE", "3045550188"
RX_NUMBERS = ("RXPRIV0001", "RXPRIV0002", "RXPRIVBAD3")


def reference_hmac(key: bytes, value: str) -> str:
    return hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()[:32]


def fill(rx: str, days: str = "30") -> AsapDispensation:
    return AsapDispensation(
        dsp={"DSP01": "00", "DSP02": rx, "DSP03": "20240102", "DSP04": "0", "DSP05": "20240104", "DSP06": "0",
             "DSP07": "01", "DSP08": OXYCODONE_10MG, "DSP09": "60", "DSP10": days, "DSP11": "01", "DSP16": "01"},
        pre={"PRE01": PRESCRIBER_NPI, "PRE02": PRESCRIBER_DEA})


def pat(last: str, first: str, id_qualifier: str, patient_id: str, **extra: str) -> dict[str, str]:
    return {"PAT01": "WV", "PAT02": id_qualifier, "PAT03": patient_id, "PAT07": last, "PAT08": first,
            "PAT15": "WV", "PAT16": "25301", "PAT18": "19800101", "PAT19": "M", "PAT20": "01", **extra}


def write_file(path: Path, patients: list[AsapPatient]) -> Path:
    f = AsapFile("4.2", "PRIV1", datetime(2024, 2, 1, 10), "5555550100", "SENDER",
                 [AsapPharmacy({"PHA01": PHARMACY_NPI, "PHA04": "PRIVACY PHARMACY", "PHA08": "WV"}, patients)])
    with open(path, "w", encoding="utf-8") as out:
        write_asap(out, f)
    return path


def identified_patient_file(path: Path) -> Path:
    """Two kept fills and one rejected (days supply 0) for one fully identified patient."""
    p = pat(LAST, FIRST, "06", LICENCE, PAT09=MIDDLE, PAT12=STREET, PAT14="CHARLESTON", PAT17=PHONE,
            PAT18=BIRTH, PAT19="F")
    return write_file(path, [AsapPatient(p, [fill(RX_NUMBERS[0]), fill(RX_NUMBERS[1]),
                                             fill(RX_NUMBERS[2], days="0")])])


def ingest(root: Path, kind: str, *paths: Path) -> None:
    with Workspace(root) as ws:
        outcomes = ingest_files(ws, kind, list(paths), Settings(workspace=root))
    assert [o.status for o in outcomes] == ["ingested"] * len(paths), [o.message for o in outcomes]


def query(root: Path, sql: str) -> list[dict]:
    with Workspace(root) as ws, open_engine(ws, Settings(workspace=root)) as engine:
        return engine.query(sql).to_pylist()


# --- keyed hashes -------------------------------------------------------------------------------


def test_pseudonymiser_is_hmac_sha256_truncated_to_128_bits_with_the_workspace_key(tmp_path):
    with Workspace(tmp_path) as ws:
        key = ws.key
    p = Pseudonymiser(key)
    assert HASH_HEX_CHARS == 32
    for value in ("123456789", "DOE|JOHN|A|1970-01-01|M|25301", "Zoë"):
        assert p.hash(value) == reference_hmac(key, value)
    assert p.hash("123456789") != Pseudonymiser(b"another-key-of-32-bytes-at-least").hash("123456789")
    assert p.hash_many(["a", None, "a", ""]) == [reference_hmac(key, "a"), None, reference_hmac(key, "a"), None]


def test_pseudonymiser_refuses_short_keys():
    with pytest.raises(ValueError, match="32 bytes"):
        Pseudonymiser(b"k" * 31)


VALUES = ["123456789", "DOE|JOHN", "José", "NÚÑEZ|ÉLODIE", "Zoë Ångström", "日本", "x" * 500, None]


@pytest.mark.parametrize("key", [bytes(range(32)), b"\xff" * 64, b"long key " * 12], ids=["32", "64", "108"])
def test_native_hmac_equals_pseudonymiser_for_ascii_non_ascii_and_null(key):
    # 64 bytes is SHA-256's block size; longer keys are hashed first (RFC 2104), shorter padded.
    hashed = keyed_hashes(key, pa.array(VALUES, pa.string())).to_pylist()
    assert hashed == Pseudonymiser(key).hash_many(VALUES)
    assert hashed == [None if v is None else reference_hmac(key, v) for v in VALUES]


def test_empty_string_has_no_hash_in_the_pseudonymiser_or_the_native_hmac():
    # An empty value must never become a shared pseudonym that links strangers.
    key = bytes(range(32))
    hashes = keyed_hashes(key, pa.array(["", "x"], pa.string())).to_pylist()
    assert Pseudonymiser(key).hash("") is None
    assert hashes == [None, reference_hmac(key, "x")]


@given(st.lists(st.one_of(st.none(), st.text(max_size=200)), max_size=40), st.binary(min_size=32, max_size=100),
       st.integers(0, 5), st.sampled_from([1, 16, 32, 64]), st.booleans())
@settings(max_examples=150, deadline=None)
def test_native_hmac_is_hmac_sha256_on_any_text_key_and_slice(values, key, skip, hex_chars, portable):
    # Every message length crosses SHA-256's padding boundaries (55, 56, 64 bytes) somewhere here;
    # both the CPU's SHA extensions (where present) and the portable rounds are checked.
    array = pa.array(values, pa.string()).slice(min(skip, len(values)))
    expected = [None if not v else hmac.new(key, v.encode(), hashlib.sha256).hexdigest()[:hex_chars]
                for v in values[min(skip, len(values)):]]
    assert keyed_hashes(key, array, hex_chars, portable=portable).to_pylist() == expected


def test_long_columns_are_hashed_in_slices_with_the_same_digests(monkeypatch):
    # Digest offsets are int32: past HASH_SLICE values a column is hashed slice by slice.
    key = bytes(range(32))
    values = pa.array([None if i % 5 == 0 else f"value {i}" for i in range(23)])
    whole = keyed_hashes(key, values).to_pylist()
    monkeypatch.setattr(privacy, "HASH_SLICE", 4)
    assert keyed_hashes(key, values).to_pylist() == whole
    assert whole == [None if v is None else reference_hmac(key, v) for v in values.to_pylist()]


def test_asap_ssn_and_death_record_ssn_hash_alike_so_they_link(tmp_path):
    root = tmp_path / "ws"
    asap = write_file(tmp_path / "ssn.asap", [AsapPatient(pat("ROE", "RICHARD", "07", "123-45-6789"), [fill("RX1")])])
    deaths = tmp_path / "deaths.csv"
    deaths.write_text(
        "death_id,last_name,first_name,middle_name,sex,birth_date,death_date,residence_zip,residence_county_fips,"
        "residence_state,ssn,underlying_cause,multiple_causes,manner\n"
        "D1,ROE,RICHARD,,M,1980-01-01,2024-03-01,25301,54039,WV,123456789,X42,T40.2,A\n")
    ingest(root, "asap", asap)
    ingest(root, "deaths", deaths)
    with Workspace(root) as ws:
        expected = Pseudonymiser(ws.key).hash("123456789")
    assert query(root, "SELECT id_hash FROM identities") == [{"id_hash": expected}]
    assert query(root, "SELECT ssn_hash FROM deaths") == [{"ssn_hash": expected}]


@pytest.mark.parametrize("placeholder", ["999-99-9999", "000000000", "UNKNOWN"])
def test_placeholder_ssns_in_asap_are_not_hashed_into_a_shared_id(tmp_path, placeholder):
    # Death records drop SSNs SSA never issues (rxradar.ingest.deaths.hash_ssn): hashed, they would
    # deterministically link unrelated people. Two strangers reported with the same placeholder
    # must not share an id_hash.
    root = tmp_path / "ws"
    ingest(root, "asap", write_file(tmp_path / "placeholder.asap", [
        AsapPatient(pat("ROE", "RICHARD", "07", placeholder), [fill("RX1")]),
        AsapPatient(pat("POE", "EDGAR", "07", placeholder, PAT18="19500119"), [fill("RX2")]),
    ]))
    rows = query(root, "SELECT last_name, id_hash FROM identities ORDER BY last_name")
    assert rows == [{"last_name": "POE", "id_hash": None}, {"last_name": "ROE", "id_hash": None}]


# --- identified values stay in restricted tables -------------------------------------------------


def test_no_identified_value_reaches_the_dispensation_files(tmp_path):
    root = tmp_path / "ws"
    ingest(root, "asap", identified_patient_file(tmp_path / "identified.asap"))
    identified = {"last name": LAST.encode(), "first name": FIRST.encode(), "middle name": MIDDLE.encode(),
                  "birth date": BIRTH.encode(), "birth date (ISO)": b"1971-02-03", "patient ID": LICENCE.encode(),
                  "street": STREET.encode(), "phone": PHONE.encode()}
    tables = root / "tables"
    # The byte search can see these values through Parquet's encoding: the identities files,
    # written the same way, do show them.
    identities = b"".join(p.read_bytes() for p in (tables / "identities").glob("*.parquet"))
    assert LAST.encode() in identities and FIRST.encode() in identities

    checked = 0
    for path in tables.rglob("*.parquet"):
        if path.parent.name == "identities":
            continue
        raw = path.read_bytes()
        assert [name for name, value in identified.items() if value in raw] == [], path
        cells = [str(v) for column in pq.read_table(path).columns for v in column.to_pylist() if v is not None]
        assert [c for c in cells if LAST in c or FIRST in c or LICENCE in c or STREET in c or c == "1971-02-03"] == []
        checked += path.parent.name == "dispensations"
    assert checked >= 1


def test_identities_keep_the_names_and_dispensations_point_at_them(tmp_path):
    root = tmp_path / "ws"
    ingest(root, "asap", identified_patient_file(tmp_path / "identified.asap"))
    identities = query(root, "SELECT identity_id, last_name, first_name, middle_name, birth_date, address, phone, "
                             "id_qualifier, id_hash FROM identities")
    assert len(identities) == 1
    person = identities[0]
    assert (person["last_name"], person["first_name"], person["middle_name"]) == (LAST, FIRST, MIDDLE)
    assert (person["birth_date"], person["address"], person["phone"]) == (date(1971, 2, 3), STREET, PHONE)
    with Workspace(root) as ws:
        # The raw licence number is never stored; its keyed hash with issuer and qualifier is.
        assert person["id_hash"] == Pseudonymiser(ws.key).hash(f"WV|06|{LICENCE}")
    assert len(person["identity_id"]) == 32 and LAST not in person["identity_id"]
    fills = query(root, "SELECT rx_number, identity_id FROM dispensations ORDER BY rx_number")
    assert fills == [{"rx_number": rx, "identity_id": person["identity_id"]} for rx in RX_NUMBERS[:2]]


def test_rejected_records_never_keep_an_ssn(tmp_path):
    root = tmp_path / "ws"
    ingest(root, "asap", write_file(tmp_path / "ssn.asap", [
        # RXGOOD is kept: a file none of whose records fit fails whole, keeping no raw text.
        AsapPatient(pat("ROE", "RICHARD", "07", "123-45-6789"), [fill("RXBAD", days="0"), fill("RXGOOD")])]))
    with Workspace(root) as ws:
        raws = [r for r in ws.rejects()["raw"].to_pylist() if r]
    assert raws and all("ROE" in r for r in raws)  # the raw text is kept (restricted table) ...
    assert [r for r in raws if "6789" in r or "123-45" in r or "123456789" in r] == []  # ... without the SSN


# --- logs -----------------------------------------------------------------------------------------


def test_logs_during_ingest_and_analysis_hold_no_row_level_values(tmp_path, caplog):
    """Everything logged at the most verbose level (rxradar -vv: files, and each engine step with
    its time) while identified records are ingested and analysed."""
    root = tmp_path / "ws"
    deaths = tmp_path / "deaths.csv"
    deaths.write_text(
        "death_id,last_name,first_name,middle_name,sex,birth_date,death_date,residence_zip,residence_county_fips,"
        "residence_state,ssn,underlying_cause,multiple_causes,manner\n"
        f"D1,{LAST},{FIRST},,F,1971-02-03,2024-03-01,25301,54039,WV,123456789,X42,T40.2,A\n"
        "D2,BROKEN,ROW,,F,1971-02-31,2024-03-01,25301,54039,WV,,X42,T40.2,A\n", encoding="utf-8")
    prescribers = tmp_path / "prescribers.csv"
    prescribers.write_text("npi,dea,last_name,first_name,specialty,taxonomy_code,state,zip,county_fips\n"
                           f"{PRESCRIBER_NPI},{PRESCRIBER_DEA},CASEY,MORGAN,,207Q00000X,WV,25301,54039\n"
                           "1234567890,,BADNPI,ROW,,207Q00000X,WV,25301,54039\n")
    with caplog.at_level(logging.DEBUG, logger="rxradar"):  # as `rxradar -vv` sets it
        ingest(root, "asap", identified_patient_file(tmp_path / "identified.asap"))
        ingest(root, "deaths", deaths)
        ingest(root, "prescribers", prescribers)
        with Workspace(root) as ws:
            analyze(ws, Settings(workspace=root))
    messages = [r.getMessage() for r in caplog.records]
    # Logging did happen: files by name, engine steps by SQL file or table, each with its time.
    assert any("identified.asap" in m for m in messages)
    assert {"asap_patients", "persons", "table rx_bucket"} <= {m.rsplit(": ", 1)[0] for m in messages
                                                               if m.endswith(" s")}
    text = caplog.text
    row_values = [LAST, FIRST, MIDDLE, BIRTH, "1971-02-03", LICENCE, STREET, PHONE, *RX_NUMBERS, PHARMACY_NPI,
                  PRESCRIBER_NPI, PRESCRIBER_DEA, "123456789", "1234567890", "CASEY", "BROKEN"]
    assert [v for v in row_values if v in text] == []
    _dashboard_shows_no_patient_value(root)


def _dashboard_shows_no_patient_value(root: Path) -> None:
    """Every page and API answer of the dashboard over that analysis: prescribers and pharmacies
    by their ids, never a patient's name, birth date, address, licence, Rx number or person id."""
    from fastapi.testclient import TestClient

    from rxradar.serve.app import create_app

    from rxradar.serve.auth import set_user

    with Workspace(root) as ws:
        set_user(ws, "ivy", "investigator", "investigator-pass-1", actor="test")
    client = TestClient(create_app(root))
    client.auth = ("ivy", "investigator-pass-1")
    urls = ["/", "/prescribers", "/pharmacies", "/counties", "/api/summary", "/api/counties", "/api/deciles",
            "/api/prescribers", "/api/pharmacies", f"/prescribers/{PRESCRIBER_NPI}", f"/pharmacies/{PHARMACY_NPI}",
            f"/api/prescribers/{PRESCRIBER_NPI}", f"/api/pharmacies/{PHARMACY_NPI}"]
    pages = {url: client.get(url) for url in urls}
    assert {url: r.status_code for url, r in pages.items()} == dict.fromkeys(urls, 200)
    person_ids = [r["person_id"] for r in pq.read_table(store.saved_tables(root)["persons"]).to_pylist()]
    patient_values = [LAST, FIRST, MIDDLE, BIRTH, "1971-02-03", LICENCE, STREET, PHONE, *RX_NUMBERS, *person_ids]
    assert [(url, v) for url, r in pages.items() for v in patient_values if v in r.text] == []


@pytest.mark.parametrize("text, masked", [
    ("PAT|US|07|123456789||DOE", "PAT|US|07|*********||DOE"),
    ("D1,DOE,123-45-6789,X40", "D1,DOE,***-**-****,X40"),
    ("x 123 45 6789 y", "x *** ** **** y"),
    ("NPI 1234567890 and NDC 00406012301", "NPI 1234567890 and NDC 00406012301"),  # 10 and 11 digits
    ("ZIP 12345678 and 123-456789", "ZIP 12345678 and ***-******"),  # 8 digits; 3-6
    ("219.09.9999 219/09/9999 219 09-9999", "***.**.**** ***/**/**** *** **-****"),  # as people type them
    ("219\u201309\u20139999", "***\u2013**\u2013****"),  # en dashes
    ("\uff12\uff11\uff19\uff10\uff19\uff19\uff19\uff19\uff19", "*********"),  # full-width digits
    ("ZIP+4 25301-1234, phone 217-555-0199", "ZIP+4 25301-1234, phone 217-555-0199"),  # not an SSN's shape
    ("DSP*00*RX1*20240102*0*20240104", "DSP*00*RX1*20240102*0*20240104"),  # dates side by side
    (None, None),
])
def test_ssn_shaped_values_are_starred_wherever_they_appear(text, masked):
    from rxradar.privacy import mask_ssn_shaped

    assert mask_ssn_shaped(text) == masked


def test_an_ije_record_shifted_off_its_columns_keeps_no_ssn_in_its_raw_text(tmp_path):
    """The SSN columns are starred by position; shifted, the SSN runs into the age digits beside it."""
    from rxradar.ingest.ije import ije_record
    from rxradar.ingest.pipeline import ingest_files
    from rxradar.settings import load
    from rxradar.workspace import Workspace

    row = {"death_id": "2024WV000123", "death_date": date(2024, 3, 4), "state_of_death": "WV", "state": "WV",
           "first_name": "ZEPHYRINE", "last_name": "QUILLFEATHER", "sex": "F", "ssn": "219099999",
           "birth_date": date(1961, 3, 14), "county_fips": "54039", "underlying_cause": "X42"}
    good = [ije_record({**row, "death_id": f"2024WV{i:06d}"}) for i in (1, 2, 3)]
    shifted = "0000000001" + ije_record(row)[:-10]  # a record-number prefix moves every field 10 columns
    path = tmp_path / "deaths.ije"
    path.write_text("\n".join(good + [shifted]) + "\n", encoding="latin-1")
    with Workspace(tmp_path / "ws") as ws:
        ingest_files(ws, "deaths", [path], load(workspace=tmp_path / "ws", threads=1))
        raws = [r for (r,) in ws.meta.execute("SELECT raw FROM rejects WHERE raw IS NOT NULL")]
    assert raws and any("QUILLFEATHER" in r for r in raws)
    assert not any("219099999" in r for r in raws)


def test_a_patient_id_qualifier_written_without_its_zero_still_stars_the_ssn():
    from rxradar.ingest.asap import _masked

    assert _masked("PAT*IL*7*219099999****DOE*JANE", "*") == "PAT*IL*7*" + "*" * 9 + "****DOE*JANE"
