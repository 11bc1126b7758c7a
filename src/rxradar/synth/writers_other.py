"""Death records, registries and ``truth/`` for a synthetic world.

Deaths are written twice, as a CSV extract and as NCHS IJE records, naming the decedent as the
death's identity variant spells them (certifiers make the same mistakes pharmacies do) and
giving the person's residence. Prescribers go out in the NPPES dissemination layout, pharmacies
as the simple registry CSV rxradar reads.
"""

from __future__ import annotations

import csv
import json
import re
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import csv as pa_csv

from rxradar.icd10 import normalize_icd10
from rxradar.ingest.ije import write_deaths_ije
from rxradar.reference import data_path
from rxradar.synth.submissions import mix, patient_fields, pharmacy_reporting, positions
from rxradar.synth.world import World

DEATH_CSV_COLUMNS = ("death_id", "last_name", "first_name", "middle_name", "sex", "birth_date", "death_date",
                     "residence_zip", "residence_county_fips", "residence_state", "ssn", "underlying_cause",
                     "multiple_causes", "manner")
PHARMACY_CSV_COLUMNS = ("pharmacy_id", "npi", "ncpdp", "dea", "name", "address", "city", "state", "zip",
                        "county_fips", "lat", "lon")
_DEATH_ID = re.compile(r"([0-9]{4})([A-Z]{2})([0-9]{6})")
SALT_NPPES = 21
NPPES_INDIVIDUAL = "1"


# --- deaths -------------------------------------------------------------------------------------


def death_records(world: World) -> list[dict[str, Any]]:
    """One dict per death: the variant's name, birth date and sex; the person's residence; the
    SSN as reported (None when missing); causes normalised without dots."""
    deaths = world.deaths
    variants = world.identity_variants.take(pa.array(positions(deaths["variant_id"],
                                                               world.identity_variants["variant_id"], "variant")))
    persons = world.persons.take(pa.array(positions(deaths["person_id"], world.persons["person_id"], "person")))
    rows = []
    for d, v, p in zip(deaths.to_pylist(), variants.to_pylist(), persons.to_pylist()):
        m = _DEATH_ID.fullmatch(d["death_id"] or "")
        if m is None or int(m.group(1)) != d["death_date"].year:
            raise ValueError(f"death_id {d['death_id']!r} must be the death year, a state code and six digits "
                             "(e.g. 2023WV000123), as NCHS IJE records carry it")
        rows.append({
            "death_id": d["death_id"], "last_name": v["last_name"], "first_name": v["first_name"],
            "middle_name": v["middle_name"], "sex": v["sex"] or "U", "birth_date": v["birth_date"],
            "death_date": d["death_date"], "zip": (p["zip"] or "")[:5] or None, "county_fips": p["county_fips"],
            "state": p["state"], "ssn": d["ssn_reported"] or None,
            "underlying_cause": normalize_icd10(d["underlying_cause"] or "") or None,
            "multiple_causes": [normalize_icd10(c) for c in d["multiple_causes"] or [] if c],
            "manner": d["manner"],
        })
    return rows


def _dotted(code: str) -> str:
    return f"{code[:3]}.{code[3:]}" if len(code) > 3 else code


