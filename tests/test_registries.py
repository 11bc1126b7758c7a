"""Registry readers (NPPES, prescriber CSV, pharmacy CSV) and the taxonomy → specialty table.

Expected values are worked out by hand from the rows written in each test. Valid NPIs and DEAs come
from the check-digit rules implemented here independently of rxradar.codes (CMS NPI Luhn with the
80840 prefix; DEA (d1+d3+d5) + 2(d2+d4+d6)).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rxradar.codes import dea_is_valid, ncpdp_format_ok, npi_is_valid
from rxradar.ingest import csv_records, registries
from rxradar.ingest.registries import read_pharmacies, read_prescribers
from rxradar.reference import data_path
from rxradar.reference.taxonomy import canonical_specialty, specialty_for, taxonomy_specialties
from rxradar.schema import PHARMACIES, PRESCRIBERS

FIXTURES = Path(__file__).parent / "fixtures"
NPPES_HEADER_LINE = (FIXTURES / "nppes_header.csv").read_text(encoding="utf-8").rstrip("\n")
NPPES_HEADER = next(csv.reader([NPPES_HEADER_LINE]))


def npi(first9: str) -> str:
    """Append the NPI check digit: Luhn over 80840 + the nine digits, doubling from the right."""
    total = 0
    for i, ch in enumerate(reversed("80840" + first9)):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return first9 + str((10 - total % 10) % 10)


def dea(prefix: str, six: str) -> str:
    d = [int(c) for c in six]
    return prefix + six + str((d[0] + d[2] + d[4] + 2 * (d[1] + d[3] + d[5])) % 10)


def test_check_digit_helpers_match_published_examples():
    assert [npi("123456789"), npi("987654321"), npi("155859879")] == ["1234567893", "9876543213", "1558598797"]
    assert [dea("AP", "583672"), dea("BJ", "654321"), dea("F9", "123456")] == ["AP5836727", "BJ6543210", "F91234563"]


# --- taxonomy ------------------------------------------------------------------------------

GROUPS = {
    "207Q00000X": "Family Medicine",
    "207QA0505X": "Family Medicine",
    "207R00000X": "Internal Medicine",
    "363L00000X": "Nurse Practitioner",
    "363LF0000X": "Nurse Practitioner",
    "363LP0808X": "Nurse Practitioner",
    "363A00000X": "Physician Assistant",
    "363AS0400X": "Physician Assistant",
    "122300000X": "Dentist",
    "1223G0001X": "Dentist",
    "1223E0200X": "Dentist",
    "1223X2210X": "Dentist",
    "1223S0112X": "Oral and Maxillofacial Surgery",
    "204E00000X": "Oral and Maxillofacial Surgery",
    "207P00000X": "Emergency Medicine",
    "208VP0014X": "Pain Medicine",
    "208VP0000X": "Pain Medicine",
    "207LP2900X": "Pain Medicine",
    "2081P2900X": "Pain Medicine",
    "2084P2900X": "Pain Medicine",
    "207L00000X": "Anesthesiology",
    "207X00000X": "Orthopaedic Surgery",
    "207XS0106X": "Orthopaedic Surgery",
    "207XX0005X": "Orthopaedic Surgery",
    "208600000X": "General Surgery",
    "207RH0003X": "Hematology/Oncology",
    "207RX0202X": "Hematology/Oncology",
    "207RH0000X": "Hematology/Oncology",
    "2080P0207X": "Hematology/Oncology",
    "207QH0002X": "Hospice and Palliative Medicine",
    "207RH0002X": "Hospice and Palliative Medicine",
    "207LH0002X": "Hospice and Palliative Medicine",
    "2080H0002X": "Hospice and Palliative Medicine",
    "208100000X": "Physical Medicine and Rehabilitation",
    "2084P0800X": "Psychiatry",
    "2084P0804X": "Psychiatry",
    "2084N0400X": "Neurology",
    "207V00000X": "Obstetrics and Gynecology",
    "208000000X": "Pediatrics",
    "213E00000X": "Podiatry",
    "208D00000X": "General Practice",
    "174M00000X": "Veterinary",
    "207QA0401X": "Addiction Medicine",
    "2084P0802X": "Addiction Medicine",
    "207RC0000X": "Cardiology",
    "183500000X": "Pharmacist",
}


@pytest.mark.parametrize(("code", "specialty"), sorted(GROUPS.items()))
def test_peer_group_of_opioid_relevant_taxonomies(code, specialty):
    assert specialty_for(code) == specialty


def test_every_dentist_taxonomy_is_dentist_except_oral_surgery():
    t = taxonomy_specialties().to_pylist()
    dentists = {r["taxonomy_code"]: r["specialty"] for r in t if r["nucc_classification"] == "Dentist"}
    assert len(dentists) == 14
    assert {c for c, s in dentists.items() if s != "Dentist"} == {"1223S0112X"}


def test_taxonomy_table_covers_nucc_251_with_one_label_each():
    t = taxonomy_specialties()
    codes = t["taxonomy_code"].to_pylist()
    assert t.num_rows == 883 and len(set(codes)) == 883
    assert all(len(c) == 10 and c.endswith("X") for c in codes)
    assert t["specialty"].null_count == 0
    assert set(t["specialty_basis"].to_pylist()) == {"override", "medicare", "nucc"}
    assert taxonomy_specialties() is taxonomy_specialties()  # cached


def test_shipped_table_is_built_from_the_shipped_rules():
    """Catches an edit to the hand-written rules without a rebuild (scripts/build_taxonomy.py)."""
    with open(data_path("taxonomy", "specialty_overrides.csv"), encoding="utf-8") as f:
        overrides = {r["taxonomy_code_prefix"]: r["specialty"] for r in csv.DictReader(f)}
    with open(data_path("taxonomy", "specialty_labels.csv"), encoding="utf-8") as f:
        renamed = {r["source_label"] for r in csv.DictReader(f)}
    for row in taxonomy_specialties().to_pylist():
        prefixes = [p for p in overrides if row["taxonomy_code"].startswith(p)]
        if prefixes:
            assert (row["specialty"], row["specialty_basis"]) == (overrides[max(prefixes, key=len)], "override"), row
        else:
            assert row["specialty_basis"] == ("medicare" if row["medicare_specialty_code"] else "nucc"), row
            assert row["specialty"] not in renamed, row


def test_specialty_lookup_ignores_case_and_padding_and_unknown_is_none():
    assert specialty_for(" 207q00000x ") == "Family Medicine"
    assert specialty_for("999Z00000X") is None
    assert specialty_for("") is None


def test_canonical_specialty_maps_registry_spellings_into_the_vocabulary():
    assert canonical_specialty("FAMILY  PRACTICE") == "Family Medicine"
    assert canonical_specialty("pain medicine") == "Pain Medicine"
    assert canonical_specialty("Orthopedic Surgery") == "Orthopaedic Surgery"
    assert canonical_specialty(" Something Local ") == "Something Local"


# --- NPPES ---------------------------------------------------------------------------------

ORG_NPI = npi("123456780")  # organisations usually start with 2, but any valid NPI will do
DEACTIVATED_NPI = npi("111111111")
FOREIGN_NPI = npi("122222222")


def nppes_line(values: dict[str, str], header: list[str] = NPPES_HEADER) -> str:
    assert set(values) <= set(header), set(values) - set(header)
    return ",".join('"' + values.get(h, "").replace('"', '""') + '"' for h in header)


def taxonomy(slot: int, code: str, switch: str) -> dict[str, str]:
    return {f"Healthcare Provider Taxonomy Code_{slot}": code, f"Healthcare Provider Primary Taxonomy Switch_{slot}": switch}


def person(npi_: str, last: str, first: str, **extra: str) -> dict[str, str]:
    return {
        "NPI": npi_, "Entity Type Code": "1", "Provider Last Name (Legal Name)": last, "Provider First Name": first,
        "Provider Business Practice Location Address State Name": "IL",
        "Provider Business Practice Location Address Country Code (If outside U.S.)": "US", **extra,
    }


NPPES_ROWS = [
    person(
        "1234567893", "SMITH", "JANE", **{
            "Provider Middle Name": "Q", "Provider Credential Text": "M.D.",
            "Provider First Line Business Practice Location Address": "100 MAIN ST",
            "Provider Business Practice Location Address City Name": "SPRINGFIELD",
            "Provider Business Practice Location Address Postal Code": "627011234",
        },
        **taxonomy(1, "207R00000X", "N"), **taxonomy(2, "207Q00000X", "Y"),
    ),
    person("9876543213", "JONES", "BOB", **{"Provider Business Practice Location Address Postal Code": "02134"},
           **taxonomy(1, "1223G0001X", "Y")),
    # no slot says Y: the first filled slot (slot 2) is primary
    person("1558598797", "LEE", "KIM", **taxonomy(2, "363L00000X", "X"), **taxonomy(3, "363LF0000X", "N")),
    {"NPI": ORG_NPI, "Entity Type Code": "2", "Provider Organization Name (Legal Business Name)": "SPRINGFIELD CLINIC LLC",
     **taxonomy(1, "261QP2300X", "Y")},
    person("1234567890", "BAD", "NPI", **taxonomy(1, "207Q00000X", "Y")),
    {"NPI": DEACTIVATED_NPI, "NPI Deactivation Date": "05/01/2020"},
    person(FOREIGN_NPI, "TREMBLAY", "LUC", **{
        "Provider Business Practice Location Address State Name": "ON",
        "Provider Business Practice Location Address Postal Code": "M5V 2T6",
        "Provider Business Practice Location Address Country Code (If outside U.S.)": "CA",
    }, **taxonomy(1, "999Z00000X", "Y")),
]


def write_nppes(tmp_path: Path, rows: list[dict[str, str]], header_line: str = NPPES_HEADER_LINE) -> tuple[Path, list[str]]:
    header = next(csv.reader([header_line]))
    lines = [header_line] + [nppes_line(r, header) for r in rows]
    path = tmp_path / "npidata_pfile_20050523-20250608.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path, lines


@pytest.mark.parametrize("variant", ["2025", "pre2025_gender"])
def test_nppes_individuals_with_primary_taxonomy(tmp_path, variant):
    header_line = NPPES_HEADER_LINE
    if variant == "pre2025_gender":
        header_line = header_line.replace('"Provider Sex Code"', '"Provider Gender Code"')
        rows = [{("Provider Gender Code" if k == "Provider Sex Code" else k): v for k, v in r.items()} for r in NPPES_ROWS]
    else:
        rows = NPPES_ROWS
    path, lines = write_nppes(tmp_path, rows, header_line)
    parsed = read_prescribers(path, path.name)
    out = parsed.tables["prescribers"]
    assert out.schema == PRESCRIBERS.schema
    assert parsed.records_read == 7
    got = out.select(["prescriber_id", "npi", "dea", "last_name", "first_name", "credential", "taxonomy_code",
                      "specialty", "address", "city", "state", "zip", "county_fips", "source"]).to_pylist()
    assert got == [
        {"prescriber_id": "1234567893", "npi": "1234567893", "dea": None, "last_name": "SMITH", "first_name": "JANE",
         "credential": "M.D.", "taxonomy_code": "207Q00000X", "specialty": "Family Medicine", "address": "100 MAIN ST",
         "city": "SPRINGFIELD", "state": "IL", "zip": "62701", "county_fips": None, "source": "nppes"},
        {"prescriber_id": "9876543213", "npi": "9876543213", "dea": None, "last_name": "JONES", "first_name": "BOB",
         "credential": None, "taxonomy_code": "1223G0001X", "specialty": "Dentist", "address": None, "city": None,
         "state": "IL", "zip": "02134", "county_fips": None, "source": "nppes"},
        {"prescriber_id": "1558598797", "npi": "1558598797", "dea": None, "last_name": "LEE", "first_name": "KIM",
         "credential": None, "taxonomy_code": "363L00000X", "specialty": "Nurse Practitioner", "address": None,
         "city": None, "state": "IL", "zip": None, "county_fips": None, "source": "nppes"},
        {"prescriber_id": FOREIGN_NPI, "npi": FOREIGN_NPI, "dea": None, "last_name": "TREMBLAY", "first_name": "LUC",
         "credential": None, "taxonomy_code": "999Z00000X", "specialty": None, "address": None, "city": None,
         "state": "ON", "zip": None, "county_fips": None, "source": "nppes"},
    ]
    assert out["ingest_id"].null_count == out.num_rows
    rejects = parsed.rejects.to_pylist()
    assert [(r["record_number"], r["line"], r["field"], r["severity"]) for r in rejects] == [
        (5, 6, "npi", "rejected"),
        (7, 8, "taxonomy_code", "warning"),
        (None, None, "Entity Type Code", "warning"),
    ]
    assert rejects[0]["raw"] == lines[5] and rejects[0]["source_file"] == path.name
    assert "check digit" in rejects[0]["reason"]
    assert "1 organisation" in rejects[2]["reason"] and "1 deactivated" in rejects[2]["reason"]


def test_nppes_organisations_on_request(tmp_path):
    path, _ = write_nppes(tmp_path, NPPES_ROWS)
    out = read_prescribers(path, path.name, include_organisations=True).tables["prescribers"]
    org = [r for r in out.to_pylist() if r["npi"] == ORG_NPI]
    assert org == [org[0]] and org[0]["last_name"] == "SPRINGFIELD CLINIC LLC" and org[0]["first_name"] is None
    assert org[0]["taxonomy_code"] == "261QP2300X"


def test_nppes_missing_column_names_file_and_column(tmp_path):
    header_line = NPPES_HEADER_LINE.replace('"Healthcare Provider Primary Taxonomy Switch_7"', '"Switch 7"')
    path, _ = write_nppes(tmp_path, NPPES_ROWS[:1], header_line)
    with pytest.raises(ValueError, match=r"npidata_pfile_.*Healthcare Provider Primary Taxonomy Switch_7"):
        read_prescribers(path, path.name)


def test_nppes_short_row_is_rejected(tmp_path):
    path, lines = write_nppes(tmp_path, NPPES_ROWS[:2])
    text = path.read_text().splitlines()
    text[1] = text[1].rsplit(",", 5)[0]
    path.write_text("\n".join(text) + "\n")
    parsed = read_prescribers(path, path.name)
    assert parsed.tables["prescribers"]["npi"].to_pylist() == ["9876543213"]
    assert [(r["record_number"], r["severity"]) for r in parsed.rejects.to_pylist()] == [(1, "rejected")]
    assert "325 fields" in parsed.rejects["reason"][0].as_py()


# --- prescriber CSV ------------------------------------------------------------------------

PRESCRIBER_CSV = (
    "npi,dea,last_name,first_name,specialty,taxonomy_code,state,zip,county_fips,address\n"
    "1234567893,AP5836727,Smith,Jane,,207Q00000X,ma,02134-1234,25025,1 Main St\n"  # 1, line 2
    '1234567890,BJ6543210,Jones,Bob,,1223G0001X,MA,02134,25025,"2 Elm St\nSuite 5"\n'  # 2, lines 3-4
    ",ZZ1234567,Nobody,Nemo,Family Medicine,,MA,02134,25025,\n"  # 3, line 5
    "\n"  # blank line 6: not a record
    "9876543213,,Pe\u00f1a,Ana,family practice,,CT,6103,9003,\n"  # 4, line 7
    ",F91234563,Doolittle,John,Veterinary,,TX,75001,48113,\n"  # 5, line 8
    "1234567893,AP5836727,Smith-Jones,Jane,,207Q00000X,MA,02134,25025,1 Main St\n"  # 6, line 9
    "1558598797,AP5836728,Lee,Kim,,ABC,XX1,99999,123456,\n"  # 7, line 10
)

EXPECTED_PRESCRIBERS = [
    ("BJ6543210", None, "BJ6543210", "Jones", "Dentist", "MA", "02134", "25025", "2 Elm St Suite 5"),
    ("9876543213", "9876543213", None, "Pe\u00f1a", "Family Medicine", "CT", "06103", "09003", None),
    ("F91234563", None, "F91234563", "Doolittle", "Veterinary", "TX", "75001", "48113", None),
    ("1234567893", "1234567893", "AP5836727", "Smith-Jones", "Family Medicine", "MA", "02134", "25025", "1 Main St"),
    ("1558598797", "1558598797", None, "Lee", None, None, "99999", None, None),
]
EXPECTED_PRESCRIBER_REJECTS = [
    (2, 3, "npi", "warning"),
    (3, 5, "npi", "rejected"),
    (4, 7, "zip", "warning"),
    (6, 9, "prescriber_id", "warning"),
    (7, 10, "dea", "warning"),
    (7, 10, "taxonomy_code", "warning"),
    (7, 10, "state", "warning"),
    (7, 10, "county_fips", "warning"),
]


def check_prescriber_csv(parsed):
    out = parsed.tables["prescribers"]
    assert out.schema == PRESCRIBERS.schema
    cols = ["prescriber_id", "npi", "dea", "last_name", "specialty", "state", "zip", "county_fips", "address"]
    assert [tuple(r.values()) for r in out.select(cols).to_pylist()] == EXPECTED_PRESCRIBERS
    assert set(out["source"].to_pylist()) == {"csv"}
    assert parsed.records_read == 7
    rejects = parsed.rejects.to_pylist()
    assert [(r["record_number"], r["line"], r["field"], r["severity"]) for r in rejects] == EXPECTED_PRESCRIBER_REJECTS
    assert rejects[1]["raw"] == ",ZZ1234567,Nobody,Nemo,Family Medicine,,MA,02134,25025,"
    assert rejects[0]["raw"] == '1234567890,BJ6543210,Jones,Bob,,1223G0001X,MA,02134,25025,"2 Elm St\nSuite 5"'
    assert "kept under the DEA" in rejects[0]["reason"]
    assert "record(s) 1" in rejects[3]["reason"]


def test_prescriber_csv(tmp_path):
    path = tmp_path / "prescribers.csv"
    path.write_text(PRESCRIBER_CSV, encoding="utf-8")
    check_prescriber_csv(read_prescribers(path, "prescribers.csv"))


def test_prescriber_csv_with_bom_crlf_and_cp1252(tmp_path):
    path = tmp_path / "prescribers.csv"
    path.write_bytes(b"\xef\xbb\xbf" + PRESCRIBER_CSV.replace("\n", "\r\n").encode("cp1252"))
    parsed = read_prescribers(path, "prescribers.csv")
    assert parsed.tables["prescribers"]["last_name"][1].as_py() == "Pe\u00f1a"
    rejects = parsed.rejects.to_pylist()
    not_utf8 = [(r["record_number"], r["line"], r["field"], r["severity"], r["reason"]) for r in rejects
                if r["reason"].startswith("record is not UTF-8")]
    assert not_utf8 == [(4, 7, None, "warning", "record is not UTF-8; read as cp1252")]
    assert [(r["record_number"], r["line"]) for r in rejects if r["reason"] != not_utf8[0][-1]] == [
        (r[0], r[1]) for r in EXPECTED_PRESCRIBER_REJECTS
    ]


def test_prescriber_csv_across_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(csv_records, "CHUNK_ROWS", 2)
    path = tmp_path / "prescribers.csv"
    path.write_text(PRESCRIBER_CSV, encoding="utf-8")
    check_prescriber_csv(read_prescribers(path, "prescribers.csv"))


def test_prescriber_csv_missing_columns_names_file_and_columns(tmp_path):
    path = tmp_path / "state_prescribers.csv"
    path.write_text("npi,dea,last_name,first_name,state,zip\n1234567893,,A,B,MA,02134\n")
    with pytest.raises(ValueError, match=r"state_prescribers\.csv.*specialty, taxonomy_code, county_fips"):
        read_prescribers(path, "state_prescribers.csv")


def test_empty_file_is_an_error(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match="empty.csv"):
        read_prescribers(path, "empty.csv")


# --- pharmacies ----------------------------------------------------------------------------

PHARMACY_CSV = (
    "pharmacy_id,npi,ncpdp,dea,name,address,city,state,zip,county_fips,lat,lon\n"
    "1234567893,1234567893,0512345,FP1234563,Example Pharmacy,100 Main St,Springfield,IL,62701,17167,39.80,-89.65\n"
    "1234567890,1234567890,0598765,,Corner Drug,2 Oak St,Springfield,IL,62702,17167,39.78,-89.64\n"
    ",,12345,BJ6543210,Rural Rx,3 Farm Rd,Chatham,IL,62629,17167,abc,-89.6\n"
    ",,,,Ghost Pharmacy,4 Nowhere,Springfield,IL,62701,17167,,\n"
    ",1558598797,,,North Pole Rx,5 Ice Rd,Springfield,IL,62701,17167,95,-89\n"
    ",9876543213,,,Null Island Rx,6 Sea Ln,Springfield,il,627011234,17167,0,0\n"
    "1234567893,1234567893,0512345,FP1234563,Example Pharmacy #2,100 Main St,Springfield,IL,62701,17167,39.80,-89.65\n"
)


def test_pharmacy_csv(tmp_path):
    path = tmp_path / "pharmacies.csv"
    path.write_text(PHARMACY_CSV, encoding="utf-8")
    parsed = read_pharmacies(path, "pharmacies.csv")
    out = parsed.tables["pharmacies"]
    assert out.schema == PHARMACIES.schema
    cols = ["pharmacy_id", "npi", "ncpdp", "dea", "name", "state", "zip", "county_fips", "lat", "lon", "source"]
    assert [tuple(r.values()) for r in out.select(cols).to_pylist()] == [
        ("0598765", None, "0598765", None, "Corner Drug", "IL", "62702", "17167", 39.78, -89.64, "csv"),
        ("BJ6543210", None, None, "BJ6543210", "Rural Rx", "IL", "62629", "17167", None, None, "csv"),
        ("1558598797", "1558598797", None, None, "North Pole Rx", "IL", "62701", "17167", None, None, "csv"),
        ("9876543213", "9876543213", None, None, "Null Island Rx", "IL", "62701", "17167", None, None, "csv"),
        ("1234567893", "1234567893", "0512345", "FP1234563", "Example Pharmacy #2", "IL", "62701", "17167",
         39.80, -89.65, "csv"),
    ]
    assert parsed.records_read == 7
    rejects = parsed.rejects.to_pylist()
    assert [(r["record_number"], r["line"], r["field"], r["severity"]) for r in rejects] == [
        (2, 3, "npi", "warning"),
        (2, 3, "pharmacy_id", "warning"),
        (3, 4, "ncpdp", "warning"),
        (3, 4, "lat", "warning"),
        (4, 5, "npi", "rejected"),
        (5, 6, "lat", "warning"),
        (6, 7, "lat", "warning"),
        (7, 8, "pharmacy_id", "warning"),
    ]
    assert ["not numeric" in rejects[3]["reason"], "out of range" in rejects[5]["reason"], "0,0" in rejects[6]["reason"]] == [True] * 3
    assert rejects[4]["raw"] == ",,,,Ghost Pharmacy,4 Nowhere,Springfield,IL,62701,17167,,"


def test_pharmacy_csv_missing_columns(tmp_path):
    path = tmp_path / "pharm.csv"
    path.write_text("npi,ncpdp,dea,name,address,city,state,zip,county_fips\n")
    with pytest.raises(ValueError, match=r"pharm\.csv.*lat, lon"):
        read_pharmacies(path, "pharm.csv")


# --- properties ----------------------------------------------------------------------------

names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=12)
prescriber_rows = st.lists(
    st.tuples(st.from_regex(r"[1-2][0-9]{8}", fullmatch=True), names, names), min_size=1, max_size=15,
    unique_by=lambda r: r[0],
)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=prescriber_rows)
def test_prescriber_csv_round_trip(tmp_path, rows):
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(registries.PRESCRIBER_CSV_REQUIRED)
    for first9, last, first in rows:
        w.writerow([npi(first9), "", last, first, "", "363L00000X", "WV", "25301", "54039"])
    path = tmp_path / "rt.csv"
    path.write_text(buf.getvalue(), encoding="utf-8")
    parsed = read_prescribers(path, "rt.csv")
    out = parsed.tables["prescribers"].to_pylist()
    assert [(r["prescriber_id"], r["last_name"], r["first_name"]) for r in out] == [
        (npi(f9), " ".join(last.split()) or None, " ".join(first.split()) or None) for f9, last, first in rows
    ]
    assert {r["specialty"] for r in out} == {"Nurse Practitioner"}
    assert parsed.rejects.num_rows == 0


@settings(max_examples=100, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.lists(st.binary(max_size=80), max_size=12), reader=st.sampled_from(["prescribers", "pharmacies"]))
def test_garbage_never_crashes_and_only_valid_ids_are_kept(tmp_path, body, reader):
    header = ",".join(registries.PRESCRIBER_CSV_REQUIRED if reader == "prescribers" else registries.PHARMACY_CSV_REQUIRED)
    path = tmp_path / "garbage.csv"
    path.write_bytes(header.encode() + b"\n" + b"\n".join(body))
    parsed = (read_prescribers if reader == "prescribers" else read_pharmacies)(path, "garbage.csv")
    table = parsed.tables[reader]
    ids = table["prescriber_id" if reader == "prescribers" else "pharmacy_id"].to_pylist()
    assert len(ids) == len(set(ids))
    assert all(npi_is_valid(i) or dea_is_valid(i) or (reader == "pharmacies" and ncpdp_format_ok(i)) for i in ids)
    rejected = {r["record_number"] for r in parsed.rejects.to_pylist() if r["severity"] == "rejected"}
    assert len(rejected) + table.num_rows <= parsed.records_read
    assert all(r["reason"] and 1 < (r["line"] or 2) for r in parsed.rejects.to_pylist())


def test_unreadable_record_is_rejected_and_reading_goes_on(tmp_path):
    path = tmp_path / "cr.csv"
    header = ",".join(registries.PRESCRIBER_CSV_REQUIRED)
    path.write_bytes(
        f"{header}\n1234567893,,Sm\rith,Jane,,207Q00000X,MA,02134,25025\n9876543213,,Lee,Kim,,,MA,02134,25025\n".encode()
    )
    parsed = read_prescribers(path, "cr.csv")
    assert parsed.tables["prescribers"]["prescriber_id"].to_pylist() == ["9876543213"]
    assert [(r["record_number"], r["line"], r["severity"]) for r in parsed.rejects.to_pylist()] == [(1, 2, "rejected")]
    assert parsed.rejects["reason"][0].as_py().startswith("unreadable CSV record")
