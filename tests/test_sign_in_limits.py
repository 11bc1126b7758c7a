"""Limits on guessing passwords (serve/throttle.py): waits that double after a few failures, a
lock at NIST's 100 consecutive failures, a limit on the names one address may fail on. Every
test has a clock of its own, so none sleeps."""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from rxradar.serve.app import Gate, create_app
from rxradar.serve.auth import set_user
from rxradar.serve.throttle import (CLIENT_NAMES, CLIENT_WINDOW_SECONDS, FORGET_SECONDS, FREE_FAILURES, LOCK_AFTER,
                                    MAX_WAIT_SECONDS, Throttle, TooManyAttempts, wait_after)
from rxradar.workspace import Workspace

from dashboard_client import sign_in

PASSWORD = "investigator-pass-1"


class Clock:
    def __init__(self, at: float = 1_000_000.0):
        self.at = at

    def __call__(self) -> float:
        return self.at


def outcome(throttle: Throttle, ws: Workspace, name: str, client: str) -> float | str | None:
    """What check says: None (go ahead), the seconds to wait, or 'locked'."""
    try:
        throttle.check(ws, name, client)
    except TooManyAttempts as exc:
        return "locked" if exc.seconds is None else exc.seconds
    return None


def fail(throttle: Throttle, ws: Workspace, name: str, client: str) -> int:
    """An attempt whose password turns out wrong: counted, never cleared."""
    return throttle.attempt(ws, name, client)


def test_waits_start_after_the_free_failures_double_and_stop_growing():
    assert [wait_after(n) for n in range(FREE_FAILURES)] == [0.0] * FREE_FAILURES
    assert [wait_after(FREE_FAILURES + k) for k in range(4)] == [2.0, 4.0, 8.0, 16.0]
    assert wait_after(FREE_FAILURES + 8) == 512.0 and wait_after(FREE_FAILURES + 9) == MAX_WAIT_SECONDS == 900.0
    assert wait_after(LOCK_AFTER) == MAX_WAIT_SECONDS


def test_a_name_waits_then_locks_and_a_new_password_unlocks_it(tmp_path):
    clock = Clock()
    throttle = Throttle(clock)
    with Workspace(tmp_path) as ws:
        set_user(ws, "ivy", "investigator", PASSWORD, actor="test")
        for attempt in range(FREE_FAILURES):
            assert fail(throttle, ws, "ivy", f"client-{attempt}") == attempt + 1
        assert outcome(throttle, ws, "ivy", "elsewhere") == 2.0
        with pytest.raises(TooManyAttempts, match="try again in 2 s") as refused:
            throttle.attempt(ws, "ivy", "elsewhere")  # refused attempts are not counted
        assert refused.value.retry_after == "2"
        clock.at += 2
        assert fail(throttle, ws, "ivy", "elsewhere") == FREE_FAILURES + 1
        clock.at += 3.5
        assert outcome(throttle, ws, "ivy", "elsewhere") == 0.5  # 4 s after the 6th failure
        # Failure after failure, each once its wait is over: the 100th locks the name.
        for _ in range(FREE_FAILURES + 2, LOCK_AFTER + 1):
            clock.at += MAX_WAIT_SECONDS
            failures = fail(throttle, ws, "ivy", "elsewhere")
        assert failures == LOCK_AFTER
        clock.at += 365 * 86400
        with pytest.raises(TooManyAttempts, match="locked after 100 failed sign-ins") as locked:
            throttle.check(ws, "ivy", "a-new-client")
        assert locked.value.retry_after is None
        # An administrator setting the password again unlocks it, and the audit log says so.
        set_user(ws, "ivy", "investigator", PASSWORD, actor="admin")
        assert outcome(throttle, ws, "ivy", "a-new-client") is None
        detail = ws.meta.execute("SELECT detail FROM audit_log WHERE action = 'user_set' AND actor = 'admin'").fetchone()
        assert json.loads(detail[0]) == {"role": "investigator", "failed_sign_ins_cleared": LOCK_AFTER}
        # A proved password starts the count again.
        for _ in range(FREE_FAILURES - 1):
            fail(throttle, ws, "ivy", "c")
        throttle.attempt(ws, "ivy", "c")
        throttle.succeeded(ws, "ivy", "c")
        assert ws.meta.execute("SELECT count(*) FROM sign_in_failures").fetchone() == (0,)


