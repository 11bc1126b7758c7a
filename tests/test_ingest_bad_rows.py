"""Bad rows and bad files in death records and registries: the bad row is rejected with its line,
every other row is kept, reasons never quote identified values, and a file with nothing to keep
fails with one clear message and a non-zero exit.

Files are written byte by byte in each test, so what the reader sees is exactly what is shown.
"""

from __future__ import annotations

import logging
import sqlite3
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rxradar import cli
from rxradar.ingest.deaths import read_deaths_csv
from rxradar.ingest.ije import FIELDS, ije_record, read_deaths_ije
from rxradar.ingest.pipeline import ingest_files
from rxradar.ingest.registries import PHARMACY_CSV_REQUIRED, read_pharmacies
from rxradar.ingest.rejects import REJECTED, WARNING
from rxradar.privacy import Pseudonymiser
from rxradar.settings import load
from rxradar.workspace import Workspace

PSEUDONYMISER = Pseudonymiser(b"rxradar-test-key-" * 2)

HEADER = (
    "death_id,last_name,first_name,middle_name,sex,birth_date,death_date,residence_zip,"
    "residence_county_fips,residence_state,ssn,underlying_cause,multiple_causes,manner"
)


def death_row(i: int, last: str = "Moss", ssn: str = "", manner: str = "A") -> str:
    return f"D{i:04d},{last},Ann,,F,1980-05-02,2023-03-04,43215,39049,OH,{ssn},X42,T40.2,{manner}"


def read_deaths(tmp_path: Path, data: bytes):
    path = tmp_path / "deaths.csv"
    path.write_bytes(data)
    return read_deaths_csv(path, "deaths.csv", PSEUDONYMISER)


def kept_ids(parsed) -> list[str]:
    return parsed.tables["deaths"]["death_id"].to_pylist()


def rejects(parsed, *columns: str) -> list[tuple]:
    return [tuple(r[c] for c in columns) for r in parsed.rejects.to_pylist()]


# --- item 1: identified values never in reasons -------------------------------------------------


def test_a_comma_in_a_name_rejects_the_row_without_quoting_the_ssn_it_shifted(tmp_path):
    # "Smith, Jr" unquoted: every field after the name moves one column right and the blank
    # manner becomes a trailing empty field, so the SSN lands under underlying_cause.
    text = "\n".join([HEADER, death_row(1), death_row(2, last="Smith, Jr", ssn="123-45-6789", manner=""),
                      death_row(3)]) + "\n"
    parsed = read_deaths(tmp_path, text.encode())
    assert kept_ids(parsed) == ["D0001", "D0003"]
    [reject] = parsed.rejects.to_pylist()
    assert (reject["record_number"], reject["line"], reject["field"], reject["severity"]) == (2, 3, None, REJECTED)
    assert reject["reason"] == "row has 15 fields; the header has 14"
    assert reject["raw"] == "D0002,Smith, Jr,Ann,,F,1980-05-02,2023-03-04,43215,39049,OH,***-**-****,X42,T40.2,"


def test_reasons_name_the_element_and_rule_never_the_value(tmp_path):
    row = "D0001,Moss,Ann,,Xqsex,03/04/1980,2023-03-04,43215,39049,OH,,Xqcause,Xqone T40.2,Xqmanner"
    parsed = read_deaths(tmp_path, f"{HEADER}\n{row}\n".encode())
    assert kept_ids(parsed) == ["D0001"]
    assert rejects(parsed, "field", "reason") == [
        ("birth_date", "birth_date is not a valid YYYY-MM-DD date; not kept"),
        ("underlying_cause", "underlying cause is not an ICD-10 code; dropped"),
        ("multiple_causes", "1 of 2 multiple causes are not ICD-10 codes; dropped"),
        ("sex", "sex is not F, M or U (or FEMALE, MALE, UNKNOWN); recorded as U"),
        ("manner", "manner of death is not a VRDR code (N, A, S, H, P, C) or its name; left empty"),
    ]


def test_ssn_shaped_digits_are_masked_in_raw_text_wherever_they_are(tmp_path):
    # The SSN is in the name column of a short row: masking the ssn column alone would miss it.
    text = f"{HEADER}\nD0001,123456789,Ann,,F,1980-05-02,2023-03-04\n{death_row(2)}\n"
    parsed = read_deaths(tmp_path, text.encode())
    assert rejects(parsed, "line", "raw") == [(2, "D0001,*********,Ann,,F,1980-05-02,2023-03-04")]



def test_the_ssn_columns_value_is_starred_whatever_its_shape(tmp_path):
    # A spreadsheet dropped the SSN's leading zero: eight digits are no SSN shape, yet it is one.
    row = "D0001,Moss,Ann,,F,1980-05-02,not-a-date,43215,39049,OH,12345678,X42,T40.2,A"
    parsed = read_deaths(tmp_path, f"{HEADER}\n{row}\n".encode())
    assert set(rejects(parsed, "line", "raw")) == {(2, row.replace("12345678", "********"))}  # date and SSN

