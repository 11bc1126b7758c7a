"""Death records: overdose classification, the CSV reader, and the IJE reader and writer."""

from __future__ import annotations

import csv
import io
import tempfile
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rxradar.codes import ssn_is_valid
from rxradar.icd10 import DeathClass, classify_death, normalize_icd10, split_icd10_codes
from rxradar.ingest.deaths import read_deaths_csv
from rxradar.ingest.ije import (
    MIN_RECORD_LENGTH,
    RECORD_LENGTH,
    STATE_FIPS,
    ije_record,
    read_deaths_ije,
    write_deaths_ije,
)
from rxradar.ingest.rejects import REJECTED, WARNING
from rxradar.privacy import Pseudonymiser
from rxradar.schema import DEATHS

PSEUDONYMISER = Pseudonymiser(b"rxradar-test-key-" * 2)


# --- classification --------------------------------------------------------------------------


@pytest.mark.parametrize("code,expected", [("T40.2", "T402"), ("x42", "X42"), (" t40.4 ", "T404"), ("X44.0", "X440")])
def test_normalize_icd10(code, expected):
    assert normalize_icd10(code) == expected


def test_split_icd10_codes_on_spaces_semicolons_commas():
    assert split_icd10_codes("T40.2;T40.4, t42.4  X44 ;") == ["T402", "T404", "T424", "X44"]


@pytest.mark.parametrize("underlying,causes,expected", [
    ("X42", ["T40.2", "T40.4"], DeathClass(True, "unintentional", True, ["natural_semisynthetic", "synthetic"])),
    ("X64", ["T42.4"], DeathClass(True, "suicide", False, [])),
    ("X85", ["T40.1"], DeathClass(True, "homicide", True, ["heroin"])),
    ("Y14", ["T406", "T400", "T403"], DeathClass(True, "undetermined", True, ["opium", "methadone", "unspecified"])),
    ("X440", ["T40.5", "T40.7"], DeathClass(True, "unintentional", False, [])),  # cocaine, cannabis
    ("I21.9", ["T40.2"], DeathClass(False, None, False, [])),  # opioid listed, but not an overdose death
    ("X45", ["T40.2"], DeathClass(False, None, False, [])),  # alcohol poisoning is not a drug overdose
    ("T40.2", [], DeathClass(False, None, False, [])),  # a T-code is never an underlying cause
    (None, ["T40.4"], DeathClass(False, None, False, [])),
])  # fmt: skip
def test_classify_death(underlying, causes, expected):
    assert classify_death(underlying, causes) == expected


# --- CSV -------------------------------------------------------------------------------------

HEADER = (
    "death_id,last_name,first_name,middle_name,sex,birth_date,death_date,residence_zip,"
    "residence_county_fips,residence_state,ssn,underlying_cause,multiple_causes,manner"
)
DEATHS_CSV = f"""{HEADER}
D001,Smith,Ann,B,F,1980-05-02,2023-03-04,43215,39049,OH,123-45-6789,X42,T40.2;T40.4,A
D002,Jones,Bob,,M,1975-01-31,2023-02-01,43085,39049,OH,,x64,T42.4 T50.9,S
D003,Lee,Carl,,male,1950-07-04,2023-01-15,45202-1234,39061,OH,234567890,I21.9,"I21.9, T40.2",N
D004,Bad,Date,,F,1990-01-01,2023-02-30,43215,39049,OH,345678901,X42,T40.1,A
D005,Moss,Dee,,female,1970-13-01,2023-04-10,35004,1001,AL,,Y12,T40.4 T40.1,C
"""


def read_csv(directory: Path, text: str, name: str = "deaths.csv"):
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return read_deaths_csv(path, "deaths.csv", PSEUDONYMISER)


def by_id(parsed) -> dict[str, dict]:
    return {r["death_id"]: r for r in parsed.tables["deaths"].to_pylist()}


