"""Limits on guessing passwords at the dashboard and the API.

NIST SP 800-63B (rev. 3 §5.2.2, rev. 4 §3.2.2) asks a verifier to allow no more than 100
consecutive failed sign-ins on an account, and to make a client wait longer after each failure.
rxradar counts failures in three ways:

* **Per name.** After FREE_FAILURES consecutive failures, the next attempt on that name has to
  wait. The wait starts at FIRST_WAIT_SECONDS and doubles with each further failure, up to
  MAX_WAIT_SECONDS.
* **Lock.** A name with LOCK_AFTER consecutive failures is locked: no password opens it until an
  administrator sets one again (``rxradar users add``).
* **Per client address.** An address with more than CLIENT_FAILURES failures within
  CLIENT_WINDOW_SECONDS has to wait until the window passes. This catches one password tried
  across many names.

The counts per name are kept in the workspace, so a restart does not clear them. They are kept
whether or not the name belongs to a user, so the answers never tell which names exist. A name
that belongs to no user is forgotten FORGET_UNKNOWN_SECONDS after its last failure. A successful
sign-in clears its name's count. An attempt that has to wait is refused before its password is
checked, so it costs no scrypt.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable

FREE_FAILURES = 5
FIRST_WAIT_SECONDS = 2.0
MAX_WAIT_SECONDS = 15 * 60.0
LOCK_AFTER = 100  # NIST SP 800-63B: no more than 100 consecutive failed attempts on one account
CLIENT_FAILURES = 30
CLIENT_WINDOW_SECONDS = 3600.0
FORGET_UNKNOWN_SECONDS = 30 * 86400.0
MAX_CLIENTS = 10_000  # addresses remembered at once; the quietest are forgotten first


class TooManyAttempts(Exception):
    """Refused before the password was checked: wait ``seconds``, or (None) the name is locked."""

    def __init__(self, seconds: float | None):
        self.seconds = seconds
        if seconds is None:
            message = (f"this user is locked after {LOCK_AFTER} failed sign-ins in a row; an administrator "
                       "unlocks it by setting its password again (rxradar users add NAME --role ROLE)")
        else:
            message = f"too many failed sign-ins: try again in {_duration(seconds)}"
        super().__init__(message)

    @property
    def retry_after(self) -> str | None:
        """The Retry-After header's value (whole seconds), or None for a lock."""
        return None if self.seconds is None else str(max(1, int(self.seconds + 0.999)))


def wait_after(failures: int) -> float:
    """Seconds an attempt must wait after this many consecutive failures on its name."""
    if failures < FREE_FAILURES:
        return 0.0
    return min(MAX_WAIT_SECONDS, FIRST_WAIT_SECONDS * 2.0 ** min(failures - FREE_FAILURES, 32))


class Throttle:
    """Counts failed sign-ins by name (in the workspace's ``sign_in_failures``) and by client
    address (in memory, for the server's life), and refuses attempts that have to wait."""

    def __init__(self, clock: Callable[[], float] = time.time):
        self.clock = clock
        self._clients: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def check(self, meta: sqlite3.Connection, name: str | None, client: str) -> None:
        """Raise TooManyAttempts if an attempt on ``name`` (None: one no user can have) from
        ``client`` has to wait now."""
        now = self.clock()
        row = None if name is None else meta.execute(
            "SELECT failures, last_failed_at FROM sign_in_failures WHERE name = ?", (name,)).fetchone()
        if row is not None:
            failures, last = row
            if failures >= LOCK_AFTER:
                raise TooManyAttempts(None)
            if (left := last + wait_after(failures) - now) > 0:
                raise TooManyAttempts(left)
        with self._lock:
            recent = self._recent(client, now)
            if recent is not None and len(recent) >= CLIENT_FAILURES:
                raise TooManyAttempts(recent[0] + CLIENT_WINDOW_SECONDS - now)

    def failed(self, meta: sqlite3.Connection, name: str | None, client: str) -> bool:
        """Count a failed attempt; ``name`` None when it could never be a user's. True when this
        failure locked the name."""
        now = self.clock()
        with self._lock:
            recent = self._recent(client, now)
            if recent is None:
                if len(self._clients) >= MAX_CLIENTS:
                    quietest = min(self._clients, key=lambda c: self._clients[c][-1])
                    del self._clients[quietest]
                recent = self._clients[client] = deque()
            recent.append(now)
        if name is None:
            return False
        # One statement counts the failure, so attempts at the same time each count.
        failures = meta.execute(
            "INSERT INTO sign_in_failures VALUES (?, 1, ?) ON CONFLICT (name) DO UPDATE SET "
            "failures = failures + 1, last_failed_at = excluded.last_failed_at RETURNING failures",
            (name, now)).fetchone()[0]
        meta.execute("DELETE FROM sign_in_failures WHERE last_failed_at < ? AND name NOT IN (SELECT name FROM users)",
                     (now - FORGET_UNKNOWN_SECONDS,))
        return failures == LOCK_AFTER

    @staticmethod
    def succeeded(meta: sqlite3.Connection, name: str) -> None:
        """A sign-in proved its password: its name starts counting again from nothing."""
        if meta.execute("SELECT 1 FROM sign_in_failures WHERE name = ?", (name,)).fetchone():
            meta.execute("DELETE FROM sign_in_failures WHERE name = ?", (name,))

    def _recent(self, client: str, now: float) -> deque[float] | None:
        """The client's failures within the window (older ones dropped); None if it has none."""
        recent = self._clients.get(client)
        if recent is None:
            return None
        while recent and recent[0] <= now - CLIENT_WINDOW_SECONDS:
            recent.popleft()
        if not recent:
            del self._clients[client]
            return None
        return recent


def failed_sign_ins(meta: sqlite3.Connection) -> dict[str, int]:
    """Consecutive failed sign-ins of each name that has any."""
    return dict(meta.execute("SELECT name, failures FROM sign_in_failures").fetchall())


def _duration(seconds: float) -> str:
    whole = max(1, int(seconds + 0.999))
    return f"{whole} s" if whole < 120 else f"{(whole + 59) // 60} minutes"
