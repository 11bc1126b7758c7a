"""Read ASAP files into Arrow tables of segments, one table per segment kind, in one pass.

Delimiters come from the file itself (formats.md §1.2): the element separator is the character
after ``TH``; the segment terminator is TH09. The file is streamed in chunks cut at a terminator,
and each chunk is split by the native scanner (``_asap_scan.c``): CR/LF anywhere, padding around
elements, several pharmacies per file and a last segment without its terminator are all handled
there, and every PHA, PAT, DSP and PRE row arrives with its place in the hierarchy (the PAT of a
DSP, the DSP a PRE follows), its segment number and the line it starts on. Trailers and
unrecognised segments arrive as "marks" for the file-level checks.

Text is decoded one element at a time (valid UTF-8 is kept, anything else is read as Latin-1),
so a file mixing the two stores no mojibake. A NUL byte is no text: the rows of segments holding
one say so, and the checks reject those records alone. Nothing here judges a record: the checks
are SQL (``asap_records.sql``).
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import IO

import numpy as np
import pyarrow as pa

from rxradar.durable import open_content, unreadable_reason
from rxradar.ingest import _asap_scan

SUPPORTED_VERSIONS = ("4.0", "4.1", "4.2", "4.2A", "4.2B", "5.0")
VERSION_SHAPE = re.compile(r"[0-9]{1,2}(\.[0-9][A-Z]?)?")
HEADER_PROBE_BYTES = 4096
CHUNK_BYTES = 32 * 1024 * 1024
SPLIT_BYTES = 1024 * 1024  # chunks at least this big are scanned by two threads
MAX_SEGMENT_BYTES = 1024 * 1024  # more than this without a terminator: TH09 is not the terminator
MAX_HELD_TEXT = 512 * 1024 * 1024  # text scanned before its rows must be taken (see BatchScanner)
BOM = b"\xef\xbb\xbf"
NUL = b"\0"

# The elements rxradar reads from each segment (formats.md §1.4-§1.6); the rest are passed over.
ELEMENTS = {
    "pha": (1, 2, 3, 4, 5, 7, 8, 9, 12),
    "pat": (1, 2, 3, 7, 8, 9, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21),
    "dsp": (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 16, 17, 24, 25),
    "pre": (1, 2, 5, 6, 11, 13, 14, 15),
}
KINDS = tuple(ELEMENTS)
# Marks (TP, TT and unrecognised segments) keep their id and first two elements, for the checks.
MARK_ELEMENTS = (0, 1, 2)
# The two halves of a chunk's work, one per core: DSP elements (about half of all) on one, PHA,
# PAT, PRE and marks on the other; bit i is TABLES[i].
EMIT = (0b00100, 0b11011)
# What the scanner's parent column means for each kind (-1 when there is none).
PARENT = {"pha": None, "pat": "pha_row", "dsp": "pat_row", "pre": "dsp_row"}
TABLES = (*KINDS, "marks")
# Bits of a row's flags (_asap_scan.c): an unreadable segment came between a DSP and its PAT;
# the row's segment held a NUL byte.
FLAG_UNREADABLE, FLAG_NUL = 1, 2


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
    line: int  # the line the segment after TH starts on, or would


@dataclass(frozen=True)
class Scanned:
    """A file read into the batch's segment tables."""

    path: Path
    header: Header
    file_no: int
    segments: int  # TH to the last segment, as numbered in the file
    nul_bytes: int  # NUL bytes in the file (their segments' records are rejected)


def read_header(head: bytes, source: str) -> Header:
    """Separator from the character after ``TH``, terminator from TH09 (formats.md §1.2)."""
    body = head[len(BOM):] if head.startswith(BOM) else head
    body = body.lstrip(b" \t\r\n")
    offset = len(head) - len(body)
    text = body.decode("latin-1")
    if not text.startswith("TH") or len(text) < 3:
        raise AsapFormatError(source, "does not start with a TH segment; not an ASAP file")
    sep = text[2]
    if sep.isalnum() or sep.isspace() or not sep.isascii():
        raise AsapFormatError(source, f"element separator {sep!r} after TH is not a delimiter (an ASCII "
                              "punctuation character)")
    if sep == ".":
        raise AsapFormatError(source, "element separator '.' cannot be told apart from the '.' in TH01's "
                              "version number (e.g. 4.2)")
    pos = 3
    for _ in range(8):  # TH01..TH08
        nxt = text.find(sep, pos)
        if nxt < 0 and len(head) >= HEADER_PROBE_BYTES and "\n" not in text[pos:]:
            raise AsapFormatError(source, f"TH segment is longer than {HEADER_PROBE_BYTES:,} bytes; a header "
                                  "holds a few short elements")
        if nxt < 0 or "\n" in text[pos:nxt]:
            raise AsapFormatError(source, "TH segment has fewer than 9 elements")
        pos = nxt + 1
    if pos + 1 >= len(text):
        raise AsapFormatError(source, "TH segment is truncated before TH09", "TH09")
    term = text[pos]
    if text[pos + 1] != term or term == sep or term.isalnum() or term.isspace() or not term.isascii():
        raise AsapFormatError(source, f"TH09 segment terminator {term!r} is not followed by itself", "TH09")
    elements = text[:pos].split(sep)
    version = elements[1].strip().upper()
    if version not in SUPPORTED_VERSIONS:
        # Quoted only when it has the shape of a version: anything else may be a shifted value.
        shown = f" {version!r}" if VERSION_SHAPE.fullmatch(version) else ""
        raise AsapFormatError(source, f"TH01 version{shown} is not one of {', '.join(SUPPORTED_VERSIONS)}", "TH01")
    length = offset + pos + 2
    return Header(version, elements[2].strip(), _created(elements[5], elements[6]), sep, term, length,
                  1 + head[:length].count(b"\n"))


