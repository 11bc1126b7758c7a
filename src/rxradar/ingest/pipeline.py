"""Ingest source files into a workspace: one transaction per file, re-runs are no-ops.

Each kind of source has a reader; this module owns what is common to all of them: expanding
directories, recognising files already ingested (by content hash), pseudonymising identifiers,
and committing tables and rejects atomically through :class:`rxradar.workspace.Workspace`.
"""

from __future__ import annotations

import hashlib
import logging
import traceback
import zlib
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.compute as pc

from rxradar.engine import Engine
from rxradar.durable import file_digests, open_content, unreadable_reason
from rxradar.ingest import asap
from rxradar.ingest.csv_records import RecordLimits
from rxradar.ingest.deaths import read_deaths_csv
from rxradar.ingest.ije import MIN_RECORD_LENGTH, read_deaths_ije
from rxradar.ingest.registries import read_pharmacies, read_prescribers
from rxradar.ingest.rejects import REJECTED, Parsed, UnreadableFile
from rxradar.privacy import Pseudonymiser
from rxradar.ingest.zip_counties import read_zip_counties
from rxradar.schema import TABLES, conform
from rxradar.settings import Settings, byte_size
from rxradar.workspace import IngestTransaction, Workspace

log = logging.getLogger(__name__)

KINDS = ("asap", "deaths", "prescribers", "pharmacies", "zip_counties")
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

    @property
    def name(self) -> str:
        """The file's name as text, whatever bytes the file system holds for it."""
        return display_name(self.path)


def display_name(path: Path) -> str:
    """``path.name``, with bytes that are not UTF-8 shown as ``\\xff`` escapes."""
    return path.name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


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
    # A name the workspace cannot record as text (bytes that are not UTF-8) fails that file alone.
    misnamed = {p: _failed(p, None, f"{display_name(p)}: the file name is not UTF-8 text; rename the file and "
                                    "ingest it again") for p in files if display_name(p) != p.name}
    readable = [p for p in files if p not in misnamed]
    with ws.writer_lock(), Engine(memory_limit=settings.memory_limit, threads=settings.threads,
                                  temp_directory=ws.root / "tmp") as engine:
        if kind == "asap":
            done = _ingest_asap(ws, engine, readable, settings, progress)
        else:
            done = [_ingest_one(ws, engine, kind, path, settings, progress) for path in readable]
        outcomes = _in_order(files, misnamed, done)
        ws.audit_many([("cli", f"ingest_{kind}", o.name, {"status": o.status, "ingest_id": o.ingest_id})
                       for o in outcomes])
    return outcomes


def _in_order(files: list[Path], misnamed: dict[Path, FileOutcome], done: list[FileOutcome]) -> list[FileOutcome]:
    """The outcomes of ``files`` in their order: the misnamed ones, and ``done`` for the rest."""
    rest = iter(done)
    return [misnamed[p] if p in misnamed else next(rest) for p in files]


def _ingest_one(ws: Workspace, engine: Engine, kind: str, path: Path, settings: Settings,
                progress: Progress | None) -> FileOutcome:
    """A registry or death-record file: read whole (they are small), committed on its own. A file
    that cannot be read, or none of whose records can, fails: nothing of it is kept."""
    try:
        digests = file_digests(path)
    except (OSError, EOFError, zlib.error) as exc:
        return _fail_unreadable(ws, kind, path, unreadable_reason(exc))
    sha = digests.content
    prior = ws.prior_ingest(kind, sha)
    if prior is not None:
        _advance_by(progress, digests.bytes)
        return FileOutcome(path, "already-ingested", prior.ingest_id,
                           message=f"same content as #{prior.ingest_id} {prior.source_name}",
                           same_as=prior.source_name)
    tx = ws.begin(kind, path, sha)
    try:
        parsed = _read_other(kind, path, Pseudonymiser(ws.key), RecordLimits.from_settings(settings))
        _check_some_kept(parsed, path, kind)
        _load_parsed(tx, parsed)
        _advance_by(progress, digests.bytes)
        rows = tx.commit()
    except Exception as exc:  # noqa: BLE001 - any failure fails this file alone, never the run
        message = _failure_message(exc, path)
        tx.abort(message)
        return FileOutcome(path, "failed", tx.ingest_id, message=message)
    log.info("ingested %s as #%d", path.name, tx.ingest_id)
    return FileOutcome(path, "ingested", tx.ingest_id, tx.records_read, rows, len(tx.rejected_records),
                       tx.warnings)


def _failure_message(exc: Exception, path: Path) -> str:
    """What a failed file's manifest entry and the command say, starting with its name."""
    text = _safe_reason(exc, path)
    return text if text.startswith(f"{path.name}:") else f"{path.name}: {text}"