def write_deaths(world: World, out: Path) -> None:
    """``out/deaths.csv`` and ``out/deaths.ije``: the same deaths in both formats.

    In the CSV, causes are written with dots (T40.2) on every other row and without (T402) on
    the rest, as real extracts differ; multiple causes are separated by spaces.
    """
    out.mkdir(parents=True, exist_ok=True)
    rows = death_records(world)
    with open(out / "deaths.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(DEATH_CSV_COLUMNS)
        for i, r in enumerate(rows):
            style = _dotted if i % 2 == 0 else str
            w.writerow([r["death_id"], r["last_name"] or "", r["first_name"] or "", r["middle_name"] or "", r["sex"],
                        _iso(r["birth_date"]), _iso(r["death_date"]), r["zip"] or "", r["county_fips"] or "",
                        r["state"] or "", r["ssn"] or "", style(r["underlying_cause"] or ""),
                        " ".join(style(c) for c in r["multiple_causes"]), r["manner"] or ""])
    write_deaths_ije(rows, out / "deaths.ije")


def _iso(d: date | None) -> str:
    return d.isoformat() if d else ""


# --- registries ---------------------------------------------------------------------------------


def nppes_header() -> list[str]:
    """The 330 column names of the NPPES dissemination file (shipped: reference/data/nppes)."""
    with open(data_path("nppes", "npidata_pfile_header.csv"), newline="", encoding="utf-8") as f:
        return next(csv.reader(f))


def write_registries(world: World, out: Path) -> None:
    """``out/prescribers_nppes.csv`` (NPPES layout, every value quoted, individuals with their
    taxonomy in slot 1 marked primary), ``out/pharmacies.csv`` and ``out/zip_county.csv``."""
    out.mkdir(parents=True, exist_ok=True)
    header = nppes_header()
    at = {name: i for i, name in enumerate(header)}
    prescribers = world.prescribers.to_pylist()
    keys = np.array([p["prescriber_key"] for p in prescribers], dtype=np.int64)
    h = mix(world.seed, SALT_NPPES, keys) if len(keys) else np.zeros(0, np.uint64)
    with open(out / "prescribers_nppes.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, quoting=csv.QUOTE_ALL, lineterminator="\n")
        w.writerow(header)
        for p, hp in zip(prescribers, h.tolist()):
            enumerated = date(2005 + hp % 15, 1 + (hp >> 8) % 12, 1 + (hp >> 16) % 28)
            updated = date(enumerated.year + (hp >> 24) % (2024 - enumerated.year + 1), 1 + (hp >> 32) % 12,
                           1 + (hp >> 40) % 28)
            zip_text = (p["zip"] or "").replace("-", "")
            values = {
                "NPI": p["npi"], "Entity Type Code": NPPES_INDIVIDUAL,
                "Provider Last Name (Legal Name)": p["last_name"], "Provider First Name": p["first_name"],
                "Provider Middle Name": p["middle_name"], "Provider Credential Text": p["credential"],
                "Provider First Line Business Mailing Address": p["address"],
                "Provider Business Mailing Address City Name": p["city"],
                "Provider Business Mailing Address State Name": p["state"],
                "Provider Business Mailing Address Postal Code": zip_text,
                "Provider Business Mailing Address Country Code (If outside U.S.)": "US",
                "Provider First Line Business Practice Location Address": p["address"],
                "Provider Business Practice Location Address City Name": p["city"],
                "Provider Business Practice Location Address State Name": p["state"],
                "Provider Business Practice Location Address Postal Code": zip_text,
                "Provider Business Practice Location Address Country Code (If outside U.S.)": "US",
                "Provider Enumeration Date": enumerated.strftime("%m/%d/%Y"),
                "Last Update Date": updated.strftime("%m/%d/%Y"),
                "Provider Sex Code": p["gender"],
                "Healthcare Provider Taxonomy Code_1": p["taxonomy_code"],
                "Provider License Number_1": f"{(hp >> 44) % 100_000:05d}",
                "Provider License Number State Code_1": p["state"],
                "Healthcare Provider Primary Taxonomy Switch_1": "Y",
                "Is Sole Proprietor": "N",
            }
            row = [""] * len(header)
            for name, value in values.items():
                if name in at and value is not None:
                    row[at[name]] = value
            w.writerow(row)

    pharmacies = world.pharmacies
    ids = pharmacy_reporting(pharmacies).pharmacy_id
    with open(out / "pharmacies.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(PHARMACY_CSV_COLUMNS)
        for pid, p in zip(ids, pharmacies.to_pylist()):
            w.writerow([pid] + ["" if p[c] is None else p[c] for c in PHARMACY_CSV_COLUMNS[1:]])
    pa_csv.write_csv(zip_county_crosswalk(world), out / "zip_county.csv")


def zip_county_crosswalk(world: World) -> pa.Table:
    """The state's made-up ZIPs in the layout of HUD's USPS ZIP-COUNTY crosswalk (each synthetic
    ZIP lies wholly in one county, so every RES_RATIO is 1)."""
    counties = world.counties
    zips = counties["zips"].to_pylist()
    fips = [f for f, zs in zip(counties["fips"].to_pylist(), zips) for _ in zs]
    flat = [z for zs in zips for z in zs]
    return pa.table({"ZIP": pa.array(flat, pa.string()), "COUNTY": pa.array(fips, pa.string()),
                     "USPS_ZIP_PREF_STATE": pa.array([world.state] * len(flat), pa.string()),
                     "RES_RATIO": pa.array([1.0] * len(flat), pa.float64())})


# --- truth --------------------------------------------------------------------------------------

TRUTH_README = """\
# truth/: what really happened in this synthetic state

Everything here is known only because the state is synthetic. Use it to score rxradar: identity
resolution, death linkage, anomaly detection and ingest checks.

| file | one row per | what |
|---|---|---|
| `world.json` | - | state, seed, row counts and the generator's notes (date range, knobs) |
| `persons.parquet` | real person | true name, sex, birth date, SSN, address, county, `user_type` (none, acute, chronic, oud) |
| `identity_variants.parquet` | way a person was reported | `variant_id` -> `person_id`, the spelling used, `noise` (what differs from the truth: typo, nickname, swapped day and month, address move ...; `true identity` for the person's own), and `identity_key`: the text rxradar hashes into `identity_id` (`LAST|FIRST|M|YYYY-MM-DD|SEX|ZIP5`; `Pseudonymiser(workspace key).hash(identity_key)` gives the workspace's `identity_id`) |
| `fills.parquet` | dispensation as it happened | who, which variant the pharmacy reported, prescriber, pharmacy, Rx number, dates, NDC, quantity, days supply, payment. Fills carrying a planted ASAP fault are listed in `asap_faults.parquet` |
| `deaths.parquet` | death record | `death_id` -> `person_id`, the variant the certificate used, causes, manner, the SSN as reported (may be empty) |
| `prescribers.parquet` | prescriber | `prescriber_key`, NPI, DEA, names, taxonomy, specialty, practice county |
| `pharmacies.parquet` | pharmacy | `pharmacy_key`, NPI, NCPDP, DEA, location, ASAP version and terminator it submits with |
| `anomalies.csv` | planted anomaly | `kind` (pill_mill, disproportionate_pharmacy, doctor_shopper, overdose_cluster, treatment_desert), `entity_type`, `entity_id`, `parameters` (JSON) |
| `faults.csv` | planted ASAP fault (ASAP output only) | `file` and `record_number` (the DSP segment number, as rxradar's rejects give it), `rx_number`, `fill_key`, `fault`, `field` (the element rxradar should blame: PRE01, DSP10, DSP08; or the correction kind: resend, revise, void), `severity` (rejected, warning, or none: must produce no reject), `related_file` (the correction file, or the original of a resend), `detail` |

Identifiers in the ASAP files, registries and death records are the real-world ones in these
tables (NPI, DEA, NCPDP, death_id); `person_id`, `variant_id`, `prescriber_key`, `pharmacy_key`
and `fill_key` are the generator's own and appear in no submitted file.
"""


def write_truth(world: World, out: Path, faults: pa.Table | None = None) -> None:
    """``out/truth/``: the world's tables, the planted anomalies, the ASAP faults (``faults.csv``,
    when given: the table :func:`rxradar.synth.writers_asap.write_asap` returns) and a README."""
    truth = out / "truth"
    truth.mkdir(parents=True, exist_ok=True)
    variants = world.identity_variants.append_column("identity_key", patient_fields(world)["identity_key"])
    tables = {"persons": world.persons, "identity_variants": variants, "fills": world.fills,
              "deaths": world.deaths, "prescribers": world.prescribers, "pharmacies": world.pharmacies}
    for name, table in tables.items():
        pq.write_table(table, truth / f"{name}.parquet", compression="zstd")
    rows = {name: t.num_rows for name, t in tables.items()} | {"anomalies": world.anomalies.num_rows}
    pa_csv.write_csv(world.anomalies, truth / "anomalies.csv")
    if faults is not None:
        pa_csv.write_csv(faults, truth / "faults.csv")
        rows["faults"] = faults.num_rows
    summary = {"state": world.state, "seed": world.seed, "rows": rows, "notes": world.notes}
    (truth / "world.json").write_text(json.dumps(summary, indent=2, sort_keys=True, default=str) + "\n")
    (truth / "README.md").write_text(TRUTH_README)
