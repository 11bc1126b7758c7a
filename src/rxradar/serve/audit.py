"""The dashboard's audit writes, committed in groups.

Every view of leads is written to the workspace's audit log before its answer leaves, so no view
goes unrecorded if the server stops. Written one transaction per view, concurrent views queue for
SQLite's single writer lock and its busy handler, which polls with sleeps of up to 100 ms: at 16
clients this was most of the dashboard's slowest answers. Here one thread writes: each request
hands over its entries; whatever arrived meanwhile goes into the same transaction (group commit),
so one fsync serves them all and no request sleeps on the lock. The request's thread goes on
with its work meanwhile; :class:`AnswerAfterAudit` holds the answer until its entries are
committed, waiting on the event loop rather than in one of the few request threads.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from rxradar.workspace import Workspace

Entry = tuple[str, str, str | None, dict | None]  # actor, action, target, detail (Workspace.audit_many)
IDLE_SECONDS = 2.0  # the writer thread (and its connection) ends after this long without work


class AuditWriter:
    def __init__(self, root: Path):
        self.root = Path(root)
        self._ready = threading.Condition()
        self._waiting: list[tuple[list[Entry], Future]] = []
        self._thread: threading.Thread | None = None

    def submit(self, entries: list[Entry]) -> Future:
        """Hand ``entries`` over; the future is done when they are committed."""
        done: Future = Future()
        with self._ready:
            self._waiting.append((entries, done))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="rxradar-audit", daemon=True)
                self._thread.start()
            self._ready.notify()
        return done

    def _run(self) -> None:
        try:
            ws = Workspace(self.root, create=False)
        except BaseException as exc:  # e.g. the workspace was moved away: nobody waits for ever
            with self._ready:
                batch, self._waiting, self._thread = self._waiting, [], None
            for _, done in batch:
                done.set_exception(exc)
            return
        with ws:
            while True:
                with self._ready:
                    if not self._waiting:
                        self._ready.wait(IDLE_SECONDS)
                    if not self._waiting:
                        self._thread = None  # the next write starts a new thread
                        return
                    batch, self._waiting = self._waiting, []
                try:
                    ws.audit_many([entry for entries, _ in batch for entry in entries])
                except BaseException as exc:  # each waiting request answers for it (Busy)
                    for _, done in batch:
                        done.set_exception(exc)
                else:
                    for _, done in batch:
                        done.set_result(None)


PENDING = "rxradar.audit"  # the request scope's list of its audit entries' futures
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Send = Callable[[Message], Awaitable[None]]


def hold_answer_for(scope: Scope, committed: Future) -> None:
    """Have the request's answer wait for ``committed`` (see :class:`AnswerAfterAudit`)."""
    scope.setdefault(PENDING, []).append(committed)


class AnswerAfterAudit:
    """ASGI middleware: an answer starts only once its request's audit entries are committed. If
    they could not be (the workspace stayed locked by a long write elsewhere), the answer is
    replaced by 503 and Retry-After, and what it would have shown is not sent."""

    def __init__(self, app: Callable[..., Awaitable[None]], retry_after: str):
        self.app = app
        self.retry_after = retry_after

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Message]], send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refused = False

        async def send_when_committed(message: Message) -> None:
            nonlocal refused
            if refused:
                return
            if message["type"] == "http.response.start":
                try:
                    for committed in scope.pop(PENDING, []):
                        await asyncio.wrap_future(committed)
                except sqlite3.OperationalError:
                    refused = True
                    await self._busy(send, json=scope["path"].startswith("/api/"))
                    return
            await send(message)

        await self.app(scope, receive, send_when_committed)

    async def _busy(self, send: Send, json: bool) -> None:
        """503 as the API answers errors (JSON ``detail``) or as plain text for a browser."""
        message = "the workspace is busy with another write; try again in a few seconds"
        body = (f'{{"detail": "{message}"}}' if json else message).encode()
        await send({"type": "http.response.start", "status": 503,
                    "headers": [(b"content-type", b"application/json" if json else b"text/plain; charset=utf-8"),
                                (b"retry-after", self.retry_after.encode()),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
