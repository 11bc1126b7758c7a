"""Where analysis results live, as whole versions::

    DIR/analytics/current              the id of the version readers use (replaced by rename)
    DIR/analytics/runs/<id>/           one analysis: <table>.parquet, analysis.json, .readers

An analysis writes every table and its ``analysis.json`` into a new ``runs/<id>/`` folder,
fsyncs them, and only then replaces ``current``: one rename switches readers from the whole
previous set to the whole new one, and a crash before it leaves the previous set in use (the
half-written folder is removed by the next analysis).

Readers open a :class:`Snapshot` of the current version and read every table of one request
from it. A snapshot holds a shared lock on its folder's ``.readers`` file; old versions are
removed only under an exclusive lock taken without waiting, so never while a reader holds them,
and the version before the current one is always kept (a request that began just before the
switch finishes on it).

A workspace written before versions existed keeps its tables directly in ``DIR/analytics/``:
that flat set is read as a version of its own until the first analysis after it, and removed
like any other old version once two newer ones exist.

Everything here is restricted: folders are owner-only (0700) and files 0600, since
``persons``, ``identity_persons`` and ``patient_indicators`` are patient-level and
``county_metrics`` holds counts before disclosure control.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rxradar.durable import fsync_path, replacing
from rxradar.engine import Engine

ANALYTICS_TABLES = ("persons", "identity_persons", "patient_indicators", "prescriber_metrics",
                    "prescriber_months", "pharmacy_metrics", "deciles", "county_metrics")
# One row per person, or per identity linked to a person: what retention must delete with the
# source data. The others are counts over prescribers, pharmacies, months and counties. In the
# order retention removes them: identity_persons last, for while it is there, a re-run of an
# interrupted purge still sees the analysis as affected.
PATIENT_LEVEL_TABLES = ("persons", "patient_indicators", "identity_persons")
ABOUT = "analysis.json"
POINTER = "current"
READERS = ".readers"
FLAT = ""  # the version id of a workspace's pre-version tables, kept directly in analytics/
PRIVATE_DIR = 0o700


def analytics_dir(root: Path) -> Path:
    return Path(root) / "analytics"


def runs_dir(root: Path) -> Path:
    return analytics_dir(root) / "runs"


def version_dir(root: Path, run: str) -> Path:
    return analytics_dir(root) if run == FLAT else runs_dir(root) / run


def current_run(root: Path) -> str | None:
    """The id of the version readers use: ``current``'s content; FLAT for a workspace analysed
    before versions existed; None when there is no analysis."""
    try:
        return (analytics_dir(root) / POINTER).read_text().strip()
    except FileNotFoundError:
        return FLAT if (analytics_dir(root) / ABOUT).exists() else None


def table_files(root: Path, name: str) -> list[Path]:
    """Every stored file of analysis table ``name``, in every version (for retention)."""
    if name not in ANALYTICS_TABLES:
        raise ValueError(f"unknown analysis table {name!r}; tables are {', '.join(ANALYTICS_TABLES)}")
    flat = analytics_dir(root) / f"{name}.parquet"
    runs = sorted(runs_dir(root).glob(f"*/{name}.parquet")) if runs_dir(root).exists() else []
    return ([flat] if flat.exists() else []) + runs


def stored_versions(root: Path) -> list[tuple[Path, dict[str, Any] | None]]:
    """Every stored version's folder with its ``analysis.json`` (None when it has none): the
    current one, the previous one, and any a reader held when it was due to go (for retention)."""
    folders = [analytics_dir(root)] if (analytics_dir(root) / ABOUT).exists() else []
    if runs_dir(root).exists():
        folders += sorted(p for p in runs_dir(root).iterdir() if p.is_dir() and not p.name.startswith("."))
    out = []
    for folder in folders:
        try:
            out.append((folder, json.loads((folder / ABOUT).read_text())))
        except FileNotFoundError:
            out.append((folder, None))
    return out


# --- reading -------------------------------------------------------------------------------------


class Snapshot:
    """One version of the analysis results, held (shared lock) until :meth:`close`, or until the
    object is dropped: every table a reader takes from it belongs to the same analysis."""

    def __init__(self, root: Path, run: str, folder: Path, about: dict[str, Any], fd: int | None):
        self.root, self.run, self.folder, self.about = Path(root), run, folder, about
        self._fd = fd

    def tables(self) -> dict[str, Path]:
        return {n: self.folder / f"{n}.parquet" for n in ANALYTICS_TABLES if (self.folder / f"{n}.parquet").exists()}

    def path(self, name: str) -> Path | None:
        path = self.folder / f"{name}.parquet"
        return path if name in ANALYTICS_TABLES and path.exists() else None

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # releases the shared lock
            self._fd = None

    def __enter__(self) -> Snapshot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()


# Resolving ``current`` and locking its folder races a writer only if two analyses land between
# the two steps; a few tries settle it.
OPEN_TRIES = 5


def open_current(root: Path) -> Snapshot | None:
    """A snapshot of the current version, or None when the workspace has no analysis."""
    for _ in range(OPEN_TRIES):
        run = current_run(root)
        if run is None:
            return None
        folder = version_dir(root, run)
        fd = _lock_shared(folder / READERS)
        if fd is None and not folder.exists():
            continue  # removed between reading ``current`` and getting here
        # A version being removed loses its analysis.json first, under the exclusive lock.
        try:
            about = json.loads((folder / ABOUT).read_text())
        except FileNotFoundError:
            if fd is not None:
                os.close(fd)
            continue
        return Snapshot(root, run, folder, about, fd)
    raise RuntimeError(f"the analysis results in {analytics_dir(root)} kept changing while being opened; try again")


def _lock_shared(path: Path) -> int | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o600)
    except FileNotFoundError:
        return None  # the version's folder is gone
    except PermissionError:
        # A reader who may not create the lock file (a read-only copy of a workspace) reads
        # without one: nothing removes versions there.
        return None
    fcntl.flock(fd, fcntl.LOCK_SH)
    return fd


def load_about(root: Path) -> dict[str, Any] | None:
    with _opened(root) as snap:
        return snap.about if snap else None


def saved_tables(root: Path) -> dict[str, Path]:
    """The current version's table files (paths stay valid while that version is current or
    previous; hold a :func:`open_current` snapshot to read several of them as one set)."""
    with _opened(root) as snap:
        return snap.tables() if snap else {}


@contextmanager
def _opened(root: Path) -> Iterator[Snapshot | None]:
    snap = open_current(root)
    try:
        yield snap
    finally:
        if snap:
            snap.close()


# --- writing -------------------------------------------------------------------------------------


class NewRun:
    """A version being written: tables and ``analysis.json`` go into its own folder; nothing
    reads it until :meth:`publish` switches ``current`` to it."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.run = f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{secrets.token_hex(4)}"
        self.folder = runs_dir(root) / self.run
        for folder in (analytics_dir(root), runs_dir(root), self.folder):
            folder.mkdir(mode=PRIVATE_DIR, exist_ok=True)
            os.chmod(folder, PRIVATE_DIR)  # an older analytics/ may be group- or world-readable
        (self.folder / READERS).touch(mode=0o600)

    def save_table(self, engine: Engine, name: str, sql: str) -> Path:
        if name not in ANALYTICS_TABLES:
            raise ValueError(f"unknown analysis table {name!r}")
        final = self.folder / f"{name}.parquet"
        with replacing(final, private=True) as tmp:
            engine.copy_to_parquet(sql, tmp)
        return final

    def save_about(self, about: dict[str, Any]) -> None:
        write_json(self.folder / ABOUT, about, private=True)

    def publish(self) -> None:
        """Make this version the current one, in one rename, once all of it is on disk; then
        remove versions older than the one it replaces that no reader holds."""
        previous = current_run(self.root)
        for path in self.folder.iterdir():
            fsync_path(path)
        fsync_path(self.folder)
        fsync_path(runs_dir(self.root))
        _restrict_flat(self.root)
        pointer = analytics_dir(self.root) / POINTER
        with replacing(pointer, private=True) as tmp:
            tmp.write_text(self.run + "\n")
            fsync_path(tmp)
        fsync_path(analytics_dir(self.root))
        remove_old_versions(self.root, keep={self.run, previous})

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


