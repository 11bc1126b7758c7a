"""Load prepared ASAP files into canonical tables: hierarchy, checks and pseudonymisation in SQL.

The hierarchy PHA > PAT > DSP > PRE is rebuilt from segment positions and every row-level rule
runs in the engine (``asap_records.sql``, whose rules table lists each check with its element,
severity and reason). Identifiers and NDCs are checked once per distinct value in Python.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from rxradar.engine import Engine, EngineError, hmac_pads
from rxradar.ingest.asap_checks import id_checks, ndc_checks
from rxradar.ingest.asap_prepare import BLOCK_BYTES, AsapFormatError, Header, Prepared, peek_header, prepare
from rxradar.ingest.rejects import WARNING
from rxradar.schema import PHARMACIES, PRESCRIBERS, REJECTS, conform
from rxradar.workspace import IngestTransaction, Member

# DSP13 in 4.0/4.1 is 01 = partial, 02 = not; from 4.2 it is a sequence 00, 01, 02...
LEGACY_PARTIAL_VERSIONS = ("4.0", "4.1")
SSN_QUALIFIER = "07"  # PAT02/PAT05 code for a Social Security number
SCRATCH_TABLES = ("asap_kept", "asap_rows", "asap_pat", "asap_rules", "asap_seg")

__all__ = ["AsapFormatError", "AsapSummary", "load", "peek_header", "prepare"]


@dataclass(frozen=True)
class AsapSummary:
    header: Header
    records: int
    zero_reports: int
    kept: int


FILES_SCHEMA = pa.schema([("file_no", pa.int32()), ("ingest_id", pa.int64()), ("source_file", pa.string()),
                          ("asap_version", pa.string()), ("file_created", pa.timestamp("s")),
                          ("legacy_partial", pa.bool_()), ("tcn", pa.string())])


def load(engine: Engine, batch: Path, files: list[tuple[Prepared, Member]], tx: IngestTransaction, key: bytes,
         max_days_supply: int) -> dict[int, AsapSummary]:
    """Parse, check and pseudonymise a batch of prepared files (one separator) into ``tx``.

    Returns a summary per ingest id; rejects and warnings go into ``tx`` with their file.
    """
    sep = files[0][0].header.sep
    inner, outer = hmac_pads(key)
    engine.set_variables(asap_max_days=max_days_supply, asap_trim=any(p.padded for p, _ in files),
                         hmac_inner=inner, hmac_outer=outer)
    engine.register("asap_files", pa.Table.from_pylist([
        {"file_no": p.file_no, "ingest_id": m.ingest_id, "source_file": m.source_name, "asap_version": p.header.version,
         "file_created": p.header.created, "legacy_partial": p.header.version in LEGACY_PARTIAL_VERSIONS,
         "tcn": p.header.control_number} for p, m in files], schema=FILES_SCHEMA))
    try:
        with engine.file_order():
            engine.execute("asap_load", {"path": str(batch), "sep": sep})
        engine.execute("asap_macros")
        distinct = engine.run("asap_distinct")
        values = {kind: distinct.filter(pc.equal(distinct["kind"], kind))["v"].to_pylist() for kind in ("id", "ndc")}
        engine.register("id_checks", id_checks(values["id"]))
        engine.register("ndc_checks", ndc_checks(values["ndc"]))
        engine.execute("asap_records")
        engine.execute("asap_kept")
        for table, sql in (("dispensations", "asap_dispensations"), ("identities", "asap_identities")):
            path = tx.scratch_path(table)
            engine.copy_sql_to_parquet(sql, path)
            tx.adopt(table, path, engine.rows_by_ingest(path))
        _write_providers(engine, tx)
        tx.reject(_rejects(engine, batch, {m.ingest_id: p for p, m in files}, sep, files[0][0].header.term))
        counts = {r["ingest_id"]: r for r in engine.run("asap_file_counts").to_pylist()}
    except EngineError as exc:
        raise AsapFormatError(files[0][1].source_name if len(files) == 1 else f"batch of {len(files)} files",
                              f"cannot be read as ASAP: {exc}".split("\n")[0]) from exc
    finally:
        for name in ("id_checks", "ndc_checks", "asap_files"):
            try:
                engine.unregister(name)
            except Exception:  # not registered if the load failed first
                pass
        engine.query("DROP VIEW IF EXISTS asap_kept")
        for table in SCRATCH_TABLES[1:]:
            engine.query(f"DROP TABLE IF EXISTS {table}")
    summaries = {}
    for p, m in files:
        c = counts[m.ingest_id]
        m.records_read += c["records"]
        summaries[m.ingest_id] = AsapSummary(p.header, c["records"], c["zero_reports"], c["kept"])
    return summaries


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
        "chain_site_id": pharmacies["chain_site_id"], "source": asap(pharmacies),
        "ingest_id": pharmacies["ingest_id"]})))
    tx.write("prescribers", conform(PRESCRIBERS, pa.table({
        "prescriber_id": prescribers["id"], "npi": prescribers["npi"], "dea": prescribers["dea"],
        "last_name": prescribers["name"], "first_name": prescribers["first_name"],
        "address": prescribers["address"], "city": prescribers["city"], "state": prescribers["state"],
        "zip": prescribers["zip"], "source": asap(prescribers), "ingest_id": prescribers["ingest_id"]})))


def _line(prepared: Prepared, segment_number: int | None) -> int | None:
    if segment_number is None:
        return None
    return {"position": segment_number, "one": 1}.get(prepared.line_of_segment)


def _rejects(engine: Engine, batch: Path, prepared: dict[int, Prepared], sep: str, term: str) -> pa.Table:
    """Record problems (with the raw PAT/DSP/PRE text for rejected records) and file-level warnings."""
    problems = engine.run("asap_rejects").to_pylist()
    rejected = [p for p in problems if p["severity"] == "rejected"]
    raw = _raw_segments(batch, sep, {q for p in rejected for q in (p["pat_pos"], p["pos"], p["pre_pos"])
                                     if q is not None})
    rows = []
    for p in problems:
        text = None
        if p["severity"] == "rejected":
            text = term.join(raw[q] for q in (p["pat_pos"], p["pos"], p["pre_pos"]) if q is not None and q in raw)
        segment_number = _position_at_fault(p) - p["file_pos"] + 1
        rows.append({"ingest_id": p["ingest_id"], "source_file": p["source_file"], "record_number": p["record_number"],
                     "segment": _segment_of(p["field"]), "segment_number": segment_number,
                     "line": _line(prepared[p["ingest_id"]], segment_number), "field": p["field"],
                     "severity": p["severity"], "reason": p["reason"], "raw": text})
    for s in engine.run("asap_structure").to_pylist():
        rows.append({"ingest_id": s["ingest_id"], "source_file": s["source_file"], "record_number": None,
                     "segment": _segment_of(s["field"]), "segment_number": s["segment_number"],
                     "line": _line(prepared[s["ingest_id"]], s["segment_number"]), "field": s["field"],
                     "severity": WARNING, "reason": s["reason"], "raw": None})
    return pa.Table.from_pylist(rows, schema=REJECTS.schema)


def _raw_segments(batch: Path, sep: str, positions: set[int]) -> dict[int, str]:
    """The segments at these positions, as the file had them, SSNs (PAT02 = 07) starred out.

    One streaming pass over the batch file (line k is row k), counting newlines at C speed and
    splitting only the blocks that hold a wanted segment; nothing when nothing was rejected.
    """
    wanted = sorted(positions)
    out: dict[int, str] = {}
    if not wanted:
        return out
    line, carry, i = 0, b"", 0
    with open(batch, "rb") as f:
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
