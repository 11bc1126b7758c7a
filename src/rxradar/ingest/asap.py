"""Load ASAP files into canonical tables: hierarchy, checks and pseudonymisation in SQL.

Files are scanned (``asap_scan``) into one table per segment kind, each row knowing its place in
the hierarchy PHA > PAT > DSP > PRE; every row-level rule then runs in the engine
(``asap_records.sql``, whose rules table lists each check with its element, severity and reason).
Identifiers and NDCs are checked once per distinct value in Python.
"""

from __future__ import annotations

import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from rxradar.durable import unreadable_reason
from rxradar.engine import Engine, EngineError
from rxradar.ingest.asap_checks import id_checks, ndc_checks
from rxradar.ingest.asap_scan import (
    TABLES,
    AsapFormatError,
    BatchScanner,
    Header,
    Scanned,
    raw_segments,
    schema,
)
from rxradar.ingest.rejects import REJECTED, WARNING
from rxradar.privacy import keyed_hash_function, mask_ssn_shaped
from rxradar.schema import PHARMACIES, PRESCRIBERS, REJECTS, conform
from rxradar.settings import Settings
from rxradar.workspace import IngestTransaction, Member

# DSP13 in 4.0/4.1 is 01 = partial, 02 = not; from 4.2 it is a sequence 00, 01, 02...
LEGACY_PARTIAL_VERSIONS = ("4.0", "4.1")
SSN_QUALIFIER = "07"  # PAT02/PAT05 code for a Social Security number
SCRATCH_TABLES = ("asap_rules", "asap_patients", "asap_rows", *(f"asap_{name}" for name in TABLES))
# Records are checked in slices of at most this many DSP rows per GB of engine memory: a batch of
# 16M records checked whole needed 2 GB and failed at 1 GB (the engine's hash tables over every
# record at once), so a slice leaves room for the rest at any size of file.
DSP_ROWS_PER_GB = 2_000_000
MIN_SLICE_ROWS = 100_000  # however small the limit: a slice has fixed costs

__all__ = ["AsapFormatError", "AsapSummary", "Batch", "load", "orphaned_corrections"]


@dataclass(frozen=True)
class AsapSummary:
    header: Header
    records: int
    zero_reports: int
    kept: int
    # Why the file as a whole is refused although it could be read: nothing in it fits (its
    # rejects are not kept then; this one reason is). None for a file that is ingested.
    failure: str | None = None
    orphaned_corrections: int = 0  # revises and voids whose original is not (yet) in the workspace


FILES_SCHEMA = pa.schema([("file_no", pa.int32()), ("ingest_id", pa.int64()), ("source_file", pa.string()),
                          ("asap_version", pa.string()), ("file_created", pa.timestamp("s")),
                          ("legacy_partial", pa.bool_()), ("tcn", pa.string()), ("segments", pa.int32()),
                          ("nul_bytes", pa.int64())])


