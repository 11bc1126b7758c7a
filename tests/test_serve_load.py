"""The dashboard under many requests at once: every view of leads still audited, before its answer
leaves; no database opened per request; a workspace locked by a long write refuses leads rather
than showing them unrecorded. (How fast it answers is measured in bench/serve.py, not here.)"""

from __future__ import annotations

import json
import sqlite3
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from rxradar import workspace as workspace_module
from rxradar.serve.app import create_app
from rxradar.serve.auth import set_user
from rxradar.workspace import Workspace

from dashboard_client import sign_in
from test_serve import PASSWORDS, write_analysis

CLIENTS = 16
AUDITED = ("/api/prescribers/P1", "/api/prescribers?flagged=true", "/", "/prescribers/P2", "/pharmacies")


@pytest.fixture()
def workspace(tmp_path):
    with Workspace(tmp_path) as ws:
        set_user(ws, "ivy", "investigator", PASSWORDS["ivy"], actor="test")
        set_user(ws, "ana", "aggregate", PASSWORDS["ana"], actor="test")
    write_analysis(tmp_path)
    return tmp_path


def views(root) -> list[tuple[str, str, dict]]:
    with Workspace(root, create=False) as ws:
        return [(a, t, json.loads(d)) for a, t, d in
                ws.meta.execute("SELECT actor, target, detail FROM audit_log WHERE action = 'view'").fetchall()]


def test_every_view_is_audited_when_many_come_at_once(workspace):
    app = create_app(workspace)
    with TestClient(app) as warm:  # the lifespan: request threads as the server sets them
        warm.auth = ("ivy", PASSWORDS["ivy"])
        assert warm.get("/api/summary").status_code == 200  # places: not a view of leads

    def browse(n: int) -> list[int]:
        client = TestClient(app, follow_redirects=False)  # signing in goes to the overview: not asked here
        if n % 2:
            sign_in(client, "ivy", PASSWORDS["ivy"])  # half as browsers, half as scripts
        else:
            client.auth = ("ivy", PASSWORDS["ivy"])
        return [client.get(url).status_code for url in AUDITED * 4]

    with ThreadPoolExecutor(CLIENTS) as pool:
        statuses = [s for answers in pool.map(browse, range(CLIENTS)) for s in answers]
    assert statuses == [200] * CLIENTS * len(AUDITED) * 4
    recorded = views(workspace)
    assert len(recorded) == len(statuses)
    assert sorted({(a, t) for a, t, _ in recorded}) == sorted(("ivy", u.split("?")[0]) for u in AUDITED)
    assert sum(d == {"query": {"flagged": "true"}} for _, _, d in recorded) == CLIENTS * 4


def test_each_view_is_committed_before_its_answer_arrives(workspace):
    ivy = TestClient(create_app(workspace))
    ivy.auth = ("ivy", PASSWORDS["ivy"])
    for n, url in enumerate(AUDITED * 3, start=1):
        assert ivy.get(url).status_code == 200
        assert len(views(workspace)) == n  # read through another connection: already there


def test_requests_reuse_their_threads_database_connections(workspace, monkeypatch):
    """Opening the workspace (a connection, its schema, the key file) on every request was the
    largest cost of a request after the page itself."""
    app = create_app(workspace)
    opened = []
    connect = sqlite3.connect
    monkeypatch.setattr(workspace_module.sqlite3, "connect", lambda *a, **k: opened.append(a) or connect(*a, **k))
    with TestClient(app) as ivy:  # one event loop and its request threads, as under uvicorn
        ivy.auth = ("ivy", PASSWORDS["ivy"])
        for url in AUDITED * 10:
            assert ivy.get(url).status_code == 200
    # One for each thread that answered and one for the audit writer, however many requests.
    assert 1 <= len(opened) <= 3, len(opened)


def test_leads_are_not_shown_when_their_view_cannot_be_recorded(workspace):
    ivy = TestClient(create_app(workspace))
    ivy.auth = ("ivy", PASSWORDS["ivy"])
    assert ivy.get("/api/summary").status_code == 200  # signed in (that is audited too) before the lock
    writer = sqlite3.connect(workspace / "meta.sqlite", isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # a long write elsewhere, e.g. an ingest committing
    try:
        refused = ivy.get("/api/prescribers/P1")
        places = ivy.get("/api/counties")  # not audited: still answered
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert (refused.status_code, refused.headers["retry-after"]) == (503, "5")
    assert "P1" not in refused.text and refused.json() == {
        "detail": "the workspace is busy with another write; try again in a few seconds"}
    assert refused.headers["cache-control"] == "no-store"  # the security headers hold for it too
    assert places.status_code == 200
    assert ivy.get("/api/prescribers/P1").status_code == 200
