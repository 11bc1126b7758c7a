"""The workspace: one Parquet dataset per canonical table, a metadata database and a secret key.

Layout::

    DIR/key                      32 random bytes (mode 0600): the pseudonymisation secret
    DIR/meta.sqlite              manifest, live data files, rejects, audit log
    DIR/tables/<table>/*.parquet data, one or more files per ingested source file
    DIR/tmp/                     engine spill space
    DIR/tmp/ingest/              scratch for sources being made (removed when done or on recovery)

Writes are atomic per source file: data goes to temporary names, is fsynced and renamed, and
only then is the file's manifest entry committed together with its data-file list and rejects.
Readers only see files listed in ``data_files``, so anything an interrupted ingest left behind
is invisible and is swept away the next time the workspace is opened for writing.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from rxradar.durable import file_sha256, fsync_path, now
from rxradar.schema import REJECTS, TABLES
from rxradar.transaction import IngestTransaction, Member

__all__ = ["Workspace", "IngestTransaction", "Member", "PriorIngest", "file_sha256", "KEY_BYTES"]

KEY_BYTES = 32

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
CREATE INDEX IF NOT EXISTS manifest_source ON manifest(kind, sha256);
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
CREATE TABLE IF NOT EXISTS users (           -- who may use the dashboard (serve/auth.py)
    name TEXT PRIMARY KEY, role TEXT NOT NULL, salt BLOB NOT NULL, hash BLOB NOT NULL, created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sign_in_failures (  -- consecutive failed sign-ins per name (serve/throttle.py)
    name TEXT PRIMARY KEY, failures INTEGER NOT NULL, last_failed_at REAL NOT NULL
);
"""


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
            fsync_path(self.root)
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
        self.audit_many([(actor, action, target, detail)])

    def audit_many(self, entries: list[tuple[str, str, str | None, dict | None]]) -> None:
        """Several audit entries (actor, action, target, detail) in one transaction."""
        with self.write_transaction():
            self.write_audit(entries)

    def write_audit(self, entries: list[tuple[str, str, str | None, dict | None]]) -> None:
        """Audit entries inside a write transaction the caller holds, so they land together with
        the change they record, or not at all."""
        at = now()
        self.meta.executemany("INSERT INTO audit_log VALUES (?, ?, ?, ?, ?)",
                              [(at, actor, action, target, json.dumps(detail or {}, sort_keys=True))
                               for actor, action, target, detail in entries])

    @contextmanager
    def write_transaction(self) -> Iterator[None]:
        """One write transaction on the metadata database: committed when the block ends, rolled
        back if it raises, so its statements land together or not at all."""
        self.meta.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.meta.execute("ROLLBACK")
            raise
        self.meta.execute("COMMIT")

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
        """Scratch space for source files being made (the synthetic workspace writer's source)."""
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
        with self.write_transaction():  # one commit for the whole batch's entries
            members = self._register_sources(kind, sources)
        return IngestTransaction(self, members)

    def _register_sources(self, kind: str, sources: list[tuple[Path, str]]) -> list[Member]:
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
        return members
