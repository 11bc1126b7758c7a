"""CSV files read record by record: each record with its line, rejects kept, rows gathered in
Arrow chunks so memory holds the output and one chunk, never the whole file."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, NamedTuple

import pyarrow as pa
import pyarrow.compute as pc

from rxradar.durable import open_content
from rxradar.ingest.rejects import REJECTED, WARNING, Parsed, Reject, UnreadableFile, rejects_table
from rxradar.schema import Table, conform
from rxradar.settings import Settings

CHUNK_ROWS = 50_000


# Encodings tried in turn for each line: NPPES files have been Latin-1 and UTF-8 over the years,
# state extracts are often Windows-1252, and Latin-1 reads any byte.
FALLBACK_ENCODINGS = ("cp1252", "latin-1")


def decode_line(line: bytes) -> tuple[str, str | None]:
    """The line's text and, when it is not UTF-8, the encoding it was read in. Each line is decoded
    on its own, so a file mixing UTF-8 and Windows-1252 lines keeps both right (no ``JOSÃ\x89``)."""
    try:
        return line.decode("utf-8"), None
    except UnicodeDecodeError:
        pass
    for encoding in FALLBACK_ENCODINGS:
        try:
            return line.decode(encoding), encoding
        except UnicodeDecodeError:
            pass
    raise AssertionError("latin-1 decodes every byte")


@dataclass(frozen=True)
class RecordLimits:
    """How far one CSV record may reach (settings ``csv_max_record_bytes``, ``csv_max_record_lines``)."""

    max_bytes: int
    max_lines: int

    @classmethod
    def from_settings(cls, settings: Settings) -> RecordLimits:
        return cls(settings.csv_max_record_bytes, settings.csv_max_record_lines)


DEFAULT_LIMITS = RecordLimits.from_settings(Settings())


class _Line(NamedTuple):
    number: int
    text: str
    encoding: str | None  # None for UTF-8
    size: int  # bytes
    whole: bool  # False for the start of a line longer than the record limit (the rest is skipped)


class CsvRecords:
    """CSV records of a binary file, each with the file line it starts on; ``raw`` is the current
    record's text and ``note`` a warning about how it was decoded. Blank lines are skipped.

    Physical lines are read one at a time and each record is parsed on its own, so no bad record
    can spoil the next: a quoted field may run over at most ``limits.max_lines`` lines, a record
    may hold at most ``limits.max_bytes``, and a multi-line record that breaks a rule (unclosed
    quote, wrong number of fields once ``width`` is known) is rejected by its first line alone,
    reading going on at the line after it.
    """

    def __init__(self, f: BinaryIO, limits: RecordLimits = DEFAULT_LIMITS):
        self._f = f
        self.limits = limits
        self.lines_read = 0
        self.width: int | None = None
        self.raw = ""
        self.note: str | None = None
        self._pending: list[_Line] = []

    def _next_line(self) -> _Line | None:
        if self._pending:
            return self._pending.pop(0)
        data = self._f.readline(self.limits.max_bytes + 1)
        if not data:
            return None
        self.lines_read += 1
        whole = len(data) <= self.limits.max_bytes or data.endswith(b"\n")
        if not whole:
            data = data[: self.limits.max_bytes]
            while (rest := self._f.readline(1 << 20)) and not rest.endswith(b"\n"):
                pass  # the rest of an overlong line is never held in memory
        if self.lines_read == 1:
            data = data.removeprefix(b"\xef\xbb\xbf")
        text, encoding = decode_line(data)
        return _Line(self.lines_read, text, encoding, len(data), whole)

    def __iter__(self) -> Iterator[tuple[int, list[str] | str]]:
        """(start line, fields), or (start line, problem) for a record that cannot be read."""
        while (first := self._next_line()) is not None:
            if first.whole and not first.text.strip("\r\n"):
                continue
            lines, problem, fields = self._parse(first)
            self.raw = "".join(line.text for line in lines).rstrip("\r\n")
            encodings = sorted({line.encoding for line in lines if line.encoding})
            self.note = f"record is not UTF-8; read as {' and '.join(encodings)}" if encodings else None
            if problem is None and len(lines) > 1 and self.width is not None and len(fields) != self.width:
                problem = (f"a quoted field runs over {len(lines)} lines into a record of {len(fields)} fields, "
                           f"not {self.width}")
            if problem is not None and len(lines) > 1:
                # The quote that opened here may be a stray one: the next lines are records of their own.
                self._pending[:0] = lines[1:]
                self.raw = first.text.rstrip("\r\n")
                problem += "; this line rejected, the lines after it read again"
            yield first.number, problem if problem is not None else fields

    def _is_a_record(self, line: _Line) -> bool:
        """Whether a line a quoted field would run into is a record of its own: no quote, and as
        many fields as the header. The line break in an address closes its quote on the next line
        or soon after; a line like this is what a stray quote would swallow."""
        return self.width is not None and '"' not in line.text and line.text.count(",") == self.width - 1

    def _parse(self, first: _Line) -> tuple[list[_Line], str | None, list[str]]:
        """The lines of the record starting at ``first``, why it cannot be read (if it cannot be),
        and its fields."""
        if not first.whole:
            return [first], f"line is longer than {self.limits.max_bytes:,} bytes", []
        lines = [first]
        unclosed = False

        def feed() -> Iterator[str]:
            nonlocal unclosed
            yield first.text
            while True:  # the csv module asks for another line only while a quoted field is open
                nxt = self._next_line() if len(lines) < self.limits.max_lines else None
                if nxt is None or not nxt.whole or self._is_a_record(nxt):
                    if nxt is not None:
                        self._pending.insert(0, nxt)
                    unclosed = True
                    return
                lines.append(nxt)
                yield nxt.text

        try:
            fields = next(csv.reader(feed()), None) or []
        except csv.Error:
            # The csv module's messages never quote the record; this one names the rule broken.
            return lines, "a line break inside an unquoted field (a stray carriage return)", []
        if unclosed:
            return lines, f"a quoted field does not close within {self.limits.max_lines} lines", []
        if sum(line.size for line in lines) > self.limits.max_bytes:
            return lines, f"record is longer than {self.limits.max_bytes:,} bytes", []
        if any("\x00" in line.text for line in lines):
            return lines, "record holds NUL bytes (binary data, not text)", []
        return lines, None, fields


class RowSink:
    """Collects kept rows in column lists, turning every CHUNK_ROWS into an Arrow table, and the
    file's rejects; ``finish`` keeps the last of duplicate ids and conforms to the schema."""

    def __init__(self, table: Table, key: str, source_file: str, records: CsvRecords):
        self.table, self.key, self.source_file, self._records = table, key, source_file, records
        self.record = self.line = 0
        self.names = [c.name for c in table.columns if c.name != "ingest_id"] + ["_record", "_line"]
        self.columns: dict[str, list] = {n: [] for n in self.names}
        self.chunks: list[pa.Table] = []
        self.rejects: list[Reject] = []
        self.records_read = 0

    def start(self, record: int, line: int) -> None:
        self.records_read += 1
        self.record, self.line = record, line

    def warn(self, field: str | None, reason: str, severity: str = WARNING) -> None:
        """Record a problem with the current record; ``REJECTED`` means the caller drops it."""
        self.rejects.append(
            Reject(self.source_file, self.record, field, reason, raw=self._records.raw,
                   line=self.line, severity=severity)
        )

    def add(self, row: dict) -> None:
        row["_record"], row["_line"] = self.record, self.line
        for name, column in self.columns.items():
            column.append(row.get(name))
        if len(self.columns["_record"]) >= CHUNK_ROWS:
            self._flush()

    def _flush(self) -> None:
        types = {c.name: c.type for c in self.table.columns}
        types |= {"_record": pa.int64(), "_line": pa.int64()}
        self.chunks.append(pa.table({n: pa.array(self.columns[n], types[n]) for n in self.names}))
        self.columns = {n: [] for n in self.names}

    def finish(self) -> Parsed:
        self._flush()
        data = pa.concat_tables(self.chunks)
        counts = data.group_by(self.key).aggregate([("_record", "max"), ("_record", "count")])
        dups = counts.filter(pc.greater(counts["_record_count"], 1))
        if dups.num_rows:
            in_dup = pc.is_in(data[self.key], value_set=dups[self.key])
            kept = pc.is_in(data["_record"], value_set=dups["_record_max"])
            earlier: dict[str, list[str]] = {}
            for r in data.filter(pc.and_(in_dup, pc.invert(kept))).select([self.key, "_record"]).to_pylist():
                earlier.setdefault(r[self.key], []).append(str(r["_record"]))
            for r in data.filter(kept).select([self.key, "_record", "_line"]).to_pylist():
                self.rejects.append(
                    Reject(
                        self.source_file, r["_record"], self.key,
                        f"duplicate {self.key}: this later record replaces record(s) {', '.join(earlier[r[self.key]])}",
                        line=r["_line"], severity=WARNING,
                    )
                )
            data = data.filter(pc.or_(pc.invert(in_dup), kept))
        self.rejects.sort(key=lambda r: (r.record_number is None, r.record_number or 0))
        out = conform(self.table, data.drop_columns(["_record", "_line"]))
        return Parsed(tables={self.table.name: out}, rejects=rejects_table(self.rejects), records_read=self.records_read)