def test_csv_rows_are_classified_and_normalised(tmp_path):
    parsed = read_csv(tmp_path, DEATHS_CSV)
    assert parsed.records_read == 5
    assert parsed.tables["deaths"].schema == DEATHS.schema
    rows = by_id(parsed)
    assert sorted(rows) == ["D001", "D002", "D003", "D005"]

    oxy_fentanyl = rows["D001"]
    assert oxy_fentanyl["multiple_causes"] == ["T402", "T404"]
    assert oxy_fentanyl["is_overdose"] and oxy_fentanyl["is_opioid_overdose"]
    assert oxy_fentanyl["intent"] == "unintentional"
    assert oxy_fentanyl["opioid_classes"] == ["natural_semisynthetic", "synthetic"]
    assert oxy_fentanyl["age_years"] == 42
    assert oxy_fentanyl["ssn_hash"] == PSEUDONYMISER.hash("123456789")
    assert (oxy_fentanyl["county_fips"], oxy_fentanyl["zip"], oxy_fentanyl["manner"]) == ("39049", "43215", "A")
    assert (oxy_fentanyl["source_format"], oxy_fentanyl["ingest_id"]) == ("csv", None)

    suicide = rows["D002"]
    assert (suicide["underlying_cause"], suicide["multiple_causes"]) == ("X64", ["T424", "T509"])
    assert (suicide["is_overdose"], suicide["intent"], suicide["is_opioid_overdose"]) == (True, "suicide", False)
    assert suicide["opioid_classes"] == [] and suicide["ssn_hash"] is None
    assert suicide["age_years"] == 48  # birthday the day before

    heart_attack = rows["D003"]
    assert (heart_attack["underlying_cause"], heart_attack["multiple_causes"]) == ("I219", ["I219", "T402"])
    assert not heart_attack["is_overdose"] and not heart_attack["is_opioid_overdose"]
    assert heart_attack["intent"] is None
    assert heart_attack["opioid_classes"] == []
    assert (heart_attack["sex"], heart_attack["zip"], heart_attack["age_years"]) == ("M", "45202", 72)

    undetermined = rows["D005"]
    assert (undetermined["intent"], undetermined["is_opioid_overdose"]) == ("undetermined", True)
    assert undetermined["opioid_classes"] == ["heroin", "synthetic"]  # T-code order, not listing order
    assert (undetermined["birth_date"], undetermined["age_years"]) == (None, None)
    assert (undetermined["county_fips"], undetermined["sex"]) == ("01001", "F")


def test_csv_bad_death_date_rejected_and_bad_birth_date_warned(tmp_path):
    rejects = read_csv(tmp_path, DEATHS_CSV).rejects.to_pylist()
    assert [(r["severity"], r["record_number"], r["line"], r["field"]) for r in rejects] == [
        (REJECTED, 4, 5, "death_date"),
        (WARNING, 5, 6, "birth_date"),
    ]
    # the reason names the element and the rule, never the value (dates identify people)
    assert [r["reason"] for r in rejects] == ["death_date is not a valid YYYY-MM-DD date",
                                              "birth_date is not a valid YYYY-MM-DD date; not kept"]
    # the raw line is kept, with the SSN starred out
    assert rejects[0]["raw"] == "D004,Bad,Date,,F,1990-01-01,2023-02-30,43215,39049,OH,*********,X42,T40.1,A"
    assert all(r["source_file"] == "deaths.csv" for r in rejects)


def test_csv_places_follow_the_same_rules_as_the_registries(tmp_path):
    """ZIP, county and state use rxradar.ingest.place_codes: a spreadsheet's lost leading zero is
    restored with a warning, a malformed code is left empty with one, and no reason quotes it."""
    text = f"""{HEADER}
D1,Ames,Al,,M,1980-05-02,2023-03-04,2108,25025,ma,,X42,T40.2,A
D2,Boyd,Bo,,M,1980-05-02,2023-03-04,02108 1234,9001,CT,,X42,T40.2,A
D3,Cole,Cy,,M,1980-05-02,2023-03-04,21081234,25025,MA,,X42,T40.2,A
D4,Dunn,Di,,F,1980-05-02,2023-03-04,4321X,250,Mass.,,X42,T40.2,A
"""
    parsed = read_csv(tmp_path, text)
    rows = by_id(parsed)
    assert [(rows[d]["zip"], rows[d]["county_fips"], rows[d]["state"]) for d in ("D1", "D2", "D3", "D4")] == [
        ("02108", "25025", "MA"), ("02108", "09001", "CT"), ("02108", "25025", "MA"), (None, None, None)]
    warnings = [(r["record_number"], r["field"], r["reason"]) for r in parsed.rejects.to_pylist()]
    assert warnings == [
        (1, "residence_zip", "ZIP had 4 or 8 digits; restored a lost leading zero"),
        (3, "residence_zip", "ZIP had 4 or 8 digits; restored a lost leading zero"),
        (4, "residence_zip", "ZIP is not 5 or 9 digits; left empty"),
        (4, "residence_county_fips", "county_fips is not a 5-digit FIPS code; left empty"),
        (4, "residence_state", "state is not a 2-letter code; left empty"),
    ]
    assert all(r["severity"] == WARNING for r in parsed.rejects.to_pylist())


