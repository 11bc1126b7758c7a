"""Prescriber and pharmacy registries → the canonical ``prescribers`` and ``pharmacies`` tables.

Prescribers come from the NPPES dissemination file (``npidata_pfile_*.csv``, ~9 GB, 330 quoted
columns, detected by its header) or from a simple state CSV; pharmacies from a simple CSV. Files are
read record by record with the ``csv`` module, touching only the needed columns, and rows are turned
into Arrow in fixed-size chunks, so memory holds the output table and one chunk, never the file.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa
import pyarrow.compute as pc

from rxradar.codes import DEA_PATTERN, NPI_PATTERN, dea_is_valid, ncpdp_format_ok, npi_is_valid
from rxradar.ingest.rejects import REJECTED, WARNING, Parsed, Reject, rejects_table
from rxradar.reference.taxonomy import canonical_specialty, specialty_for
from rxradar.schema import PHARMACIES, PRESCRIBERS, Table, conform

CHUNK_ROWS = 50_000

NPPES_COLUMNS = {
    "npi": "NPI",
    "entity_type": "Entity Type Code",
    "last_name": "Provider Last Name (Legal Name)",
    "first_name": "Provider First Name",
    "credential": "Provider Credential Text",
    "organization": "Provider Organization Name (Legal Business Name)",
    "address": "Provider First Line Business Practice Location Address",
    "city": "Provider Business Practice Location Address City Name",
    "state": "Provider Business Practice Location Address State Name",
    "zip": "Provider Business Practice Location Address Postal Code",
}
NPPES_TAXONOMY_SLOTS = [
    (f"Healthcare Provider Taxonomy Code_{n}", f"Healthcare Provider Primary Taxonomy Switch_{n}") for n in range(1, 16)
]
NPPES_COUNTRY = "Provider Business Practice Location Address Country Code (If outside U.S.)"

PRESCRIBER_CSV_REQUIRED = ("npi", "dea", "last_name", "first_name", "specialty", "taxonomy_code", "state", "zip", "county_fips")
PRESCRIBER_CSV_OPTIONAL = ("credential", "address", "city")
PHARMACY_CSV_REQUIRED = ("npi", "ncpdp", "dea", "name", "address", "city", "state", "zip", "county_fips", "lat", "lon")
PHARMACY_CSV_OPTIONAL = ("pharmacy_id", "chain_site_id")

_STATE = re.compile(r"[A-Z]{2}")


# --- reading records -------------------------------------------------------------------------


def _decode(line: bytes) -> str:
    # NPPES files have been Latin-1 and UTF-8 over the years, and state extracts are often cp1252.
    for encoding in ("utf-8", "cp1252"):
        try:
            return line.decode(encoding)
        except UnicodeDecodeError:
            pass
    return line.decode("latin-1")


class _Records:
    """CSV records of a binary file, each with the file line it starts on; ``raw`` is the current
    record's text. Blank lines are skipped."""

    def __init__(self, f: BinaryIO):
        self._f = f
        self._buffer: list[str] = []
        self.lines_read = 0
        self._reader = csv.reader(self._lines())

    def _lines(self) -> Iterator[str]:
        for line in self._f:
            self.lines_read += 1
            text = _decode(line)
            if self.lines_read == 1:
                text = text.removeprefix("\ufeff")
            self._buffer.append(text)
            yield text

    def __iter__(self) -> Iterator[tuple[int, list[str] | str]]:
        """(start line, fields), or (start line, error text) for a record the csv module cannot read
        (a stray carriage return, an oversized field); reading goes on with the next line."""
        while True:
            self._buffer.clear()
            start = self.lines_read + 1
            try:
                fields = next(self._reader)
            except StopIteration:
                return
            except csv.Error as e:
                yield start, str(e)
                continue
            if fields:
                yield start, fields

    @property
    def raw(self) -> str:
        return "".join(self._buffer).rstrip("\r\n")


