"""CSV files read record by record: each record with its line, rejects kept, rows gathered in
Arrow chunks so memory holds the output and one chunk, never the whole file."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa
import pyarrow.compute as pc

from rxradar.ingest.rejects import REJECTED, WARNING, Parsed, Reject, rejects_table
from rxradar.schema import Table, conform

CHUNK_ROWS = 50_000


def decode_line(line: bytes) -> str:
    # NPPES files have been Latin-1 and UTF-8 over the years, and state extracts are often cp1252.
    for encoding in ("utf-8", "cp1252"):
        try:
            return line.decode(encoding)
        except UnicodeDecodeError:
            pass
    return line.decode("latin-1")


class CsvRecords:
    """CSV records of a binary file, each with the file line it starts on; ``raw`` is the current
    record's text. Blank lines are skipped."""

    def __init__(self, f: BinaryIO):
        self._f = f
        self._buffer: list[str] = []
        self.lines_read = 0
        self._reader = csv.reader(self._lines())

    def _lines(self) -> Iterator[str]:
        for line in self._f:
            self.lines_read += 1
            text = decode_line(line)
            if self.lines_read == 1:
                text = text.removeprefix("\ufeff")
            self._buffer.append(text)
            yield text

    def __iter__(self) -> Iterator[tuple[int, list[str] | str]]:
        """(start line, fields), or (start line, error text) for a record the csv module cannot read
        (a stray carriage return, an oversized field); reading goes on with the next line."""
        while True:
            self._buffer.clear()
            start = self.lines_read + 1
            try:
                fields = next(self._reader)
            except StopIteration:
                return
            except csv.Error as e:
                yield start, str(e)
                continue
            if fields:
                yield start, fields

    @property
    def raw(self) -> str:
        return "".join(self._buffer).rstrip("\r\n")


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
            Reject(self.source_file, self.record, field, reason, raw=self._records.raw, line=self.line, severity=severity)
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
        raise ValueError(f"{source_file}: missing required columns: {', '.join(missing)}")
    return {c: normalised[c] for c in required + optional if c in normalised}


def field_count_ok(fields: list[str], width: int) -> bool:
    return len(fields) == width or (len(fields) > width and not any(f.strip() for f in fields[width:]))


def open_csv(path: Path, source_file: str) -> tuple[BinaryIO, CsvRecords, list[str]]:
    f = open(path, "rb")
    records = CsvRecords(f)
    first = next(iter(records), None)
    if first is None or isinstance(first[1], str):
        f.close()
        raise ValueError(f"{source_file}: no readable header line")
    return f, records, first[1]


def data_rows(records: CsvRecords, sink: RowSink, width: int) -> Iterator[list[str]]:
    """Data records with the sink positioned on each; rows of the wrong width are rejected."""
    for record, (line, fields) in enumerate(records, start=1):
        sink.start(record, line)
        if isinstance(fields, str):
            sink.warn(None, f"unreadable CSV record: {fields}", REJECTED)
        elif field_count_ok(fields, width):
            yield fields
        else:
            sink.warn(None, f"row has {len(fields)} fields; the header has {width}", REJECTED)


def named_rows(records: CsvRecords, sink: RowSink, header: list[str], required: tuple[str, ...],
               optional: tuple[str, ...]) -> Iterator[Callable[[str], str]]:
    """Each data row as a lookup by column name (``""`` for an optional column the file lacks);
    a missing required column is an error naming the file."""
    at = header_index(header, required, optional, sink.source_file)
    for fields in data_rows(records, sink, len(header)):
        yield lambda name, fields=fields: fields[at[name]] if name in at else ""