def test_csv_never_stores_an_ssn(tmp_path):
    parsed = read_csv(tmp_path, DEATHS_CSV)
    everything = str(parsed.tables["deaths"].to_pylist()) + str(parsed.rejects.to_pylist())
    for ssn in ("123-45-6789", "123456789", "234567890", "345678901"):
        assert ssn not in everything


def test_csv_columns_selected_by_name_in_any_order(tmp_path):
    rows = list(csv.reader(io.StringIO(DEATHS_CSV)))
    shuffled = io.StringIO()
    csv.writer(shuffled, lineterminator="\n").writerows([["notes", *reversed(r)] for r in rows])
    assert read_csv(tmp_path, shuffled.getvalue(), "shuffled.csv").tables == read_csv(tmp_path, DEATHS_CSV).tables


def test_csv_missing_required_columns_names_file_and_columns(tmp_path):
    text = DEATHS_CSV.replace("death_date", "dod").replace("underlying_cause", "ucod")
    with pytest.raises(ValueError, match=r"deaths\.csv.*death_date, underlying_cause"):
        read_csv(tmp_path, text)


def test_csv_optional_columns_may_be_absent(tmp_path):
    text = (
        "death_id,last_name,first_name,sex,birth_date,death_date,residence_zip,residence_county_fips,"
        "residence_state,underlying_cause,multiple_causes\n"
        "D1,Smith,Ann,F,1980-05-02,2023-03-04,43215,39049,OH,X42,T40.2\n"
    )
    row = by_id(read_csv(tmp_path, text))["D1"]
    assert (row["ssn_hash"], row["middle_name"], row["manner"], row["is_opioid_overdose"]) == (None, None, None, True)


def test_csv_line_numbers_follow_quoted_line_breaks(tmp_path):
    text = f"""{HEADER}
D1,"Smith
Jones",Ann,,F,1980-05-02,2023-03-04,43215,39049,OH,,X42,T40.2,A
,Lost,Id,,F,1980-05-02,2023-03-04,43215,39049,OH,,X42,T40.2,A

D3,Short,Row
"""
    parsed = read_csv(tmp_path, text)
    assert [(r["record_number"], r["line"], r["field"]) for r in parsed.rejects.to_pylist()] == [
        (2, 4, "death_id"),
        (3, 6, None),
    ]
    assert by_id(parsed)["D1"]["last_name"] == "Smith\nJones"
    assert parsed.records_read == 3


def test_csv_placeholder_ssn_and_duplicate_id(tmp_path):
    text = f"""{HEADER}
D1,Smith,Ann,,F,1980-05-02,2023-03-04,43215,39049,OH,999-99-9999,X42,T40.2,A
D1,Smith,Ann,,F,1980-05-02,2023-03-04,43215,39049,OH,,X42,T40.2,A
"""
    parsed = read_csv(tmp_path, text)
    assert by_id(parsed)["D1"]["ssn_hash"] is None
    assert [(r["severity"], r["record_number"], r["field"]) for r in parsed.rejects.to_pylist()] == [
        (WARNING, 1, "ssn"),
        (REJECTED, 2, "death_id"),
    ]
    assert "999" not in parsed.rejects["reason"][0].as_py()


cell = st.one_of(st.text(max_size=12), st.sampled_from(["", "2023-01-01", "X42", "T40.2;T40.4", "123456789", "F"]))


@settings(max_examples=60)
@given(st.lists(st.lists(cell, min_size=0, max_size=16), max_size=8))
def test_csv_garbage_never_crashes_and_every_record_is_kept_or_rejected(table):
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows([HEADER.split(","), *table])
    with tempfile.TemporaryDirectory() as d:
        parsed = read_csv(Path(d), text.getvalue())
    rejected = {r["record_number"] for r in parsed.rejects.to_pylist() if r["severity"] == REJECTED}
    assert parsed.tables["deaths"].num_rows + len(rejected) == parsed.records_read
    assert all(r["reason"] for r in parsed.rejects.to_pylist())