class _Sink:
    """Collects kept rows in column lists, turning every CHUNK_ROWS into an Arrow table, and the
    file's rejects; ``finish`` keeps the last of duplicate ids and conforms to the schema."""

    def __init__(self, table: Table, key: str, source_file: str, records: _Records):
        self.table, self.key, self.source_file, self._records = table, key, source_file, records
        self.record = self.line = 0
        self.names = [c.name for c in table.columns if c.name != "ingest_id"] + ["_record", "_line"]
        self.columns: dict[str, list] = {n: [] for n in self.names}
        self.chunks: list[pa.Table] = []
        self.rejects: list[Reject] = []
        self.records_read = 0

    def start(self, record: int, line: int) -> None:
        self.records_read += 1
        self.record, self.line = record, line

    def warn(self, field: str | None, reason: str, severity: str = WARNING) -> None:
        """Record a problem with the current record; ``REJECTED`` means the caller drops it."""
        self.rejects.append(
            Reject(self.source_file, self.record, field, reason, raw=self._records.raw, line=self.line, severity=severity)
        )

    def add(self, row: dict) -> None:
        row["_record"], row["_line"] = self.record, self.line
        for name, column in self.columns.items():
            column.append(row.get(name))
        if len(self.columns["_record"]) >= CHUNK_ROWS:
            self._flush()

    def _flush(self) -> None:
        types = {c.name: c.type for c in self.table.columns}
        types |= {"_record": pa.int64(), "_line": pa.int64()}
        self.chunks.append(pa.table({n: pa.array(self.columns[n], types[n]) for n in self.names}))
        self.columns = {n: [] for n in self.names}

    def finish(self) -> Parsed:
        self._flush()
        data = pa.concat_tables(self.chunks)
        counts = data.group_by(self.key).aggregate([("_record", "max"), ("_record", "count")])
        dups = counts.filter(pc.greater(counts["_record_count"], 1))
        if dups.num_rows:
            in_dup = pc.is_in(data[self.key], value_set=dups[self.key])
            kept = pc.is_in(data["_record"], value_set=dups["_record_max"])
            earlier: dict[str, list[str]] = {}
            for r in data.filter(pc.and_(in_dup, pc.invert(kept))).select([self.key, "_record"]).to_pylist():
                earlier.setdefault(r[self.key], []).append(str(r["_record"]))
            for r in data.filter(kept).select([self.key, "_record", "_line"]).to_pylist():
                self.rejects.append(
                    Reject(
                        self.source_file, r["_record"], self.key,
                        f"duplicate {self.key}: this later record replaces record(s) {', '.join(earlier[r[self.key]])}",
                        line=r["_line"], severity=WARNING,
                    )
                )
            data = data.filter(pc.or_(pc.invert(in_dup), kept))
        self.rejects.sort(key=lambda r: (r.record_number is None, r.record_number or 0))
        out = conform(self.table, data.drop_columns(["_record", "_line"]))
        return Parsed(tables={self.table.name: out}, rejects=rejects_table(self.rejects), records_read=self.records_read)


def _header_index(header: list[str], required: tuple[str, ...], optional: tuple[str, ...], source_file: str) -> dict[str, int]:
    normalised = {h.strip().lower().replace(" ", "_"): i for i, h in enumerate(header)}
    missing = [c for c in required if c not in normalised]
    if missing:
        raise ValueError(f"{source_file}: missing required columns: {', '.join(missing)}")
    return {c: normalised[c] for c in required + optional if c in normalised}


def _field_count_ok(fields: list[str], width: int) -> bool:
    return len(fields) == width or (len(fields) > width and not any(f.strip() for f in fields[width:]))


# --- field rules ---------------------------------------------------------------------------


def _text(value: str) -> str | None:
    return " ".join(value.split()) or None


def _npi_problem(value: str) -> str:
    return "NPI is not 10 digits" if not re.fullmatch(NPI_PATTERN, value) else "NPI check digit is wrong"


def _dea_problem(value: str) -> str:
    return "DEA is not 2 letters and 7 digits" if not re.fullmatch(DEA_PATTERN, value) else "DEA check digit is wrong"


