"""Read ASAP PDMP submission files (4.1, 4.2, 4.2A, 4.2B, 5.0) into canonical tables.

Delimiters come from the file itself (formats.md §1.2): the element separator is the character
after ``TH``; the segment terminator is TH09. The engine's parallel CSV reader splits the file
(one segment per line, elements on the separator); the hierarchy PHA > PAT > DSP > PRE is
rebuilt from segment positions, and every row-level rule runs in SQL (``asap_records.sql``).
Every file (any layout: newline after each terminator or none, CRLF, gzip, a byte-order mark)
is first streamed into that one-segment-per-line form in the workspace's scratch space.
"""

from __future__ import annotations

import codecs
import gzip
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO

import pyarrow as pa
import pyarrow.compute as pc

from rxradar.engine import Engine, EngineError, hmac_pads
from rxradar.ingest.asap_checks import id_checks, ndc_checks
from rxradar.ingest.rejects import WARNING
from rxradar.schema import PHARMACIES, PRESCRIBERS, REJECTS, conform
from rxradar.workspace import IngestTransaction

SUPPORTED_VERSIONS = ("4.0", "4.1", "4.2", "4.2A", "4.2B", "5.0")
LEGACY_PARTIAL_VERSIONS = ("4.0", "4.1")
SSN_QUALIFIER = "07"  # PAT02 code for a Social Security number  # DSP13 01 = partial, 02 = not (4.2+: 00, 01, 02... sequence)
HEADER_PROBE_BYTES = 4096
BLOCK_BYTES = 16 * 1024 * 1024
BOM = b"\xef\xbb\xbf"
NUL = b"\0"


class AsapFormatError(ValueError):
    """The file as a whole cannot be read as ASAP (nothing from it is kept)."""

    def __init__(self, source: str, reason: str, field: str = "TH"):
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason
        self.field = field


@dataclass(frozen=True)
class Header:
    version: str
    control_number: str
    created: datetime | None
    sep: str
    term: str
    length: int  # bytes up to and including the TH segment's terminator (after any BOM/blank lines)


@dataclass(frozen=True)
class Prepared:
    """A file ready for the engine: which file to read, how many lines to skip, how lines map."""

    header: Header
    path: Path  # the one-segment-per-line copy the engine reads
    skip: int
    encoding: str
    line_of_segment: str  # "position" (line = segment number), "one" (all on line 1) or "unknown"
    scratch: Path | None
    padded: bool = False  # some elements carry surrounding spaces, so every element is trimmed


@dataclass(frozen=True)
class AsapSummary:
    header: Header
    records: int
    zero_reports: int
    kept: int


def open_source(path: Path) -> IO[bytes]:
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def read_header(head: bytes, source: str) -> Header:
    """Separator from the character after ``TH``, terminator from TH09 (formats.md §1.2)."""
    body = head[len(BOM):] if head.startswith(BOM) else head
    body = body.lstrip(b" \t\r\n")
    offset = len(head) - len(body)
    text = body.decode("latin-1")
    if not text.startswith("TH") or len(text) < 3:
        raise AsapFormatError(source, "does not start with a TH segment; not an ASAP file")
    sep = text[2]
    if sep.isalnum() or sep.isspace():
        raise AsapFormatError(source, f"element separator {sep!r} after TH is not a delimiter")
    pos = 3
    for _ in range(8):  # TH01..TH08
        nxt = text.find(sep, pos)
        if nxt < 0 or "\n" in text[pos:nxt]:
            raise AsapFormatError(source, "TH segment has fewer than 9 elements")
        pos = nxt + 1
    if pos + 1 >= len(text):
        raise AsapFormatError(source, "TH segment is truncated before TH09", "TH09")
    term = text[pos]
    if text[pos + 1] != term or term == sep or term.isalnum() or term.isspace():
        raise AsapFormatError(source, f"TH09 segment terminator {term!r} is not followed by itself", "TH09")
    elements = text[:pos].split(sep)
    version = elements[1].strip().upper()
    if version not in SUPPORTED_VERSIONS:
        raise AsapFormatError(source, f"TH01 version {elements[1]!r} is not one of {', '.join(SUPPORTED_VERSIONS)}",
                              "TH01")
    return Header(version, elements[2].strip(), _created(elements[5], elements[6]), sep, term, offset + pos + 2)


def _created(day: str, time: str) -> datetime | None:
    digits = "".join(ch for ch in time if ch.isdigit())[:6].ljust(6, "0")
    try:
        return datetime.strptime(day.strip() + digits, "%Y%m%d%H%M%S")
    except ValueError:
        return None


def prepare(path: Path, source: str, scratch_dir: Path) -> Prepared:
    """Read the header and stream the rest into one segment per line, without terminators.

    Dropping CR/LF and the terminators here (byte replacements at C speed) leaves the engine a
    plain separated-values file, so no element has to be cleaned of them row by row. The same
    pass checks the encoding and works out how segments map to the original file's lines. A file
    that is not UTF-8 is read as Latin-1 and written out as UTF-8 (a second pass, rare).
    """
    scratch_dir.mkdir(parents=True, exist_ok=True)
    out_path = scratch_dir / f"{path.name}.segments"
    try:
        header, stream = _stream(path, source, out_path, transcode=False)
        if not stream.utf8:
            header, stream = _stream(path, source, out_path, transcode=True)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        out_path.unlink(missing_ok=True)
        raise AsapFormatError(source, f"cannot be read: {exc}") from exc
    except AsapFormatError:
        out_path.unlink(missing_ok=True)
        raise
    return Prepared(header, out_path, 0, "utf-8", stream.layout.line_of_segment(), out_path, stream.padded)


