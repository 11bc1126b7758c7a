"""Pseudonymisation: keyed hashes (HMAC-SHA256) of identifiers, with a per-workspace secret.

Identified values are hashed at ingest so analytics never see them; the same value under the
same workspace key always gives the same hash, so deterministic links still work.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rxradar import _keyed_hash

if TYPE_CHECKING:
    from rxradar.engine import Engine

# 128 bits of the HMAC output are kept: collisions are negligible at PDMP scale (2^64 records
# for an even chance) and the ids stay short in Parquet and URLs.
HASH_HEX_CHARS = 32
SHA256_BLOCK = 64  # bytes; HMAC pads the key to the hash's block size (RFC 2104)
HASH_SLICE = 1 << 24  # values hashed per native call: 16M x 64 hex digits stays within int32 offsets


def key_pads(key: bytes) -> tuple[bytes, bytes]:
    """(inner, outer) HMAC-SHA256 key pads (RFC 2104)."""
    padded = key if len(key) <= SHA256_BLOCK else hashlib.sha256(key).digest()
    padded = padded.ljust(SHA256_BLOCK, b"\0")
    return bytes(b ^ 0x36 for b in padded), bytes(b ^ 0x5C for b in padded)


def keyed_hashes(key: bytes, values: pa.Array | pa.ChunkedArray, hex_chars: int = HASH_HEX_CHARS, *,
                 portable: bool = False) -> pa.StringArray:
    """HMAC-SHA256 of each value, as :meth:`Pseudonymiser.hash` gives it (tested), at native
    speed for a whole column; null and empty values have no hash. The CPU's SHA extensions are
    used where present; ``portable`` asks for the plain C rounds (so tests check both)."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    values = values.cast(pa.string())
    if len(values) > HASH_SLICE:  # the digests' int32 offsets stay in range
        return pa.concat_arrays([keyed_hashes(key, values.slice(i, HASH_SLICE), hex_chars, portable=portable)
                                 for i in range(0, len(values), HASH_SLICE)])
    n = len(values)
    if values.offset:  # the native code reads buffers from their start
        values = pc.take(values, pa.array(np.arange(n)))
    validity, offsets, data = values.buffers()
    if n == 0 or offsets is None:
        return pa.nulls(n, pa.string())
    inner, outer = key_pads(key)
    digits, valid, nulls = _keyed_hash.hmac_hex(data if data is not None else b"", offsets, validity, n,
                                                inner, outer, hex_chars, portable)
    return pa.StringArray.from_buffers(n, pa.py_buffer(np.arange(0, (n + 1) * hex_chars, hex_chars, dtype=np.int32)),
                                       pa.py_buffer(digits), pa.py_buffer(valid), nulls)


# Nine digits standing alone: plain, or 3-2-4 with separators as people type them (hyphens,
# dashes, dots, slashes, spaces, mixed), or 3-6; digits of any script. Raw text kept with rejects
# is restricted, yet an SSN in it is starred out wherever it appears (a name field shifted by a
# stray comma carries it into another column). Nine-digit values that are not SSNs (a
# prescription number) are starred too: raw text is for reading a record's shape, not for
# recovering its values. A ZIP+4 (5-4) is not an SSN's shape and stays; nor do longer runs of
# digits joined by hyphens, dots or slashes (dates and numbers side by side), which would
# otherwise be starred piecemeal; a space ends a run.
SSN_JOINER = r"[-./\u2010-\u2015]"
SSN_SEPARATOR = r"[-./ \u2010-\u2015]"
SSN_SHAPED = re.compile(rf"(?<!\d)(?<!\d{SSN_JOINER})\d{{3}}(?:{SSN_SEPARATOR}\d{{2}}{SSN_SEPARATOR}?|\d{{2}})\d{{4}}"
                        rf"(?!{SSN_JOINER}?\d)")
# In fixed-width records (NCHS IJE) fields touch: an SSN shifted out of its columns runs into the
# digits beside it, so there any run of nine or more digits is starred.
LONG_DIGIT_RUN = re.compile(r"\d{9,}")


def _stars(match: re.Match) -> str:
    return re.sub(r"\d", "*", match.group(0))


def mask_ssn_shaped(text: str | None) -> str | None:
    """``text`` with every SSN-shaped run of digits starred out (separators kept)."""
    if not text:
        return text
    return SSN_SHAPED.sub(_stars, text)


def mask_long_digit_runs(text: str) -> str:
    """``text`` with every run of nine or more digits starred out (for fixed-width records)."""
    return LONG_DIGIT_RUN.sub(_stars, text)


class Pseudonymiser:
    def __init__(self, key: bytes):
        if len(key) < 32:
            raise ValueError("workspace key must be at least 32 bytes")
        self._key = key

    def hash(self, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        digest = hmac.new(self._key, value.encode("utf-8"), hashlib.sha256).hexdigest()
        return digest[:HASH_HEX_CHARS]

    def hash_many(self, values: Iterable[str | None]) -> list[str | None]:
        """Hash each value; repeated values are hashed once."""
        seen: dict[str | None, str | None] = {}
        out = []
        for v in values:
            h = seen.get(v)
            if h is None and v not in seen:
                h = seen[v] = self.hash(v)
            out.append(h)
        return out


@contextmanager
def keyed_hash_function(engine: Engine, key: bytes) -> Iterator[None]:
    """SQL function ``keyed_hash(text)``, equal to :meth:`Pseudonymiser.hash` under ``key``,
    while the block runs (the native HMAC, a vector of values at a time)."""
    engine.function("keyed_hash", lambda values: keyed_hashes(key, values), ["VARCHAR"], "VARCHAR")
    try:
        yield
    finally:
        engine.remove_function("keyed_hash")