def _zip5(value: str) -> tuple[str | None, str | None]:
    """Five-digit ZIP and a warning. 4- and 8-digit values lost a leading zero in a spreadsheet
    (New England ZIPs start with 0), so they are padded back, with a warning."""
    digits = value.replace("-", "").replace(" ", "")
    if not digits:
        return None, None
    if not digits.isdigit() or len(digits) not in (4, 5, 8, 9):
        return None, "ZIP is not 5 or 9 digits; left empty"
    if len(digits) in (4, 8):
        return digits.zfill(len(digits) + 1)[:5], "ZIP had 4 or 8 digits; restored a lost leading zero"
    return digits[:5], None


def _county_fips(value: str) -> tuple[str | None, str | None]:
    """Five-digit county FIPS; a 4-digit value lost the leading zero of a state code below 10."""
    digits = value.strip()
    if not digits:
        return None, None
    if digits.isdigit() and len(digits) in (4, 5):
        return digits.zfill(5), None
    return None, "county_fips is not a 5-digit FIPS code; left empty"


def _state(value: str) -> tuple[str | None, str | None]:
    state = value.strip().upper()
    if not state:
        return None, None
    return (state, None) if _STATE.fullmatch(state) else (None, "state is not a 2-letter code; left empty")


def _coordinates(lat: str, lon: str) -> tuple[float | None, float | None, str | None]:
    if not lat.strip() and not lon.strip():
        return None, None, None
    try:
        la, lo = float(lat), float(lon)
    except ValueError:
        return None, None, "lat/lon not numeric; both left empty"
    if not (math.isfinite(la) and math.isfinite(lo) and -90 <= la <= 90 and -180 <= lo <= 180):
        return None, None, "lat/lon out of range; both left empty"
    if la == 0 and lo == 0:
        return None, None, "lat/lon is 0,0 (a failed geocode); both left empty"
    return la, lo, None


def _primary_taxonomy(fields: list[str], slots: list[tuple[int, int]]) -> str | None:
    """The code whose primary switch is Y, else the first filled slot (NPPES switches are Y, N or X)."""
    first = None
    for code_at, switch_at in slots:
        code = fields[code_at].strip()
        if code:
            if fields[switch_at].strip().upper() == "Y":
                return code.upper()
            first = first or code.upper()
    return first


def _taxonomy_specialty(code: str | None, sink: _Sink) -> str | None:
    if not code:
        return None
    specialty = specialty_for(code)
    if specialty is None:
        sink.warn("taxonomy_code", "taxonomy code not in the NUCC 25.1 code set; specialty left empty")
    return specialty


def _location(get: Callable[[str], str], sink: _Sink) -> dict[str, str | None]:
    """state, zip and county_fips of a CSV row, each left empty with a warning when malformed."""
    out: dict[str, str | None] = {}
    for field, rule in (("state", _state), ("zip", _zip5), ("county_fips", _county_fips)):
        out[field], problem = rule(get(field))
        if problem:
            sink.warn(field, problem)
    return out


def _open(path: Path, source_file: str) -> tuple[BinaryIO, _Records, list[str]]:
    f = open(path, "rb")
    records = _Records(f)
    first = next(iter(records), None)
    if first is None or isinstance(first[1], str):
        f.close()
        raise ValueError(f"{source_file}: no readable header line")
    return f, records, first[1]


def _data(records: _Records, sink: _Sink, width: int) -> Iterator[list[str]]:
    """Data records with the sink positioned on each; rows of the wrong width are rejected."""
    for record, (line, fields) in enumerate(records, start=1):
        sink.start(record, line)
        if isinstance(fields, str):
            sink.warn(None, f"unreadable CSV record: {fields}", REJECTED)
        elif _field_count_ok(fields, width):
            yield fields
        else:
            sink.warn(None, f"row has {len(fields)} fields; the header has {width}", REJECTED)


# --- prescribers ---------------------------------------------------------------------------


