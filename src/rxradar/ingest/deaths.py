"""Death records from a CSV extract → the canonical ``deaths`` table.

The field rules shared with the IJE reader (sex, manner, SSN, causes, derived columns) live here
too, so a death gives the same canonical row whichever format it arrived in; ZIP, state and
county codes follow the rules every reader shares (rxradar.ingest.place_codes).
Identified values are pseudonymised on the way in: the SSN is hashed and never stored, and
SSN-shaped digits are masked wherever they appear in the raw text kept with rejects. Reasons name
the element and the rule broken, never a value.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from collections.abc import Callable
from typing import Any

import pyarrow as pa

from rxradar.codes import ssn_is_valid
from rxradar.icd10 import classify_death, is_icd10_code, normalize_icd10, split_icd10_codes
from rxradar.ingest.place_codes import county_fips, field_value, state_code, zip5
from rxradar.ingest.csv_records import DEFAULT_LIMITS, RecordLimits, open_csv, record_problem
from rxradar.ingest.rejects import REJECTED, WARNING, Parsed, Reject, UnreadableFile, rejects_table
from rxradar.privacy import Pseudonymiser
from rxradar.schema import DEATHS, conform

# CSV column → required. Optional columns may be absent from the header.
CSV_COLUMNS: dict[str, bool] = {
    "death_id": True,
    "last_name": True,
    "first_name": True,
    "middle_name": False,
    "sex": True,
    "birth_date": True,
    "death_date": True,
    "residence_zip": True,
    "residence_county_fips": True,
    "residence_state": True,
    "ssn": False,
    "underlying_cause": True,
    "multiple_causes": True,
    "manner": False,
}

SEX_CODES: dict[str, str] = {"F": "F", "FEMALE": "F", "M": "M", "MALE": "M", "U": "U", "UNKNOWN": "U"}

# Manner of death (VRDR ConceptMap codes; formats.md §2.2), with the words extracts spell out.
MANNER_CODES: dict[str, str] = {
    "N": "N", "NATURAL": "N",
    "A": "A", "ACCIDENT": "A",
    "S": "S", "SUICIDE": "S",
    "H": "H", "HOMICIDE": "H",
    "P": "P", "PENDING": "P", "PENDING INVESTIGATION": "P",
    "C": "C", "COULD NOT BE DETERMINED": "C", "UNDETERMINED": "C",
}  # fmt: skip

_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class RecordIssues(list[tuple[str, str | None, str]]):
    """Problems found in one record: (severity, field, reason)."""

    def warn(self, field: str | None, reason: str) -> None:
        self.append((WARNING, field, reason))

    def reject(self, field: str | None, reason: str) -> None:
        self.append((REJECTED, field, reason))

    @property
    def rejected(self) -> bool:
        return any(severity == REJECTED for severity, _, _ in self)


def parse_iso_date(text: str) -> date | None:
    """``YYYY-MM-DD`` → date; empty → None; anything else raises ValueError (whose message never
    quotes the text: dates of birth and death identify people)."""
    text = text.strip()
    if not text:
        return None
    if _ISO_DATE.fullmatch(text):
        try:
            return date.fromisoformat(text)
        except ValueError:
            pass
    raise ValueError("not a valid YYYY-MM-DD date")


def age_in_years(birth: date, death: date) -> int:
    """Completed years of age at death."""
    return death.year - birth.year - ((death.month, death.day) < (birth.month, birth.day))


def normalise_sex(text: str, issues: RecordIssues, field: str) -> str:
    """F, M or U (unknown, also for blanks; an unrecognised value is a warning)."""
    value = text.strip().upper()
    if value and value not in SEX_CODES:
        issues.warn(field, "sex is not F, M or U (or FEMALE, MALE, UNKNOWN); recorded as U")
    return SEX_CODES.get(value, "U")


def normalise_manner(text: str, issues: RecordIssues, field: str) -> str | None:
    """N, A, S, H, P, C or None."""
    value = " ".join(text.split()).upper()
    if value and value not in MANNER_CODES:
        issues.warn(field, "manner of death is not a VRDR code (N, A, S, H, P, C) or its name; left empty")
    return MANNER_CODES.get(value)


def hash_ssn(text: str, pseudonymiser: Pseudonymiser, issues: RecordIssues, field: str) -> str | None:
    """Keyed hash of the SSN's digits, or None when missing or not an issuable SSN.

    Placeholders such as 999999999 are dropped (see :func:`rxradar.codes.ssn_is_valid`): hashed,
    they would deterministically link unrelated people. The SSN never appears in a reason.
    """
    digits = re.sub(r"[^0-9]", "", text)
    if not text.strip():
        return None
    if not ssn_is_valid(digits):
        issues.warn(field, "SSN is not a valid 9-digit number that SSA issues; not kept")
        return None
    return pseudonymiser.hash(digits)


def clean_causes(
    underlying: str, multiple: list[str], issues: RecordIssues, fields: tuple[str, str]
) -> tuple[str | None, list[str]]:
    """Normalised underlying and multiple causes; codes that are not ICD-10 are dropped with a
    warning on ``fields`` (the source's names for the underlying and the multiple causes). The
    warning counts them but never quotes them: a value that is not a code may be another column's
    (a name, an SSN) in a row whose columns shifted."""
    ucod = normalize_icd10(underlying) or None
    if ucod is not None and not is_icd10_code(ucod):
        issues.warn(fields[0], "underlying cause is not an ICD-10 code; dropped")
        ucod = None
    codes = [normalize_icd10(c) for c in multiple if normalize_icd10(c)]
    bad = [c for c in codes if not is_icd10_code(c)]
    if bad:
        issues.warn(fields[1], f"{len(bad)} of {len(codes)} multiple causes are not ICD-10 codes; dropped")
    return ucod, [c for c in codes if is_icd10_code(c)]


class DeathsCollector:
    """Kept rows and rejects for one file; adds the derived columns and builds the table."""

    def __init__(self, source_file: str, source_format: str):
        self.source_file = source_file
        self.source_format = source_format
        self.rows: list[dict[str, Any]] = []
        self.rejects: list[Reject] = []
        self.records_read = 0
        self._first_row_of: dict[str, int] = {}

    def add(self, row: dict[str, Any], issues: RecordIssues, line: int, raw: Callable[[], str]) -> None:
        """Record one source record: ``row`` holds canonical DEATHS columns (no derived ones);
        ``raw`` gives its text, asked for only when it has a problem to keep it with."""
        self.records_read += 1
        record_number = self.records_read
        if not issues.rejected:
            self._check_row(row, issues, record_number)
        text = raw() if issues else None
        for severity, field, reason in issues:
            self.rejects.append(
                Reject(self.source_file, record_number, field, reason, raw=text, line=line, severity=severity)
            )
        if not issues.rejected:
            self.rows.append(row)

    def _check_row(self, row: dict[str, Any], issues: RecordIssues, record_number: int) -> None:
        first = self._first_row_of.setdefault(row["death_id"], record_number)
        if first != record_number:
            issues.reject("death_id", f"duplicate death_id (first seen in record {first})")
            return
        birth, death = row.get("birth_date"), row["death_date"]
        if birth is not None and birth > death:
            issues.warn("birth_date", "birth date after death date; birth date not kept")
            row["birth_date"] = birth = None
        if birth is not None:
            row["age_years"] = age_in_years(birth, death)

    def parsed(self) -> Parsed:
        return Parsed(
            tables={"deaths": deaths_table(self.rows, self.source_format)},
            rejects=rejects_table(self.rejects),
            records_read=self.records_read,
        )


_DERIVED = {"is_overdose", "intent", "is_opioid_overdose", "opioid_classes", "source_format"}


def deaths_table(rows: list[dict[str, Any]], source_format: str) -> pa.Table:
    """The canonical deaths table for ``rows``, with the CDC/NCHS classification added."""
    derived = [classify_death(r.get("underlying_cause"), r.get("multiple_causes") or []) for r in rows]
    data: dict[str, list] = {
        c.name: [r.get(c.name) for r in rows] for c in DEATHS.columns if c.name not in _DERIVED
    }
    data["is_overdose"] = [d.is_overdose for d in derived]
    data["intent"] = [d.intent for d in derived]
    data["is_opioid_overdose"] = [d.is_opioid_overdose for d in derived]
    data["opioid_classes"] = [d.opioid_classes for d in derived]
    data["source_format"] = [source_format] * len(rows)
    schema = pa.schema([DEATHS.schema.field(name) for name in data])
    return conform(DEATHS, pa.Table.from_pydict(data, schema=schema))



# --- CSV -------------------------------------------------------------------------------------


def read_deaths_csv(
    path: Path, source_file: str, pseudonymiser: Pseudonymiser, limits: RecordLimits = DEFAULT_LIMITS
) -> Parsed:
    """Read a death-record CSV with the columns in :data:`CSV_COLUMNS` (any order; extra columns
    ignored). Dates are ISO; ICD-10 codes may have dots; multiple causes are separated by spaces,
    semicolons or commas. Records are read as the registries' are (rxradar.ingest.csv_records):
    one that cannot be read, or whose number of fields is not the header's, is rejected with its
    line and the others are kept. Records without a death_id or a valid death_date are rejected;
    other problems are warnings on kept records. Raises UnreadableFile if a required column is
    missing.
    """
    collector = DeathsCollector(source_file, "csv")
    f, records, header = open_csv(path, source_file, limits)
    with f:
        index = _column_index(header, source_file)
        for line, fields in records:
            issues = RecordIssues()
            if records.note:
                issues.warn(None, records.note)
            problem = record_problem(fields, len(header))
            if problem is not None:
                issues.reject(None, problem)
                collector.add({}, issues, line, lambda: records.raw)
                continue
            values = {name: fields[i] for name, i in index.items()}
            row = _csv_row(values, pseudonymiser, issues)
            collector.add(row, issues, line, lambda: _mask_value(records.raw, values.get("ssn", "")))
    return collector.parsed()


def _mask_value(raw: str, ssn: str) -> str:
    """The record's text with its SSN column's value starred wherever it appears (whatever its
    shape: a spreadsheet drops leading zeros); SSN shapes elsewhere are starred with the rejects."""
    ssn = ssn.strip()
    return raw.replace(ssn, "*" * len(ssn)) if ssn else raw


def _column_index(header: list[str], source_file: str) -> dict[str, int]:
    names = [h.strip().lower() for h in header]
    missing = [c for c, required in CSV_COLUMNS.items() if required and c not in names]
    if missing:
        raise UnreadableFile(f"{source_file}: missing required column(s): {', '.join(missing)}")
    return {c: names.index(c) for c in CSV_COLUMNS if c in names}


def _csv_row(values: dict[str, str], pseudonymiser: Pseudonymiser, issues: RecordIssues) -> dict[str, Any]:
    death_id = values["death_id"].strip()
    if not death_id:
        issues.reject("death_id", "missing death_id")
    try:
        death_date = parse_iso_date(values["death_date"])
        if death_date is None:
            issues.reject("death_date", "missing death_date")
    except ValueError as e:
        death_date = None
        issues.reject("death_date", f"death_date is {e}")
    try:
        birth_date = parse_iso_date(values["birth_date"])
    except ValueError as e:
        birth_date = None
        issues.warn("birth_date", f"birth_date is {e}; not kept")
    ucod, causes = clean_causes(
        values["underlying_cause"], split_icd10_codes(values["multiple_causes"]), issues,
        ("underlying_cause", "multiple_causes"),
    )
    row = {
        "death_id": death_id,
        "last_name": values["last_name"].strip() or None,
        "first_name": values["first_name"].strip() or None,
        "middle_name": values.get("middle_name", "").strip() or None,
        "sex": normalise_sex(values["sex"], issues, "sex"),
        "birth_date": birth_date,
        "death_date": death_date,
        "zip": field_value(zip5, values["residence_zip"], issues, "residence_zip"),
        "county_fips": field_value(county_fips, values["residence_county_fips"], issues, "residence_county_fips"),
        "state": field_value(state_code, values["residence_state"], issues, "residence_state"),
        "ssn_hash": hash_ssn(values.get("ssn", ""), pseudonymiser, issues, "ssn"),
        "underlying_cause": ucod,
        "multiple_causes": causes,
        "manner": normalise_manner(values.get("manner", ""), issues, "manner"),
    }
    return row

