"""Retention: removing identified records older than a cutoff, as state PDMP statutes require.

What "older than the cutoff" means, per table (docs/retention.md gives the reasons):

* ``dispensations``: records whose fill date (DSP05) is before the cutoff. A revision or void of
  a fill carries the fill's own date, so every report of one fill goes together.
* ``deaths``: records whose date of death is before the cutoff.
* ``identities``: identities that no dispensation kept by the purge refers to. Every identity
  comes from a file's kept fills, so an identity with one recent fill stays, whole.
* ``rejects``: the raw text (the only identified column) of the rejects of an ASAP or death
  file whose records all lie before the cutoff: the latest date of its kept records, or, for a
  file none of whose records were kept, the day it was ingested. A rejected record's own date
  may be what is wrong with it, so it goes with its file. Reasons and counts stay.
* stored analyses: their patient-level tables (:data:`PATIENT_LEVEL_TABLES`) when the period
  starts before the cutoff or their persons were resolved from an identity the workspace no
  longer holds; aggregates (prescriber, pharmacy and county metrics, deciles) stay.

The change is atomic: the data files that lose rows are rewritten to new files, fsynced, and
switched in the ``data_files`` list in one SQLite transaction that also clears the rejects' raw
text and writes the audit entry; the old files are deleted afterwards. A crash before the
switch leaves the old workspace (the new files are unlisted, and swept by the next writer), a
crash after it the new one. Analyses' patient-level tables are removed last; were the purge
interrupted before that, running it again removes them (the rule is worked out from what is
stored, not remembered).

The manifest keeps every ingested file's content hash, so ingesting a purged file again is
recognised as already ingested and brings nothing back.
"""

from __future__ import annotations

import getpass
import secrets
import sqlite3
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from rxradar.analytics import store
from rxradar.catalog import open_engine
from rxradar.durable import fsync_path, replacing
from rxradar.engine import Engine
from rxradar.settings import Settings
from rxradar.workspace import Workspace

# When a stored row has aged past the cutoff (bound as $cutoff), per table. Identities follow
# the fills: kept_identities is materialised from the dispensations before anything changes.
EXPIRED = {
    "dispensations": "fill_date < $cutoff",
    "identities": "identity_id NOT IN (SELECT identity_id FROM kept_identities)",
    "deaths": "death_date < $cutoff",
}
KEPT_IDENTITIES = ("SELECT DISTINCT identity_id FROM dispensations_records "
                   "WHERE (fill_date < $cutoff) IS NOT TRUE AND identity_id IS NOT NULL")
# The date that ages each file's records, for its rejects' raw text.
RECORD_DATE = {"dispensations": "fill_date", "deaths": "death_date"}
# Ingest kinds whose rejects hold patients' or decedents' records (registries hold neither).
PATIENT_KINDS = ("asap", "deaths")
PATIENT_LEVEL_TABLES = store.PATIENT_LEVEL_TABLES  # removed in this order
REJECTS_RAW = "rejects (raw text)"  # how the rejects' cleared raw text is counted and reported


@dataclass(frozen=True)
class DataFile:
    """One listed data file that loses rows."""

    path: str  # relative to the workspace root
    table: str
    ingest_id: int
    rows: int
    removed: int

    @property
    def kept(self) -> int:
        return self.rows - self.removed


@dataclass(frozen=True)
class PurgeReport:
    """What a purge removed (or, dry, would remove): stored rows per table, never their values."""

    cutoff: date
    dry_run: bool
    removed: dict[str, int]
    files_rewritten: int
    files_removed: int
    analysis_tables: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Plan:
    files: list[DataFile]
    raw_ingests: list[int]  # ingests whose rejects lose their raw text
    raw_rows: int
    analysis_tables: list[Path]


def cutoff_for(settings: Settings, before: date | None, today: date) -> date:
    """The first day kept: ``before`` if given, else ``today`` less ``retention_years`` years
    (29 February becomes 28 February in a year without one)."""
    if before is not None:
        if before > today:
            raise ValueError(f"--before {before} is in the future: that would remove records not yet old")
        return before
    if settings.retention_years == 0:
        raise ValueError("retention_years is 0 (keep records): give --before YYYY-MM-DD, or set "
                         "RXRADAR_RETENTION_YEARS to the number of years your state's PDMP statute allows")
    year = today.year - settings.retention_years
    try:
        return today.replace(year=year)
    except ValueError:  # 29 February
        return today.replace(year=year, day=28)


