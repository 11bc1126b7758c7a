"""Limits on guessing passwords at the dashboard and the API.

NIST SP 800-63B (rev. 3 §5.2.2, rev. 4 §3.2.2) asks a verifier to allow no more than 100
consecutive failed sign-ins on an account, and to make a client wait longer after each failure.
rxradar applies three limits:

* **Per name.** After FREE_FAILURES consecutive failures, the next attempt on that name has to
  wait. The wait starts at FIRST_WAIT_SECONDS and doubles with each further failure, up to
  MAX_WAIT_SECONDS.
* **Lock.** A name with LOCK_AFTER consecutive failures is locked: no password opens it until an
  administrator sets one again (``rxradar users add``).
* **Per client address.** An address whose failures within CLIENT_WINDOW_SECONDS span
  CLIENT_NAMES different names has to wait until the window passes. This catches one password
  tried across many names. It counts names, not failures, so colleagues behind one address who
  mistype their own passwords do not shut each other out.

An attempt is counted as failed before its password is checked, so attempts made at the same
moment each wait their turn; only a password that scrypt has just proved clears the count (a
script reusing a password the server already knows never does, or its calls would reset the
count of someone guessing at its name). The steps up to that count run one name at a time (see
:meth:`Throttle.serial`), so not even a password the server remembers can be tried while a wait
is due. An attempt that has to wait is refused before its password is checked (it costs no
scrypt). Refusals are counted but not audited, so a flood of them cannot fill the audit log. The
counts per name are kept in the workspace, so a restart does not clear them. They are kept
whether or not the name belongs to a user, and any count below the lock is forgotten
FORGET_SECONDS after its last failure, so the answers never tell which names exist. Addresses
are counted as they are for IPv4, and by their /64 network for IPv6 (one host has many).
"""

from __future__ import annotations

import ipaddress
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rxradar.serve.auth import TryLater
from rxradar.workspace import Workspace

FREE_FAILURES = 5
FIRST_WAIT_SECONDS = 2.0
MAX_WAIT_SECONDS = 15 * 60.0
LOCK_AFTER = 100  # NIST SP 800-63B: no more than 100 consecutive failed attempts on one account
CLIENT_NAMES = 10
CLIENT_WINDOW_SECONDS = 3600.0
FORGET_SECONDS = 30 * 86400.0
FORGET_EVERY_SECONDS = 300.0  # how often forgotten counts are deleted (a scan of the table)
MAX_CLIENTS = 10_000  # addresses remembered at once; the longest quiet are forgotten first
IPV6_NETWORK = 64  # prefix length an IPv6 client is counted by
SERIAL_STRIPES = 64  # locks that keep the steps before scrypt to one attempt per name at a time


class TooManyAttempts(TryLater):
    """Refused before the password was checked: wait ``seconds``, or (None) the name is locked."""

    status = 429
    title = "Too many failed sign-ins"

    def __init__(self, seconds: float | None):
        self.seconds = seconds
        if seconds is None:
            message = (f"this user is locked after {LOCK_AFTER} failed sign-ins in a row; an administrator "
                       "unlocks it by setting its password again (rxradar users add NAME --role ROLE)")
        else:
            message = f"too many failed sign-ins: try again in {_duration(seconds)}"
            self.retry_after = str(max(1, int(seconds + 0.999)))  # whole seconds
        super().__init__(message)


def wait_after(failures: int) -> float:
    """Seconds an attempt must wait after this many consecutive failures on its name."""
    if failures < FREE_FAILURES:
        return 0.0
    return min(MAX_WAIT_SECONDS, FIRST_WAIT_SECONDS * 2.0 ** min(failures - FREE_FAILURES, 32))


