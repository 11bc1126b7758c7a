"""``rxradar serve``: the dashboard (server-rendered pages) and its JSON API (OpenAPI at
``/openapi.json``), over the last analysis of one workspace, for its signed-in users.

Everything the browser needs comes from this app: no CDN, no web fonts, no script (PDMP
environments are often air-gapped). FastAPI's own documentation pages load Swagger UI from a
CDN, so they are off; ``/api`` lists the endpoints from the OpenAPI description instead.
"""

from __future__ import annotations

import re
import secrets
import sqlite3
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from importlib.resources import files
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

from anyio import to_thread
from fastapi import Depends, FastAPI, Request
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from rxradar import __version__
from rxradar.disclosure import SMALL_CELL
from rxradar.serve import api, pages
from rxradar.serve.audit import AnswerAfterAudit, AuditWriter, hold_answer_for
from rxradar.serve.auth import Sessions, TryLater, User, Verifier, account, basic_credentials, is_user_name
from rxradar.serve.params import RESPONSES as PARAMETER_ANSWERS, known_parameters
from rxradar.serve.rendering import environment
from rxradar.serve.results import HoldVersion, NoAnalysis, Results
from rxradar.serve.security import Guard
from rxradar.serve.throttle import FREE_FAILURES, LOCK_AFTER, Throttle
from rxradar.settings import Settings
from rxradar.workspace import Workspace

HERE = files("rxradar.serve")
COOKIE = "rxradar_session"
LOGIN_COOKIE = "rxradar_login"  # the sign-in form's CSRF nonce
FORM_NONCE_BYTES = 16
FORM_NONCE = re.compile(r"[A-Za-z0-9_-]{16,64}")


class LoginRequired(Exception):
    """No valid session or credentials."""


class Busy(TryLater):
    """The workspace's metadata database stayed locked (a long write elsewhere): try again."""

    title = "Busy"
    retry_after = "5"

    def __init__(self) -> None:
        super().__init__("the workspace is busy with another write; try again in a few seconds")


class Forbidden(Exception):
    def __init__(self, user: User, capability: str):
        super().__init__(f"{user.name} ({user.role}) may not see this: it needs the {capability!r} capability "
                         "(ask an administrator: rxradar users add NAME --role investigator)")


class Gate:
    """Every request's user (session cookie, else HTTP Basic) and what their role allows; each
    view of prescriber or pharmacy leads is written to the workspace's audit log (serve/audit.py)
    before it is answered. Password guessing is throttled (serve/throttle.py): an attempt that has
    to wait raises TooManyAttempts.

    Each request thread keeps its own connection to the workspace's metadata database: opening
    one (schema check, key file) cost more than the rest of the check, on every request."""

    def __init__(self, root: Path, sessions: Sessions | None = None, throttle: Throttle | None = None):
        self.root = root
        self.sessions = sessions or Sessions()
        self.verifier = Verifier()
        self.throttle = throttle or Throttle()
        self.audit_log = AuditWriter(root)
        self._local = threading.local()

    def workspace(self) -> Workspace:
        """This thread's connection to the workspace (opened on the thread's first request; closed
        when the thread ends)."""
        ws = getattr(self._local, "workspace", None)
        if ws is None:
            ws = self._local.workspace = Workspace(self.root, create=False)
        return ws

    def user(self, request: Request, ws: Workspace) -> User | None:
        session = self.sessions.read(request.cookies.get(COOKIE))
        if session is not None:
            found = account(ws.meta, session[0])
            # A removed user, or one whose password changed since, has no session any more.
            return found[0] if found and found[1] == session[1] else None
        credentials = basic_credentials(request.headers.get("authorization"))
        if credentials is None or not is_user_name(credentials[0]):
            return None  # a name no user can have is refused unchecked (and unlogged: it would cost nothing)
        name, client = credentials[0], _client(request)
        with _busy_when_locked():
            user, proved_now = self._verify(ws, name, credentials[1], client, "api")
            if proved_now:  # a script's sign-in: audited when its password is checked, not on every call
                ws.audit(name, "login", "api", {"ok": user is not None, "client": client})
        return user

    def sign_in(self, name: str, password: str, client: str) -> tuple[User, str] | None:
        """The user these credentials prove, with their password fingerprint; None if they do
        not. Every attempt the throttle lets through is audited, with its client's address."""
        if not is_user_name(name):
            return None
        with Workspace(self.root, create=False) as ws, _busy_when_locked():
            user, _ = self._verify(ws, name, password, client, "dashboard")
            ws.audit(name, "login", "dashboard", {"ok": user is not None, "client": client})
            return account(ws.meta, user.name) if user else None

    def _verify(self, ws: Workspace, name: str, password: str, client: str, via: str) -> tuple[User | None, bool]:
        """Verifier.verify under the throttle (serve/throttle.py): a password the server proved
        before is let through without counting, any other is counted as a failure before scrypt
        runs, and only scrypt proving it clears the count. The start of a name's waits and its
        lock are audited."""
        with self.throttle.serial(name):
            self.throttle.check(ws, name, client)
            user = self.verifier.remembered(ws.meta, name, password)
            if user is not None:
                return user, False
            failures = self.throttle.attempt(ws, name, client)
        user, proved_now = self.verifier.verify(ws.meta, name, password)
        if user is not None and proved_now:
            self.throttle.succeeded(ws, name, client)
        elif user is None and failures in (FREE_FAILURES, LOCK_AFTER):
            ws.audit(name, "login_locked" if failures == LOCK_AFTER else "login_throttled", via,
                     {"failures": failures, "client": client})
        return user, proved_now

    def require(self, request: Request, capability: str) -> User:
        user = self.user(request, self.workspace())
        if user is None:
            raise LoginRequired()
        if not user.can(capability):
            raise Forbidden(user, capability)
        if capability == "leads":
            self.viewed(user, request)
        return user

    def viewed(self, user: User, request: Request) -> None:
        """Audit that a page showed this user leads: its answer waits until the record is committed."""
        query = dict(request.query_params)
        hold_answer_for(request.scope, self.audit_log.submit(
            [(user.name, "view", request.url.path, {"query": query} if query else None)]))


