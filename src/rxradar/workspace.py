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
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
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
        return IngestTransaction(self, int(cur.lastrowid), source.name)


class IngestTransaction:
    """Everything one source file adds to the workspace, committed all at once or not at all."""

    def __init__(self, ws: Workspace, ingest_id: int, source_name: str):
        self.ws = ws
        self.ingest_id = ingest_id
        self.source_name = source_name
        self.records_read = 0
        self.rejected_records: set[int] = set()
        self.warnings = 0
        self._writers: dict[str, tuple[pq.ParquetWriter, Path, Path]] = {}
        self._rows: dict[str, int] = {}
        self._rejects: list[pa.Table] = []
        self._adopted: dict[str, tuple[Path, Path]] = {}

    def write(self, table: str, data: pa.Table) -> None:
        """Append rows of a canonical table (already conformed to its schema)."""
        if data.num_rows == 0:
            return
        data = data.set_column(
            data.schema.get_field_index("ingest_id"), "ingest_id",
            pa.array([self.ingest_id] * data.num_rows, pa.int64()),
        ) if "ingest_id" in data.column_names else data
        if table not in self._writers:
            directory = self.ws.root / "tables" / table
            directory.mkdir(parents=True, exist_ok=True)
            final = directory / f"{self.ingest_id:09d}.parquet"
            tmp = directory / f".{self.ingest_id:09d}.parquet.tmp"
            self._writers[table] = (pq.ParquetWriter(tmp, data.schema, compression="zstd"), tmp, final)
        self._writers[table][0].write_table(data, row_group_size=1_000_000)
        self._rows[table] = self._rows.get(table, 0) + data.num_rows

    def scratch_path(self, table: str) -> Path:
        """Where the engine may write a Parquet file for ``table`` before :meth:`adopt`."""
        directory = self.ws.root / "tables" / table
        directory.mkdir(parents=True, exist_ok=True)
        return directory / f".{self.ingest_id:09d}-engine.parquet.tmp"

    def adopt(self, table: str, tmp: Path, rows: int) -> None:
        """Take a Parquet file written elsewhere into this transaction (renamed at commit)."""
        if table in self._writers or table in self._adopted:
            raise ValueError(f"{table} already has data in ingest #{self.ingest_id}")
        if rows:
            self._adopted[table] = (tmp, tmp.parent / f"{self.ingest_id:09d}.parquet")
            self._rows[table] = rows
        else:
            tmp.unlink(missing_ok=True)

    def reject(self, rejects: pa.Table) -> None:
        if rejects.num_rows == 0:
            return
        rejects = rejects.set_column(0, "ingest_id", pa.array([self.ingest_id] * rejects.num_rows, pa.int64()))
        self._rejects.append(rejects)
        for severity, record in zip(rejects["severity"].to_pylist(), rejects["record_number"].to_pylist()):
            if severity == "rejected":
                self.rejected_records.add(record if record is not None else -1)
            else:
                self.warnings += 1

    def abort(self, reason: str, field: str | None = None) -> None:
        """Keep nothing from this file; record why, so ``rxradar rejects`` shows it."""
        for writer, tmp, _ in self._writers.values():
            writer.close()
            tmp.unlink(missing_ok=True)
        for tmp, _ in self._adopted.values():
            tmp.unlink(missing_ok=True)
        self._writers.clear()
        self._adopted.clear()
        meta = self.ws.meta
        meta.execute("BEGIN IMMEDIATE")
        meta.execute(
            "INSERT INTO rejects (ingest_id, source_file, field, severity, reason) VALUES (?, ?, ?, 'rejected', ?)",
            [self.ingest_id, self.source_name, field, reason],
        )
        meta.execute(
            "UPDATE manifest SET status = 'failed', detail = ?, finished_at = ? WHERE ingest_id = ?",
            [reason, now(), self.ingest_id],
        )
        meta.execute("COMMIT")

    def commit(self, detail: str | None = None) -> dict[str, int]:
        finals = []
        staged = [(table, tmp, final) for table, (writer, tmp, final) in self._writers.items()]
        for writer, _, _ in self._writers.values():
            writer.close()
        staged += [(table, tmp, final) for table, (tmp, final) in self._adopted.items()]
        for table, tmp, final in staged:
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, final)
            _fsync_dir(final.parent)
            finals.append((str(final.relative_to(self.ws.root)), table, self._rows[table]))
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
            meta.execute(
                "UPDATE manifest SET status = 'committed', records_read = ?, rows_written = ?, rejected = ?, "
                "warnings = ?, detail = ?, finished_at = ? WHERE ingest_id = ?",
                [self.records_read, json.dumps(self._rows, sort_keys=True), len(self.rejected_records),
                 self.warnings, detail, now(), self.ingest_id],
            )
            meta.execute("COMMIT")
        except BaseException:
            meta.execute("ROLLBACK")
            raise
        return dict(self._rows)
