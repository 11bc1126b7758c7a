"""Durable writes and content hashes, shared by the workspace and its transactions."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

HASH_READ_BYTES = 8 * 1024 * 1024


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(HASH_READ_BYTES):
            h.update(block)
    return h.hexdigest()


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


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