def _created(day: str, time: str) -> datetime | None:
    digits = "".join(ch for ch in time if ch.isdigit())[:6].ljust(6, "0")
    try:
        return datetime.strptime(day.strip() + digits, "%Y%m%d%H%M%S")
    except ValueError:
        return None


Spill = Callable[[dict[str, pa.Table]], None]  # rows scanned so far, by table name


@cache
def _pool() -> ThreadPoolExecutor:
    """Threads for the scanner, which releases the GIL while it works."""
    return ThreadPoolExecutor(len(EMIT), thread_name_prefix="asap-scan")


class BatchScanner:
    """Scans the files of one batch, numbering rows across the whole batch (so a DSP's ``pat_row``
    and every other parent is unique within it) and keeping them in the native scanners until
    :meth:`take`. Past ``spill_bytes`` of text, rows are handed to ``spill`` as they come, so
    memory stays bounded on a file of any size."""

    def __init__(self, spill: Spill, spill_bytes: int):
        # Rows are taken at least every MAX_HELD_TEXT bytes, whatever the memory: a column's
        # int32 offsets must stay under 2 GB even when Latin-1 text doubles in UTF-8.
        self.spill, self.spill_bytes = spill, min(spill_bytes, MAX_HELD_TEXT)
        self.rows = dict.fromkeys(KINDS, 0)
        keep = (*(ELEMENTS[k] for k in KINDS), MARK_ELEMENTS)
        # Large chunks are split across two threads (see EMIT); small files, the usual weekly
        # submission, go through one scanner on the calling thread.
        self._split = tuple(_asap_scan.Scanner(keep, emit) for emit in EMIT)
        self._whole = _asap_scan.Scanner(keep, (1 << len(TABLES)) - 1)
        self._pending = 0
        # Reused by every file of the batch: a chunk behind what the last one left (at most a
        # segment, or the rest of the header probe).
        self._buffer = bytearray(CHUNK_BYTES + max(MAX_SEGMENT_BYTES, HEADER_PROBE_BYTES))

    def scan(self, path: Path, source: str, file_no: int) -> Scanned:
        """Read one file. On AsapFormatError, rows of this file may already be scanned (or
        spilled); the caller drops them by ``file_no``."""
        try:
            return self._scan(path, source, file_no)
        except (OSError, EOFError, zlib.error) as exc:
            raise AsapFormatError(source, unreadable_reason(exc)) from exc

    def take(self) -> dict[str, pa.Table]:
        """Every row scanned since the last take, as one table per name of TABLES."""
        parts = [scanner.take() for scanner in (*self._split, self._whole)]
        self._pending = 0
        return {name: pa.concat_tables([_table(name, p[i]) for p in parts])
                for i, name in enumerate(TABLES)}

    def _scan(self, path: Path, source: str, file_no: int) -> Scanned:
        with open_content(path) as f:
            head = f.read(HEADER_PROBE_BYTES)
            header = read_header(head, source)
            sep, term = header.sep.encode("latin-1"), header.term.encode("latin-1")
            # segment, line, offset, rows of each kind, current PHA row and position, current PAT
            # row, the DSP just before, unreadable segment since the PAT (see _asap_scan.c)
            state = (1, header.line, header.length, *(self.rows[k] for k in KINDS), -1, -1, -1, -1, 0)
            nul_bytes = head[:header.length].count(NUL)
            buffer = self._buffer
            carry = len(head) - header.length
            buffer[:carry] = head[header.length:]
            offset = header.length
            with memoryview(buffer) as view:
                while True:
                    n = _fill(f, view[carry:carry + CHUNK_BYTES])
                    total, final = carry + n, n == 0
                    cut = total if final else buffer.rfind(term, 0, total) + 1
                    if total - cut > MAX_SEGMENT_BYTES:
                        raise AsapFormatError(source, f"no segment terminator {header.term!r} in {total - cut:,} "
                                              f"bytes from byte {offset + cut}", "TH09")
                    # Segments are searched for NUL bytes only in the rare chunk that has one.
                    nuls = buffer.count(NUL, 0, cut) if buffer.find(NUL, 0, cut) >= 0 else 0
                    nul_bytes += nuls
                    with view[:cut] as chunk:
                        args = (chunk, sep, term, nuls > 0, final, state, file_no)
                        if cut < SPLIT_BYTES:
                            state = self._whole.scan(*args)
                        else:
                            state = list(_pool().map(lambda scanner: scanner.scan(*args), self._split))[0]
                    self._pending += cut
                    if self._pending > self.spill_bytes:
                        self.spill(self.take())
                    if final:
                        break
                    offset += cut
                    carry = total - cut
                    buffer[:carry] = buffer[cut:total]
        self.rows = {k: state[3 + i] for i, k in enumerate(KINDS)}
        return Scanned(path, header, file_no, state[0], nul_bytes)