def test_whether_a_name_belongs_to_a_user_shows_in_no_answer(tmp_path):
    clock = Clock()
    throttle = Throttle(clock)
    with Workspace(tmp_path) as ws:
        set_user(ws, "ivy", "investigator", PASSWORD, actor="test")
        seen: dict[str, list] = {"ivy": [], "nobody": []}
        for step in range(LOCK_AFTER + 20):
            for name in seen:
                seen[name].append(outcome(throttle, ws, name, f"{name}-{step}"))
                if seen[name][-1] is None:
                    fail(throttle, ws, name, f"{name}-{step}")
            clock.at += 60 if step < 20 else MAX_WAIT_SECONDS
        assert seen["ivy"] == seen["nobody"] and seen["ivy"][-1] == "locked"
        # A month later, counts below the lock are forgotten for users and others alike.
        set_user(ws, "ivy2", "aggregate", PASSWORD, actor="test")
        for name in ("ivy2", "nobody2"):
            for _ in range(FREE_FAILURES):
                fail(throttle, ws, name, "c")
        clock.at += FORGET_SECONDS + 1
        fail(throttle, ws, "someone", "c")  # counting a failure clears out old counts
        left = dict(ws.meta.execute("SELECT name, failures FROM sign_in_failures").fetchall())
        assert left == {"ivy": LOCK_AFTER, "nobody": LOCK_AFTER, "someone": 1}


def test_one_address_failing_on_many_names_waits_for_its_window(tmp_path):
    clock = Clock()
    throttle = Throttle(clock)
    with Workspace(tmp_path) as ws:
        for n in range(CLIENT_NAMES - 1):
            fail(throttle, ws, f"name{n}", "10.0.0.9")
            fail(throttle, ws, f"name{n}", "10.0.0.9")  # the same name twice is still one name
            clock.at += 60
        assert outcome(throttle, ws, "name0", "10.0.0.9") is None
        fail(throttle, ws, "name-last", "10.0.0.9")
        assert outcome(throttle, ws, "name-new", "10.0.0.9") == CLIENT_WINDOW_SECONDS - 60 * (CLIENT_NAMES - 1)
        assert outcome(throttle, ws, "name-new", "10.0.0.10") is None  # another address is not held up
        clock.at += CLIENT_WINDOW_SECONDS - 60 * (CLIENT_NAMES - 1)  # the first name leaves the window
        assert outcome(throttle, ws, "name-new", "10.0.0.9") is None