def create_app(workspace: Path, *, small_cell: int = SMALL_CELL, sessions: Sessions | None = None,
               throttle: Throttle | None = None, secure_cookies: bool = Settings.secure_cookies,
               max_request_bytes: int = Settings.max_request_bytes,
               request_threads: int = Settings.request_threads) -> FastAPI:
    results = Results(workspace, small_cell=small_cell)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Requests beyond this many wait their turn in order (anyio's limiter is first come,
        # first served) instead of taking turns at the GIL with the event loop.
        to_thread.current_default_thread_limiter().total_tokens = request_threads
        yield

    gate = Gate(Path(workspace), sessions, throttle)
    app = FastAPI(title="rxradar", version=__version__, docs_url=None, redoc_url=None,
                  dependencies=[Depends(known_parameters)], responses=PARAMETER_ANSWERS, lifespan=lifespan,
                  description="Opioid prescribing surveillance: the last analysis of one rxradar workspace. "
                              "Prescribers, pharmacies and counties only; nothing patient-level. County counts "
                              f"of people from 1 to {small_cell - 1} are withheld, with complementary suppression. "
                              "Authenticate with HTTP Basic (a dashboard user); leads need the investigator role.")
    app.add_middleware(HoldVersion, results=results)
    templates = Jinja2Templates(env=environment())
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    app.add_middleware(AnswerAfterAudit, retry_after=Busy.retry_after)
    app.add_middleware(Guard, max_body=max_request_bytes)

    def set_cookie(response: Response, request: Request, name: str, value: str, max_age: int, path: str = "/") -> None:
        """HttpOnly, SameSite=Strict, and Secure when --secure-cookies says the dashboard is behind TLS."""
        response.set_cookie(name, value, max_age=max_age, path=path, httponly=True, samesite="strict",
                            secure=secure_cookies or request.url.scheme == "https")

    def page(request: Request, template: str, status: int = 200, user: User | None = None,
             **context) -> HTMLResponse:
        return templates.TemplateResponse(request, template, {"user": user, **context}, status_code=status)

    def answer(request: Request, status: int, title: str, message: str) -> Response:
        """An error as the caller reads it: JSON for the API, a page for a browser."""
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": message}, status_code=status)
        return page(request, "message.html", status, title=title, message=message)

    @app.exception_handler(NoAnalysis)
    async def no_analysis(request: Request, exc: NoAnalysis):
        return answer(request, 404, "No analysis yet", str(exc))

    @app.exception_handler(Forbidden)
    async def forbidden(request: Request, exc: Forbidden):
        return answer(request, 403, "Not for this role", str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return answer(request, exc.status_code, "Not found" if exc.status_code == 404 else f"Error {exc.status_code}",
                      str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError):
        if request.url.path.startswith("/api/"):  # FastAPI's own answer: which parameter, what is wrong
            return await request_validation_exception_handler(request, exc)
        wrong = "; ".join(f"{'.'.join(map(str, e['loc'][1:]))}: {e['msg']}" for e in exc.errors())
        return answer(request, 422, "Not understood", wrong)

    @app.exception_handler(TryLater)
    async def try_later(request: Request, exc: TryLater):
        return _retry_after(answer(request, exc.status, exc.title, str(exc)), exc)

    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, exc: LoginRequired):
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": "sign in: HTTP Basic with a dashboard user"}, status_code=401,
                                headers={"WWW-Authenticate": 'Basic realm="rxradar"'})
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)

    def login_page(request: Request, status: int = 200, **context) -> HTMLResponse:
        """The sign-in form with its CSRF token: the HMAC of a random value kept in a cookie of
        this server's own, which another site can neither read nor set."""
        nonce = request.cookies.get(LOGIN_COOKIE) or ""
        if not FORM_NONCE.fullmatch(nonce):
            nonce = secrets.token_urlsafe(FORM_NONCE_BYTES)
        response = page(request, "login.html", status, csrf=gate.sessions.form_token(nonce), **context)
        set_cookie(response, request, LOGIN_COOKIE, nonce, gate.sessions.seconds, path="/login")
        return response

    @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
    def login_form(request: Request, next: str = "/"):
        return login_page(request, next=_local(next))

    @app.post("/login", include_in_schema=False)
    async def login(request: Request):
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode("utf-8", "replace")).items()}
        name, target = form.get("name", ""), _local(form.get("next", "/"))
        # Login CSRF: another site's form would sign this browser in as someone else (whose
        # session would then collect what the user looks at and types).
        if not _same_origin(request) or not gate.sessions.form_token_ok(request.cookies.get(LOGIN_COOKIE),
                                                                          form.get("csrf")):
            return login_page(request, 403, next=target, name=name, refused="this sign-in did not come from this "
                              "server's own form, or the form is too old: sign in again on this page")
        try:  # scrypt: off the event loop
            found = await run_in_threadpool(gate.sign_in, name, form.get("password", ""), _client(request))
        except TryLater as exc:
            return _retry_after(login_page(request, exc.status, next=target, refused=str(exc), name=name), exc)
        if found is None:
            return login_page(request, 401, next=target, failed=True, name=name)
        response = RedirectResponse(target, status_code=303)
        set_cookie(response, request, COOKIE, gate.sessions.issue(found[0].name, found[1]), gate.sessions.seconds)
        response.delete_cookie(LOGIN_COOKIE, path="/login")
        return response

    @app.post("/logout", include_in_schema=False)
    def logout(request: Request):
        if not _same_origin(request):  # another site may not sign a user out either
            return answer(request, 403, "Not signed out", "the sign-out did not come from this server's own page")
        gate.sessions.revoke(request.cookies.get(COOKIE))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE)
        return response

    api.add_routes(app, results, gate)  # before the pages: /{entity}/{entity_id} would take /api/...
    pages.add_routes(app, results, gate, page)
    return app


def _retry_after(response: Response, exc: TryLater) -> Response:
    if exc.retry_after:
        response.headers["Retry-After"] = exc.retry_after
    return response


@contextmanager
def _busy_when_locked() -> Iterator[None]:
    """Metadata writes that found the database locked (a long write elsewhere) answer Busy."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        raise Busy() from exc


def _client(request: Request) -> str:
    """The address a request came from: a reverse proxy's own, unless ``rxradar serve
    --forwarded-allow-ips`` names the proxy, whose X-Forwarded-For then says."""
    return request.client.host if request.client else "unknown"


def _same_origin(request: Request) -> bool:
    """Whether a form post came from this server's pages: browsers send Origin with every POST
    (Fetch standard), and a site's own matches the Host it asked; a client that is not a browser
    sends none and is not a cross-site forgery."""
    origin = request.headers.get("origin")
    return origin is None or urlsplit(origin).netloc == request.headers.get("host", "")


def _local(target: str) -> str:
    """Only a path on this server is a place to go after signing in (never another site)."""
    return target if target.startswith("/") and not target.startswith("//") and "\\" not in target else "/"