@dataclass
class _Streamed:
    layout: _Layout
    utf8: bool = True
    padded: bool = False


def _stream(path: Path, source: str, out_path: Path, transcode: bool) -> tuple[Header, _Streamed]:
    with open_source(path) as f, open(out_path, "wb") as out:
        head = f.read(HEADER_PROBE_BYTES)
        header = read_header(head, source)
        term, sep = header.term.encode("latin-1"), header.sep.encode("latin-1")
        result = _Streamed(_Layout(term, on_first_line=head.startswith(b"TH")))
        decoder = codecs.getincrementaldecoder("utf-8")()
        # One C pass per block: CR and LF dropped, each terminator becomes a line end.
        to_lines = bytes.maketrans(term, b"\n")
        offset, block = header.length, head[header.length:]
        while block:
            if NUL in block:
                raise AsapFormatError(source, f"contains a NUL byte at byte {offset + block.index(NUL)}; "
                                      "not a text file")
            if result.utf8 and not transcode and not (block.isascii() and not decoder.getstate()[0]):
                try:
                    decoder.decode(block)
                except UnicodeDecodeError:
                    result.utf8 = False
            result.layout.see(block)
            lines = block.translate(to_lines, b"\r\n")
            if offset == header.length:  # padding is a habit of the writing software: one look is enough
                result.padded = _has_padding(lines, sep)
            out.write(lines.decode("latin-1").encode("utf-8") if transcode else lines)
            offset += len(block)
            block = f.read(BLOCK_BYTES)
        if result.utf8 and not transcode:
            try:
                decoder.decode(b"", final=True)  # a file cut inside a multi-byte character
            except UnicodeDecodeError:
                result.utf8 = False
    return header, result


def _has_padding(lines: bytes, sep: bytes) -> bool:
    """Whether any element starts or ends with a space (some writers pad elements)."""
    return any(p in lines for p in (b" " + sep, sep + b" ", b" \n"))


class _Layout:
    """Whether the original file has exactly one segment per line (then line = segment number).

    Every block must have as many line ends as terminators; the first block must also have each
    terminator followed by its line end (checking that everywhere would double the pass).
    """

    def __init__(self, term: bytes, on_first_line: bool):
        self.term, self.on_first_line = term, on_first_line
        # Counting starts just after the header's own terminator, which a line end may follow.
        self.balance = 1
        self.lone_cr = False
        self.aligned: bool | None = None
        self.seen_newline = False

    def see(self, block: bytes) -> None:
        # CR LF counts as one line end; a CR on its own (old Mac files) leaves lines unknown.
        if b"\r" in block:
            self.lone_cr = self.lone_cr or block.count(b"\r") != block.count(b"\r\n")
            block = block.replace(b"\r", b"")
        newlines = block.count(b"\n")
        self.seen_newline = self.seen_newline or newlines > 0
        self.balance += block.count(self.term) - newlines
        if self.aligned is None:
            self.aligned = block.startswith(b"\n") and block.count(self.term + b"\n") + 1 == newlines

    def line_of_segment(self) -> str:
        if not self.seen_newline:
            return "one"
        # A file may end with a terminator and no line end.
        one_per_line = (not self.lone_cr and self.on_first_line and bool(self.aligned) and self.balance in (0, 1))
        return "position" if one_per_line else "unknown"


def load(engine: Engine, prepared: Prepared, tx: IngestTransaction, key: bytes, max_days_supply: int) -> AsapSummary:
    """Parse, check and pseudonymise one prepared file into ``tx``; rejects go with it."""
    h = prepared.header
    inner, outer = hmac_pads(key)
    engine.set_variables(
        asap_term=h.term, asap_sep=h.sep, asap_version=h.version, asap_tcn=h.control_number,
        asap_created=h.created, asap_max_days=max_days_supply, asap_trim=prepared.padded,
        asap_legacy_partial=h.version in LEGACY_PARTIAL_VERSIONS, hmac_inner=inner, hmac_outer=outer,
        ingest_id=tx.ingest_id, source_file=tx.source_name,
    )
    source = tx.source_name
    try:
        with engine.file_order():
            engine.execute("asap_load", {"path": str(prepared.path), "sep": h.sep, "skip": prepared.skip,
                                         "encoding": prepared.encoding})
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
        engine.query("DROP TABLE IF EXISTS asap_rows")
        engine.query("DROP TABLE IF EXISTS asap_pat")
        engine.query("DROP TABLE IF EXISTS asap_rules")
        engine.query("DROP TABLE IF EXISTS asap_seg")
        if prepared.scratch is not None:
            prepared.scratch.unlink(missing_ok=True)
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
                    out[wanted[i]] = _masked(split[wanted[i] - line].decode(prepared.encoding, "replace"), sep)
                    i += 1
            line += lines_here
        if i < len(wanted) and carry:  # the last line had no newline
            out[wanted[i]] = _masked(carry.decode(prepared.encoding, "replace"), sep)
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