def read_prescribers(path: Path, source_file: str, *, include_organisations: bool = False) -> Parsed:
    """Read an NPPES dissemination file or a simple prescriber CSV, detected by the header.

    NPPES: individuals (entity type 1) only unless ``include_organisations``; organisations and
    deactivated NPIs (blank entity type) are counted in one file-level warning. The primary
    taxonomy is the slot whose switch is Y, else the first filled slot. NPPES has no DEA or county.

    Simple CSV (``npi, dea, last_name, first_name, specialty, taxonomy_code, state, zip,
    county_fips``; optional ``credential, address, city``): ``prescriber_id`` is the NPI if valid,
    else the DEA if valid (with a warning about the NPI), else the row is rejected. A blank specialty
    is filled from the taxonomy code. A later row with the same ``prescriber_id`` replaces an earlier
    one, with a warning.
    """
    f, records, header = _open(path, source_file)
    with f:
        sink = _Sink(PRESCRIBERS, "prescriber_id", source_file, records)
        if NPPES_COLUMNS["entity_type"] in header:
            _read_nppes(header, records, sink, include_organisations)
        else:
            _read_prescriber_csv(header, records, sink)
    return sink.finish()


def _read_nppes(header: list[str], records: _Records, sink: _Sink, include_organisations: bool) -> None:
    names = list(NPPES_COLUMNS.values()) + [n for slot in NPPES_TAXONOMY_SLOTS for n in slot]
    missing = [n for n in names if n not in header]
    if missing:
        raise ValueError(f"{sink.source_file}: NPPES file is missing required columns: {', '.join(missing)}")
    at = {key: header.index(name) for key, name in NPPES_COLUMNS.items()}
    slots = [(header.index(code), header.index(switch)) for code, switch in NPPES_TAXONOMY_SLOTS]
    country = header.index(NPPES_COUNTRY) if NPPES_COUNTRY in header else None
    wanted = {"1", "2"} if include_organisations else {"1"}
    skipped = {"2": 0, "": 0}
    for fields in _data(records, sink, len(header)):
        entity = fields[at["entity_type"]].strip()
        if entity not in wanted:
            if entity in skipped:
                skipped[entity] += 1
            else:
                sink.warn("Entity Type Code", "entity type is not 1 or 2", REJECTED)
            continue
        npi = fields[at["npi"]].strip()
        if not npi_is_valid(npi):
            sink.warn("npi", _npi_problem(npi) + "; NPPES has no DEA to fall back on", REJECTED)
            continue
        taxonomy = _primary_taxonomy(fields, slots)
        zip5, zip_problem = _zip5(fields[at["zip"]])
        if country is not None and fields[country].strip().upper() not in ("", "US"):
            zip5, zip_problem = None, None  # a foreign postal code is not a ZIP, and not an error
        if zip_problem:
            sink.warn("zip", zip_problem)
        person = entity == "1"
        sink.add(
            {
                "prescriber_id": npi,
                "npi": npi,
                "last_name": _text(fields[at["last_name"] if person else at["organization"]]),
                "first_name": _text(fields[at["first_name"]]) if person else None,
                "credential": _text(fields[at["credential"]]),
                "taxonomy_code": taxonomy,
                "specialty": _taxonomy_specialty(taxonomy, sink),
                "address": _text(fields[at["address"]]),
                "city": _text(fields[at["city"]]),
                "state": _text(fields[at["state"]].upper()),
                "zip": zip5,
                "source": "nppes",
            }
        )
    if skipped["2"] or skipped[""]:
        sink.rejects.append(
            Reject(
                sink.source_file, None, "Entity Type Code",
                f"skipped {skipped['2']} organisation records (entity type 2: organisations do not prescribe) "
                f"and {skipped['']} deactivated NPIs (blank entity type)",
                severity=WARNING,
            )
        )


