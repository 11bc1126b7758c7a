"""Get an ASAP file ready for the engine: its header, and a copy with one segment per line.

Delimiters come from the file itself (formats.md §1.2): the element separator is the character
after ``TH``; the segment terminator is TH09. Whatever the layout (a newline after each
terminator or none, CRLF, gzip, a byte-order mark, Latin-1), the rest of the file is streamed
into a UTF-8 batch file with one segment per line and no terminators, which the engine's
parallel CSV reader splits into elements. Many files share one batch (each opened by a marker
line), so a folder of small weekly submissions costs a few engine passes, not one per file.
"""

from __future__ import annotations

import codecs
import gzip
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, BinaryIO

SUPPORTED_VERSIONS = ("4.0", "4.1", "4.2", "4.2A", "4.2B", "5.0")
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
    """A file copied into a batch: its header, its number in the batch, how its lines map."""

    header: Header
    file_no: int
    line_of_segment: str  # "position" (line = segment number), "one" (all on line 1) or "unknown"
    padded: bool = False  # some elements carry surrounding spaces, so every element is trimmed


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


FILE_MARKER = "RXRADAR-FILE"  # stands in for each file's TH in a batch: no real segment id looks like it


def peek_header(path: Path, source: str) -> Header:
    """The header alone (files are grouped into batches by their element separator)."""
    try:
        with open_source(path) as f:
            return read_header(f.read(HEADER_PROBE_BYTES), source)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise AsapFormatError(source, f"cannot be read: {exc}") from exc


def prepare(path: Path, source: str, out: BinaryIO, file_no: int) -> Prepared:
    """Append the file to a batch: a marker line, then one segment per line, without terminators.

    Dropping CR/LF and the terminators here (byte translation at C speed) leaves the engine a
    plain separated-values file, so no element has to be cleaned of them row by row. The same
    pass checks the encoding and works out how segments map to the original file's lines. A file
    that is not UTF-8 is read as Latin-1 and written out as UTF-8 (a second pass, rare). On an
    error nothing of the file stays in the batch.
    """
    start = out.tell()
    try:
        header, stream = _stream(path, source, out, file_no, transcode=False)
        if not stream.utf8:
            out.seek(start)
            out.truncate()
            header, stream = _stream(path, source, out, file_no, transcode=True)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        out.seek(start)
        out.truncate()
        raise AsapFormatError(source, f"cannot be read: {exc}") from exc
    except AsapFormatError:
        out.seek(start)
        out.truncate()
        raise
    return Prepared(header, file_no, stream.layout.line_of_segment(), stream.padded)


@dataclass
class _Streamed:
    layout: _Layout
    utf8: bool = True
    padded: bool = False


def _stream(path: Path, source: str, out: BinaryIO, file_no: int, transcode: bool) -> tuple[Header, _Streamed]:
    with open_source(path) as f:
        head = f.read(HEADER_PROBE_BYTES)
        header = read_header(head, source)
        term, sep = header.term.encode("latin-1"), header.sep.encode("latin-1")
        out.write(f"{FILE_MARKER}{header.sep}{file_no}\n".encode("latin-1"))
        result = _Streamed(_Layout(term, on_first_line=head.startswith(b"TH")))
        decoder = codecs.getincrementaldecoder("utf-8")()
        # One C pass per block: CR and LF dropped, each terminator becomes a line end.
        to_lines = bytes.maketrans(term, b"\n")
        offset, block, last = header.length, head[header.length:], b"\n"
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
            lines = _without_blank_lines(block.translate(to_lines, b"\r\n"), after_newline=last == b"\n")
            if offset == header.length:  # padding is a habit of the writing software: one look is enough
                result.padded = _has_padding(lines, sep)
            if lines:
                out.write(lines.decode("latin-1").encode("utf-8") if transcode else lines)
                last = lines[-1:]
            offset += len(block)
            block = f.read(BLOCK_BYTES)
        if last != b"\n":  # a file cut short must not run into the next file's marker
            out.write(b"\n")
        if result.utf8 and not transcode:
            try:
                decoder.decode(b"", final=True)  # a file cut inside a multi-byte character
            except UnicodeDecodeError:
                result.utf8 = False
    return header, result


def _without_blank_lines(lines: bytes, after_newline: bool) -> bytes:
    """Empty segments (two terminators in a row) dropped: the engine skips blank lines, and each
    line of the batch file must be the row at the same position."""
    if after_newline:
        lines = lines.lstrip(b"\n")
    while b"\n\n" in lines:
        lines = lines.replace(b"\n\n", b"\n")
    return lines


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