# --- IJE -------------------------------------------------------------------------------------

IJE_ROWS = [
    {
        "death_id": "2023OH000123", "state_of_death": "OH", "death_date": date(2023, 3, 4),
        "first_name": "Ann", "middle_name": "Beth", "last_name": "Smith", "sex": "F",
        "birth_date": date(1980, 5, 2), "ssn": "123-45-6789",
        "zip": "43215", "county_fips": "39049", "state": "OH",
        "underlying_cause": "X42", "multiple_causes": ["T40.2", "T40.4"], "manner": "A",
    },
    {
        "death_id": "2023OH000124", "state_of_death": "OH", "death_date": date(2023, 12, 31),
        "first_name": "José", "middle_name": None, "last_name": "Peña", "sex": "M",
        "birth_date": None, "age_years": 61, "ssn": None,
        "zip": "02108", "county_fips": "25025", "state": "MA",  # died in Ohio, lived in Boston
        "underlying_cause": "I21.9", "multiple_causes": ["I219", "T402"], "manner": "N",
    },
]  # fmt: skip


def expected_canonical(row: dict) -> dict:
    """What the reader should give back for a row handed to the writer."""
    out = {k: v for k, v in row.items() if k not in ("ssn", "state_of_death")}
    out["middle_name"] = (row.get("middle_name") or "")[:1] or None
    digits = "".join(c for c in row.get("ssn") or "" if c.isdigit())
    out["ssn_hash"] = PSEUDONYMISER.hash(digits) if digits else None
    out["underlying_cause"] = normalize_icd10(row["underlying_cause"]) if row.get("underlying_cause") else None
    out["multiple_causes"] = [normalize_icd10(c) for c in row.get("multiple_causes") or []]
    if row.get("birth_date"):
        b, d = row["birth_date"], row["death_date"]
        out["age_years"] = d.year - b.year - ((d.month, d.day) < (b.month, b.day))
    return out


def write_and_read_ije(directory: Path, rows: list[dict]):
    path = directory / "deaths.ije"
    write_deaths_ije(rows, path)
    return read_deaths_ije(path, "deaths.ije", PSEUDONYMISER)


def test_ije_round_trip(tmp_path):
    parsed = write_and_read_ije(tmp_path, IJE_ROWS)
    assert parsed.rejects.num_rows == 0 and parsed.records_read == 2
    rows = by_id(parsed)
    for written in IJE_ROWS:
        got = rows[written["death_id"]]
        for column, value in expected_canonical(written).items():
            assert got[column] == value, column
    assert rows["2023OH000123"]["opioid_classes"] == ["natural_semisynthetic", "synthetic"]
    assert rows["2023OH000123"]["age_years"] == 42
    assert rows["2023OH000124"]["is_overdose"] is False
    assert all(r["source_format"] == "ije" for r in rows.values())


def test_ije_columns_are_where_the_layout_says(tmp_path):
    record = ije_record(IJE_ROWS[0])
    assert len(record) == RECORD_LENGTH
    # 0-based slices of the 1-based NCHS columns (formats.md §2.2)
    assert record[0:12] == "2023OH000123"  # DOD_YR 1-4, DSTATE 5-6, FILENO 7-12
    assert record[26:29] == "Ann" and record[76] == "B" and record[77:82] == "Smith"
    assert record[188] == "F" and record[190:199] == "123456789"
    assert record[199:203] == "1042"  # AGETYPE 1 (years), AGE 042
    assert record[204:212] == "19800502"
    assert record[221:226] == "049OH"  # COUNTYC, STATEC
    assert record[236:240] == "0304"
    assert record[700] == "A"
    assert record[709:714] == "X42  "  # ACME_UC, columns 710-714
    assert record[875:885] == "T402 T404 "  # RAC slots: 4-character code + flag
    assert record[1587:1596] == "43215    "


