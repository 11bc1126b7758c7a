"""NCHS IJE mortality records (fixed width, 5000 characters) → the canonical ``deaths`` table,
and a writer for the same layout (tests and the synthetic-state generator).

Positions are from the HL7 VRDR IJE mapping (``IJE_File_Layouts_and_FHIR_Mapping_24-06-21.csv``;
shared/reference/formats.md §2.2). The columns are byte columns: records are cut from the file's
bytes and each field is decoded on its own, as UTF-8 when it is and as Latin-1 (the layout's
encoding, which the writer uses) when it is not, so a UTF-8 name neither moves the fields after it
nor turns into mojibake.
"""

from __future__ import annotations

import re
from functools import partial
from collections.abc import Iterable, Iterator, Mapping
from datetime import date
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

from rxradar.durable import open_content
from rxradar.icd10 import normalize_icd10
from rxradar.ingest.deaths import (
    DeathsCollector,
    RecordIssues,
    age_in_years,
    clean_causes,
    hash_ssn,
    normalise_manner,
    normalise_sex,
)
from rxradar.ingest.place_codes import field_value, state_code, zip5
from rxradar.ingest.rejects import Parsed
from rxradar.privacy import Pseudonymiser, mask_long_digit_runs


class IjeField(NamedTuple):
    name: str
    start: int  # 1-based column, as in the NCHS layout
    length: int
    description: str

    @property
    def slice(self) -> slice:
        return slice(self.start - 1, self.start - 1 + self.length)


# The fields rxradar reads and writes (formats.md §2.2; VRDR IJE mapping).
IJE_FIELDS: tuple[IjeField, ...] = (
    IjeField("DOD_YR", 1, 4, "date of death, year"),
    IjeField("DSTATE", 5, 2, "state of death, postal code"),
    IjeField("FILENO", 7, 6, "certificate number, left zero-filled"),
    IjeField("GNAME", 27, 50, "given name"),
    IjeField("MNAME", 77, 1, "middle initial"),
    IjeField("LNAME", 78, 50, "last name"),
    IjeField("SEX", 189, 1, "M, F, U"),
    IjeField("SSN", 191, 9, "blank if unknown"),
    IjeField("AGETYPE", 200, 1, "age unit: 1 years, 2 months, 4 days, 5 hours, 6 minutes, 9 unknown"),
    IjeField("AGE", 201, 3, "age in AGETYPE units, 999 unknown"),
    IjeField("DOB_YR", 205, 4, "date of birth, year (9999 unknown)"),
    IjeField("DOB_MO", 209, 2, "date of birth, month (99 unknown)"),
    IjeField("DOB_DY", 211, 2, "date of birth, day (99 unknown)"),
    IjeField("COUNTYC", 222, 3, "residence county, 3-digit (FIPS county) code"),
    IjeField("STATEC", 225, 2, "residence state, postal code"),
    IjeField("DOD_MO", 237, 2, "date of death, month"),
    IjeField("DOD_DY", 239, 2, "date of death, day"),
    IjeField("MANNER", 701, 1, "N, A, S, H, P, C"),
    IjeField("ACME_UC", 710, 5, "underlying cause, ICD-10 without the dot"),
    IjeField("RAC", 876, 100, "record-axis causes: 20 slots of a 4-character code + 1 flag"),
    IjeField("ZIP9_R", 1588, 9, "residence ZIP+4, no hyphen"),
)
FIELDS: dict[str, IjeField] = {f.name: f for f in IJE_FIELDS}

RECORD_LENGTH = 5000
# A record may arrive with trailing blanks trimmed, but must reach the last field read.
MIN_RECORD_LENGTH = max(f.start - 1 + f.length for f in IJE_FIELDS)
RAC_SLOT, RAC_CODE, RAC_SLOTS = 5, 4, 20
UNKNOWN_YEAR, UNKNOWN_PART, UNKNOWN_COUNTY = "9999", "99", "999"
AGE_IN_YEARS = "1"
AGE_UNDER_ONE_YEAR = {"2", "4", "5", "6"}  # months, days, hours, minutes
IJE_ENCODING = "latin-1"

