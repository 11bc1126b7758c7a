"""Canonical tables: every column with its type, meaning and whether it identifies a person.

The workspace stores one Parquet dataset per table declared here; ingest modules produce
Arrow tables in exactly these schemas (see :func:`empty` and :func:`conform`), and the docs
and ``rxradar tables`` are generated from the declarations.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa


@dataclass(frozen=True)
class Column:
    name: str
    type: pa.DataType
    description: str
    identified: bool = False  # names, birth dates, street addresses, phone numbers, raw IDs


@dataclass(frozen=True)
class Table:
    name: str
    grain: str
    columns: tuple[Column, ...]
    restricted: bool = False  # the whole table holds identified data

    @property
    def schema(self) -> pa.Schema:
        return pa.schema([pa.field(c.name, c.type) for c in self.columns])

    @property
    def public_columns(self) -> list[str]:
        return [c.name for c in self.columns if not c.identified]


def _cols(*specs: tuple) -> tuple[Column, ...]:
    return tuple(Column(*spec) for spec in specs)


S, D, I32, I64, F64, B = pa.string(), pa.date32(), pa.int32(), pa.int64(), pa.float64(), pa.bool_()
LIST_S = pa.list_(pa.string())

DISPENSATIONS = Table(
    "dispensations",
    "one reported fill; revisions and voids (DSP01) are resolved when the table is read",
    _cols(
        ("dispensation_id", S, "fill key: pharmacy|Rx number|refill|fill date|partial; a revise or void replaces the record with the same key"),
        ("ingest_id", I64, "manifest id of the file that reported this record"),
        ("source_file", S, "name of the submitted file"),
        ("record_number", I64, "position of the record in its file: the DSP segment number for ASAP (TH = 1)"),
        ("asap_version", S, "TH01 of the submitted file"),
        ("file_created", pa.timestamp("s"), "TH05+TH06 creation time of the submitted file; orders revisions"),
        ("reporting_status", S, "DSP01: 00 new, 01 revise, 02 void"),
        ("pharmacy_id", S, "NPI, else NCPDP, else DEA of the dispensing pharmacy"),
        ("identity_id", S, "keyed hash (HMAC-SHA256) of the patient identity as reported"),
        ("prescriber_id", S, "prescriber NPI, else DEA"),
        ("prescriber_npi", S, "PRE01"),
        ("prescriber_dea", S, "PRE02"),
        ("rx_number", S, "DSP02 prescription number"),
        ("refills_authorized", I32, "DSP04"),
        ("refill_number", I32, "DSP06: 0 original fill, n = nth refill"),
        ("partial_fill", I32, "0 not partial, n = nth partial fill (ASAP 4.1 'yes' is 1)"),
        ("written_date", D, "DSP03"),
        ("fill_date", D, "DSP05"),
        ("sold_date", D, "DSP17"),
        ("ndc_source", S, "DSP08 exactly as reported"),
        ("ndc11", S, "11-digit NDC (null when the reported form was ambiguous and unresolvable)"),
        ("quantity", F64, "DSP09 metric decimal quantity"),
        ("days_supply", I32, "DSP10"),
        ("dosage_unit", S, "DSP11: 01 each, 02 mL, 03 g"),
        ("rx_origin", S, "DSP12 transmission form of Rx origin"),
        ("payment_type", S, "DSP16 payment code: 01 cash ... 99 other"),
        ("treatment_type", S, "DSP24 (4.2A+) opioid treatment code"),
        ("diagnosis_code", S, "DSP25 (4.2A+) ICD-10"),
        ("patient_location", S, "PAT21 patient location code"),
        ("species", S, "PAT20: 01 human, 02 veterinary"),
    ),
)

# Derived by the engine from the NDC reference and the chosen MME factor table.
DISPENSATION_DERIVED = _cols(
    ("drug", S, "active opioid or benzodiazepine ingredient, lower case (e.g. oxycodone)"),
    ("drug_class", S, "opioid, benzodiazepine, moud, or other"),
    ("long_acting", B, "long-acting or extended-release opioid (CDC file LA)"),
    ("dea_schedule", S, "federal schedule from the CDC file"),
    ("strength_per_unit", F64, "strength of the controlled ingredient per dispensed unit"),
    ("strength_unit", S, "unit of strength_per_unit (MG, MCG/HR, ...)"),
    ("mme_factor", F64, "conversion factor from the selected table; null for buprenorphine"),
    ("mme_per_day", F64, "strength x quantity / days supply x factor (CDC); null when not an MME opioid"),
)

IDENTITIES = Table(
    "identities",
    "one patient identity as reported (each distinct spelling is its own identity)",
    _cols(
        ("identity_id", S, "keyed hash (HMAC-SHA256) of the normalised identity fields"),
        ("last_name", S, "PAT07", True),
        ("first_name", S, "PAT08", True),
        ("middle_name", S, "PAT09", True),
        ("name_suffix", S, "PAT11", True),
        ("birth_date", D, "PAT18", True),
        ("sex", S, "PAT19: F, M or U"),
        ("address", S, "PAT12 + PAT13", True),
        ("city", S, "PAT14", True),
        ("state", S, "PAT15"),
        ("zip", S, "PAT16, five digits"),
        ("phone", S, "PAT17", True),
        ("id_qualifier", S, "PAT02 (07 = SSN, 06 driver's licence ...)"),
        ("id_hash", S, "keyed hash of PAT01+PAT02+PAT03 (the raw patient ID is never stored)"),
        ("ingest_id", I64, "manifest id of the file that first reported it"),
    ),
    restricted=True,
)

PRESCRIBERS = Table(
    "prescribers",
    "one prescriber",
    _cols(
        ("prescriber_id", S, "NPI, else DEA"),
        ("npi", S, "National Provider Identifier"),
        ("dea", S, "DEA registration number"),
        ("last_name", S, "last name or organisation name"),
        ("first_name", S, "first name"),
        ("credential", S, "credential text (MD, DO, NP ...)"),
        ("taxonomy_code", S, "primary NUCC taxonomy code"),
        ("specialty", S, "specialty from the primary taxonomy (CMS crosswalk)"),
        ("address", S, "practice address line"),
        ("city", S, "practice city"),
        ("state", S, "practice state"),
        ("zip", S, "practice ZIP, five digits"),
        ("county_fips", S, "practice county FIPS, five digits"),
        ("source", S, "registry the row came from: nppes, csv, asap"),
        ("ingest_id", I64, "manifest id of the source file"),
    ),
)

PHARMACIES = Table(
    "pharmacies",
    "one pharmacy",
    _cols(
        ("pharmacy_id", S, "NPI, else NCPDP, else DEA"),
        ("npi", S, "NPI"),
        ("ncpdp", S, "NCPDP provider ID (7 digits)"),
        ("dea", S, "DEA registration number"),
        ("name", S, "pharmacy name"),
        ("address", S, "street address"),
        ("city", S, "city"),
        ("state", S, "state"),
        ("zip", S, "ZIP, five digits"),
        ("county_fips", S, "county FIPS, five digits"),
        ("lat", F64, "latitude"),
        ("lon", F64, "longitude"),
        ("chain_site_id", S, "PHA12 chain site ID"),
        ("source", S, "csv or asap"),
        ("ingest_id", I64, "manifest id of the source file"),
    ),
)

DEATHS = Table(
    "deaths",
    "one death record",
    _cols(
        ("death_id", S, "certificate or record id from the source"),
        ("last_name", S, "decedent last name", True),
        ("first_name", S, "decedent first name", True),
        ("middle_name", S, "middle name or initial", True),
        ("sex", S, "F, M or U"),
        ("birth_date", D, "date of birth (null when unknown)", True),
        ("death_date", D, "date of death"),
        ("age_years", I32, "age at death in completed years"),
        ("zip", S, "residence ZIP, five digits"),
        ("county_fips", S, "residence county FIPS, five digits"),
        ("state", S, "residence state"),
        ("ssn_hash", S, "keyed hash of the SSN (the SSN itself is never stored)"),
        ("underlying_cause", S, "ICD-10 underlying cause, no dot (e.g. X42)"),
        ("multiple_causes", LIST_S, "ICD-10 record-axis codes, no dot"),
        ("manner", S, "manner of death: N, A, S, H, P, C"),
        ("is_overdose", B, "underlying cause X40-X44, X60-X64, X85, Y10-Y14 (CDC/NCHS)"),
        ("intent", S, "unintentional, suicide, homicide, undetermined (overdoses only)"),
        ("is_opioid_overdose", B, "overdose with any of T40.0-T40.4, T40.6"),
        ("opioid_classes", LIST_S, "opioid classes involved: opium, heroin, natural_semisynthetic, methadone, synthetic, unspecified"),
        ("source_format", S, "csv or ije"),
        ("ingest_id", I64, "manifest id of the source file"),
    ),
)

ZIP_COUNTIES = Table(
    "zip_counties",
    "one (ZIP, county) pair of a ZIP-to-county crosswalk (HUD USPS layout); places patients, who are reported by ZIP",
    _cols(
        ("zip_county", S, "the pair's key, ZIP|county FIPS"),
        ("zip", S, "five-digit ZIP code"),
        ("county_fips", S, "county FIPS, five digits"),
        ("state", S, "USPS preferred state of the ZIP"),
        ("res_ratio", F64, "share of the ZIP's residential addresses in this county (HUD RES_RATIO); 1 when not given"),
        ("ingest_id", I64, "manifest id of the source file"),
    ),
)

REJECTS = Table(
    "rejects",
    "one rejected record or one warning about a kept record",
    _cols(
        ("ingest_id", I64, "manifest id of the source file"),
        ("source_file", S, "file name"),
        ("record_number", I64, "record ordinal in the file (DSP ordinal for ASAP, data row for CSV)"),
        ("segment", S, "ASAP segment id (e.g. DSP) or null"),
        ("segment_number", I64, "ordinal of the segment in the file"),
        ("line", I64, "1-based line of the file where the record starts"),
        ("field", S, "element or column at fault (e.g. DSP10, birth_date)"),
        ("severity", S, "rejected (record not kept) or warning (record kept)"),
        ("reason", S, "what is wrong"),
        ("raw", S, "the record's raw text", True),
    ),
    restricted=True,
)

TABLES: dict[str, Table] = {t.name: t for t in (DISPENSATIONS, IDENTITIES, PRESCRIBERS, PHARMACIES, DEATHS,
                                                ZIP_COUNTIES)}


def empty(table: Table) -> pa.Table:
    return table.schema.empty_table()


def conform(table: Table, data: pa.Table) -> pa.Table:
    """Return ``data`` with exactly ``table``'s columns and types, in order.

    Missing columns become nulls; extra columns are an error (they would be silently lost).
    """
    extra = set(data.column_names) - {c.name for c in table.columns}
    if extra:
        raise ValueError(f"{table.name}: columns not in the schema: {sorted(extra)}")
    arrays = []
    for col in table.columns:
        if col.name in data.column_names:
            arrays.append(data[col.name].cast(col.type))
        else:
            arrays.append(pa.nulls(data.num_rows, col.type))
    return pa.Table.from_arrays(arrays, schema=table.schema)
