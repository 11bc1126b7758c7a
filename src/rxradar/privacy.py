"""Pseudonymisation: keyed hashes (HMAC-SHA256) of identifiers, with a per-workspace secret.

Identified values are hashed at ingest so analytics never see them; the same value under the
same workspace key always gives the same hash, so deterministic links still work.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

# 128 bits of the HMAC output are kept: collisions are negligible at PDMP scale (2^64 records
# for an even chance) and the ids stay short in Parquet and URLs.
HASH_HEX_CHARS = 32


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