def test_ipv6_clients_are_counted_by_network():
    from rxradar.serve.throttle import client_key

    assert client_key("2001:db8:1:2::1") == client_key("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("::ffff:10.0.0.1") == client_key("10.0.0.1") == "10.0.0.1"
    assert client_key("testclient") == "testclient"


def test_a_remembered_password_is_no_shortcut_for_guessing(tmp_path):
    """A script's password, once proved, is remembered; guessing at its name stays limited, and
    the script's calls never clear the guesser's count."""
    with Workspace(tmp_path) as ws:
        set_user(ws, "ivy", "investigator", PASSWORD, actor="test")
    gate = Gate(tmp_path, throttle=Throttle(Clock()))
    assert gate.sign_in("ivy", PASSWORD, "10.0.0.1") is not None  # proved by scrypt, now remembered
    with Workspace(tmp_path) as ws:
        ws.meta.execute("INSERT INTO sign_in_failures VALUES ('ivy', 20, 0)")  # a wait just over
    tried = []
    remembered = gate.verifier.remembered
    gate.verifier.remembered = lambda meta, name, password: tried.append(password) or remembered(meta, name, password)
    start = threading.Barrier(20)

    def guess(k: int) -> str:
        start.wait()
        try:
            return "in" if gate.sign_in("ivy", f"guess-number-{k}", f"10.0.2.{k}") else "checked"
        except TooManyAttempts:
            return "refused"

    with ThreadPoolExecutor(20) as pool:
        assert sorted(pool.map(guess, range(20))) == ["checked"] + ["refused"] * 19
    assert len(tried) == 1  # not even the memory of a proved password was asked more than once
    clock = gate.throttle.clock
    clock.at += wait_after(21)
    assert gate.sign_in("ivy", PASSWORD, "10.0.0.1") is not None  # remembered: let through, not counted...
    with Workspace(tmp_path) as ws:
        assert ws.meta.execute("SELECT failures FROM sign_in_failures").fetchall() == [(21,)]  # ...nor cleared


def test_names_no_user_can_have_are_refused_unchecked(tmp_path):
    with Workspace(tmp_path) as ws:
        set_user(ws, "ivy", "investigator", PASSWORD, actor="test")
    gate = Gate(tmp_path, throttle=Throttle(Clock()))
    gate.verifier._scrypt = lambda password, salt: pytest.fail("scrypt ran for a name no user can have")
    for name in ("x" * 65, "ivy\n", "ivy smith", ""):
        assert gate.sign_in(name, PASSWORD, "10.0.0.1") is None
    with Workspace(tmp_path) as ws:
        assert ws.meta.execute("SELECT count(*) FROM audit_log WHERE action LIKE 'login%'").fetchone() == (0,)


def test_attempts_at_the_same_moment_each_wait_their_turn(tmp_path):
    """Twenty guesses sent together, once a wait is over: one is checked, nineteen refused."""
    with Workspace(tmp_path) as ws:
        set_user(ws, "ivy", "investigator", PASSWORD, actor="test")
        ws.meta.execute("INSERT INTO sign_in_failures VALUES ('ivy', 20, 0)")
    gate = Gate(tmp_path, throttle=Throttle(Clock()))
    checked = []

    def slow_scrypt(password: str, salt: bytes) -> bytes:
        checked.append(password)
        time.sleep(0.2)
        return b"wrong" * 8

    gate.verifier._scrypt = slow_scrypt
    start = threading.Barrier(20)

    def guess(k: int) -> str:
        start.wait()
        try:
            return "checked" if gate.sign_in("ivy", f"guess-number-{k}", f"10.0.1.{k}") is None else "in"
        except TooManyAttempts:
            return "refused"

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(guess, range(20)))
    assert sorted(answers) == ["checked"] + ["refused"] * 19 and len(checked) == 1
    with Workspace(tmp_path, create=False) as ws:
        assert ws.meta.execute("SELECT failures FROM sign_in_failures WHERE name = 'ivy'").fetchone() == (21,)


def test_the_dashboard_and_api_refuse_guesses_before_checking_them(tmp_path):
    with Workspace(tmp_path) as ws:
        set_user(ws, "ivy", "investigator", PASSWORD, actor="test")
    clock = Clock()
    browser = TestClient(create_app(tmp_path, throttle=Throttle(clock)), follow_redirects=False)
    for _ in range(FREE_FAILURES):
        assert sign_in(browser, "ivy", "guess-guess-1").status_code == 401
    # Now even the right password waits: a different answer would tell a guesser it was right.
    for password in ("guess-guess-2", PASSWORD):
        refused = sign_in(browser, "ivy", password)
        assert (refused.status_code, refused.headers["retry-after"]) == (429, "2")
        assert "Not checked: too many failed sign-ins: try again in 2 s." in re.sub(r"\s+", " ", refused.text)
    api = TestClient(browser.app, follow_redirects=False)
    api.auth = ("ivy", PASSWORD)
    answer = api.get("/api/summary")
    assert (answer.status_code, answer.headers["retry-after"]) == (429, "2")
    assert answer.json() == {"detail": "too many failed sign-ins: try again in 2 s"}
    with Workspace(tmp_path, create=False) as ws:  # refused attempts were never checked, so never logged as tried
        logins = ws.meta.execute("SELECT detail FROM audit_log WHERE action = 'login'").fetchall()
        throttled = ws.meta.execute("SELECT actor, target, detail FROM audit_log "
                                    "WHERE action = 'login_throttled'").fetchall()
    assert [json.loads(d) for (d,) in logins] == [{"ok": False, "client": "testclient"}] * FREE_FAILURES
    assert [(a, t, json.loads(d)) for a, t, d in throttled] == [
        ("ivy", "dashboard", {"failures": FREE_FAILURES, "client": "testclient"})]
    clock.at += 2
    assert sign_in(browser, "ivy", PASSWORD).status_code == 303
    with Workspace(tmp_path, create=False) as ws:
        assert ws.meta.execute("SELECT count(*) FROM sign_in_failures").fetchone() == (0,)
    # One address trying one name after another is held up, the right password included.
    for n in range(CLIENT_NAMES):
        assert sign_in(browser, f"user{n}", "guess-guess-3").status_code == 401
    assert sign_in(browser, "ivy", PASSWORD).status_code == 429