# USPS state code → state FIPS code (Census Bureau, ANSI INCITS 38:2009 / FIPS PUB 5-2),
# to build five-digit county FIPS from STATEC + COUNTYC.
STATE_FIPS: dict[str, str] = {
    "AL": "01", "AK": "02", "AZ": "04", "AR": "05", "CA": "06", "CO": "08", "CT": "09", "DE": "10",
    "DC": "11", "FL": "12", "GA": "13", "HI": "15", "ID": "16", "IL": "17", "IN": "18", "IA": "19",
    "KS": "20", "KY": "21", "LA": "22", "ME": "23", "MD": "24", "MA": "25", "MI": "26", "MN": "27",
    "MS": "28", "MO": "29", "MT": "30", "NE": "31", "NV": "32", "NH": "33", "NJ": "34", "NM": "35",
    "NY": "36", "NC": "37", "ND": "38", "OH": "39", "OK": "40", "OR": "41", "PA": "42", "RI": "44",
    "SC": "45", "SD": "46", "TN": "47", "TX": "48", "UT": "49", "VT": "50", "VA": "51", "WA": "53",
    "WV": "54", "WI": "55", "WY": "56",
    "AS": "60", "GU": "66", "MP": "69", "PR": "72", "VI": "78",
}  # fmt: skip

_DEATH_ID = re.compile(r"([0-9]{4})([A-Z]{2})([0-9]{6})")


def read_deaths_ije(path: Path, source_file: str, pseudonymiser: Pseudonymiser) -> Parsed:
    """Read NCHS IJE mortality records (one per line, or unterminated 5000-byte records).

    death_id = DOD_YR + DSTATE + FILENO; county_fips = state FIPS of STATEC + COUNTYC; causes
    from ACME_UC and the 20 RAC slots. Records shorter than the fields read, or without an id or
    a valid date of death, are rejected; other problems are warnings on kept records.
    """
    collector = DeathsCollector(source_file, "ije")
    with open_content(path) as f:
        for line, record in _records(f):
            issues = RecordIssues()
            raw = partial(_raw, record)  # made only for a record with a problem
            if len(record) < MIN_RECORD_LENGTH:
                issues.reject(
                    None, f"record is {len(record)} bytes; the IJE fields read need {MIN_RECORD_LENGTH}"
                    f" (full record {RECORD_LENGTH})",
                )
                collector.add({}, issues, line, raw)
                continue
            row = _ije_row({f.name: decode_field(record[f.slice]) for f in IJE_FIELDS}, pseudonymiser, issues)
            collector.add(row, issues, line, raw)
    return collector.parsed()


def _records(f: BinaryIO) -> Iterator[tuple[int, bytes]]:
    """(line, record bytes): one record per line, and a line longer than a record is cut into
    records (files of unterminated 5000-byte records), so memory never holds more than a record."""
    line_number, carry = 1, b""
    while True:
        data = carry + f.readline(RECORD_LENGTH + 2 - len(carry))
        carry = b""
        if not data:
            return
        if data.endswith(b"\n") or len(data) < RECORD_LENGTH + 2:
            record = data.rstrip(b"\r\n")
            if record.strip():
                yield line_number, record
            line_number += 1
        else:
            carry = data[RECORD_LENGTH:]
            yield line_number, data[:RECORD_LENGTH]


