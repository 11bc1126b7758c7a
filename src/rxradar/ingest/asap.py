"""Load a prepared ASAP file into canonical tables: hierarchy, checks and pseudonymisation in SQL.

The hierarchy PHA > PAT > DSP > PRE is rebuilt from segment positions and every row-level rule
runs in the engine (``asap_records.sql``, whose rules table lists each check with its element,
severity and reason). Identifiers and NDCs are checked once per distinct value in Python.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from rxradar.engine import Engine, EngineError, hmac_pads
from rxradar.ingest.asap_checks import id_checks, ndc_checks
from rxradar.ingest.asap_prepare import BLOCK_BYTES, AsapFormatError, Header, Prepared, prepare
from rxradar.ingest.rejects import WARNING
from rxradar.schema import PHARMACIES, PRESCRIBERS, REJECTS, conform
from rxradar.workspace import IngestTransaction

# DSP13 in 4.0/4.1 is 01 = partial, 02 = not; from 4.2 it is a sequence 00, 01, 02...
LEGACY_PARTIAL_VERSIONS = ("4.0", "4.1")
SSN_QUALIFIER = "07"  # PAT02/PAT05 code for a Social Security number
SCRATCH_TABLES = ("asap_kept", "asap_rows", "asap_pat", "asap_rules", "asap_seg")

__all__ = ["AsapFormatError", "AsapSummary", "load", "prepare"]


@dataclass(frozen=True)
class AsapSummary:
    header: Header
    records: int
    zero_reports: int
    kept: int


def load(engine: Engine, prepared: Prepared, tx: IngestTransaction, key: bytes, max_days_supply: int) -> AsapSummary:
    """Parse, check and pseudonymise one prepared file into ``tx``; rejects go with it."""
    h = prepared.header
    inner, outer = hmac_pads(key)
    engine.set_variables(
        asap_version=h.version, asap_tcn=h.control_number,
        asap_created=h.created, asap_max_days=max_days_supply, asap_trim=prepared.padded,
        asap_legacy_partial=h.version in LEGACY_PARTIAL_VERSIONS, hmac_inner=inner, hmac_outer=outer,
        ingest_id=tx.ingest_id, source_file=tx.source_name,
    )
    source = tx.source_name
    try:
        with engine.file_order():
            engine.execute("asap_load", {"path": str(prepared.path), "sep": h.sep})
        engine.execute("asap_macros")
        distinct = engine.run("asap_distinct")
        values = {kind: distinct.filter(pc.equal(distinct["kind"], kind))["v"].to_pylist() for kind in ("id", "ndc")}
        engine.register("id_checks", id_checks(values["id"]))
        engine.register("ndc_checks", ndc_checks(values["ndc"]))
        engine.execute("asap_records")
        engine.execute("asap_kept")
        for table, sql in (("dispensations", "asap_dispensations"), ("identities", "asap_identities")):
            path = tx.scratch_path(table)
            tx.adopt(table, path, engine.copy_sql_to_parquet(sql, path))
        _write_providers(engine, tx)
        tx.reject(_rejects(engine, prepared, source))
        records = int(engine.scalar("SELECT count(*) FROM asap_seg WHERE c0 = 'DSP'"))
        zero = int(engine.scalar("SELECT count(*) FROM asap_rows WHERE zero_report"))
        kept = int(engine.scalar("SELECT count(*) FROM asap_kept"))
    except EngineError as exc:
        raise AsapFormatError(source, f"cannot be read as ASAP: {exc}".split("\n")[0]) from exc
    finally:
        for name in ("id_checks", "ndc_checks"):
            try:
                engine.unregister(name)
            except Exception:  # not registered if the load failed first
                pass
        engine.query("DROP VIEW IF EXISTS asap_kept")
        for table in SCRATCH_TABLES[1:]:
            engine.query(f"DROP TABLE IF EXISTS {table}")
        prepared.path.unlink(missing_ok=True)
    tx.records_read += records - zero
    return AsapSummary(h, records - zero, zero, kept)


def _write_providers(engine: Engine, tx: IngestTransaction) -> None:
    providers = engine.run("asap_providers")
    kind = providers["kind"]
    pharmacies = providers.filter(pc.equal(kind, "pharmacy"))
    prescribers = providers.filter(pc.equal(kind, "prescriber"))
    asap = lambda t: pa.array(["asap"] * t.num_rows, pa.string())  # noqa: E731
    tx.write("pharmacies", conform(PHARMACIES, pa.table({
        "pharmacy_id": pharmacies["id"], "npi": pharmacies["npi"], "ncpdp": pharmacies["ncpdp"],
        "dea": pharmacies["dea"], "name": pharmacies["name"], "address": pharmacies["address"],
        "city": pharmacies["city"], "state": pharmacies["state"], "zip": pharmacies["zip"],
        "chain_site_id": pharmacies["chain_site_id"], "source": asap(pharmacies)})))
    tx.write("prescribers", conform(PRESCRIBERS, pa.table({
        "prescriber_id": prescribers["id"], "npi": prescribers["npi"], "dea": prescribers["dea"],
        "last_name": prescribers["name"], "first_name": prescribers["first_name"],
        "address": prescribers["address"], "city": prescribers["city"], "state": prescribers["state"],
        "zip": prescribers["zip"], "source": asap(prescribers)})))


def _line(prepared: Prepared, pos: int | None) -> int | None:
    if pos is None:
        return None
    return {"position": pos + 2, "one": 1}.get(prepared.line_of_segment)


def _rejects(engine: Engine, prepared: Prepared, source: str) -> pa.Table:
    """Record problems (with the raw PAT/DSP/PRE text for rejected records) and file-level warnings."""
    problems = engine.run("asap_rejects").to_pylist()
    rejected = [p for p in problems if p["severity"] == "rejected"]
    raw = _raw_segments(prepared, {q for p in rejected for q in (p["pat_pos"], p["pos"], p["pre_pos"]) if q is not None})
    term = prepared.header.term
    rows = []
    for p in problems:
        text = None
        if p["severity"] == "rejected":
            text = term.join(raw[q] for q in (p["pat_pos"], p["pos"], p["pre_pos"]) if q is not None and q in raw)
        at = _position_at_fault(p)
        rows.append({"source_file": source, "record_number": p["record_number"], "segment": _segment_of(p["field"]),
                     "segment_number": at + 2, "line": _line(prepared, at), "field": p["field"],
                     "severity": p["severity"], "reason": p["reason"], "raw": text})
    for s in engine.run("asap_structure").to_pylist():
        rows.append({"source_file": source, "record_number": None, "segment": _segment_of(s["field"]),
                     "segment_number": None if s["pos"] is None else s["pos"] + 2, "line": _line(prepared, s["pos"]),
                     "field": s["field"], "severity": WARNING, "reason": s["reason"], "raw": None})
    return pa.Table.from_pylist(rows, schema=REJECTS.schema)


def _raw_segments(prepared: Prepared, positions: set[int]) -> dict[int, str]:
    """The segments at these positions, as the file had them, SSNs (PAT02 = 07) starred out.

    One streaming pass over the one-segment-per-line copy, counting newlines at C speed and
    splitting only the blocks that hold a wanted segment; nothing when nothing was rejected.
    """
    wanted = sorted(positions)
    out: dict[int, str] = {}
    if not wanted:
        return out
    sep = prepared.header.sep
    line, carry, i = 0, b"", 0
    with open(prepared.path, "rb") as f:
        while i < len(wanted) and (block := f.read(BLOCK_BYTES)):
            block = carry + block
            cut = block.rfind(b"\n") + 1
            block, carry = block[:cut], block[cut:]
            lines_here = block.count(b"\n")
            if wanted[i] < line + lines_here:
                split = block.split(b"\n")
                while i < len(wanted) and wanted[i] < line + lines_here:
                    out[wanted[i]] = _masked(split[wanted[i] - line].decode("utf-8", "replace"), sep)
                    i += 1
            line += lines_here
        if i < len(wanted) and carry:  # the last line had no newline
            out[wanted[i]] = _masked(carry.decode("utf-8", "replace"), sep)
    return out


def _masked(segment: str, sep: str) -> str:
    """Star out an SSN given as the patient ID (PAT02/PAT03) or the additional ID (PAT05/PAT06)."""
    elements = segment.split(sep)
    if elements[0].strip() == "PAT":
        for qualifier, value in ((2, 3), (5, 6)):
            if len(elements) > value and elements[qualifier].strip() == SSN_QUALIFIER:
                elements[value] = "*" * len(elements[value])
    return sep.join(elements)


def _position_at_fault(problem: dict) -> int:
    """The segment a problem is about: the PAT, PRE or PHA named by its element, else the DSP."""
    parent = {"PAT": "pat_pos", "PRE": "pre_pos", "PHA": "pha_pos"}.get(_segment_of(problem["field"]) or "")
    return problem[parent] if parent and problem[parent] is not None else problem["pos"]


def _segment_of(field: str) -> str | None:
    head = field.rstrip("0123456789")
    return head if head in {"TH", "IS", "PHA", "PAT", "DSP", "PRE", "TP", "TT"} else None