@contextmanager
def new_run(root: Path) -> Iterator[NewRun]:
    """A version to write; removed if the block raises (a killed writer's folder is removed by
    the next analysis). The caller publishes it. Run under the workspace's writer lock."""
    run = NewRun(root)
    try:
        yield run
    except BaseException:
        run.discard()
        raise


def remove_old_versions(root: Path, keep: set[str | None]) -> list[str]:
    """Remove every version not in ``keep`` that no reader holds (a version held now is tried
    again after the next analysis). Returns the ids removed."""
    removed = []
    candidates = [p.name for p in runs_dir(root).iterdir() if p.is_dir() and not p.name.startswith(".")] \
        if runs_dir(root).exists() else []
    if FLAT not in keep and (analytics_dir(root) / ABOUT).exists():
        candidates.append(FLAT)
    for run in candidates:
        if run in keep:
            continue
        folder = version_dir(root, run)
        fd = os.open(folder / READERS, os.O_RDONLY | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a reader holds it
            if run == FLAT:
                (folder / ABOUT).unlink(missing_ok=True)  # first: a reader that locks next sees it gone
                for name in ANALYTICS_TABLES:
                    (folder / f"{name}.parquet").unlink(missing_ok=True)
            else:
                (folder / ABOUT).unlink(missing_ok=True)
                trash = runs_dir(root) / f".removing-{run}"
                folder.rename(trash)
                shutil.rmtree(trash, ignore_errors=True)
            removed.append(run)
        finally:
            os.close(fd)
    for leftover in runs_dir(root).glob(".removing-*") if runs_dir(root).exists() else []:
        shutil.rmtree(leftover, ignore_errors=True)  # a removal interrupted by a crash
    return removed


def _restrict_flat(root: Path) -> None:
    """Tables a workspace kept before versions existed were written world-readable."""
    folder = analytics_dir(root)
    for path in (*(folder / f"{name}.parquet" for name in ANALYTICS_TABLES), folder / ABOUT):
        if path.exists():
            os.chmod(path, 0o600)


def write_json(path: Path, about: dict[str, Any], *, private: bool = False) -> Path:
    """``about`` (period, settings, parameters) as JSON, written under a temporary name and renamed."""
    with replacing(path, private=private) as tmp:
        tmp.write_text(json.dumps(about, indent=2, sort_keys=True, default=str) + "\n")
    return path
