"""The workspace: one Parquet dataset per canonical table, a metadata database and a secret key.

Layout::

    DIR/key                      32 random bytes (mode 0600): the pseudonymisation secret
    DIR/meta.sqlite              manifest, live data files, rejects, audit log
    DIR/tables/<table>/*.parquet data, one or more files per ingested source file
    DIR/tmp/                     engine spill space
    DIR/tmp/ingest/              copies of source files being parsed (removed when done or on recovery)

Writes are atomic per source file: data goes to temporary names, is fsynced and renamed, and
only then is the file's manifest entry committed together with its data-file list and rejects.
Readers only see files listed in ``data_files``, so anything an interrupted ingest left behind
is invisible and is swept away the next time the workspace is opened for writing.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from rxradar.schema import REJECTS, TABLES

KEY_BYTES = 32
HASH_READ_BYTES = 8 * 1024 * 1024

META_SCHEMA = """
CREATE TABLE IF NOT EXISTS manifest (
    ingest_id    INTEGER PRIMARY KEY,
    kind         TEXT NOT NULL,
    source_name  TEXT NOT NULL,
    source_path  TEXT NOT NULL,
    sha256       TEXT NOT NULL,
    bytes        INTEGER NOT NULL,
    status       TEXT NOT NULL,          -- running | committed | failed
    records_read INTEGER,
    rows_written TEXT,                   -- JSON {table: rows}
    rejected     INTEGER,
    warnings     INTEGER,
    detail       TEXT,
    started_at   TEXT NOT NULL,
    finished_at  TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS manifest_committed ON manifest(kind, sha256) WHERE status = 'committed';
CREATE TABLE IF NOT EXISTS data_files (
    path       TEXT PRIMARY KEY,         -- relative to the workspace root
    table_name TEXT NOT NULL,
    ingest_id  INTEGER NOT NULL,
    rows       INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS rejects (
    ingest_id INTEGER, source_file TEXT, record_number INTEGER, segment TEXT, segment_number INTEGER,
    line INTEGER, field TEXT, severity TEXT, reason TEXT, raw TEXT
);
CREATE INDEX IF NOT EXISTS rejects_ingest ON rejects(ingest_id);
CREATE TABLE IF NOT EXISTS audit_log (
    at TEXT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL, target TEXT, detail TEXT
);
"""


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(HASH_READ_BYTES):
            h.update(block)
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class PriorIngest:
    ingest_id: int
    source_name: str
    finished_at: str


class Workspace:
    def __init__(self, root: Path, *, create: bool = True):
        self.root = Path(root)
        if not (self.root / "meta.sqlite").exists() and not create:
            raise FileNotFoundError(f"no rxradar workspace at {self.root} (run an ingest to create one)")
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "tables").mkdir(exist_ok=True)
        self.meta = sqlite3.connect(self.root / "meta.sqlite", isolation_level=None)
        self.meta.execute("PRAGMA journal_mode=WAL")
        self.meta.execute("PRAGMA synchronous=FULL")
        self.meta.executescript(META_SCHEMA)
        self.key = self._load_or_create_key()

    def close(self) -> None:
        self.meta.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- key --------------------------------------------------------------------------------
    def _load_or_create_key(self) -> bytes:
        path = self.root / "key"
        if not path.exists():
            # Written whole under a temporary name, then linked into place: a crash can leave a
            # stray temporary file, never a short key.
            tmp = self.root / f".key.{os.getpid()}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(secrets.token_bytes(KEY_BYTES))
                f.flush()
                os.fsync(f.fileno())
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass  # another process created it first; use theirs
            finally:
                tmp.unlink()
            _fsync_dir(self.root)
        if path.stat().st_mode & 0o077:
            raise PermissionError(f"{path} must be readable by its owner only (chmod 600)")
        key = path.read_bytes()
        if len(key) != KEY_BYTES:
            raise ValueError(f"{path} holds {len(key)} bytes; a workspace key is {KEY_BYTES} random bytes. "
                             "Restore it from backup: without it identities can no longer be matched.")
        return key

    # -- reading -----------------------------------------------------------------------------
    def live_files(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {name: [] for name in TABLES}
        for table, path in self.meta.execute("SELECT table_name, path FROM data_files ORDER BY path"):
            out.setdefault(table, []).append(str(self.root / path))
        return out

    def prior_ingest(self, kind: str, sha256: str) -> PriorIngest | None:
        row = self.meta.execute(
            "SELECT ingest_id, source_name, finished_at FROM manifest "
            "WHERE kind = ? AND sha256 = ? AND status = 'committed'",
            [kind, sha256],
        ).fetchone()
        return PriorIngest(*row) if row else None

    def rejects(self) -> pa.Table:
        cols = [c.name for c in REJECTS.columns]
        rows = self.meta.execute(f"SELECT {', '.join(cols)} FROM rejects ORDER BY ingest_id, record_number").fetchall()
        return pa.Table.from_pylist([dict(zip(cols, r)) for r in rows], schema=REJECTS.schema)

    def manifest(self) -> list[dict]:
        cur = self.meta.execute("SELECT * FROM manifest ORDER BY ingest_id")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]

    # -- audit -------------------------------------------------------------------------------
    def audit(self, actor: str, action: str, target: str | None = None, detail: dict | None = None) -> None:
        self.meta.execute(
            "INSERT INTO audit_log VALUES (?, ?, ?, ?, ?)",
            [now(), actor, action, target, json.dumps(detail or {}, sort_keys=True)],
        )

    # -- writing -----------------------------------------------------------------------------
    @contextmanager
    def writer_lock(self) -> Iterator[None]:
        """One writer at a time; the lock is released by the OS if the process dies."""
        with open(self.root / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                self.recover()
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    @property
    def scratch_dir(self) -> Path:
        """Where readers put working copies of source files while they parse them."""
        return self.root / "tmp" / "ingest"

    def recover(self) -> None:
        """Forget interrupted ingests and delete files no committed ingest lists."""
        self.meta.execute("DELETE FROM manifest WHERE status = 'running'")
        if self.scratch_dir.exists():
            for path in self.scratch_dir.iterdir():
                path.unlink()
        live = {row[0] for row in self.meta.execute("SELECT path FROM data_files")}
        for path in (self.root / "tables").rglob("*"):
            if path.is_file() and str(path.relative_to(self.root)) not in live:
                path.unlink()

    def begin(self, kind: str, source: Path, sha256: str) -> IngestTransaction:
        return self.begin_batch(kind, [(source, sha256)])

    def begin_batch(self, kind: str, sources: list[tuple[Path, str]]) -> IngestTransaction:
        """One transaction for several source files: each gets its own manifest entry, and all are
        committed together (so many small files cost one commit, not one each)."""
        members = []
        for source, sha256 in sources:
            # A file that failed before is tried afresh: its old failure is replaced, not repeated.
            failed = [r[0] for r in self.meta.execute(
                "SELECT ingest_id FROM manifest WHERE kind = ? AND sha256 = ? AND status = 'failed'", [kind, sha256])]
            for ingest_id in failed:
                self.meta.execute("DELETE FROM rejects WHERE ingest_id = ?", [ingest_id])
                self.meta.execute("DELETE FROM manifest WHERE ingest_id = ?", [ingest_id])
            cur = self.meta.execute(
                "INSERT INTO manifest (kind, source_name, source_path, sha256, bytes, status, started_at) "
                "VALUES (?, ?, ?, ?, ?, 'running', ?)",
                [kind, source.name, str(source), sha256, source.stat().st_size, now()],
            )
            members.append(Member(int(cur.lastrowid), source.name))
        return IngestTransaction(self, members)


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
        for writer, tmp, _ in self._writers.values():
            writer.close()
            tmp.unlink(missing_ok=True)
        for tmp, _ in self._adopted.values():
            tmp.unlink(missing_ok=True)
        self._writers.clear()
        self._adopted.clear()
        meta = self.ws.meta
        meta.execute("BEGIN IMMEDIATE")
        for m in self.members.values():
            meta.execute(
                "INSERT INTO rejects (ingest_id, source_file, field, severity, reason) VALUES (?, ?, ?, 'rejected', ?)",
                [m.ingest_id, m.source_name, field, reason],
            )
            meta.execute(
                "UPDATE manifest SET status = 'failed', detail = ?, finished_at = ? WHERE ingest_id = ?",
                [reason, now(), m.ingest_id],
            )
        meta.execute("COMMIT")

    def fail_member(self, ingest_id: int, reason: str, field: str | None = None) -> None:
        """One file of the batch cannot be read: record why, and leave it out of the commit."""
        member = self.members.pop(ingest_id)
        meta = self.ws.meta
        meta.execute("BEGIN IMMEDIATE")
        meta.execute(
            "INSERT INTO rejects (ingest_id, source_file, field, severity, reason) VALUES (?, ?, ?, 'rejected', ?)",
            [member.ingest_id, member.source_name, field, reason],
        )
        meta.execute("UPDATE manifest SET status = 'failed', detail = ?, finished_at = ? WHERE ingest_id = ?",
                     [reason, now(), member.ingest_id])
        meta.execute("COMMIT")
        if member is self.first and self.members:
            self.first = next(iter(self.members.values()))

    def forget(self) -> None:
        """Drop these files' manifest entries without recording anything (e.g. to retry them one by one)."""
        for writer, tmp, _ in self._writers.values():
            writer.close()
            tmp.unlink(missing_ok=True)
        for tmp, _ in self._adopted.values():
            tmp.unlink(missing_ok=True)
        for m in self.members.values():
            self.ws.meta.execute("DELETE FROM manifest WHERE ingest_id = ?", [m.ingest_id])

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
            _fsync_dir(directory)
        meta = self.ws.meta
        meta.execute("BEGIN IMMEDIATE")
        try:
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
            meta.execute("COMMIT")
        except BaseException:
            meta.execute("ROLLBACK")
            raise
        return dict(self.first.rows)