def decode_field(data: bytes) -> str:
    """A field's text: UTF-8 when its bytes are, else Latin-1. A UTF-8 character cut by the field's
    end is dropped, when the field shows it is UTF-8 by holding a whole multi-byte character too (a
    lone Latin-1 letter at the end, as in a one-byte middle initial, is not cut UTF-8)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.reason == "unexpected end of data":
            head = data[: e.start].decode("utf-8")
            if not head.isascii():
                return head
    return data.decode(IJE_ENCODING)


def _raw(record: bytes) -> str:
    """The record's text for rejects, with the SSN field starred out and runs of nine or more
    digits (an SSN shifted out of its columns) masked anywhere else; other SSN shapes are starred
    with the rejects (rxradar.ingest.rejects)."""
    s = FIELDS["SSN"].slice
    if record[s].strip():
        record = record[: s.start] + b"*" * len(record[s]) + record[s.stop :]
    return mask_long_digit_runs(decode_field(record).rstrip())


def _ije_row(v: dict[str, str], pseudonymiser: Pseudonymiser, issues: RecordIssues) -> dict[str, Any]:
    year, dstate, fileno = v["DOD_YR"].strip(), v["DSTATE"].strip().upper(), v["FILENO"].strip()
    death_id = f"{year}{dstate}{fileno}"
    if not (len(year) == 4 and len(dstate) == 2 and fileno):
        issues.reject("DOD_YR/DSTATE/FILENO", "death_id needs DOD_YR, DSTATE and FILENO")
    dod = (v["DOD_YR"], v["DOD_MO"], v["DOD_DY"])
    death_date = _date(*dod)
    if death_date is None:
        issues.reject("DOD_YR/DOD_MO/DOD_DY", "not a valid date of death")
    birth_date = None
    dob = (v["DOB_YR"], v["DOB_MO"], v["DOB_DY"])
    if not (v["DOB_YR"] == UNKNOWN_YEAR or UNKNOWN_PART in dob[1:] or not "".join(dob).strip()):
        birth_date = _date(*dob)
        if birth_date is None:
            issues.warn("DOB_YR/DOB_MO/DOB_DY", "not a valid date of birth (nor 9999/99/99 for unknown); not kept")
    state = field_value(state_code, v["STATEC"], issues, "STATEC")
    ucod, causes = clean_causes(v["ACME_UC"], _rac_codes(v["RAC"]), issues, ("ACME_UC", "RAC"))
    return {
        "death_id": death_id,
        "last_name": v["LNAME"].strip() or None,
        "first_name": v["GNAME"].strip() or None,
        "middle_name": v["MNAME"].strip() or None,
        "sex": normalise_sex(v["SEX"], issues, "SEX"),
        "birth_date": birth_date,
        "death_date": death_date,
        "age_years": _age_field(v["AGETYPE"], v["AGE"]),  # replaced from the dates when DOB is known
        "zip": field_value(zip5, v["ZIP9_R"], issues, "ZIP9_R"),
        "county_fips": _county_fips(state, v["COUNTYC"], issues),
        "state": state,
        "ssn_hash": hash_ssn(v["SSN"], pseudonymiser, issues, "SSN"),
        "underlying_cause": ucod,
        "multiple_causes": causes,
        "manner": normalise_manner(v["MANNER"], issues, "MANNER"),
    }


def _date(year: str, month: str, day: str) -> date | None:
    if not all(p.isascii() and p.isdigit() for p in (year, month, day)):
        return None
    try:
        return date(int(year), int(month), int(day))
    except ValueError:
        return None


def _age_field(agetype: str, age: str) -> int | None:
    if agetype == AGE_IN_YEARS and age.isascii() and age.isdigit() and age != "999":
        return int(age)
    return 0 if agetype in AGE_UNDER_ONE_YEAR else None


def _rac_codes(rac: str) -> list[str]:
    # The fifth character of each slot is a flag (e.g. pregnancy), not part of the code.
    slots = (rac[i : i + RAC_SLOT] for i in range(0, RAC_SLOT * RAC_SLOTS, RAC_SLOT))
    return [code for slot in slots if (code := slot[:RAC_CODE].strip())]


def _county_fips(state: str | None, countyc: str, issues: RecordIssues) -> str | None:
    county = countyc.strip()
    if not county or county == UNKNOWN_COUNTY:
        return None
    if not re.fullmatch(r"[0-9]{3}", county):
        issues.warn("COUNTYC", "residence county is not a three-digit code; left empty")
        return None
    if state not in STATE_FIPS:
        issues.warn("STATEC", "residence county without a known residence state; county left empty")
        return None
    return STATE_FIPS[state] + county


# --- writer ----------------------------------------------------------------------------------


def write_deaths_ije(rows: Iterable[Mapping[str, Any]], path: Path, encoding: str = IJE_ENCODING) -> None:
    """Write one IJE record per row, newline-terminated (see :func:`ije_record`)."""
    with open(path, "w", encoding=encoding, newline="\n") as f:
        for row in rows:
            f.write(ije_record(row))
            f.write("\n")


def ije_record(row: Mapping[str, Any]) -> str:
    """One 5000-character IJE record from a dict with canonical DEATHS column names plus
    ``ssn`` and ``state_of_death``.

    ``death_id`` must be DOD_YR + DSTATE + FILENO (e.g. ``2023OH000123``), consistent with
    ``death_date`` and ``state_of_death``; ``county_fips`` must lie in ``state``. The middle name
    is written as its initial (MNAME is one character). Raises ValueError for anything the layout
    cannot hold.
    """
    death_date: date = row["death_date"]
    m = _DEATH_ID.fullmatch(row["death_id"])
    if m is None:
        raise ValueError(f"death_id must be DOD_YR + DSTATE + FILENO (e.g. 2023OH000123): {row['death_id']!r}")
    year, dstate, fileno = m.groups()
    if year != f"{death_date.year:04d}" or dstate != row.get("state_of_death", dstate):
        raise ValueError(f"death_id {row['death_id']!r} disagrees with death_date or state_of_death")

    values = {
        "DOD_YR": year, "DSTATE": dstate, "FILENO": fileno,
        "DOD_MO": f"{death_date.month:02d}", "DOD_DY": f"{death_date.day:02d}",
        "GNAME": row.get("first_name") or "", "MNAME": (row.get("middle_name") or "")[:1],
        "LNAME": row.get("last_name") or "", "SEX": row.get("sex") or "U",
        "SSN": re.sub(r"[^0-9]", "", row.get("ssn") or ""),
        "STATEC": row.get("state") or "", "ZIP9_R": row.get("zip") or "", "MANNER": row.get("manner") or "",
        "ACME_UC": normalize_icd10(row.get("underlying_cause") or ""),
        "RAC": _rac_field(row.get("multiple_causes") or []),
    }  # fmt: skip
    values.update(_birth_fields(row.get("birth_date"), death_date, row.get("age_years")))
    values["COUNTYC"] = _countyc(row.get("county_fips"), values["STATEC"])

    chars = [" "] * RECORD_LENGTH
    for name, value in values.items():
        f = FIELDS[name]
        if len(value) > f.length or "\n" in value or "\r" in value:
            raise ValueError(f"{name}: {value!r} does not fit {f.length} characters on one line")
        chars[f.start - 1 : f.start - 1 + len(value)] = value
    return "".join(chars)


def _birth_fields(birth: date | None, death: date, age_years: int | None) -> dict[str, str]:
    if birth is None:
        dob = {"DOB_YR": UNKNOWN_YEAR, "DOB_MO": UNKNOWN_PART, "DOB_DY": UNKNOWN_PART}
    else:
        dob = {"DOB_YR": f"{birth.year:04d}", "DOB_MO": f"{birth.month:02d}", "DOB_DY": f"{birth.day:02d}"}
        age_years = age_in_years(birth, death)
    if age_years is None:
        return dob | {"AGETYPE": "9", "AGE": "999"}
    return dob | {"AGETYPE": AGE_IN_YEARS, "AGE": f"{age_years:03d}"}


def _countyc(county_fips: str | None, state: str) -> str:
    if not county_fips:
        return ""
    if STATE_FIPS.get(state) != county_fips[:2] or len(county_fips) != 5:
        raise ValueError(f"county_fips {county_fips!r} is not a county of residence state {state!r}")
    return county_fips[2:]


def _rac_field(codes: Iterable[str]) -> str:
    codes = [normalize_icd10(c) for c in codes]
    if len(codes) > RAC_SLOTS or any(len(c) > RAC_CODE for c in codes):
        raise ValueError(f"RAC holds up to {RAC_SLOTS} codes of up to {RAC_CODE} characters: {codes}")
    return "".join(c.ljust(RAC_SLOT) for c in codes)
