"""Prescriber and pharmacy registries → the canonical ``prescribers`` and ``pharmacies`` tables.

Prescribers come from the NPPES dissemination file (``npidata_pfile_*.csv``, ~9 GB, 330 quoted
columns, detected by its header) or from a simple state CSV; pharmacies from a simple CSV. Files are
read record by record with the ``csv`` module, touching only the needed columns, and rows are turned
into Arrow in fixed-size chunks, so memory holds the output table and one chunk, never the file.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path

from rxradar.codes import DEA_PATTERN, NPI_PATTERN, dea_is_valid, ncpdp_format_ok, npi_is_valid
from rxradar.ingest.csv_records import (
    DEFAULT_LIMITS,
    CsvRecords,
    RecordLimits,
    RowSink,
    data_rows,
    named_rows,
    open_csv,
)
from rxradar.ingest.place_codes import county_fips, field_value, state_code, warn_kept, zip5
from rxradar.ingest.rejects import REJECTED, WARNING, Parsed, Reject, UnreadableFile
from rxradar.reference.taxonomy import canonical_specialty, specialty_for
from rxradar.schema import PHARMACIES, PRESCRIBERS

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


# --- field rules: (value, problem), as the place-code rules (rxradar.ingest.place_codes) --------


def _text(value: str) -> str | None:
    return " ".join(value.split()) or None


def _npi_problem(value: str) -> str:
    return "NPI is not 10 digits" if not re.fullmatch(NPI_PATTERN, value) else "NPI check digit is wrong"


def _dea_problem(value: str) -> str:
    return "DEA is not 2 letters and 7 digits" if not re.fullmatch(DEA_PATTERN, value) else "DEA check digit is wrong"


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


def _taxonomy_specialty(code: str | None, sink: RowSink) -> str | None:
    if not code:
        return None
    specialty = specialty_for(code)
    if specialty is None:
        sink.warn("taxonomy_code", "taxonomy code not in the NUCC 25.1 code set; specialty left empty")
    return specialty


def _location(get: Callable[[str], str], sink: RowSink) -> dict[str, str | None]:
    """state, zip and county_fips of a CSV row, each left empty with a warning when malformed."""
    out: dict[str, str | None] = {}
    for field, rule in (("state", state_code), ("zip", zip5), ("county_fips", county_fips)):
        out[field] = field_value(rule, get(field), sink, field)
    return out


# --- prescribers ---------------------------------------------------------------------------


def read_prescribers(path: Path, source_file: str, *, include_organisations: bool = False,
                     limits: RecordLimits = DEFAULT_LIMITS) -> Parsed:
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
    f, records, header = open_csv(path, source_file, limits)
    with f:
        sink = RowSink(PRESCRIBERS, "prescriber_id", source_file, records)
        if NPPES_COLUMNS["entity_type"] in header:
            _read_nppes(header, records, sink, include_organisations)
        else:
            _read_prescriber_csv(header, records, sink)
    return sink.finish()


def _read_nppes(header: list[str], records: CsvRecords, sink: RowSink, include_organisations: bool) -> None:
    names = list(NPPES_COLUMNS.values()) + [n for slot in NPPES_TAXONOMY_SLOTS for n in slot]
    missing = [n for n in names if n not in header]
    if missing:
        raise UnreadableFile(f"{sink.source_file}: NPPES file is missing required columns: {', '.join(missing)}")
    at = {key: header.index(name) for key, name in NPPES_COLUMNS.items()}
    slots = [(header.index(code), header.index(switch)) for code, switch in NPPES_TAXONOMY_SLOTS]
    country = header.index(NPPES_COUNTRY) if NPPES_COUNTRY in header else None
    wanted = {"1", "2"} if include_organisations else {"1"}
    skipped = {"2": 0, "": 0}
    for fields in data_rows(records, sink, len(header)):
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
        zip_code, zip_problem = zip5(fields[at["zip"]])
        if country is not None and fields[country].strip().upper() not in ("", "US"):
            zip_code, zip_problem = None, None  # a foreign postal code is not a ZIP, and not an error
        warn_kept(sink, "zip", zip_code, zip_problem)
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
                "zip": zip_code,
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


def _read_prescriber_csv(header: list[str], records: CsvRecords, sink: RowSink) -> None:
    for get in named_rows(records, sink, header, PRESCRIBER_CSV_REQUIRED, PRESCRIBER_CSV_OPTIONAL):
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


def read_pharmacies(path: Path, source_file: str, limits: RecordLimits = DEFAULT_LIMITS) -> Parsed:
    """Read a pharmacy CSV (``npi, ncpdp, dea, name, address, city, state, zip, county_fips, lat,
    lon``; optional ``pharmacy_id, chain_site_id``).

    ``pharmacy_id`` is the NPI if valid, else the 7-digit NCPDP, else the DEA if valid; with none,
    the row is rejected. A given ``pharmacy_id`` that disagrees with that rule is replaced, with a
    warning. Invalid identifiers, states, ZIPs, FIPS codes and coordinates are left empty with a
    warning. A later row with the same ``pharmacy_id`` replaces an earlier one, with a warning.
    """
    f, records, header = open_csv(path, source_file, limits)
    with f:
        sink = RowSink(PHARMACIES, "pharmacy_id", source_file, records)
        for get in named_rows(records, sink, header, PHARMACY_CSV_REQUIRED, PHARMACY_CSV_OPTIONAL):
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
