"""Limits on guessing passwords (serve/throttle.py): waits that double after a few failures, a
lock at NIST's 100 consecutive failures, a limit per client address. Every test uses a clock
of its own, so no test sleeps."""

from __future__ import annotations

import json
import re

import pytest
from fastapi.testclient import TestClient

from rxradar.serve.app import create_app
from rxradar.serve.auth import set_user
from rxradar.serve.throttle import (CLIENT_FAILURES, CLIENT_WINDOW_SECONDS, FIRST_WAIT_SECONDS, FREE_FAILURES,
                                    LOCK_AFTER, MAX_WAIT_SECONDS, Throttle, TooManyAttempts, wait_after)
from rxradar.workspace import Workspace

PASSWORD = "investigator-pass-1"


class Clock:
    def __init__(self, at: float = 1_000_000.0):
        self.at = at

    def __call__(self) -> float:
        return self.at


def outcome(throttle: Throttle, ws: Workspace, name: str | None, client: str) -> float | str | None:
    """What check says: None (go ahead), the seconds to wait, or 'locked'."""
    try:
        throttle.check(ws.meta, name, client)
    except TooManyAttempts as exc:
        return "locked" if exc.seconds is None else exc.seconds
    return None


def test_waits_start_after_the_free_failures_double_and_stop_growing():
    assert [wait_after(n) for n in range(FREE_FAILURES)] == [0.0] * FREE_FAILURES
    assert [wait_after(FREE_FAILURES + k) for k in range(4)] == [2.0, 4.0, 8.0, 16.0]
    assert FIRST_WAIT_SECONDS * 2 ** 8 < MAX_WAIT_SECONDS < FIRST_WAIT_SECONDS * 2 ** 9
    assert wait_after(FREE_FAILURES + 9) == wait_after(LOCK_AFTER) == MAX_WAIT_SECONDS == 900.0


def test_a_name_waits_then_locks_and_a_new_password_unlocks_it(tmp_path):
    clock = Clock()
    throttle = Throttle(clock)
    with Workspace(tmp_path) as ws:
        set_user(ws, "ivy", "investigator", PASSWORD, actor="test")
        seen = {}
        for name in ("ivy", "nobody"):  # a user and a name nobody has: told apart by nothing
            seen[name] = []
            for attempt in range(FREE_FAILURES + 2):
                seen[name].append(outcome(throttle, ws, name, f"client-{attempt}"))
                if seen[name][-1] is None:
                    throttle.failed(ws.meta, name, f"client-{attempt}")
            clock.at += 10
        assert seen["ivy"] == seen["nobody"] == [None] * FREE_FAILURES + [2.0, 2.0]
        assert outcome(throttle, ws, "ivy", "elsewhere") is None  # the 2 s have passed
        throttle.failed(ws.meta, "ivy", "elsewhere")
        clock.at += 3.5
        assert outcome(throttle, ws, "ivy", "elsewhere") == 0.5  # 4 s after the 7th failure
        # Failure after failure (as if each had waited its turn): the 100th locks the name.
        locked = [throttle.failed(ws.meta, "ivy", f"c{n}") for n in range(FREE_FAILURES + 1, LOCK_AFTER)]
        assert locked == [False] * (LOCK_AFTER - FREE_FAILURES - 2) + [True]
        clock.at += 365 * 86400
        with pytest.raises(TooManyAttempts, match="locked after 100 failed sign-ins") as refused:
            throttle.check(ws.meta, "ivy", "a-new-client")
        assert refused.value.retry_after is None
        # An administrator setting the password again unlocks it, and the audit log says so.
        set_user(ws, "ivy", "investigator", PASSWORD, actor="admin")
        assert outcome(throttle, ws, "ivy", "a-new-client") is None
        detail = ws.meta.execute("SELECT detail FROM audit_log WHERE action = 'user_set' AND actor = 'admin'").fetchone()
        assert json.loads(detail[0]) == {"role": "investigator", "failed_sign_ins_cleared": LOCK_AFTER}
        # A proved password starts the count again.
        for _ in range(FREE_FAILURES):
            throttle.failed(ws.meta, "ivy", "c")
        throttle.succeeded(ws.meta, "ivy")
        assert ws.meta.execute("SELECT count(*) FROM sign_in_failures WHERE name = 'ivy'").fetchone() == (0,)
        # A name no user has is forgotten a month after its last failure; a user's count is kept.
        throttle.failed(ws.meta, "ivy", "c")
        clock.at += 31 * 86400
        throttle.failed(ws.meta, "someone-else", "c")
        names = {n for (n,) in ws.meta.execute("SELECT name FROM sign_in_failures")}
        assert names == {"ivy", "someone-else"}


