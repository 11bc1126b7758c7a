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
import threading
import time
from dataclasses import dataclass

from rxradar.durable import now
from rxradar.workspace import Workspace

ROLES = {
    "aggregate": frozenset({"places"}),
    "investigator": frozenset({"places", "leads"}),
    "administrator": frozenset({"places", "leads", "users"}),
}
# scrypt (RFC 7914) at the OWASP Password Storage Cheat Sheet's parameters: N = 2^17, r = 8, p = 1.
SCRYPT = {"n": 2**17, "r": 8, "p": 1, "maxmem": 2**28, "dklen": 32}
# Each scrypt takes 128 MiB for ~0.6 s: at most this many at once, so a flood of sign-in attempts
# queues instead of exhausting memory.
SCRYPT_AT_ONCE = 2
SESSION_SECONDS = 8 * 3600  # a working day; sessions also end when the server stops
MIN_PASSWORD = 10  # NIST SP 800-63B: at least 8; rxradar asks a little more of people guarding PDMP data
USER_NAME = re.compile(r"[A-Za-z0-9._@-]{1,64}")  # the whole name (fullmatch)


class TryLater(Exception):
    """A sign-in refused for now, before its password was checked: answered with ``status`` and,
    when known, a Retry-After of ``retry_after`` seconds."""

    status = 503
    title = "Try again later"
    retry_after: str | None = None


@dataclass(frozen=True)
class User:
    name: str
    role: str

    def can(self, capability: str) -> bool:
        return capability in ROLES[self.role]


def _hash(password: str, salt: bytes) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, **SCRYPT)


def set_user(ws: Workspace, name: str, role: str, password: str, *, actor: str) -> None:
    """Add a user, or give an existing one this role and password; audited with who did it."""
    if not is_user_name(name):
        raise ValueError(f"user name {name!r}: use 1-64 letters, digits, '.', '_', '@' or '-'")
    if role not in ROLES:
        raise ValueError(f"role {role!r}: choose one of {', '.join(ROLES)}")
    if len(password) < MIN_PASSWORD:
        raise ValueError(f"the password needs at least {MIN_PASSWORD} characters")
    salt = os.urandom(16)
    stored = _hash(password, salt)
    with ws.write_transaction():
        ws.meta.execute("INSERT INTO users VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
                        "role = excluded.role, salt = excluded.salt, hash = excluded.hash",
                        (name, role, salt, stored, now()))
        # A new password also unlocks the name and clears its failed sign-ins (serve/throttle.py).
        cleared = ws.meta.execute("DELETE FROM sign_in_failures WHERE name = ? RETURNING failures",
                                  (name,)).fetchone()
    ws.audit(actor, "user_set", name, {"role": role, **({"failed_sign_ins_cleared": cleared[0]} if cleared else {})})


def remove_user(ws: Workspace, name: str, *, actor: str) -> bool:
    """Take a user's access away (audited); False when there was no such user."""
    with ws.write_transaction():
        removed = ws.meta.execute("DELETE FROM users WHERE name = ?", (name,)).rowcount > 0
    if removed:
        ws.audit(actor, "user_remove", name)
    return removed


def users(meta: sqlite3.Connection) -> list[tuple[str, str, str]]:
    """(name, role, created_at) of every user, by name."""
    return meta.execute("SELECT name, role, created_at FROM users ORDER BY name").fetchall()


def account(meta: sqlite3.Connection, name: str) -> tuple[User, str] | None:
    """A user and the fingerprint of their password hash (sessions carry it, so a new password
    ends the sessions opened with the old one)."""
    row = meta.execute("SELECT name, role, hash FROM users WHERE name = ?", (name,)).fetchone()
    return (User(row[0], row[1]), fingerprint(row[2])) if row else None


def fingerprint(stored: bytes) -> str:
    return hashlib.sha256(stored).hexdigest()[:16]


