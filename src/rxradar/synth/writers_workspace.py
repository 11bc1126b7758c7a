"""A synthetic world straight into a workspace's canonical tables (``rxradar synth --format parquet``).

No ASAP text is written: each table is built column-wise from the world, in chunks of fills, and
holds what ``rxradar ingest`` would have stored had the world's clean ASAP files, registries and
death records been ingested (tested on a small world): the same ``dispensation_id``,
``identity_id``, dates, NDCs and quantities. Identities are hashed once per identity variant,
never per fill. Everything goes in as one ingest of kind ``synthetic`` (atomic, and a no-op when
the same world is written again).

Differences from ingesting files: ``record_number`` is empty (there is no file), no faults are
planted, ``source_file``/``file_created``/``asap_version`` name the weekly file the pharmacy would
have sent, deaths carry ``source_format`` 'synthetic', and each prescriber row holds what NPPES
and the ASAP PRE segments give together (source 'nppes', with DEA and county).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rxradar.codes import dea_is_valid, npi_is_valid, ssn_is_valid
from rxradar.ingest.deaths import age_in_years, deaths_table
from rxradar.privacy import Pseudonymiser, keyed_hashes
from rxradar.reference.taxonomy import specialty_for
from rxradar.schema import DISPENSATIONS, IDENTITIES, PHARMACIES, PRESCRIBERS, ZIP_COUNTIES, conform
from rxradar.synth.submissions import (
    KeyIndex, created_seconds, epoch_days, format_dates, iso_week_label, patient_fields, pharmacy_reporting,
    week_start,
)
from rxradar.synth.world import World
from rxradar.synth.writers_other import death_records, zip_county_crosswalk
from rxradar.workspace import IngestTransaction, Workspace, file_sha256

log = logging.getLogger(__name__)

KIND = "synthetic"
CHUNK_FILLS = 5_000_000
# What every synthetic pharmacy reports in the elements rxradar keeps (see writers_asap).
CONSTANTS = {"reporting_status": "00", "dosage_unit": "01", "rx_origin": "05", "patient_location": "01",
             "species": "01"}


def write_workspace(world: World, workspace: Path) -> dict[str, int]:
    """Write the world's canonical tables into the workspace at ``workspace`` (created if new).

    Returns rows written per table (those of the earlier ingest when this world is already there).
    """
    with Workspace(workspace) as ws, ws.writer_lock():
        source = ws.scratch_dir / f"synthetic-{world.state}-seed{world.seed}.json"
        ws.scratch_dir.mkdir(parents=True, exist_ok=True)
        source.write_text(_description(world))
        try:
            sha = file_sha256(source)
            prior = ws.prior_ingest(KIND, sha)
            if prior is not None:
                row = next(m for m in ws.manifest() if m["ingest_id"] == prior.ingest_id)
                return json.loads(row["rows_written"] or "{}")
            tx = ws.begin(KIND, source, sha)
            try:
                _write(world, tx, ws)
                rows = tx.commit(f"synthetic {world.state}, seed {world.seed}")
            except BaseException as exc:
                tx.abort(f"synthetic world not written: {exc}")
                raise
        finally:
            source.unlink(missing_ok=True)
        ws.audit("synth", "write_workspace", source.name, {"ingest_id": tx.ingest_id, "rows": rows})
    return rows


def _description(world: World) -> str:
    """What identifies the world: state, seed, sizes and cheap checksums of the fills."""
    fills = world.fills
    checksums = {}
    if fills.num_rows:
        checksums = {"fill_key": pc.sum(fills["fill_key"]).as_py(), "quantity": pc.sum(fills["quantity"]).as_py(),
                     "fill_date": int(epoch_days(fills["fill_date"]).sum(dtype=np.int64))}
    return json.dumps({"state": world.state, "seed": world.seed, "notes": world.notes, "checksums": checksums,
                       "rows": {name: getattr(world, name).num_rows for name in
                                ("persons", "identity_variants", "prescribers", "pharmacies", "fills", "deaths")}},
                      sort_keys=True, default=str, indent=1)


def _write(world: World, tx: IngestTransaction, ws: Workspace) -> None:
    pf = patient_fields(world)
    identity_id, id_hash = keyed_hashes(ws.key, pf["identity_key"]), keyed_hashes(ws.key, pf["id_key"])
    used = _write_dispensations(world, tx, identity_id)
    _write_identities(pf, identity_id, id_hash, used, tx)
    _write_providers(world, tx)
    if world.deaths.num_rows:
        tx.write("deaths", _deaths(world, Pseudonymiser(ws.key)))
    tx.records_read = world.fills.num_rows + world.deaths.num_rows


def _write_dispensations(world: World, tx: IngestTransaction, identity_id: pa.Array) -> np.ndarray:
    """All fills, chunk by chunk; returns which identity variants were reported."""
    rep = pharmacy_reporting(world.pharmacies)
    pharmacy_id, prefix, version = (pa.array(x, pa.string()) for x in (rep.pharmacy_id, rep.prefix, rep.version))
    pharmacy_key = np.asarray(world.pharmacies["pharmacy_key"].to_numpy(zero_copy_only=False), dtype=np.int64)
    prescriber_id = pa.array([_prescriber_id(p) for p in world.prescribers.select(["npi", "dea"]).to_pylist()],
                             pa.string())
    pr = world.prescribers
    pharmacy_rows = KeyIndex(world.pharmacies["pharmacy_key"], "pharmacy")
    prescriber_rows = KeyIndex(pr["prescriber_key"], "prescriber")
    variant_rows = KeyIndex(world.identity_variants["variant_id"], "identity variant")
    used = np.zeros(world.identity_variants.num_rows, bool)
    for start in range(0, world.fills.num_rows, CHUNK_FILLS):
        fills = world.fills.slice(start, CHUNK_FILLS)
        ph = pa.array(pharmacy_rows.rows(fills["pharmacy_key"]))
        prescriber = pa.array(prescriber_rows.rows(fills["prescriber_key"]))
        variant = variant_rows.rows(fills["variant_id"])
        used[variant] = True
        monday = week_start(epoch_days(fills["fill_date"]))
        weeks, week_of = np.unique(monday, return_inverse=True)
        labels = pa.array([iso_week_label(int(m)) for m in weeks], pa.string()).take(pa.array(week_of.reshape(-1)))
        created = created_seconds(world.seed, pharmacy_key[ph.to_numpy(zero_copy_only=False)], monday)
        pid = pharmacy_id.take(ph)
        data = {
            "dispensation_id": pc.binary_join_element_wise(
                pid, fills["rx_number"], pc.cast(fills["refill_number"], pa.string()),
                format_dates(fills["fill_date"], "%Y-%m-%d"), pc.cast(fills["partial_fill"], pa.string()), "|"),
            "source_file": pc.binary_join_element_wise(prefix.take(ph), "_", labels, ".asap", ""),
            "asap_version": version.take(ph),
            "file_created": pa.array(created, pa.timestamp("s")),
            "pharmacy_id": pid,
            "identity_id": identity_id.take(pa.array(variant)),
            "prescriber_id": prescriber_id.take(prescriber),
            "prescriber_npi": pc.cast(pr["npi"], pa.string()).combine_chunks().take(prescriber),
            "prescriber_dea": pc.cast(pr["dea"], pa.string()).combine_chunks().take(prescriber),
            "rx_number": fills["rx_number"], "refills_authorized": fills["refills_authorized"],
            "refill_number": fills["refill_number"], "partial_fill": fills["partial_fill"],
            "written_date": fills["written_date"], "fill_date": fills["fill_date"],
            "ndc_source": fills["ndc11"], "ndc11": fills["ndc11"], "quantity": fills["quantity"],
            "days_supply": fills["days_supply"], "payment_type": fills["payment_type"],
        }
        for name, value in CONSTANTS.items():
            data[name] = pa.repeat(pa.scalar(value, pa.string()), fills.num_rows)
        tx.write("dispensations", conform(DISPENSATIONS, pa.table(data)))
    return used


def _prescriber_id(p: dict) -> str | None:
    # NPI when valid, else the DEA when valid: the rule of sql/asap_records.sql.
    npi, dea = p["npi"] or "", p["dea"] or ""
    return npi if npi_is_valid(npi) else dea if dea_is_valid(dea) else None


def _write_identities(pf: pa.Table, identity_id: pa.Array, id_hash: pa.Array, used: np.ndarray,
                      tx: IngestTransaction) -> None:
    """One row per identity reported in a fill: the lowest variant spelled that way."""
    rows = np.flatnonzero(used)
    if not len(rows):
        return
    encoded = identity_id.take(pa.array(rows)).dictionary_encode()
    _, first = np.unique(encoded.indices.to_numpy(zero_copy_only=False), return_index=True)
    keep = pa.array(rows[np.sort(first)])
    p = pf.take(keep)
    tx.write("identities", conform(IDENTITIES, pa.table({
        "identity_id": identity_id.take(keep), "last_name": p["last_name"], "first_name": p["first_name"],
        "middle_name": p["middle_name"], "birth_date": p["birth_date"], "sex": p["sex"], "address": p["address"],
        "city": p["city"], "state": p["state"], "zip": p["zip5"], "id_qualifier": p["pat02"],
        "id_hash": id_hash.take(keep),
    })))


def _write_providers(world: World, tx: IngestTransaction) -> None:
    pr = world.prescribers
    specialty = [specialty_for(code) if code else None for code in pr["taxonomy_code"].to_pylist()]
    specialty = [s or given for s, given in zip(specialty, pr["specialty"].to_pylist())]
    tx.write("prescribers", conform(PRESCRIBERS, pa.table({
        "prescriber_id": [_prescriber_id(p) for p in pr.select(["npi", "dea"]).to_pylist()],
        "npi": pr["npi"], "dea": pr["dea"], "last_name": pr["last_name"], "first_name": pr["first_name"],
        "credential": pr["credential"], "taxonomy_code": pr["taxonomy_code"], "specialty": specialty,
        "address": pr["address"], "city": pr["city"], "state": pr["state"],
        "zip": pc.utf8_slice_codeunits(pc.replace_substring(pr["zip"], "-", ""), 0, 5),
        "county_fips": pr["county_fips"], "source": pa.repeat(pa.scalar("nppes"), pr.num_rows),
    })))
    crosswalk = zip_county_crosswalk(world)
    tx.write("zip_counties", conform(ZIP_COUNTIES, pa.table({
        "zip_county": pc.binary_join_element_wise(crosswalk["ZIP"], crosswalk["COUNTY"], "|"),
        "zip": crosswalk["ZIP"], "county_fips": crosswalk["COUNTY"], "state": crosswalk["USPS_ZIP_PREF_STATE"],
        "res_ratio": crosswalk["RES_RATIO"],
    })))
    ph = world.pharmacies
    tx.write("pharmacies", conform(PHARMACIES, pa.table({
        "pharmacy_id": pharmacy_reporting(ph).pharmacy_id, "npi": ph["npi"], "ncpdp": ph["ncpdp"],
        "dea": ph["dea"], "name": ph["name"], "address": ph["address"], "city": ph["city"], "state": ph["state"],
        "zip": pc.utf8_slice_codeunits(pc.replace_substring(ph["zip"], "-", ""), 0, 5),
        "county_fips": ph["county_fips"], "lat": ph["lat"], "lon": ph["lon"],
        "chain_site_id": ph["chain_site_id"],  # what the pharmacies' own reports (PHA12) give
        "source": pa.repeat(pa.scalar("csv"), ph.num_rows),
    })))


def _deaths(world: World, pseudonymiser: Pseudonymiser) -> pa.Table:
    rows = []
    for r in death_records(world):
        digits = "".join(ch for ch in r.pop("ssn") or "" if ch.isdigit())
        r["ssn_hash"] = pseudonymiser.hash(digits) if ssn_is_valid(digits) else None
        if r["birth_date"] is not None and r["birth_date"] > r["death_date"]:
            r["birth_date"] = None  # as the death readers do: a birth after death is not kept
        if r["birth_date"] is not None:
            r["age_years"] = age_in_years(r["birth_date"], r["death_date"])
        rows.append(r)
    return deaths_table(rows, KIND)