def ije_bytes(**fields: bytes) -> bytes:
    record = bytearray(ije_record({"death_id": "2023OH000123", "death_date": date(2023, 3, 4), "state": "OH",
                                   "first_name": "Ann", "last_name": "Smith", "ssn": "123456789"}).encode("latin-1"))
    for name, value in fields.items():
        f = FIELDS[name]
        record[f.slice] = value.ljust(f.length)
    return bytes(record)


def test_ije_reasons_never_quote_dates_counties_or_states(tmp_path):
    path = tmp_path / "d.ije"
    path.write_bytes(ije_bytes(DOB_YR=b"1980", DOB_MO=b"13", DOB_DY=b"45", COUNTYC=b"Xqz", STATEC=b"ZZ") + b"\n"
                     + ije_bytes(FILENO=b"000124", DOD_MO=b"02", DOD_DY=b"30") + b"\n")
    parsed = read_deaths_ije(path, "d.ije", PSEUDONYMISER)
    reasons = [r["reason"] for r in parsed.rejects.to_pylist()]
    assert reasons == ["not a valid date of birth (nor 9999/99/99 for unknown); not kept",
                       "residence county is not a three-digit code; left empty",
                       "not a valid date of death"]
    assert all("123456789" not in r["raw"] for r in parsed.rejects.to_pylist())


# --- item 6: one bad row never costs the file or its neighbours --------------------------------


def test_an_unclosed_quote_rejects_its_line_and_keeps_every_other_row(tmp_path):
    lines = [HEADER, death_row(1), 'D0002,"Moss,Ann,,F,1980-05-02,2023-03-04,43215,39049,OH,,X42,T40.2,A',
             *(death_row(i) for i in range(3, 30))]
    parsed = read_deaths(tmp_path, ("\n".join(lines) + "\n").encode())
    assert kept_ids(parsed) == ["D0001", *(f"D{i:04d}" for i in range(3, 30))]
    assert rejects(parsed, "record_number", "line", "severity") == [(2, 3, REJECTED)]
    assert parsed.rejects["reason"][0].as_py() == "unreadable CSV record: a quoted field does not close within 10 lines"


def test_a_200_kb_field_rejects_its_row_only(tmp_path):
    big = death_row(2, last="A" * 200_000)
    parsed = read_deaths(tmp_path, f"{HEADER}\n{death_row(1)}\n{big}\n{death_row(3)}\n".encode())
    assert kept_ids(parsed) == ["D0001", "D0003"]
    assert rejects(parsed, "line", "reason") == [(3, "unreadable CSV record: line is longer than 131,072 bytes")]
    assert len(parsed.rejects["raw"][0].as_py()) <= 131_072


def test_a_quoted_address_over_two_lines_is_still_one_record(tmp_path):
    text = f'{HEADER}\n{death_row(1)}\nD0002,"Moss\nJones",Ann,,F,1980-05-02,2023-03-04,43215,39049,OH,,X42,T40.2,A\n'
    parsed = read_deaths(tmp_path, text.encode())
    assert parsed.tables["deaths"]["last_name"].to_pylist() == ["Moss", "Moss\nJones"]
    assert parsed.rejects.num_rows == 0


def pharmacy_row(i: int) -> str:
    return f",{1000000 + i},,Pharmacy {i},{i} Main St,Springfield,IL,62701,17167,39.8,-89.6"


def test_one_row_starting_with_a_quote_costs_a_pharmacy_registry_one_record(tmp_path):
    rows = [pharmacy_row(i) for i in range(26)]
    rows[1] = '"' + rows[1]
    path = tmp_path / "pharmacies.csv"
    path.write_text(",".join(PHARMACY_CSV_REQUIRED) + "\n" + "\n".join(rows) + "\n")
    parsed = read_pharmacies(path, "pharmacies.csv")
    assert parsed.tables["pharmacies"]["ncpdp"].to_pylist() == [str(1000000 + i) for i in range(26) if i != 1]
    assert rejects(parsed, "record_number", "line", "severity") == [(2, 3, REJECTED)]


# --- item 7: the wrong number of fields is rejected, never realigned ---------------------------


@pytest.mark.parametrize("extra", [",Xqextra", ","])
def test_a_row_with_an_extra_field_is_rejected_even_an_empty_one(tmp_path, extra):
    text = f"{HEADER}\n{death_row(1)}\n{death_row(2)}{extra}\n"
    parsed = read_deaths(tmp_path, text.encode())
    assert kept_ids(parsed) == ["D0001"]
    assert rejects(parsed, "line", "reason") == [(3, "row has 15 fields; the header has 14")]


def test_registries_apply_the_same_field_count_rule(tmp_path):
    path = tmp_path / "pharmacies.csv"
    path.write_text(",".join(PHARMACY_CSV_REQUIRED) + f"\n{pharmacy_row(1)},\n{pharmacy_row(2)}\n")
    parsed = read_pharmacies(path, "pharmacies.csv")
    assert parsed.tables["pharmacies"]["ncpdp"].to_pylist() == ["1000002"]
    assert rejects(parsed, "line", "reason") == [(2, "row has 12 fields; the header has 11")]


# --- item 8: encodings decided per record (CSV) and per field (IJE) -----------------------------


