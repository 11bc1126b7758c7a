"""The synthetic world: everyone and everything in a state, before any file is written.

The generator builds a :class:`World` (Arrow tables, one row per entity); the writers turn it
into what a PDMP would receive (ASAP files, death records, registries) and into ``truth/``.
Keys here are the generator's own (``person_id``, ``prescriber_key``, ...); real-world
identifiers (NPI, DEA, names) are columns, and the *reported* identities, with the noise real
pharmacies and certifiers introduce, are separate rows linked to the true person.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

S, D, I32, I64, F64, B = pa.string(), pa.date32(), pa.int32(), pa.int64(), pa.float64(), pa.bool_()

PERSONS = pa.schema([
    ("person_id", I64), ("last_name", S), ("first_name", S), ("middle_name", S), ("sex", S),
    ("birth_date", D), ("ssn", S), ("address", S), ("city", S), ("state", S), ("zip", S),
    ("county_fips", S), ("user_type", S),  # none, acute, chronic, oud
])
# One row per way a person is reported (by a pharmacy or on a death certificate); variant 0 of
# each person is the true identity.
IDENTITY_VARIANTS = pa.schema([
    ("variant_id", I64), ("person_id", I64), ("last_name", S), ("first_name", S), ("middle_name", S),
    ("sex", S), ("birth_date", D), ("address", S), ("city", S), ("zip", S), ("noise", S),
])
PRESCRIBERS = pa.schema([
    ("prescriber_key", I32), ("npi", S), ("dea", S), ("last_name", S), ("first_name", S), ("middle_name", S),
    ("credential", S), ("taxonomy_code", S), ("specialty", S), ("address", S), ("city", S), ("state", S),
    ("zip", S), ("county_fips", S), ("gender", S),
])
PHARMACIES = pa.schema([
    ("pharmacy_key", I32), ("npi", S), ("ncpdp", S), ("dea", S), ("name", S), ("address", S), ("city", S),
    ("state", S), ("zip", S), ("county_fips", S), ("lat", F64), ("lon", F64),
    ("chain_site_id", S),  # a chain store's number in its chain (PHA12); null for an independent
    ("asap_version", S), ("terminator", S), ("software", S),
])
# One row per dispensation as it happened (before any reporting fault).
FILLS = pa.schema([
    ("fill_key", I64), ("person_id", I64), ("variant_id", I64), ("prescriber_key", I32), ("pharmacy_key", I32),
    ("rx_number", S), ("written_date", D), ("fill_date", D), ("refill_number", I32), ("refills_authorized", I32),
    ("partial_fill", I32), ("ndc11", S), ("quantity", F64), ("days_supply", I32), ("payment_type", S),
])
DEATHS = pa.schema([
    ("death_id", S), ("person_id", I64), ("variant_id", I64), ("death_date", D), ("underlying_cause", S),
    ("multiple_causes", pa.list_(S)), ("manner", S), ("ssn_reported", S),
])
# Every planted anomaly: kind (pill_mill, disproportionate_pharmacy, doctor_shopper,
# overdose_cluster, treatment_desert), the entity it concerns and its parameters as JSON.
ANOMALIES = pa.schema([
    ("kind", S), ("entity_type", S), ("entity_id", S), ("parameters", S),
])


@dataclass
class World:
    state: str
    seed: int
    persons: pa.Table
    identity_variants: pa.Table
    prescribers: pa.Table
    pharmacies: pa.Table
    fills: pa.Table
    deaths: pa.Table
    anomalies: pa.Table
    counties: pa.Table
    notes: dict = field(default_factory=dict)