def _safe_reason(exc: BaseException, path: Path) -> str:
    """Why reading failed. Only messages written for this (UnreadableFile, file-system errors)
    are shown: any other exception's text may quote a value from the file, so it is logged by
    type and place alone."""
    if isinstance(exc, UnreadableFile):
        text = str(exc)
    elif isinstance(exc, OSError):
        text = unreadable_reason(exc)
    else:
        where = traceback.extract_tb(exc.__traceback__)[-1]
        log.error("reading %s failed with %s at %s:%d", path.name, type(exc).__name__,
                  Path(where.filename).name, where.lineno)
        text = f"could not be read ({type(exc).__name__} in the reader; nothing kept)"
    return text


def _read_other(kind: str, path: Path, pseudonymiser: Pseudonymiser, limits: RecordLimits) -> Parsed:
    if path.stat().st_size == 0:
        raise UnreadableFile(f"{path.name}: empty file (0 bytes)")
    if kind == "prescribers":
        return read_prescribers(path, path.name, limits=limits)
    if kind == "pharmacies":
        return read_pharmacies(path, path.name, limits)
    if kind == "zip_counties":
        return read_zip_counties(path, path.name, limits)
    if _looks_like_csv(path):
        return read_deaths_csv(path, path.name, pseudonymiser, limits)
    return read_deaths_ije(path, path.name, pseudonymiser)


def _looks_like_csv(path: Path) -> bool:
    """A deaths CSV names death_id in its header; anything else is read as IJE, whose records are
    then rejected one by one (so a file that is neither fails saying it is neither)."""
    with open_content(path) as f:
        first = f.readline(MIN_RECORD_LENGTH)
    return b"death_id" in first.lower() and b"," in first


def _check_some_kept(parsed: Parsed, path: Path, kind: str) -> None:
    """A file without records, or every record of which is rejected, is not that kind of file: it
    fails as a whole (with the commonest reason), rather than being ingested with nothing in it."""
    if parsed.records_read == 0:
        csv = kind != "deaths" or _looks_like_csv(path)
        raise UnreadableFile(f"{path.name}: no data records" + (" (a header line only)" if csv else ""))
    rejected = parsed.rejects.filter(pc.equal(parsed.rejects["severity"], REJECTED))
    if len({r for r in rejected["record_number"].to_pylist() if r is not None}) < parsed.records_read:
        return
    reason = Counter(rejected["reason"].to_pylist()).most_common(1)[0][0]
    what = {"deaths": "death records (a CSV with a death_id header, or NCHS IJE)"}.get(kind, f"{kind} records")
    raise UnreadableFile(f"{path.name}: none of its {parsed.records_read:,} records could be read as {what}; "
                         f"nothing kept (commonest problem: {reason})")


def _load_parsed(tx: IngestTransaction, parsed: Parsed) -> None:
    tx.records_read += parsed.records_read
    for name, table in parsed.tables.items():
        tx.write(name, conform(TABLES[name], table))
    tx.reject(parsed.rejects)


def _ingest_asap(ws: Workspace, engine: Engine, files: list[Path], settings: Settings,
                 progress: Progress | None) -> list[FileOutcome]:
    """ASAP files in batches: many small weekly submissions share one pass of the engine, and are
    committed together (each keeps its own manifest entry, rejects and counts).

    A file is known by the hash of its content, decompressed, so a gzipped copy of a file already
    ingested is not ingested again (and a workspace that knew it by its compressed bytes still
    does). A file that cannot be read at all fails alone, with its reason; the rest go on."""
    outcomes: dict[Path, FileOutcome] = {}
    pending: list[tuple[Path, str, int]] = []
    later: list[Path] = []
    in_this_run: set[str] = set()
    for path in files:
        try:
            digests = file_digests(path)
        except (OSError, EOFError, zlib.error) as exc:
            outcomes[path] = _fail_unreadable(ws, "asap", path, unreadable_reason(exc))
            continue
        prior = ws.prior_ingest("asap", digests.content) or (
            ws.prior_ingest("asap", digests.stored) if digests.stored != digests.content else None)
        if prior is not None:
            outcomes[path] = FileOutcome(path, "already-ingested", prior.ingest_id,
                                         message=f"same content as #{prior.ingest_id} {prior.source_name}",
                                         same_as=prior.source_name)
            _advance_by(progress, digests.bytes)
        elif digests.content in in_this_run:
            later.append(path)  # the same content under another name: known once its twin commits
        else:
            in_this_run.add(digests.content)
            pending.append((path, digests.content, digests.bytes))
    for batch in _batches(pending, settings.asap_batch_bytes):
        for outcome in _ingest_batch(ws, engine, [(path, sha) for path, sha, _ in batch], settings):
            outcomes[outcome.path] = outcome
        _advance_by(progress, sum(size for _, _, size in batch))
    if later:
        for outcome in _ingest_asap(ws, engine, later, settings, progress):
            outcomes[outcome.path] = outcome
    return [outcomes[p] for p in files]


def _advance_by(progress: Progress | None, size: int) -> None:
    if progress:
        progress("bytes", size)