def test_one_address_guessing_across_many_names_waits_for_its_window(tmp_path):
    clock = Clock()
    throttle = Throttle(clock)
    with Workspace(tmp_path) as ws:
        for n in range(CLIENT_FAILURES - 1):
            throttle.failed(ws.meta, f"name{n}", "10.0.0.9")
            clock.at += 60
        throttle.failed(ws.meta, None, "10.0.0.9")  # names no user can have count for the address too
        assert outcome(throttle, ws, "name-new", "10.0.0.9") == CLIENT_WINDOW_SECONDS - 60 * (CLIENT_FAILURES - 1)
        assert outcome(throttle, ws, "name-new", "10.0.0.10") is None  # another address is not held up
        clock.at += CLIENT_WINDOW_SECONDS - 60 * (CLIENT_FAILURES - 1)  # the first failure leaves the window
        assert outcome(throttle, ws, "name-new", "10.0.0.9") is None


def test_the_dashboard_and_api_refuse_guesses_before_checking_them(tmp_path):
    with Workspace(tmp_path) as ws:
        set_user(ws, "ivy", "investigator", PASSWORD, actor="test")
    clock = Clock()
    browser = TestClient(create_app(tmp_path, throttle=Throttle(clock)), follow_redirects=False)
    for _ in range(FREE_FAILURES):
        assert browser.post("/login", data={"name": "ivy", "password": "guess-guess-1"}).status_code == 401
    # Now even the right password waits: a different answer would tell a guesser it was right.
    for password in ("guess-guess-2", PASSWORD):
        refused = browser.post("/login", data={"name": "ivy", "password": password})
        assert (refused.status_code, refused.headers["retry-after"]) == (429, "2")
        assert "Not checked: too many failed sign-ins: try again in 2 s." in re.sub(r"\s+", " ", refused.text)
    api = TestClient(browser.app, headers={}, follow_redirects=False)
    api.auth = ("ivy", PASSWORD)
    answer = api.get("/api/summary")
    assert (answer.status_code, answer.headers["retry-after"]) == (429, "2")
    assert answer.json() == {"detail": "too many failed sign-ins: try again in 2 s"}
    with Workspace(tmp_path, create=False) as ws:  # refused attempts were never verified (nor logged as tried)
        assert ws.meta.execute("SELECT count(*) FROM audit_log WHERE action = 'login'").fetchone() == (FREE_FAILURES,)
    clock.at += 2
    assert browser.post("/login", data={"name": "ivy", "password": PASSWORD}).status_code == 303
    with Workspace(tmp_path, create=False) as ws:
        assert ws.meta.execute("SELECT count(*) FROM sign_in_failures").fetchone() == (0,)


def test_locking_a_name_is_audited_and_shown_to_administrators(tmp_path):
    from typer.testing import CliRunner

    from rxradar.cli import app as cli

    with Workspace(tmp_path) as ws:
        set_user(ws, "ivy", "investigator", PASSWORD, actor="test")
        ws.meta.execute("INSERT INTO sign_in_failures VALUES ('ivy', ?, 0)", (LOCK_AFTER - 1,))
    api = TestClient(create_app(tmp_path, throttle=Throttle(Clock())))
    api.auth = ("ivy", "the-hundredth-guess")
    assert api.get("/api/summary").status_code == 401
    api.auth = ("ivy", PASSWORD)
    assert api.get("/api/summary").status_code == 429
    with Workspace(tmp_path, create=False) as ws:
        locked = ws.meta.execute("SELECT actor, target, detail FROM audit_log WHERE action = 'login_locked'").fetchall()
    assert locked == [("ivy", "api", json.dumps({"failures": LOCK_AFTER}))]
    listed = CliRunner().invoke(cli, ["users", "list", "-w", str(tmp_path)], env={"COLUMNS": "120"})
    assert re.search(r"│ ivy\s*│ investigator\s*│[^│]*│ 100 \(locked\)\s*│", listed.output), listed.output