def test_ije_unknown_birth_date_gives_null(tmp_path):
    record = ije_record(IJE_ROWS[0])
    unknown = record[:204] + "99999999" + record[212:]  # DOB_YR 9999, DOB_MO 99, DOB_DY 99
    month_unknown = ije_record(IJE_ROWS[0] | {"death_id": "2023OH000777"})
    month_unknown = month_unknown[:208] + "99" + month_unknown[210:]
    path = tmp_path / "dob.ije"
    path.write_text(f"{unknown}\n{month_unknown}\n", encoding="latin-1")
    parsed = read_deaths_ije(path, "dob.ije", PSEUDONYMISER)
    assert parsed.rejects.num_rows == 0
    assert [(r["birth_date"], r["age_years"]) for r in parsed.tables["deaths"].to_pylist()] == [(None, 42), (None, 42)]


def test_ije_truncated_record_is_rejected_others_kept(tmp_path):
    records = [ije_record(r) for r in IJE_ROWS]
    path = tmp_path / "short.ije"
    path.write_text(f"{records[0]}\n{records[1][:1000]}\n", encoding="latin-1")
    parsed = read_deaths_ije(path, "short.ije", PSEUDONYMISER)
    assert parsed.tables["deaths"]["death_id"].to_pylist() == ["2023OH000123"]
    [reject] = parsed.rejects.to_pylist()
    assert (reject["severity"], reject["record_number"], reject["line"]) == (REJECTED, 2, 2)
    assert "1000 bytes" in reject["reason"] and str(MIN_RECORD_LENGTH) in reject["reason"]


def test_ije_trailing_blanks_trimmed_and_unterminated_records(tmp_path):
    records = [ije_record(r) for r in IJE_ROWS]
    path = tmp_path / "packed.ije"
    path.write_text(records[0] + records[1], encoding="latin-1")  # fixed length, no line breaks
    assert write_and_read_ije(tmp_path, IJE_ROWS).tables == read_deaths_ije(path, "deaths.ije", PSEUDONYMISER).tables
    # Trailing blanks may be trimmed as long as every field read is still there.
    path.write_text(records[0][:MIN_RECORD_LENGTH] + "\n" + records[1][: MIN_RECORD_LENGTH - 1], encoding="latin-1")
    parsed = read_deaths_ije(path, "x", PSEUDONYMISER)
    assert parsed.tables["deaths"]["death_id"].to_pylist() == ["2023OH000123"]
    assert parsed.rejects["record_number"].to_pylist() == [2]


def test_ije_bad_death_date_rejected_with_ssn_masked(tmp_path):
    record = ije_record(IJE_ROWS[0])
    path = tmp_path / "bad.ije"
    path.write_text(record[:236] + "0230" + record[240:] + "\n", encoding="latin-1")
    [reject] = read_deaths_ije(path, "bad.ije", PSEUDONYMISER).rejects.to_pylist()
    assert (reject["field"], reject["severity"]) == ("DOD_YR/DOD_MO/DOD_DY", REJECTED)  # IJE names the source fields
    assert "123456789" not in reject["raw"] and reject["raw"][190:199] == "*********"


def test_csv_and_ije_give_the_same_rows(tmp_path):
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(HEADER.split(","))
    for r in IJE_ROWS:
        w.writerow([
            r["death_id"], r["last_name"], r["first_name"], (r["middle_name"] or "")[:1], r["sex"],
            r["birth_date"] or "", r["death_date"], r["zip"], r["county_fips"], r["state"], r["ssn"] or "",
            r["underlying_cause"], " ".join(r["multiple_causes"]), r["manner"],
        ])  # fmt: skip
    from_csv = read_csv(tmp_path, out.getvalue()).tables["deaths"].drop_columns(["source_format", "age_years"])
    from_ije = write_and_read_ije(tmp_path, IJE_ROWS).tables["deaths"].drop_columns(["source_format", "age_years"])
    assert from_csv == from_ije


def test_ije_writer_refuses_what_the_layout_cannot_hold():
    with pytest.raises(ValueError, match="county_fips"):
        ije_record(IJE_ROWS[0] | {"county_fips": "25025"})  # a Massachusetts county for an Ohio resident
    with pytest.raises(ValueError, match="death_id"):
        ije_record(IJE_ROWS[0] | {"death_id": "2022OH000123"})
    with pytest.raises(ValueError, match="LNAME"):
        ije_record(IJE_ROWS[0] | {"last_name": "X" * 51})
    with pytest.raises(ValueError, match="RAC"):
        ije_record(IJE_ROWS[0] | {"multiple_causes": ["T402"] * 21})