def _read_prescriber_csv(header: list[str], records: _Records, sink: _Sink) -> None:
    at = _header_index(header, PRESCRIBER_CSV_REQUIRED, PRESCRIBER_CSV_OPTIONAL, sink.source_file)
    for fields in _data(records, sink, len(header)):
        def get(name: str) -> str:
            return fields[at[name]] if name in at else ""

        npi, dea = get("npi").strip(), get("dea").strip().upper()
        npi_ok, dea_ok = npi_is_valid(npi), dea_is_valid(dea)
        if not npi_ok and not dea_ok:
            what = f"NPI {'invalid' if npi else 'missing'} and DEA {'invalid' if dea else 'missing'}"
            sink.warn("npi", f"no valid identifier: {what}", REJECTED)
            continue
        if npi and not npi_ok:
            sink.warn("npi", _npi_problem(npi) + "; kept under the DEA")
        if dea and not dea_ok:
            sink.warn("dea", _dea_problem(dea) + "; DEA left empty")
        taxonomy = get("taxonomy_code").strip().upper() or None
        given = get("specialty").strip()
        sink.add(
            {
                "prescriber_id": npi if npi_ok else dea,
                "npi": npi if npi_ok else None,
                "dea": dea if dea_ok else None,
                "last_name": _text(get("last_name")),
                "first_name": _text(get("first_name")),
                "credential": _text(get("credential")),
                "taxonomy_code": taxonomy,
                "specialty": canonical_specialty(given) if given else _taxonomy_specialty(taxonomy, sink),
                "address": _text(get("address")),
                "city": _text(get("city")),
                **_location(get, sink),
                "source": "csv",
            }
        )


# --- pharmacies ----------------------------------------------------------------------------


def read_pharmacies(path: Path, source_file: str) -> Parsed:
    """Read a pharmacy CSV (``npi, ncpdp, dea, name, address, city, state, zip, county_fips, lat,
    lon``; optional ``pharmacy_id, chain_site_id``).

    ``pharmacy_id`` is the NPI if valid, else the 7-digit NCPDP, else the DEA if valid; with none,
    the row is rejected. A given ``pharmacy_id`` that disagrees with that rule is replaced, with a
    warning. Invalid identifiers, states, ZIPs, FIPS codes and coordinates are left empty with a
    warning. A later row with the same ``pharmacy_id`` replaces an earlier one, with a warning.
    """
    f, records, header = _open(path, source_file)
    with f:
        sink = _Sink(PHARMACIES, "pharmacy_id", source_file, records)
        at = _header_index(header, PHARMACY_CSV_REQUIRED, PHARMACY_CSV_OPTIONAL, source_file)
        for fields in _data(records, sink, len(header)):
            def get(name: str) -> str:
                return fields[at[name]] if name in at else ""

            npi, ncpdp, dea = get("npi").strip(), get("ncpdp").strip(), get("dea").strip().upper()
            npi_ok, ncpdp_ok, dea_ok = npi_is_valid(npi), ncpdp_format_ok(ncpdp), dea_is_valid(dea)
            pharmacy_id = npi if npi_ok else ncpdp if ncpdp_ok else dea if dea_ok else None
            if pharmacy_id is None:
                sink.warn("npi", "no valid identifier: no valid NPI, NCPDP or DEA", REJECTED)
                continue
            if npi and not npi_ok:
                sink.warn("npi", _npi_problem(npi) + "; NPI left empty")
            if ncpdp and not ncpdp_ok:
                sink.warn("ncpdp", "NCPDP is not 7 digits; NCPDP left empty")
            if dea and not dea_ok:
                sink.warn("dea", _dea_problem(dea) + "; DEA left empty")
            given = get("pharmacy_id").strip().upper()
            if given and given != pharmacy_id:
                sink.warn("pharmacy_id", "pharmacy_id differs from the NPI, else NCPDP, else DEA rule; the rule's id kept")
            lat, lon, problem = _coordinates(get("lat"), get("lon"))
            if problem:
                sink.warn("lat", problem)
            sink.add(
                {
                    "pharmacy_id": pharmacy_id,
                    "npi": npi if npi_ok else None,
                    "ncpdp": ncpdp if ncpdp_ok else None,
                    "dea": dea if dea_ok else None,
                    "name": _text(get("name")),
                    "address": _text(get("address")),
                    "city": _text(get("city")),
                    **_location(get, sink),
                    "lat": lat,
                    "lon": lon,
                    "chain_site_id": _text(get("chain_site_id")),
                    "source": "csv",
                }
            )
    return sink.finish()