def test_latin1_and_utf8_records_in_one_deaths_csv_are_both_read_right(tmp_path):
    data = (f"{HEADER}\n".encode() + death_row(1, last="JOSÉ").encode("utf-8") + b"\n"
            + death_row(2, last="JOSÉ").encode("latin-1") + b"\n" + death_row(3).encode() + b"\n")
    parsed = read_deaths(tmp_path, data)
    assert parsed.tables["deaths"]["last_name"].to_pylist() == ["JOSÉ", "JOSÉ", "Moss"]
    assert rejects(parsed, "line", "severity", "reason") == [(3, WARNING, "record is not UTF-8; read as cp1252")]


def test_ije_names_are_decoded_per_field_from_byte_columns(tmp_path):
    path = tmp_path / "d.ije"
    utf8 = ije_bytes(GNAME="JOSÉ".encode("utf-8"), LNAME="PEÑA".encode("utf-8"))
    latin1 = ije_bytes(FILENO=b"000124", GNAME="JOSÉ".encode("latin-1"), LNAME="PEÑA".encode("utf-8"))
    path.write_bytes(utf8 + b"\n" + latin1 + b"\n")
    out = read_deaths_ije(path, "d.ije", PSEUDONYMISER).tables["deaths"].to_pylist()
    assert [(r["first_name"], r["last_name"], r["sex"], r["death_date"]) for r in out] == [
        ("JOSÉ", "PEÑA", "U", date(2023, 3, 4))] * 2


# --- item 9: a file with nothing to keep fails, with one message and exit status 1 --------------


def ingest(tmp_path: Path, kind: str, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    root = tmp_path / "ws"
    with Workspace(root) as ws:
        [outcome] = ingest_files(ws, kind, [path], load(workspace=root, threads=1, memory_limit="1GB"))
        manifest = ws.meta.execute("SELECT status, detail FROM manifest").fetchall()
        files = ws.meta.execute("SELECT count(*) FROM data_files").fetchone()[0]
    return outcome, manifest, files


@pytest.mark.parametrize(("kind", "name", "data", "message"), [
    ("deaths", "empty.ije", b"", "empty.ije: empty file (0 bytes)"),
    ("deaths", "photo.jpg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 20,
     "photo.jpg: none of its 21 records could be read as death records (a CSV with a death_id header, or "
     "NCHS IJE); nothing kept (commonest problem: record is 255 bytes; the IJE fields read need 1596 (full "
     "record 5000))"),
    ("deaths", "header.csv", (HEADER + "\r\n").encode(), "header.csv: no data records (a header line only)"),
    ("pharmacies", "header.csv", ",".join(PHARMACY_CSV_REQUIRED).encode(), "header.csv: no data records (a header line only)"),
    ("zip_counties", "bad.csv", b"ZIP,COUNTY\nXq,Xq\n", "bad.csv: none of its 1 records could be read as zip_counties "
     "records; nothing kept (commonest problem: ZIP is not 5 or 9 digits)"),
    ("prescribers", "nul.csv", b"\x00\x01\x02", "nul.csv: no readable header line (record holds NUL bytes "
     "(binary data, not text))"),
    ("prescribers", "names.csv", b"npi,name\n1,Xq\n", "names.csv: missing required columns: dea, last_name, "
     "first_name, specialty, taxonomy_code, state, zip, county_fips"),
])  # fmt: skip
def test_a_file_with_nothing_to_keep_fails_and_keeps_nothing(tmp_path, kind, name, data, message):
    outcome, manifest, files = ingest(tmp_path, kind, name, data)
    assert (outcome.status, outcome.message) == ("failed", message)
    assert (manifest, files) == ([("failed", message)], 0)


@pytest.mark.parametrize(("command", "data"), [
    ("deaths", b""), ("deaths", b"\x89PNG\r\n\x1a\n\x00\x00"), ("prescribers", b"\xff" * 100),
    ("pharmacies", b"npi\n"), ("zip-counties", b"ZIP,COUNTY\n"), ("asap", b"not a PDMP file\n"),
])  # fmt: skip
def test_every_ingest_command_exits_1_naming_the_failed_file(tmp_path, monkeypatch, command, data):
    monkeypatch.setattr(cli.err, "_width", 240)
    monkeypatch.setattr(cli.console, "_width", 240)
    good = tmp_path / "good.csv"
    good.write_text("ZIP,COUNTY\n25301,54039\n")
    bad = tmp_path / "bad.input"
    bad.write_bytes(data)
    paths = [good, bad] if command == "zip-counties" else [bad]
    result = CliRunner().invoke(cli.app, ["ingest", command, *map(str, paths), "--workspace", str(tmp_path / "ws")])
    logging.getLogger("rxradar").setLevel(logging.NOTSET)
    assert result.exit_code == 1, result.output
    assert "1 file(s) failed, nothing of them kept:\n  bad.input: " in result.output
    with sqlite3.connect(tmp_path / "ws" / "meta.sqlite") as con:
        assert con.execute("SELECT source_name, status FROM manifest ORDER BY ingest_id").fetchall() == (
            [("good.csv", "committed")] if command == "zip-counties" else []) + [("bad.input", "failed")]