name = st.from_regex(r"[A-Za-zñéü]([A-Za-zñéü' -]{0,48}[A-Za-zñéü])?", fullmatch=True)
icd = st.from_regex(r"[A-Z][0-9]{2}[0-9]?", fullmatch=True)
ssn = st.from_regex(r"[0-9]{9}", fullmatch=True).filter(ssn_is_valid)


@st.composite
def ije_rows(draw, n_max: int = 5) -> list[dict]:
    rows = []
    for i in range(draw(st.integers(1, n_max))):
        death = draw(st.dates(date(1999, 1, 1), date(2030, 12, 31)))
        birth = draw(st.one_of(st.none(), st.dates(date(1890, 1, 1), death)))
        state = draw(st.sampled_from(sorted(STATE_FIPS)))
        dstate = draw(st.sampled_from(sorted(STATE_FIPS)))
        county = draw(st.one_of(st.none(), st.from_regex(r"[0-9]{3}", fullmatch=True).filter(lambda c: c != "999")))
        rows.append({
            "death_id": f"{death.year}{dstate}{i:06d}", "state_of_death": dstate, "death_date": death,
            "first_name": draw(st.one_of(st.none(), name)), "middle_name": draw(st.one_of(st.none(), name)),
            "last_name": draw(st.one_of(st.none(), name)), "sex": draw(st.sampled_from("FMU")),
            "birth_date": birth, "age_years": None if birth else draw(st.one_of(st.none(), st.integers(0, 120))),
            "ssn": draw(st.one_of(st.none(), ssn)),
            "zip": draw(st.one_of(st.none(), st.from_regex(r"[0-9]{5}", fullmatch=True))),
            "county_fips": STATE_FIPS[state] + county if county else None, "state": state,
            "underlying_cause": draw(st.one_of(st.none(), icd)),
            "multiple_causes": draw(st.lists(icd, max_size=20)),
            "manner": draw(st.one_of(st.none(), st.sampled_from("NASHPC"))),
        })  # fmt: skip
    return rows


@settings(max_examples=40, deadline=None)
@given(ije_rows())
def test_ije_round_trip_property(rows):
    with tempfile.TemporaryDirectory() as d:
        parsed = write_and_read_ije(Path(d), rows)
    assert parsed.rejects.num_rows == 0
    got = parsed.tables["deaths"].to_pylist()
    for written, read in zip(rows, got, strict=True):
        for column, value in expected_canonical(written).items():
            assert read[column] == value, column
        expected = classify_death(written["underlying_cause"], written["multiple_causes"])
        assert (read["is_overdose"], read["opioid_classes"]) == (expected.is_overdose, expected.opioid_classes)


LATIN_1_PRINTABLE = st.characters(min_codepoint=32, max_codepoint=255)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(LATIN_1_PRINTABLE, max_size=MIN_RECORD_LENGTH + 20), max_size=5))
def test_ije_garbage_never_crashes(lines):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "junk.ije"
        path.write_text("\n".join(lines), encoding="latin-1")
        parsed = read_deaths_ije(path, "junk.ije", PSEUDONYMISER)
    rejected = {r["record_number"] for r in parsed.rejects.to_pylist() if r["severity"] == REJECTED}
    assert parsed.tables["deaths"].num_rows + len(rejected) == parsed.records_read
    # blank means ASCII white space: the columns are bytes, and a no-break space is a byte of a record
    assert parsed.records_read == sum(1 for line in lines if line.encode("latin-1").strip())


def test_ije_rac_fifth_position_is_a_flag(tmp_path):
    record = ije_record(IJE_ROWS[0])
    flagged = record[:875] + "T4021T4042" + record[885:]  # 5th character of each slot: a flag
    path = tmp_path / "flag.ije"
    path.write_text(flagged + "\n", encoding="latin-1")
    [row] = read_deaths_ije(path, "flag.ije", PSEUDONYMISER).tables["deaths"].to_pylist()
    assert row["multiple_causes"] == ["T402", "T404"]
    assert row["opioid_classes"] == ["natural_semisynthetic", "synthetic"]