class Throttle:
    """Counts failed sign-ins by name (in the workspace's ``sign_in_failures``) and the names each
    client address failed on (in memory, for the server's life), and refuses attempts that have
    to wait."""

    def __init__(self, clock: Callable[[], float] = time.time):
        self.clock = clock
        self._clients: OrderedDict[str, dict[str, float]] = OrderedDict()  # address -> {name: last failure}
        self._lock = threading.Lock()
        self._serial = [threading.Lock() for _ in range(SERIAL_STRIPES)]
        self._forgotten_at = float("-inf")

    @contextmanager
    def serial(self, name: str) -> Iterator[None]:
        """Hold while checking, trying a remembered password and counting an attempt on ``name``,
        so that no two attempts on one name overlap there."""
        with self._serial[zlib.crc32(name.encode("utf-8")) % SERIAL_STRIPES]:
            yield

    def check(self, ws: Workspace, name: str, client: str) -> None:
        """Raise TooManyAttempts if an attempt on ``name`` from ``client`` has to wait now."""
        now = self.clock()
        self._check_name(ws, name, now)
        with self._lock:
            self._check_client(client_key(client), now)

    def attempt(self, ws: Workspace, name: str, client: str) -> int:
        """Let an attempt through, counted as failed until :meth:`succeeded` says otherwise, or
        raise TooManyAttempts. Returns the name's consecutive failures with this one."""
        now = self.clock()
        key = client_key(client)
        with self._lock:
            self._check_client(key, now)
            if key not in self._clients and len(self._clients) >= MAX_CLIENTS:
                self._clients.popitem(last=False)
            self._clients.setdefault(key, {})[name] = now
            self._clients.move_to_end(key)
        with ws.write_transaction():  # check and count as one step: a parallel attempt sees this one
            self._check_name(ws, name, now)
            failures = ws.meta.execute(
                "INSERT INTO sign_in_failures VALUES (?, 1, ?) ON CONFLICT (name) DO UPDATE SET "
                "failures = failures + 1, last_failed_at = excluded.last_failed_at RETURNING failures",
                (name, now)).fetchone()[0]
        if now - self._forgotten_at > FORGET_EVERY_SECONDS:
            self._forgotten_at = now
            ws.meta.execute("DELETE FROM sign_in_failures WHERE last_failed_at < ? AND failures < ?",
                            (now - FORGET_SECONDS, LOCK_AFTER))
        return failures

    def succeeded(self, ws: Workspace, name: str, client: str) -> None:
        """scrypt has just proved a password for ``name``: it starts counting again from nothing."""
        with self._lock:
            self._clients.get(client_key(client), {}).pop(name, None)
        ws.meta.execute("DELETE FROM sign_in_failures WHERE name = ?", (name,))

    def _check_name(self, ws: Workspace, name: str, now: float) -> None:
        row = ws.meta.execute("SELECT failures, last_failed_at FROM sign_in_failures WHERE name = ?",
                              (name,)).fetchone()
        if row is None:
            return
        failures, last = row
        if failures >= LOCK_AFTER:
            raise TooManyAttempts(None)
        wait = wait_after(failures)
        if (left := last + wait - now) > 0:
            raise TooManyAttempts(min(left, wait))  # a clock set back never makes the wait longer

    def _check_client(self, key: str, now: float) -> None:
        names = self._clients.get(key)
        if names is None:
            return
        for name in [n for n, at in names.items() if at <= now - CLIENT_WINDOW_SECONDS]:
            del names[name]
        if not names:
            del self._clients[key]
        elif len(names) >= CLIENT_NAMES:
            raise TooManyAttempts(min(min(names.values()) + CLIENT_WINDOW_SECONDS - now, CLIENT_WINDOW_SECONDS))


def client_key(address: str) -> str:
    """How a client address is counted: itself, or its /64 network for IPv6."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address  # not an address (a test client, a Unix socket)
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/{IPV6_NETWORK}", strict=False))
    return str(ip)


def failed_sign_ins(ws: Workspace) -> dict[str, int]:
    """Consecutive failed sign-ins of each user that has any."""
    return dict(ws.meta.execute("SELECT name, failures FROM sign_in_failures JOIN users USING (name)").fetchall())


def _duration(seconds: float) -> str:
    whole = max(1, int(seconds + 0.999))
    return f"{whole} s" if whole < 120 else f"{(whole + 59) // 60} minutes"
