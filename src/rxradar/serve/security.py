"""What every answer of the dashboard carries, and what every request may send.

Headers (OWASP Secure Headers Project; MDN): the pages need no script and load styles only from
``/static``, so the Content-Security-Policy allows nothing else (an injected ``<script>``, inline
style or event handler does not run); no other site may frame the dashboard (clickjacking); the
browser may not guess content types; no address of a page, which can carry a prescriber's id,
goes to another site as a Referer; and nothing but the shared stylesheet is kept in a cache, since
every other answer is for one signed-in user (a shared computer's back button or disk cache
would show leads to the next person).

Request bodies: only the sign-in form has one. A body is refused with 413 as soon as its declared
or received size passes the limit, before the rest is read.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CONTENT_SECURITY_POLICY = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
                           "frame-ancestors 'none'; base-uri 'none'")
HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-frame-options", b"DENY"),  # frame-ancestors for browsers that predate CSP 2
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]
NO_STORE = (b"cache-control", b"no-store")
SHARED = "/static/"  # the stylesheet: the same for everyone, cacheable


class TooLarge(Exception):
    """The request body passed the limit while arriving."""


class Guard:
    """ASGI middleware: the headers above on every answer, and request bodies up to ``max_body``
    bytes (413 beyond)."""

    def __init__(self, app: ASGIApp, max_body: int):
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        shared = scope["path"].startswith(SHARED)
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"cache-control" or shared]
                message["headers"] = headers + HEADERS + ([] if shared else [NO_STORE])
            await send(message)

        declared = _content_length(scope)
        if declared is not None and declared > self.max_body:
            await self._too_large(send_with_headers)
            return
        received = 0

        async def receive_limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise TooLarge()
            return message

        try:
            await self.app(scope, receive_limited, send_with_headers)
        except TooLarge:
            if started:  # too late to answer 413; the connection is cut instead
                raise
            await self._too_large(send_with_headers)

    async def _too_large(self, send: Send) -> None:
        body = f"request body over {self.max_body:,} bytes (the max_request_bytes setting)".encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"connection", b"close"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    for k, v in scope.get("headers", []):
        if k == b"content-length":
            try:
                return int(v)
            except ValueError:
                return None
    return None