class Batch:
    """The segment tables of a batch of files, filled one file at a time.

    Rows stay in the scanner until they pass 1/HELD_SHARE of the engine's memory limit in text,
    then move into the engine's own tables, which spill to disk, so memory stays bounded on a file
    of any size; a batch that never gets there is handed to the engine as Arrow, read in place.
    """

    HELD_SHARE = 16

    def __init__(self, engine: Engine, memory_limit: int):
        self.engine = engine
        self.memory_limit = memory_limit
        self._in_engine = False
        self._scanner = BatchScanner(self._move_to_engine, memory_limit // self.HELD_SHARE)

    def _move_to_engine(self, taken: dict[str, pa.Table]) -> None:
        if not self._in_engine:
            for name in TABLES:
                self.engine.create_table(f"asap_{name}", schema(name))
            self._in_engine = True
        for name in TABLES:
            self.engine.append(f"asap_{name}", taken[name])

    def add(self, path: Path, source: str, file_no: int) -> Scanned:
        """Scan one file in; on AsapFormatError nothing of it stays in the batch."""
        try:
            return self._scanner.scan(path, source, file_no)
        except AsapFormatError:  # rare: what was scanned goes to the engine, which drops this file
            self._move_to_engine(self._scanner.take())
            for name in TABLES:
                self.engine.query(f"DELETE FROM asap_{name} WHERE file_no = ?", [file_no])
            raise

    def expose(self) -> None:
        """Make every segment table visible to the engine as ``asap_<name>``."""
        taken = self._scanner.take()
        if self._in_engine:
            self._move_to_engine(taken)
            return
        for name in TABLES:
            self.engine.register(f"asap_{name}", taken[name])

    def close(self) -> None:
        for view in ("asap_kept", "asap_rows_of_slice"):
            self.engine.query(f"DROP VIEW IF EXISTS {view}")
        for name in TABLES:
            try:
                self.engine.unregister(f"asap_{name}")
            except Exception:  # never registered
                pass
        for table in SCRATCH_TABLES:
            self.engine.drop(table)
        self._in_engine = False


def load(engine: Engine, batch: Batch, files: list[tuple[Scanned, Member]], tx: IngestTransaction, key: bytes,
         settings: Settings) -> dict[int, AsapSummary]:
    """Check and pseudonymise the scanned files of a batch into ``tx``.

    Returns a summary per ingest id; rejects and warnings go into ``tx`` with their file, except
    for a file none of whose records fit (its summary's ``failure`` says why; the caller fails it).
    """
    batch.expose()
    engine.set_variables(asap_max_days=settings.max_days_supply, asap_max_quantity=settings.max_quantity,
                         asap_earliest_date=settings.earliest_asap_date,
                         asap_future_days=settings.max_days_after_file, asap_max_age_years=settings.max_age_years)
    engine.register("asap_files", pa.Table.from_pylist([
        {"file_no": s.file_no, "ingest_id": m.ingest_id, "source_file": m.source_name, "asap_version": s.header.version,
         "file_created": s.header.created, "legacy_partial": s.header.version in LEGACY_PARTIAL_VERSIONS,
         "tcn": s.header.control_number, "segments": s.segments, "nul_bytes": s.nul_bytes} for s, m in files],
        schema=FILES_SCHEMA))
    try:
        engine.execute("asap_macros")
        distinct = engine.run("asap_distinct")
        values = {kind: distinct.filter(pc.equal(distinct["kind"], kind))["v"].to_pylist() for kind in ("id", "ndc")}
        engine.register("id_checks", id_checks(values["id"]))
        engine.register("ndc_checks", ndc_checks(values["ndc"]))
        with keyed_hash_function(engine, key):
            engine.execute("asap_patients")
        engine.execute("asap_records")
        _check_records(engine, max(MIN_SLICE_ROWS, DSP_ROWS_PER_GB * batch.memory_limit // 2**30))
        engine.execute("asap_kept")
        counts = {r["ingest_id"]: r for r in engine.run("asap_file_counts").to_pylist()}
        orphans: dict[int, int] = {}
        for table, sql in (("dispensations", "asap_dispensations"), ("identities", "asap_identities")):
            path = tx.scratch_path(table)
            engine.copy_sql_to_parquet(sql, path)
            if table == "dispensations":
                orphans = _orphaned_corrections(engine, path, tx.ws.live_files().get("dispensations", []))
            tx.adopt(table, path, engine.rows_by_ingest(path))
        _write_providers(engine, tx)
        problems = _rejects(engine, {m.ingest_id: s for s, m in files})
        failures = _failures(counts, problems)
        if failures:  # their rejects stay out: the one reason of the failure says it
            problems = problems.filter(pc.invert(pc.is_in(problems["ingest_id"], pa.array(list(failures)))))
        tx.reject(problems)
    except EngineError as exc:
        # The engine's own message may quote a value of the file: only its kind is told.
        raise AsapFormatError(files[0][1].source_name if len(files) == 1 else f"batch of {len(files)} files",
                              f"cannot be read as ASAP: the engine failed on its records ({type(exc).__name__})"
                              ) from exc
    finally:
        for name in ("id_checks", "ndc_checks", "asap_files"):
            try:
                engine.unregister(name)
            except Exception:  # not registered if the load failed first
                pass
    summaries = {}
    for s, m in files:
        c = counts[m.ingest_id]
        m.records_read += c["records"]
        summaries[m.ingest_id] = AsapSummary(s.header, c["records"], c["zero_reports"], c["kept"],
                                             failures.get(m.ingest_id), orphans.get(m.ingest_id, 0))
    return summaries


def _failures(counts: dict[int, dict], problems: pa.Table) -> dict[int, str]:
    """Files that could be read but of which nothing fits: records and none kept, or no record and
    no zero report but segments that are not ASAP (a binary file behind a valid header). A zero
    report, or a file of only its header and trailers, is a valid file."""
    failures = {}
    for ingest_id, c in counts.items():
        if c["kept"] or c["zero_reports"]:
            continue
        if c["records"]:
            reasons = Counter((p["field"], p["reason"]) for p in problems.to_pylist()
                              if p["ingest_id"] == ingest_id and p["severity"] == REJECTED)
            (field, reason), _ = reasons.most_common(1)[0]
            failures[ingest_id] = (f"none of its {c['records']:,} records could be kept; most often {field}: "
                                   f"{reason}")
        elif c["unknown_segments"]:
            failures[ingest_id] = (f"no ASAP records: {c['unknown_segments']:,} segment(s) after the header are "
                                   "not ASAP segments (not an ASAP file?)")
    return failures


def _orphaned_corrections(engine: Engine, batch: Path, stored: list[str]) -> dict[int, int]:
    """Revises and voids of this batch (Parquet file ``batch``) whose original report is neither in
    the batch nor in the workspace (``stored`` files), per ingest id. They are kept: an original
    that arrives later is still revised or voided (canonical_views.sql)."""
    engine.view_over("fills_asked", [batch])
    try:
        if not engine.scalar("SELECT count(*) FROM fills_asked WHERE reporting_status IN ('01', '02')"):
            return {}
        engine.view_over("fills_known", [batch, *stored])
        return {r["ingest_id"]: r["corrections"] for r in _run_orphaned_corrections(engine)}
    finally:
        engine.query("DROP VIEW IF EXISTS fills_asked")


def _check_records(engine: Engine, slice_rows: int) -> None:
    """Table ``asap_rows`` from view ``asap_rows_of_slice`` (asap_records.sql), one slice of at
    most ``slice_rows`` DSP rows at a time (asap_slices.sql). A batch without records is one empty
    slice, so the table always exists."""
    slices = engine.run("asap_slices", {"slice_rows": slice_rows}).to_pylist()
    for i, s in enumerate(slices or [{"dsp_from": 0, "dsp_to": -1, "pat_from": 0, "pat_to": -1}]):
        engine.set_variables(**{f"asap_{k}": v for k, v in s.items()})
        (engine.insert if i else engine.materialize)("asap_rows", "SELECT * FROM asap_rows_of_slice")


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


def orphaned_corrections(engine: Engine) -> list[dict]:
    """Revises and voids in the workspace as it stands (an engine over its tables) whose original
    report has not arrived: (ingest_id, source_file, corrections) per file."""
    engine.define_view("fills_asked", "SELECT * FROM dispensations_records")
    engine.define_view("fills_known", "SELECT * FROM dispensations_records")
    try:
        return _run_orphaned_corrections(engine)
    finally:
        engine.query("DROP VIEW IF EXISTS fills_asked")


def _run_orphaned_corrections(engine: Engine) -> list[dict]:
    """orphaned_corrections.sql over views fills_asked and fills_known, which it then drops."""
    try:
        return engine.run("orphaned_corrections").to_pylist()
    finally:
        engine.query("DROP VIEW IF EXISTS fills_known")


def _rejects(engine: Engine, scanned: dict[int, Scanned]) -> pa.Table:
    """Record problems (with the raw PAT/DSP/PRE text for rejected records) and file-level warnings."""
    problems = engine.run("asap_rejects").to_pylist()
    rejected = [p for p in problems if p["severity"] == "rejected"]
    raw: dict[int, dict[tuple[int, int], str]] = {}
    for ingest_id in {p["ingest_id"] for p in rejected}:
        spans = {(p[f"{s}_off"], p[f"{s}_end"]) for p in rejected if p["ingest_id"] == ingest_id
                 for s in ("pat", "dsp", "pre") if p[f"{s}_off"] is not None}
        try:
            raw[ingest_id] = raw_segments(scanned[ingest_id], spans)
        except (OSError, EOFError, zlib.error) as exc:  # changed or gone since it was scanned
            file = scanned[ingest_id]
            raise AsapFormatError(file.path.name, unreadable_reason(exc)) from exc
    rows = []
    for p in problems:
        text = None
        if p["severity"] == "rejected":
            file = scanned[p["ingest_id"]]
            text = mask_ssn_shaped(file.header.term.join(
                _masked(raw[p["ingest_id"]][(p[f"{s}_off"], p[f"{s}_end"])], file.header.sep)
                for s in ("pat", "dsp", "pre") if p[f"{s}_off"] is not None))
        segment_number, line = _place_at_fault(p)
        rows.append({"ingest_id": p["ingest_id"], "source_file": p["source_file"], "record_number": p["record_number"],
                     "segment": _segment_of(p["field"]), "segment_number": segment_number, "line": line,
                     "field": p["field"], "severity": p["severity"], "reason": p["reason"], "raw": text})
    for s in engine.run("asap_structure").to_pylist():
        rows.append({"ingest_id": s["ingest_id"], "source_file": s["source_file"], "record_number": None,
                     "segment": _segment_of(s["field"]), "segment_number": s["segment_number"], "line": s["line"],
                     "field": s["field"], "severity": WARNING, "reason": s["reason"], "raw": None})
    return pa.Table.from_pylist(rows, schema=REJECTS.schema)


def _masked(segment: str, sep: str) -> str:
    """Star out an SSN given as the patient ID (PAT02/PAT03) or the additional ID (PAT05/PAT06)."""
    elements = segment.split(sep)
    if elements[0].strip() == "PAT":
        for qualifier, value in ((2, 3), (5, 6)):
            if len(elements) > value and elements[qualifier].strip().zfill(2) == SSN_QUALIFIER:
                elements[value] = "*" * len(elements[value])
    return sep.join(elements)


def _place_at_fault(problem: dict) -> tuple[int, int]:
    """Segment number and line of the segment a problem is about: the PAT, PRE or PHA named by
    its element, else the DSP."""
    parent = {"PAT": "pat", "PRE": "pre", "PHA": "pha"}.get(_segment_of(problem["field"]) or "")
    if parent and problem[f"{parent}_pos"] is not None:
        return problem[f"{parent}_pos"], problem[f"{parent}_line"]
    return problem["pos"], problem["line"]


def _segment_of(field: str) -> str | None:
    head = field.rstrip("0123456789")
    return head if head in {"TH", "IS", "PHA", "PAT", "DSP", "PRE", "TP", "TT"} else None
