"""Who may see what on the dashboard: a workspace's users, each with a role, their passwords
(scrypt), browser sessions (signed cookies) and HTTP Basic for scripts calling the API.

Roles are cumulative: ``aggregate`` sees the summary, counties (after disclosure control) and
the indicator declarations; ``investigator`` also the prescriber and pharmacy leads and
profiles, and each such view is written to the audit log; ``administrator`` also manages users.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import sqlite3
import time
from dataclasses import dataclass

from rxradar.durable import now

ROLES = {
    "aggregate": frozenset({"places"}),
    "investigator": frozenset({"places", "leads"}),
    "administrator": frozenset({"places", "leads", "users"}),
}
# scrypt (RFC 7914) at the OWASP Password Storage Cheat Sheet's parameters: N = 2^17, r = 8, p = 1.
SCRYPT = {"n": 2**17, "r": 8, "p": 1, "maxmem": 2**28, "dklen": 32}
SESSION_SECONDS = 8 * 3600  # a working day; sessions also end when the server stops
MIN_PASSWORD = 10  # NIST SP 800-63B: at least 8; rxradar asks a little more of people guarding PDMP data
USER_NAME = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")


@dataclass(frozen=True)
class User:
    name: str
    role: str

    def can(self, capability: str) -> bool:
        return capability in ROLES[self.role]


def _hash(password: str, salt: bytes) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, **SCRYPT)


def set_user(meta: sqlite3.Connection, name: str, role: str, password: str) -> None:
    """Add a user, or give an existing one this role and password."""
    if not USER_NAME.match(name):
        raise ValueError(f"user name {name!r}: use 1-64 letters, digits, '.', '_', '@' or '-'")
    if role not in ROLES:
        raise ValueError(f"role {role!r}: choose one of {', '.join(ROLES)}")
    if len(password) < MIN_PASSWORD:
        raise ValueError(f"the password needs at least {MIN_PASSWORD} characters")
    salt = os.urandom(16)
    meta.execute("INSERT INTO users VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET role = excluded.role, "
                 "salt = excluded.salt, hash = excluded.hash", (name, role, salt, _hash(password, salt), now()))


def remove_user(meta: sqlite3.Connection, name: str) -> bool:
    return meta.execute("DELETE FROM users WHERE name = ?", (name,)).rowcount > 0


def users(meta: sqlite3.Connection) -> list[tuple[str, str, str]]:
    """(name, role, created_at) of every user, by name."""
    return meta.execute("SELECT name, role, created_at FROM users ORDER BY name").fetchall()


def find_user(meta: sqlite3.Connection, name: str) -> User | None:
    row = meta.execute("SELECT name, role FROM users WHERE name = ?", (name,)).fetchone()
    return User(*row) if row else None


class Verifier:
    """Checks passwords. A password already proved for the same stored hash is remembered (by
    its SHA-256, in memory) so that API scripts sending HTTP Basic on every request pay for
    scrypt once; a new password or a removed user is never served from memory."""

    def __init__(self) -> None:
        self._proved: set[tuple[str, bytes, bytes]] = set()

    def verify(self, meta: sqlite3.Connection, name: str, password: str) -> User | None:
        row = meta.execute("SELECT role, salt, hash FROM users WHERE name = ?", (name,)).fetchone()
        if row is None:
            _hash(password, b"\0" * 16)  # as slow as a wrong password: no hint that the name is unknown
            return None
        role, salt, stored = row
        key = (name, hashlib.sha256(password.encode("utf-8")).digest(), stored)
        if key not in self._proved:
            if not hmac.compare_digest(_hash(password, salt), stored):
                return None
            self._proved.add(key)
        return User(name, role)


def basic_credentials(header: str | None) -> tuple[str, str] | None:
    """(name, password) from an ``Authorization: Basic`` header, or None."""
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        name, sep, password = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8").partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return (name, password) if sep else None


class Sessions:
    """Session cookies: ``name.expiry.signature``, signed with a secret this server made at start."""

    def __init__(self, secret: bytes | None = None, seconds: int = SESSION_SECONDS):
        self.secret = secret or os.urandom(32)
        self.seconds = seconds

    def _sign(self, payload: str) -> str:
        return hmac.new(self.secret, payload.encode("utf-8"), hashlib.sha256).hexdigest()

    def issue(self, name: str, at: float | None = None) -> str:
        payload = f"{name}.{int((at or time.time()) + self.seconds)}"
        return f"{payload}.{self._sign(payload)}"

    def read(self, cookie: str | None, at: float | None = None) -> str | None:
        """The user name of a valid, unexpired cookie; None otherwise."""
        if not cookie or cookie.count(".") < 2:
            return None
        payload, _, signature = cookie.rpartition(".")
        name, _, expiry = payload.rpartition(".")
        if not hmac.compare_digest(self._sign(payload), signature) or not expiry.isdigit():
            return None
        return name if int(expiry) > (at or time.time()) else None