def is_user_name(name: str) -> bool:
    """Whether a user could have this name (set_user refuses any other)."""
    return USER_NAME.fullmatch(name) is not None


class Verifier:
    """Checks passwords. A password already proved for the same stored hash is remembered (by
    its SHA-256, in memory) so that API scripts sending HTTP Basic on every request pay for
    scrypt once; a new password or a removed user is never served from memory."""

    def __init__(self) -> None:
        self._proved: set[tuple[str, bytes, bytes]] = set()
        self._slots = threading.BoundedSemaphore(SCRYPT_AT_ONCE)

    def _scrypt(self, password: str, salt: bytes) -> bytes:
        with self._slots:
            return _hash(password, salt)

    def remembered(self, meta: sqlite3.Connection, name: str, password: str) -> User | None:
        """The user, if these credentials were proved before for the password stored now."""
        row = meta.execute("SELECT role, hash FROM users WHERE name = ?", (name,)).fetchone()
        if row is None:
            return None
        key = (name, hashlib.sha256(password.encode("utf-8")).digest(), row[1])
        return User(name, row[0]) if key in self._proved else None

    def verify(self, meta: sqlite3.Connection, name: str, password: str) -> tuple[User | None, bool]:
        """The user these credentials prove (or None), and whether scrypt proved them just now
        (False when remembered)."""
        row = meta.execute("SELECT role, salt, hash FROM users WHERE name = ?", (name,)).fetchone()
        if row is None:
            self._scrypt(password, b"\0" * 16)  # as slow as a wrong password: no hint the name is unknown
            return None, True
        role, salt, stored = row
        key = (name, hashlib.sha256(password.encode("utf-8")).digest(), stored)
        if key in self._proved:
            return User(name, role), False
        if not hmac.compare_digest(self._scrypt(password, salt), stored):
            return None, True
        self._proved.add(key)
        return User(name, role), True


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
    """Session cookies: ``name.fingerprint.expiry.nonce.signature``, signed with a secret this
    server made at start; the fingerprint is the password hash's at sign-in, the nonce makes each
    cookie new. Signing out revokes the cookie for the rest of the server's life (which is the
    cookie's longest life)."""

    def __init__(self, secret: bytes | None = None, seconds: int = SESSION_SECONDS):
        self.secret = secret or os.urandom(32)
        self.seconds = seconds
        self._revoked: set[str] = set()

    def _sign(self, payload: str) -> str:
        return hmac.new(self.secret, payload.encode("utf-8"), hashlib.sha256).hexdigest()

    def issue(self, name: str, password_fingerprint: str, at: float | None = None) -> str:
        payload = f"{name}.{password_fingerprint}.{int((at or time.time()) + self.seconds)}.{os.urandom(8).hex()}"
        return f"{payload}.{self._sign(payload)}"

    def read(self, cookie: str | None, at: float | None = None) -> tuple[str, str] | None:
        """(user name, password fingerprint) of a valid, unexpired, unrevoked cookie; else None."""
        if not cookie or cookie.count(".") < 4:
            return None
        payload, _, signature = cookie.rpartition(".")
        name, password_fingerprint, expiry, _ = payload.rsplit(".", 3)
        if (not hmac.compare_digest(self._sign(payload).encode(), signature.encode()) or not expiry.isdigit()
                or signature in self._revoked):
            return None
        return (name, password_fingerprint) if int(expiry) > (at or time.time()) else None

    def form_token(self, nonce: str) -> str:
        """The sign-in form's CSRF token for the nonce in its cookie."""
        return self._sign(f"login-form.{nonce}")

    def form_token_ok(self, nonce: str | None, token: str | None) -> bool:
        return bool(nonce and token) and hmac.compare_digest(self.form_token(nonce).encode(), token.encode())

    def revoke(self, cookie: str | None) -> None:
        if self.read(cookie) is not None:
            self._revoked.add(cookie.rpartition(".")[2])
