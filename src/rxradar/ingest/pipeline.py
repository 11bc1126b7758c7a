"""Ingest source files into a workspace: one transaction per file, re-runs are no-ops.

Each kind of source has a reader; this module owns what is common to all of them: expanding
directories, recognising files already ingested (by content hash), pseudonymising identifiers,
and committing tables and rejects atomically through :class:`rxradar.workspace.Workspace`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from rxradar.engine import Engine
from rxradar.ingest import asap
from rxradar.ingest.deaths import read_deaths_csv
from rxradar.ingest.ije import read_deaths_ije
from rxradar.ingest.registries import read_pharmacies, read_prescribers
from rxradar.ingest.rejects import Parsed
from rxradar.privacy import Pseudonymiser
from rxradar.schema import TABLES, conform
from rxradar.settings import Settings
from rxradar.workspace import IngestTransaction, Workspace, file_sha256

log = logging.getLogger(__name__)

KINDS = ("asap", "deaths", "prescribers", "pharmacies")
SKIP_NAMES = {".DS_Store"}

Progress = Callable[[str, int], None]  # (event, amount): "file" with bytes, or "bytes" read


@dataclass
class FileOutcome:
    path: Path
    status: str  # ingested | already-ingested | failed
    ingest_id: int | None = None
    records: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    rejected: int = 0
    warnings: int = 0
    message: str = ""
    same_as: str | None = None  # for already-ingested files: the name it was first ingested under


def expand_paths(paths: Iterable[Path]) -> list[Path]:
    """Files as given, and every file under each directory, in name order."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(f for f in p.rglob("*") if f.is_file() and f.name not in SKIP_NAMES
                              and not f.name.startswith(".")))
        elif p.exists():
            out.append(p)
        else:
            raise FileNotFoundError(f"{p}: no such file or directory")
    return out


def ingest_files(ws: Workspace, kind: str, paths: Iterable[Path], settings: Settings,
                 progress: Progress | None = None) -> list[FileOutcome]:
    if kind not in KINDS:
        raise ValueError(f"unknown source kind {kind!r}; expected one of {KINDS}")
    files = expand_paths(paths)
    outcomes = []
    with ws.writer_lock(), Engine(memory_limit=settings.memory_limit, threads=settings.threads,
                                  temp_directory=ws.root / "tmp") as engine:
        for path in files:
            outcomes.append(_ingest_one(ws, engine, kind, path, settings, progress))
            ws.audit("cli", f"ingest_{kind}", path.name, {"status": outcomes[-1].status,
                                                          "ingest_id": outcomes[-1].ingest_id})
    return outcomes


def _ingest_one(ws: Workspace, engine: Engine, kind: str, path: Path, settings: Settings,
                progress: Progress | None) -> FileOutcome:
    sha = file_sha256(path)
    prior = ws.prior_ingest(kind, sha)
    if prior is not None:
        if progress:
            progress("bytes", path.stat().st_size)
        return FileOutcome(path, "already-ingested", prior.ingest_id,
                           message=f"same content as #{prior.ingest_id} {prior.source_name}",
                           same_as=prior.source_name)
    tx = ws.begin(kind, path, sha)
    try:
        if kind == "asap":
            detail = _load_asap(tx, engine, ws.key, path, settings, progress)
        else:
            _load_parsed(tx, _read_other(kind, path, Pseudonymiser(ws.key)))
            detail = None
            if progress:
                progress("bytes", path.stat().st_size)
        rows = tx.commit(detail)
    except asap.AsapFormatError as exc:
        tx.abort(exc.reason, exc.field)
        return FileOutcome(path, "failed", tx.ingest_id, message=str(exc))
    except (ValueError, UnicodeDecodeError, OSError, EOFError) as exc:
        tx.abort(str(exc))
        return FileOutcome(path, "failed", tx.ingest_id, message=f"{path.name}: {exc}")
    log.info("ingested %s as #%d", path.name, tx.ingest_id)
    return FileOutcome(path, "ingested", tx.ingest_id, tx.records_read, rows, len(tx.rejected_records),
                       tx.warnings, detail or "")


def _read_other(kind: str, path: Path, pseudonymiser: Pseudonymiser) -> Parsed:
    if kind == "prescribers":
        return read_prescribers(path, path.name)
    if kind == "pharmacies":
        return read_pharmacies(path, path.name)
    return (read_deaths_csv if _looks_like_csv(path) else read_deaths_ije)(path, path.name, pseudonymiser)


def _looks_like_csv(path: Path) -> bool:
    with open(path, "rb") as f:
        first = f.readline(4096).lstrip(b"\xef\xbb\xbf").lower()
    return b"death_id" in first and b"," in first


def _load_parsed(tx: IngestTransaction, parsed: Parsed) -> None:
    tx.records_read += parsed.records_read
    for name, table in parsed.tables.items():
        tx.write(name, conform(TABLES[name], table))
    tx.reject(parsed.rejects)


def _load_asap(tx: IngestTransaction, engine: Engine, key: bytes, path: Path, settings: Settings,
               progress: Progress | None) -> str:
    prepared = asap.prepare(path, path.name, tx.ws.scratch_dir)
    summary = asap.load(engine, prepared, tx, key, settings.max_days_supply)
    if progress:
        progress("bytes", path.stat().st_size)
    note = f"ASAP {summary.header.version}"
    if summary.zero_reports:
        note += "; zero report" if summary.records == 0 else f"; {summary.zero_reports} zero-report records"
    return note