def purge(ws: Workspace, settings: Settings, cutoff: date, *, dry_run: bool = False,
          actor: str | None = None) -> PurgeReport:
    """Remove identified records dated before ``cutoff`` (see the module's docstring), atomically
    and audited; with ``dry_run``, only say what would go."""
    with ws.writer_lock():
        with open_engine(ws, settings) as engine:
            plan = _plan(ws, engine, cutoff)
            report = _report(plan, cutoff, dry_run)
            if dry_run:
                return report
            written = _write_kept(ws, engine, plan.files, cutoff)
        _switch(ws, plan, written, report, actor or getpass.getuser())
        _delete_replaced(ws, plan.files)
        remove_analysis_tables(plan.analysis_tables)
    return report


def _report(plan: _Plan, cutoff: date, dry_run: bool) -> PurgeReport:
    removed = {table: sum(f.removed for f in plan.files if f.table == table) for table in EXPIRED}
    removed[REJECTS_RAW] = plan.raw_rows
    return PurgeReport(cutoff, dry_run, removed, files_rewritten=sum(f.kept > 0 for f in plan.files),
                       files_removed=sum(f.kept == 0 for f in plan.files),
                       analysis_tables=[p.stem for p in plan.analysis_tables])


# --- what goes -------------------------------------------------------------------------------------


def _plan(ws: Workspace, engine: Engine, cutoff: date) -> _Plan:
    engine.materialize("kept_identities", KEPT_IDENTITIES, {"cutoff": cutoff})
    listed = ws.meta.execute("SELECT path, table_name, ingest_id, rows FROM data_files ORDER BY path").fetchall()
    files = []
    for table, expired in EXPIRED.items():
        mine = {str(ws.root / path): (path, ingest_id, rows) for path, name, ingest_id, rows in listed
                if name == table}
        if not mine:
            continue
        counts = engine.query(
            f"SELECT filename, count(*) FILTER (WHERE {expired}) AS removed "
            "FROM read_parquet($files, filename = true, union_by_name = true) GROUP BY filename",
            _bound(expired, files=list(mine), cutoff=cutoff))
        for name, removed in zip(counts["filename"].to_pylist(), counts["removed"].to_pylist()):
            if removed:
                path, ingest_id, rows = mine[name]
                files.append(DataFile(path, table, ingest_id, rows, removed))
    raw_ingests, raw_rows = _expired_rejects(ws, engine, cutoff)
    return _Plan(sorted(files, key=lambda f: f.path), raw_ingests, raw_rows,
                 expired_analysis_tables(ws.root, engine, cutoff))


def _expired_rejects(ws: Workspace, engine: Engine, cutoff: date) -> tuple[list[int], int]:
    """Ingests of patient records whose rejects still hold raw text and whose records all lie
    before the cutoff, and how many such rejects they have."""
    latest: dict[int, date] = {}
    for table, column in RECORD_DATE.items():
        rows = engine.query(f"SELECT ingest_id, max({column}) AS latest FROM {table}_records GROUP BY ingest_id")
        for ingest_id, day in zip(rows["ingest_id"].to_pylist(), rows["latest"].to_pylist()):
            if day is not None:
                latest[ingest_id] = max(day, latest.get(ingest_id, day))
    kinds = ", ".join("?" * len(PATIENT_KINDS))
    held = ws.meta.execute(
        "SELECT r.ingest_id, substr(m.started_at, 1, 10), count(*) FROM rejects AS r JOIN manifest AS m "
        f"USING (ingest_id) WHERE r.raw IS NOT NULL AND m.kind IN ({kinds}) GROUP BY r.ingest_id",
        PATIENT_KINDS).fetchall()
    expired = [(ingest_id, n) for ingest_id, ingested, n in held
               if latest.get(ingest_id, date.fromisoformat(ingested)) < cutoff]
    return [i for i, _ in expired], sum(n for _, n in expired)


def expired_analysis_tables(root: Path, engine: Engine, cutoff: date) -> list[Path]:
    """The patient-level tables of every stored analysis version whose period starts before the
    cutoff or whose persons were resolved from an identity the purge leaves no trace of (persons
    resolve from every identity, whatever the period); in the order they are to be removed."""
    expired: list[Path] = []
    for folder, about in store.stored_versions(root):
        tables = [folder / f"{name}.parquet" for name in PATIENT_LEVEL_TABLES
                  if (folder / f"{name}.parquet").exists()]
        if tables and _analysis_expired(folder, about, engine, cutoff):
            expired += tables
    return expired


