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

from rxradar.ingest.csv_records import DEFAULT_LIMITS, RecordLimits, RowSink, named_rows, open_csv
from rxradar.ingest.place_codes import county_fips, zip5
from rxradar.ingest.rejects import REJECTED, Parsed
from rxradar.schema import ZIP_COUNTIES

REQUIRED = ("zip", "county")
OPTIONAL = ("usps_zip_pref_state", "res_ratio")


def read_zip_counties(path: Path, source_file: str, limits: RecordLimits = DEFAULT_LIMITS) -> Parsed:
    """Read a HUD-layout ZIP-county CSV. ZIP and county follow the registries' rules (a value
    that lost its leading zero in a spreadsheet is restored); a row without a usable ZIP or
    county, or whose ratio is not a number between 0 and 1 (it would misplace the ZIP's
    residents), is rejected. A repeated (ZIP, county) pair keeps the later row, with a warning."""
    f, records, header = open_csv(path, source_file, limits)
    with f:
        sink = RowSink(ZIP_COUNTIES, "zip_county", source_file, records)
        for get in named_rows(records, sink, header, REQUIRED, OPTIONAL):
            zip_code, zip_problem = zip5(get("zip"))
            county, county_problem = county_fips(get("county"))
            ratio = _ratio(get("res_ratio").strip())
            if zip_code is None:
                sink.warn("zip", zip_problem or "ZIP is missing", REJECTED)
            elif county is None:
                sink.warn("county", county_problem or "COUNTY is missing", REJECTED)
            elif ratio is None:
                sink.warn("res_ratio", "RES_RATIO is not a number between 0 and 1", REJECTED)
            else:
                if zip_problem:
                    sink.warn("zip", zip_problem)
                sink.add({"zip_county": f"{zip_code}|{county}", "zip": zip_code, "county_fips": county,
                          "state": get("usps_zip_pref_state").strip().upper() or None, "res_ratio": ratio})
    return sink.finish()


def _ratio(text: str) -> float | None:
    if not text:
        return 1.0
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and 0 <= value <= 1 else None
