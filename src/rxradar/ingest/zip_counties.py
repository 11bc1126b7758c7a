"""ZIP-to-county crosswalk → the ``zip_counties`` table.

Pharmacies report patients by ZIP (PAT16), but rxradar measures travel and places hot spots by
county. The crosswalk PDMPs use is HUD's USPS ZIP Code Crosswalk (ZIP-COUNTY file: ``ZIP,
COUNTY, USPS_ZIP_PREF_CITY, USPS_ZIP_PREF_STATE, RES_RATIO, BUS_RATIO, OTH_RATIO, TOT_RATIO``;
older releases use lower-case names). It is not shipped (HUD publishes it behind a login), so
users ingest the quarter they hold; only ``ZIP`` and ``COUNTY`` are required, and a ZIP that
spans counties is placed where most of its residential addresses are (``RES_RATIO``).
"""

from __future__ import annotations

import math
from pathlib import Path

from rxradar.ingest.csv_records import RowSink, data_rows, header_index, open_csv
from rxradar.ingest.rejects import REJECTED, Parsed
from rxradar.schema import ZIP_COUNTIES

REQUIRED = ("zip", "county")
OPTIONAL = ("usps_zip_pref_state", "res_ratio")


def read_zip_counties(path: Path, source_file: str) -> Parsed:
    """Read a HUD-layout ZIP-county CSV. A row without a 5-digit ZIP or a 5-digit county FIPS is
    rejected; a ratio that is not a number between 0 and 1 is rejected too (it would misplace the
    ZIP's residents). A repeated (ZIP, county) pair keeps the later row, with a warning."""
    f, records, header = open_csv(path, source_file)
    with f:
        sink = RowSink(ZIP_COUNTIES, "zip_county", source_file, records)
        at = header_index(header, REQUIRED, OPTIONAL, source_file)
        for fields in data_rows(records, sink, len(header)):
            def get(name: str) -> str:
                return fields[at[name]].strip() if name in at else ""

            zip5, county = get("zip"), get("county")
            if len(zip5) == 4 and zip5.isdigit():
                zip5 = zip5.zfill(5)  # a spreadsheet dropped the leading zero of a New England ZIP
            if not (len(zip5) == 5 and zip5.isdigit()):
                sink.warn("zip", "ZIP is not 5 digits", REJECTED)
                continue
            if len(county) == 4 and county.isdigit():
                county = county.zfill(5)
            if not (len(county) == 5 and county.isdigit()):
                sink.warn("county", "COUNTY is not a 5-digit FIPS code", REJECTED)
                continue
            ratio = _ratio(get("res_ratio"))
            if ratio is None:
                sink.warn("res_ratio", "RES_RATIO is not a number between 0 and 1", REJECTED)
                continue
            state = get("usps_zip_pref_state").upper() or None
            sink.add({"zip_county": f"{zip5}|{county}", "zip": zip5, "county_fips": county, "state": state,
                      "res_ratio": ratio})
    return sink.finish()


def _ratio(text: str) -> float | None:
    if not text:
        return 1.0
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and 0 <= value <= 1 else None