def _batches(group: list[tuple[Path, str, int]], limit: int) -> list[list[tuple[Path, str, int]]]:
    """Files (path, hash, bytes) in batches of up to ``limit`` bytes; sizes are those taken when
    the file was hashed, so a file gone since fails in its batch, not here."""
    batches: list[list[tuple[Path, str, int]]] = [[]]
    size = 0
    for item in group:
        n = item[2]
        if batches[-1] and size + n > limit:
            batches.append([])
            size = 0
        batches[-1].append(item)
        size += n
    return [b for b in batches if b]


def _ingest_batch(ws: Workspace, engine: Engine, batch: list[tuple[Path, str]],
                  settings: Settings) -> list[FileOutcome]:
    """One transaction for a batch of files. A file that cannot be read, or of which nothing fits,
    fails alone; should anything else stop the batch before it commits, its files fail with a
    reason that quotes nothing of them (an interrupt still stops the run, after marking them
    failed), so no manifest entry is left "running"."""
    tx = ws.begin_batch("asap", batch)
    try:
        return _load_batch(ws, engine, tx, batch, settings)
    except BaseException as exc:
        if tx.finished:
            raise
        reason = _safe_reason(exc, batch[0][0])
        tx.abort(reason)
        if not isinstance(exc, Exception):
            raise
        return [_failed(path, None, f"{display_name(path)}: {reason}") for path, _ in batch]


def _load_batch(ws: Workspace, engine: Engine, tx: IngestTransaction, batch: list[tuple[Path, str]],
                settings: Settings) -> list[FileOutcome]:
    members = list(tx.members.values())
    paths = {m.ingest_id: path for (path, _), m in zip(batch, members)}
    outcomes: list[FileOutcome] = []
    scanned = []
    segments = asap.Batch(engine, byte_size(settings.memory_limit))
    try:
        for file_no, member in enumerate(members):
            try:
                scanned.append((segments.add(paths[member.ingest_id], member.source_name, file_no), member))
            except asap.AsapFormatError as exc:
                tx.fail_member(member.ingest_id, exc.reason, exc.field)
                outcomes.append(_failed(paths[member.ingest_id], member.ingest_id, str(exc)))
        if not scanned:
            return outcomes
        try:
            summaries = asap.load(engine, segments, scanned, tx, ws.key, settings)
        except asap.AsapFormatError as exc:
            if len(scanned) == 1:
                tx.abort(exc.reason, exc.field)
                return outcomes + [_failed(paths[scanned[0][1].ingest_id], scanned[0][1].ingest_id, str(exc))]
            # One file spoils the batch for the engine: find it by taking the files one at a time.
            tx.forget()
            segments.close()
            sha = dict(batch)
            retry = [paths[m.ingest_id] for _, m in scanned]
            return outcomes + [o for path in retry for o in _ingest_batch(ws, engine, [(path, sha[path])], settings)]
        for s, m in list(scanned):
            summary = summaries[m.ingest_id]
            if summary.failure:
                tx.fail_member(m.ingest_id, summary.failure)
                outcomes.append(_failed(paths[m.ingest_id], m.ingest_id, f"{m.source_name}: {summary.failure}"))
                scanned.remove((s, m))
                continue
            m.detail = f"ASAP {summary.header.version}" + (
                "; zero report" if summary.zero_reports and summary.records == 0 else
                f"; {summary.zero_reports} zero-report records" if summary.zero_reports else "") + (
                f"; {summary.orphaned_corrections} revise/void record(s) without their original, kept pending it"
                if summary.orphaned_corrections else "")
            if summary.orphaned_corrections:
                log.warning("%s: %d revise/void record(s) correct a fill not in the workspace; kept pending its "
                            "original", m.source_name, summary.orphaned_corrections)
        if tx.members:
            tx.commit()
        else:
            tx.forget()
    finally:
        segments.close()
    for s, m in scanned:
        log.info("ingested %s as #%d", m.source_name, m.ingest_id)
        outcomes.append(FileOutcome(paths[m.ingest_id], "ingested", m.ingest_id, m.records_read, dict(m.rows),
                                    len(m.rejected_records), m.warnings, m.detail or ""))
    return outcomes


def _fail_unreadable(ws: Workspace, kind: str, path: Path, reason: str) -> FileOutcome:
    """A file whose content cannot be read (a .gz that is not gzip, or is corrupt or cut short):
    failed in the manifest under the hash of its bytes, so ``rxradar rejects`` shows why. A file
    that cannot be opened at all (gone, or not readable) has no entry; the outcome says why."""
    try:
        with open(path, "rb") as f:
            sha = hashlib.file_digest(f, "sha256").hexdigest()
        tx = ws.begin(kind, path, sha)
    except OSError:
        return _failed(path, None, f"{path.name}: {reason}")
    tx.abort(reason)
    return _failed(path, tx.ingest_id, f"{path.name}: {reason}")


def _failed(path: Path, ingest_id: int | None, message: str) -> FileOutcome:
    log.warning("%s", message)
    return FileOutcome(path, "failed", ingest_id, message=message)
