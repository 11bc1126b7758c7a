"""Durable writes and content hashes, shared by the workspace and its transactions."""

from __future__ import annotations

import gzip
import hashlib
import io
import zlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO

HASH_READ_BYTES = 8 * 1024 * 1024


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def open_content(path: Path) -> IO[bytes]:
    """What a source file holds, as every reader reads it: decompressed when its name ends in .gz."""
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def unreadable_reason(exc: BaseException) -> str:
    """Why a file cannot be read, in words (never its content)."""
    if isinstance(exc, gzip.BadGzipFile):  # no gzip header, or a checksum or length that does not match
        return ("is not a gzip file, though its name ends in .gz" if str(exc).startswith("Not a gzipped file")
                else "gzip data is corrupt (its checksum or length does not match)")
    if isinstance(exc, EOFError):
        return "gzip data ends early (the file is truncated)"
    if isinstance(exc, zlib.error):
        return "gzip data is corrupt (it does not decompress)"
    if isinstance(exc, FileNotFoundError):
        return "no longer exists (removed while the import ran)"
    if isinstance(exc, PermissionError):
        return "cannot be read: permission denied"
    if isinstance(exc, IsADirectoryError):
        return "is a directory, not a file"
    return f"cannot be read: {exc.strerror or type(exc).__name__}" if isinstance(exc, OSError) else \
        f"cannot be read: {type(exc).__name__}"


@dataclass(frozen=True)
class FileDigests:
    """SHA-256 of a source file's content (decompressed) and of its bytes as stored on disk."""

    content: str
    stored: str
    bytes: int  # on disk


class _HashingReader(io.RawIOBase):
    """A file read through, hashing every byte that passes."""

    def __init__(self, f: IO[bytes]):
        self.f, self.sha = f, hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[override]
        n = self.f.readinto(b)
        self.sha.update(memoryview(b)[:n])
        return n


def file_digests(path: Path) -> FileDigests:
    """Both hashes in one streaming pass. A file is known by its content, so a gzipped copy of a
    file already ingested is the same file; a gzip stream that is corrupt or cut short raises
    (zlib.error, EOFError, gzip.BadGzipFile) here, before anything is registered."""
    with open(path, "rb") as raw:
        size = os.fstat(raw.fileno()).st_size
        if path.suffix != ".gz":
            sha = hashlib.sha256()
            while block := raw.read(HASH_READ_BYTES):
                sha.update(block)
            return FileDigests(sha.hexdigest(), sha.hexdigest(), size)
        stored = _HashingReader(raw)
        content = hashlib.sha256()
        with gzip.GzipFile(fileobj=io.BufferedReader(stored, HASH_READ_BYTES), mode="rb") as f:
            while block := f.read(HASH_READ_BYTES):
                content.update(block)
        while stored.read(HASH_READ_BYTES):  # whatever gzip left unread (it reads to the end)
            pass
        return FileDigests(content.hexdigest(), stored.sha.hexdigest(), size)


def file_sha256(path: Path) -> str:
    """The hash a source file is known by: of its content, decompressed (see file_digests)."""
    return file_digests(path).content


@contextmanager
def replacing(path: Path, *, private: bool = False) -> Iterator[Path]:
    """A temporary name beside ``path`` to write to, renamed over ``path`` when the block ends
    without error, so readers never see half a file. ``private`` files are mode 0600 throughout."""
    tmp = path.with_name(f".{path.name}.tmp")
    if private:
        tmp.touch(mode=0o600)
        os.chmod(tmp, 0o600)  # touch leaves an existing file's mode as it was
    try:
        yield tmp
        if private:
            os.chmod(tmp, 0o600)  # a writer may have replaced the file
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(path)


def fsync_path(path: Path) -> None:
    """Flush a file, or a directory's entries (after a rename into it), to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