def test_locking_a_name_is_audited_and_shown_to_administrators(tmp_path):
    from typer.testing import CliRunner

    from rxradar.cli import app as cli

    with Workspace(tmp_path) as ws:
        set_user(ws, "ivy", "investigator", PASSWORD, actor="test")
        ws.meta.execute("INSERT INTO sign_in_failures VALUES ('ivy', ?, 0)", (LOCK_AFTER - 1,))
        ws.meta.execute("INSERT INTO sign_in_failures VALUES ('nobody', 3, 0)")
    api = TestClient(create_app(tmp_path, throttle=Throttle(Clock())))
    api.auth = ("ivy", "the-hundredth-guess")
    assert api.get("/api/summary").status_code == 401
    api.auth = ("ivy", PASSWORD)
    assert api.get("/api/summary").status_code == 429
    with Workspace(tmp_path, create=False) as ws:
        locked = ws.meta.execute("SELECT actor, target, detail FROM audit_log WHERE action = 'login_locked'").fetchall()
    assert [(a, t, json.loads(d)) for a, t, d in locked] == [("ivy", "api", {"failures": LOCK_AFTER, "client": "testclient"})]
    listed = CliRunner().invoke(cli, ["users", "list", "-w", str(tmp_path)], env={"COLUMNS": "120"})
    assert re.search(r"│ ivy\s*│ investigator\s*│[^│]*│ 100 \(locked\)\s*│", listed.output), listed.output
    assert "nobody" not in listed.output  # names that are no user's are not listed


def test_a_busy_workspace_refuses_sign_ins_rather_than_not_counting_them(tmp_path):
    with Workspace(tmp_path) as ws:
        set_user(ws, "ivy", "investigator", PASSWORD, actor="test")
    writer = sqlite3.connect(tmp_path / "meta.sqlite", isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # a long write elsewhere, e.g. an ingest committing
    try:
        browser = TestClient(create_app(tmp_path, throttle=Throttle(Clock())))
        busy = sign_in(browser, "ivy", "guess-guess-1")
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert (busy.status_code, busy.headers["retry-after"]) == (503, "5") and "busy" in busy.text


def test_the_server_believes_forwarded_addresses_only_from_proxies_named(monkeypatch, tmp_path):
    from rxradar.serve import server
    from rxradar.settings import load

    calls = []
    monkeypatch.setattr(server.uvicorn, "run", lambda app, **kwargs: calls.append(kwargs))
    monkeypatch.setattr(server, "check_address", lambda host, port: None)
    with Workspace(tmp_path) as ws:
        for proxies in (None, "10.0.0.2"):
            server.serve(ws, load(workspace=tmp_path), host="127.0.0.1", port=8000, actor="test",
                         say=lambda _: None, warn=lambda _: None, forwarded_allow_ips=proxies)
    assert [(c["proxy_headers"], c["forwarded_allow_ips"]) for c in calls] == [(False, None), (True, "10.0.0.2")]