@cache
def schema(name: str) -> pa.Schema:
    """Columns of a segment table ("marks" or a kind of ELEMENTS), as the scanner fills them."""
    if name == "marks":
        return pa.schema([("file_no", pa.int32()), ("pos", pa.int32()), ("line", pa.int32()),
                          ("pha_pos", pa.int32()), ("id", pa.string()), ("e1", pa.string()), ("e2", pa.string())])
    fields = [("row", pa.int32()), ("file_no", pa.int32()), ("pos", pa.int32()), ("line", pa.int32()),
              ("off", pa.int64()), ("end", pa.int64())]
    if PARENT[name]:
        fields.append((PARENT[name], pa.int32()))
    if name == "dsp":
        fields += [("pha_row", pa.int32()), ("unreadable", pa.bool_())]
    fields.append(("nul", pa.bool_()))  # the segment held a NUL byte: its record cannot be read
    return pa.schema(fields + [(f"{name}{k:02d}", pa.string()) for k in ELEMENTS[name]])


def _table(name: str, t: dict) -> pa.Table:
    """One table from the native scanner's buffers (wrapped, not copied)."""
    n = t["rows"]
    ints = {col: _ints(t[col], n, pa.int64() if col in ("off", "end") else pa.int32())
            for col in ("row", "file_no", "pos", "line", "off", "end")}
    if name == "marks":
        id_, e1, e2 = (_strings(col, n) for col in t["elements"])
        return pa.Table.from_arrays([ints["file_no"], ints["pos"], ints["line"], _nullable(_ints(t["parent"], n)),
                                     id_, e1, e2], schema=schema(name))
    columns = list(ints.values())
    if PARENT[name]:
        columns.append(_nullable(_ints(t["parent"], n)))
    flags = np.frombuffer(t["flags"], np.int8, n)
    if name == "dsp":
        columns += [_nullable(_ints(t["pha"], n)), pa.array((flags & FLAG_UNREADABLE) != 0)]
    columns.append(pa.array((flags & FLAG_NUL) != 0))
    columns += [_strings(col, n) for col in t["elements"]]
    return pa.Table.from_arrays(columns, schema=schema(name))


def _fill(f: IO[bytes], into: memoryview) -> int:
    """Read until ``into`` is full or the file ends (a compressed stream may return less)."""
    got = 0
    while got < len(into):
        n = f.readinto(into[got:])
        if not n:
            break
        got += n
    return got


def _ints(buffer: bytes, n: int, kind: pa.DataType = pa.int32()) -> pa.Array:
    return pa.Array.from_buffers(kind, n, [None, pa.py_buffer(buffer)])


def _nullable(a: pa.Array) -> pa.Array:
    """-1 (no parent) as NULL."""
    values = a.to_numpy()
    return pa.array(values, mask=values < 0)


def _strings(col: tuple, n: int) -> pa.Array:
    data, offsets, valid, nulls = col
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data), pa.py_buffer(valid), nulls)


def decode_elements(text: bytes, sep: bytes) -> str:
    """Segment text as the scanner reads it: each element UTF-8 if it is that, else Latin-1; a NUL
    byte shown as U+FFFD."""
    parts = []
    for element in text.split(sep):
        try:
            parts.append(element.decode("utf-8"))
        except UnicodeDecodeError:
            parts.append(element.decode("latin-1"))
    return sep.decode("latin-1").join(parts).replace("\0", "\ufffd")


def raw_segments(scanned: Scanned, spans: set[tuple[int, int]]) -> dict[tuple[int, int], str]:
    """The text of segments at these (offset, end) byte spans of the file, CR/LF removed.

    One streaming pass over the file; nothing when nothing is asked."""
    out: dict[tuple[int, int], str] = {}
    wanted = sorted(spans)
    if not wanted:
        return out
    i, base, buffer = 0, 0, b""
    sep = scanned.header.sep.encode("latin-1")
    with open_content(scanned.path) as f:
        while i < len(wanted):
            block = f.read(CHUNK_BYTES)
            buffer += block
            # spans wholly inside what has been read
            while i < len(wanted) and (wanted[i][1] <= base + len(buffer) or not block):
                start, end = wanted[i]
                text = buffer[max(start - base, 0):max(end - base, 0)]
                out[wanted[i]] = decode_elements(text.replace(b"\r", b"").replace(b"\n", b""), sep)
                i += 1
            if not block:
                break
            keep_from = min(wanted[i][0] - base, len(buffer)) if i < len(wanted) else len(buffer)
            buffer, base = buffer[keep_from:], base + keep_from
    return out