def header_index(header: list[str], required: tuple[str, ...], optional: tuple[str, ...], source_file: str) -> dict[str, int]:
    normalised = {h.strip().lower().replace(" ", "_"): i for i, h in enumerate(header)}
    missing = [c for c in required if c not in normalised]
    if missing:
        raise UnreadableFile(f"{source_file}: missing required columns: {', '.join(missing)}")
    return {c: normalised[c] for c in required + optional if c in normalised}


def record_problem(fields: list[str] | str, width: int) -> str | None:
    """Why a data record cannot be kept as a row, or None.

    The number of fields must be the header's exactly: a row with one field too many or too few
    has its values under the wrong names (a comma in a name puts the SSN under the cause of death),
    and no rule can say which value moved. Trailing empty fields are no exception: they are what a
    shifted row looks like when its last column is blank (manner, SSN, chain site often are), and a
    spreadsheet that pads rows with empty cells pads the header row the same way.
    """
    if isinstance(fields, str):
        return f"unreadable CSV record: {fields}"
    if len(fields) != width:
        return f"row has {len(fields)} fields; the header has {width}"
    return None


def open_csv(path: Path, source_file: str, limits: RecordLimits = DEFAULT_LIMITS) -> tuple[BinaryIO, CsvRecords, list[str]]:
    """The open file, its records positioned after the header, and the header's fields."""
    f = open_content(path)
    records = CsvRecords(f, limits)
    first = next(iter(records), None)
    if first is None or isinstance(first[1], str):
        f.close()
        raise UnreadableFile(f"{source_file}: " + ("empty file (no header line)" if first is None
                                                   else f"no readable header line ({first[1]})"))
    records.width = len(first[1])
    return f, records, first[1]


def data_rows(records: CsvRecords, sink: RowSink, width: int) -> Iterator[list[str]]:
    """Data records with the sink positioned on each; rows that cannot be read, or of the wrong
    width, are rejected."""
    for record, (line, fields) in enumerate(records, start=1):
        sink.start(record, line)
        if records.note:
            sink.warn(None, records.note)
        problem = record_problem(fields, width)
        if problem is None:
            yield fields
        else:
            sink.warn(None, problem, REJECTED)


def named_rows(records: CsvRecords, sink: RowSink, header: list[str], required: tuple[str, ...],
               optional: tuple[str, ...]) -> Iterator[Callable[[str], str]]:
    """Each data row as a lookup by column name (``""`` for an optional column the file lacks);
    a missing required column is an error naming the file."""
    at = header_index(header, required, optional, sink.source_file)
    for fields in data_rows(records, sink, len(header)):
        yield lambda name, fields=fields: fields[at[name]] if name in at else ""