def _analysis_expired(folder: Path, about: dict | None, engine: Engine, cutoff: date) -> bool:
    start = ((about or {}).get("period") or {}).get("start")
    if start is None or date.fromisoformat(str(start)) < cutoff:
        return True
    links = folder / "identity_persons.parquet"
    if not links.exists():
        return False
    gone = engine.query(
        "SELECT count(*) AS n FROM read_parquet($links) WHERE identity_id NOT IN "
        f"(SELECT identity_id FROM identities_records WHERE ({EXPIRED['identities']}) IS NOT TRUE)",
        _bound(EXPIRED["identities"], links=str(links), cutoff=cutoff))["n"][0].as_py()
    return bool(gone)


# --- making it so -----------------------------------------------------------------------------------


def _write_kept(ws: Workspace, engine: Engine, files: list[DataFile], cutoff: date) -> dict[str, str]:
    """Each file that keeps rows, rewritten with only those to a new name, fsynced; returns old
    path -> new path. Nothing here is listed yet, so readers do not see it."""
    written: dict[str, str] = {}
    try:
        for f in files:
            if f.kept == 0:
                continue
            old = ws.root / f.path
            final = _new_name(old, f.ingest_id)
            written[f.path] = str(final.relative_to(ws.root))
            with replacing(final) as tmp:
                engine.copy_to_parquet(f"SELECT * FROM read_parquet($source) WHERE ({EXPIRED[f.table]}) IS NOT TRUE",
                                       tmp, _bound(EXPIRED[f.table], source=str(old), cutoff=cutoff))
                fsync_path(tmp)
        for folder in {(ws.root / p).parent for p in written.values()}:
            fsync_path(folder)
    except BaseException:
        for path in written.values():
            (ws.root / path).unlink(missing_ok=True)
        raise
    return written


def _bound(condition: str, cutoff: date, **values: object) -> dict[str, object]:
    """Parameters for a statement around ``condition``: the engine refuses a named parameter the
    statement does not use, and only some conditions use the cutoff."""
    return {**values, **({"cutoff": cutoff} if "$cutoff" in condition else {})}


def _new_name(old: Path, ingest_id: int) -> Path:
    while True:  # a random suffix: a file rewritten by an earlier purge keeps its ingest's number
        final = old.with_name(f"{ingest_id:09d}-kept-{secrets.token_hex(4)}.parquet")
        if not final.exists():
            return final


def _switch(ws: Workspace, plan: _Plan, written: dict[str, str], report: PurgeReport, actor: str) -> None:
    """The purge's one moment of change: the data-file list, the rejects and the audit entry."""
    # Deleted raw text is overwritten in the database file, not left in free pages.
    ws.meta.execute("PRAGMA secure_delete = ON")
    with ws.write_transaction():
        ws.meta.executemany("DELETE FROM data_files WHERE path = ?", [(f.path,) for f in plan.files])
        ws.meta.executemany("INSERT INTO data_files (path, table_name, ingest_id, rows) VALUES (?, ?, ?, ?)",
                            [(written[f.path], f.table, f.ingest_id, f.kept) for f in plan.files if f.kept])
        ws.meta.executemany("UPDATE rejects SET raw = NULL WHERE ingest_id = ? AND raw IS NOT NULL",
                            [(i,) for i in plan.raw_ingests])
        ws.write_audit([(actor, "purge", "workspace", {
            "before": report.cutoff.isoformat(), "removed": report.removed,
            "files_rewritten": report.files_rewritten, "files_removed": report.files_removed,
            "analysis_tables": report.analysis_tables})])
    try:
        ws.meta.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the old pages leave the write-ahead log too
    except sqlite3.OperationalError:
        pass  # a reader holds the log; its pages are overwritten at the next checkpoint


def _delete_replaced(ws: Workspace, files: list[DataFile]) -> None:
    for f in files:
        (ws.root / f.path).unlink(missing_ok=True)
    for folder in {(ws.root / f.path).parent for f in files}:
        fsync_path(folder)


def remove_analysis_tables(tables: list[Path]) -> None:
    """Delete a stored analysis's patient-level tables, in the order given."""
    for path in tables:
        path.unlink(missing_ok=True)
    for folder in {p.parent for p in tables}:
        fsync_path(folder)
