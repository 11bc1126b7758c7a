"""One transaction of an ingest: what one or more source files add, committed at once or not at all.

Data go to temporary names and are fsynced and renamed; only then, in one SQLite transaction,
are the files' manifest entries committed with their data-file list and rejects. Until that
commit nothing is visible to readers, and an interrupted transaction is swept away by
:meth:`rxradar.workspace.Workspace.recover`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from rxradar.durable import fsync_path, now
from rxradar.schema import REJECTS

if TYPE_CHECKING:
    from rxradar.workspace import Workspace


@dataclass
class Member:
    """One source file's share of a transaction."""

    ingest_id: int
    source_name: str
    records_read: int = 0
    rejected_records: set[int] = field(default_factory=set)
    warnings: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    detail: str | None = None


class IngestTransaction:
    """Everything one or more source files add to the workspace, committed all at once or not at all."""

    def __init__(self, ws: Workspace, members: list[Member]):
        self.ws = ws
        self.members = {m.ingest_id: m for m in members}
        self.first = members[0]
        self.finished = False  # committed, aborted or forgotten: nothing more may be recorded
        self._writers: dict[str, tuple[pq.ParquetWriter, Path, Path]] = {}
        self._rejects: list[pa.Table] = []
        self._adopted: dict[str, tuple[Path, Path]] = {}

    # The single-file view, used by readers of one file.
    @property
    def ingest_id(self) -> int:
        return self.first.ingest_id

    @property
    def source_name(self) -> str:
        return self.first.source_name

    @property
    def records_read(self) -> int:
        return self.first.records_read

    @records_read.setter
    def records_read(self, value: int) -> None:
        self.first.records_read = value

    @property
    def rejected_records(self) -> set[int]:
        return self.first.rejected_records

    @property
    def warnings(self) -> int:
        return self.first.warnings

    def _with_ingest_id(self, data: pa.Table) -> pa.Table:
        """Rows without an ingest_id belong to the transaction's first file."""
        i = data.schema.get_field_index("ingest_id")
        return data.set_column(i, "ingest_id", pc.fill_null(data["ingest_id"].cast(pa.int64()), self.ingest_id))

    def _count(self, table: str, ingest_ids: pa.ChunkedArray | pa.Array) -> None:
        for item in pc.value_counts(ingest_ids).to_pylist():
            rows = self.members[item["values"]].rows
            rows[table] = rows.get(table, 0) + item["counts"]

    def write(self, table: str, data: pa.Table) -> None:
        """Append rows of a canonical table (already conformed to its schema)."""
        if data.num_rows == 0:
            return
        data = self._with_ingest_id(data)
        if table not in self._writers:
            directory = self.ws.root / "tables" / table
            directory.mkdir(parents=True, exist_ok=True)
            final = directory / f"{self.ingest_id:09d}.parquet"
            tmp = directory / f".{self.ingest_id:09d}.parquet.tmp"
            self._writers[table] = (pq.ParquetWriter(tmp, data.schema, compression="zstd"), tmp, final)
        self._writers[table][0].write_table(data, row_group_size=1_000_000)
        self._count(table, data["ingest_id"])

    def scratch_path(self, table: str) -> Path:
        """Where the engine may write a Parquet file for ``table`` before :meth:`adopt`."""
        directory = self.ws.root / "tables" / table
        directory.mkdir(parents=True, exist_ok=True)
        return directory / f".{self.ingest_id:09d}-engine.parquet.tmp"

    def adopt(self, table: str, tmp: Path, rows_by_ingest: dict[int, int]) -> None:
        """Take a Parquet file written elsewhere into this transaction (renamed at commit)."""
        if table in self._writers or table in self._adopted:
            raise ValueError(f"{table} already has data in ingest #{self.ingest_id}")
        if sum(rows_by_ingest.values()):
            self._adopted[table] = (tmp, tmp.parent / f"{self.ingest_id:09d}.parquet")
            for ingest_id, n in rows_by_ingest.items():
                rows = self.members[ingest_id].rows
                rows[table] = rows.get(table, 0) + n
        else:
            tmp.unlink(missing_ok=True)

    def reject(self, rejects: pa.Table) -> None:
        if rejects.num_rows == 0:
            return
        rejects = self._with_ingest_id(rejects)
        self._rejects.append(rejects)
        for ingest_id, severity, record in zip(rejects["ingest_id"].to_pylist(), rejects["severity"].to_pylist(),
                                               rejects["record_number"].to_pylist()):
            member = self.members[ingest_id]
            if severity == "rejected":
                member.rejected_records.add(record if record is not None else -1)
            else:
                member.warnings += 1

    def abort(self, reason: str, field: str | None = None) -> None:
        """Keep nothing from these files; record why, so ``rxradar rejects`` shows it."""
        self.finished = True
        self._discard_files()
        self._record_failure(list(self.members.values()), reason, field)

    def fail_member(self, ingest_id: int, reason: str, field: str | None = None) -> None:
        """One file of the batch cannot be read: record why, and leave it out of the commit."""
        member = self.members.pop(ingest_id)
        self._record_failure([member], reason, field)
        if member is self.first and self.members:
            self.first = next(iter(self.members.values()))

    def forget(self) -> None:
        """Drop these files' manifest entries without recording anything (e.g. to retry them one by one)."""
        self.finished = True
        self._discard_files()
        with self.ws.write_transaction():
            self.ws.meta.executemany("DELETE FROM manifest WHERE ingest_id = ?",
                                     [(m.ingest_id,) for m in self.members.values()])

    def _discard_files(self) -> None:
        for writer, tmp, _ in self._writers.values():
            writer.close()
            tmp.unlink(missing_ok=True)
        for tmp, _ in self._adopted.values():
            tmp.unlink(missing_ok=True)
        self._writers.clear()
        self._adopted.clear()

    def _record_failure(self, members: list[Member], reason: str, field: str | None) -> None:
        """Mark these files failed, with the reason as a rejected row of each."""
        with self.ws.write_transaction():
            self.ws.meta.executemany(
                "INSERT INTO rejects (ingest_id, source_file, field, severity, reason) VALUES (?, ?, ?, 'rejected', ?)",
                [(m.ingest_id, m.source_name, field, reason) for m in members])
            self.ws.meta.executemany(
                "UPDATE manifest SET status = 'failed', detail = ?, finished_at = ? WHERE ingest_id = ?",
                [(reason, now(), m.ingest_id) for m in members])

    def commit(self, detail: str | None = None) -> dict[str, int]:
        """Make everything visible at once; returns the first file's rows per table."""
        if detail is not None:
            self.first.detail = detail
        finals = []
        staged = [(table, tmp, final) for table, (writer, tmp, final) in self._writers.items()]
        for writer, _, _ in self._writers.values():
            writer.close()
        staged += [(table, tmp, final) for table, (tmp, final) in self._adopted.items()]
        for table, tmp, final in staged:
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, final)
            finals.append((str(final.relative_to(self.ws.root)), table,
                           sum(m.rows.get(table, 0) for m in self.members.values())))
        for directory in {final.parent for _, _, final in staged}:
            fsync_path(directory)
        meta = self.ws.meta
        with self.ws.write_transaction():
            meta.executemany(
                "INSERT INTO data_files (path, table_name, ingest_id, rows) VALUES (?, ?, ?, ?)",
                [(p, t, self.ingest_id, n) for p, t, n in finals],
            )
            cols = [c.name for c in REJECTS.columns]
            for chunk in self._rejects:
                meta.executemany(
                    f"INSERT INTO rejects ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                    [tuple(r[c] for c in cols) for r in chunk.to_pylist()],
                )
            meta.executemany(
                "UPDATE manifest SET status = 'committed', records_read = ?, rows_written = ?, rejected = ?, "
                "warnings = ?, detail = ?, finished_at = ? WHERE ingest_id = ?",
                [(m.records_read, json.dumps(m.rows, sort_keys=True), len(m.rejected_records), m.warnings, m.detail,
                  now(), m.ingest_id) for m in self.members.values()],
            )
        self.finished = True
        return dict(self.first.rows)
