"""What the dashboard sends with every answer and accepts in every request: security headers, the
sign-in form's CSRF protection, Secure cookies, limited request bodies, query parameters checked
against what each route takes; and the report's styles readable as CSS."""

from __future__ import annotations

import asyncio
import re

import pytest
from fastapi.testclient import TestClient

from rxradar import settings
from rxradar.serve.app import create_app
from rxradar.serve.auth import set_user
from rxradar.serve.security import CONTENT_SECURITY_POLICY
from rxradar.workspace import Workspace

from css_syntax import declarations, font_families, well_formed_family
from dashboard_client import form_token, sign_in
from test_serve import PASSWORDS, as_user, write_analysis

PAGES = ("/", "/prescribers", "/prescribers?peer_group=Dentist+%7C+WV&flagged=true", "/pharmacies", "/prescribers/P1",
         "/pharmacies/H1", "/counties", "/counties?measure=patients_per_1000", "/indicators", "/api")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("secured")
    with Workspace(root) as ws:
        set_user(ws, "ivy", "investigator", PASSWORDS["ivy"], actor="test")
    write_analysis(root)
    return root


@pytest.fixture(scope="module")
def app(workspace):
    return create_app(workspace, small_cell=11)


@pytest.fixture(scope="module")
def ivy(app):
    return as_user(app, "ivy", PASSWORDS["ivy"])


# --- headers --------------------------------------------------------------------------------------

def test_every_answer_carries_the_security_headers_and_none_but_the_stylesheet_is_cached(app, ivy):
    anonymous = TestClient(app, follow_redirects=False)
    answers = {url: ivy.get(url) for url in (*PAGES, "/api/summary", "/api/prescribers/P1", "/prescribers/P9",
                                              "/api/prescribers?limit=0", "/openapi.json")}
    answers.update({"anonymous /": anonymous.get("/"), "anonymous /api/summary": anonymous.get("/api/summary"),
                    "/login": anonymous.get("/login"), "/static/rxradar.css": anonymous.get("/static/rxradar.css")})
    assert {url: r.status_code for url, r in answers.items() if r.status_code not in (200, 303, 401, 404, 422)} == {}
    for url, r in answers.items():
        assert r.headers["content-security-policy"] == CONTENT_SECURITY_POLICY, url
        assert (r.headers["x-frame-options"], r.headers["x-content-type-options"],
                r.headers["referrer-policy"]) == ("DENY", "nosniff", "no-referrer"), url
        assert r.headers.get("cache-control") == (None if url.startswith("/static/") else "no-store"), url
    policy = dict(part.strip().split(" ", 1) for part in CONTENT_SECURITY_POLICY.split(";"))
    assert policy["default-src"] == "'none'" and policy["style-src"] == "'self'"  # no 'unsafe-inline'
    assert policy["frame-ancestors"] == "'none'" and "script-src" not in policy


def test_pages_need_no_inline_script_style_or_event_handler(ivy):
    """The policy forbids them, so a page with any would break: none may be in the templates."""
    for url in (*PAGES, "/login"):
        html = ivy.get(url).text
        assert re.findall(r"<script|<style|\sstyle=|\son[a-z]+=|javascript:", html, re.I) == [], url
    profile = ivy.get("/prescribers/P1").text  # the lead score's parts are drawn without a style attribute
    assert re.search(r'<svg class="bar"[^>]*><rect height="1" width="100.0"/>', profile)


# --- signing in -----------------------------------------------------------------------------------

def test_the_sign_in_form_refuses_posts_that_did_not_come_from_it(app, workspace):
    browser = TestClient(app, follow_redirects=False)
    token = form_token(browser)
    # Another site's form: no token (the attacker cannot read ours), or the attacker's own token
    # without its cookie (they cannot set our cookie in the victim's browser).
    forged = [browser.post("/login", data={"name": "ivy", "password": PASSWORDS["ivy"]}),
              TestClient(app, follow_redirects=False).post("/login", data={"name": "ivy", "password": PASSWORDS["ivy"],
                                                                           "csrf": token}),
              browser.post("/login", data={"name": "ivy", "password": PASSWORDS["ivy"], "csrf": token + "x"}),
              browser.post("/login", data={"name": "ivy", "password": PASSWORDS["ivy"], "csrf": token},
                           headers={"Origin": "https://evil.example"}),
              browser.post("/login", data={"name": "ivy", "password": PASSWORDS["ivy"], "csrf": "é"})]
    for r in forged:
        assert r.status_code == 403 and "did not come from this server&#39;s own form" in r.text
        assert "rxradar_session" not in r.headers.get("set-cookie", "")
    with Workspace(workspace, create=False) as ws:  # refused before the password was looked at
        assert ws.meta.execute("SELECT count(*) FROM audit_log WHERE action = 'login' "
                               "AND target = 'dashboard'").fetchone() == (0,)
    ok = browser.post("/login", data={"name": "ivy", "password": PASSWORDS["ivy"], "csrf": token},
                      headers={"Origin": "http://testserver"})
    assert ok.status_code == 303 and "rxradar_session=" in ok.headers["set-cookie"]
    # Signing out is refused from another site too.
    assert browser.post("/logout", headers={"Origin": "https://evil.example"}).status_code == 403
    assert browser.get("/prescribers").status_code == 200


def test_cookies_are_secure_when_the_setting_says_so(workspace, monkeypatch):
    def cookies(app) -> list[str]:
        browser = TestClient(app, follow_redirects=False)
        form = browser.get("/login")
        signed_in = sign_in(browser, "ivy", PASSWORDS["ivy"])
        return [form.headers["set-cookie"], signed_in.headers["set-cookie"]]

    assert all("secure" not in c.lower() for c in cookies(create_app(workspace)))
    monkeypatch.setenv("RXRADAR_SECURE_COOKIES", "true")
    loaded = settings.load()
    assert loaded.secure_cookies is True
    secure = cookies(create_app(workspace, secure_cookies=loaded.secure_cookies))
    assert all("; secure" in c.lower() and "httponly" in c.lower() and "samesite=strict" in c.lower() for c in secure)


def test_a_request_body_over_the_limit_is_refused_while_it_arrives(app):
    """413 without reading the rest: the limit holds for a body of unknown length (chunked), and a
    declared length over it is refused before any of the body is read."""
    limit = settings.Settings().max_request_bytes
    chunk = b"name=ivy&password=" + b"x" * 1006  # 1 KiB at a time, without end

    async def post(headers: list[tuple[bytes, bytes]]) -> tuple[int, int]:
        sent, read = [], 0

        async def receive():
            nonlocal read
            read += 1
            return {"type": "http.request", "body": chunk, "more_body": True}

        async def send(message):
            sent.append(message)

        scope = {"type": "http", "method": "POST", "path": "/login", "raw_path": b"/login", "query_string": b"",
                 "headers": [(b"host", b"testserver"), (b"content-type", b"application/x-www-form-urlencoded"),
                             *headers], "client": ("127.0.0.1", 1), "server": ("testserver", 80), "scheme": "http",
                 "http_version": "1.1", "root_path": ""}
        await asyncio.wait_for(app(scope, receive, send), 10)
        return sent[0]["status"], read

    status, read = asyncio.run(post([(b"transfer-encoding", b"chunked")]))
    assert (status, read) == (413, limit // len(chunk) + 1)
    assert asyncio.run(post([(b"content-length", str(limit + 1).encode())])) == (413, 0)
    browser = TestClient(app, follow_redirects=False)
    small = browser.post("/login", data={"name": "ivy", "password": "p", "csrf": "x" * (limit - 100)})
    assert small.status_code == 403  # under the limit: read, then refused for its token
    big = browser.post("/login", data={"name": "ivy", "password": "p", "csrf": "x" * limit})
    assert big.status_code == 413 and "max_request_bytes" in big.text


# --- query parameters -----------------------------------------------------------------------------

@pytest.mark.parametrize("url, name", [("/api/prescribers?county_fips=54039", "county_fips"),
                                       ("/api/prescribers?sort=mme", "sort"), ("/api/pharmacies?format=csv", "format"),
                                       ("/api/summary?state=WV", "state"), ("/api/counties?state=WV", "state"),
                                       ("/api/prescribers/P1?full=1", "full"), ("/api/deciles?group=x", "group")])
def test_the_api_refuses_parameters_it_does_not_take(ivy, url, name):
    r = ivy.get(url)
    assert r.status_code == 422
    [error] = r.json()["detail"]
    assert error["loc"] == ["query", name] and f"takes no parameter {name!r}" in error["msg"]
    if url.startswith("/api/prescribers?"):
        assert "(it takes: flagged, limit, offset, peer_group)" in error["msg"]


def test_values_that_name_nothing_in_the_analysis_are_refused_with_what_is_allowed(ivy):
    r = ivy.get("/api/prescribers", params={"peer_group": "Famly Medicine | WV"})
    assert r.status_code == 422
    assert r.json()["detail"][0]["msg"] == ("'Famly Medicine | WV' is not a peer group of prescribers: use one of "
                                            "'Dentist | WV', 'Family Medicine | WV'")
    assert ivy.get("/api/pharmacies", params={"peer_group": "Dentist | WV"}).status_code == 422
    assert ivy.get("/api/deciles", params={"measure": "mme"}).json()["detail"][0]["ctx"]["expected"] == [
        "mme_per_patient", "mme_total"]
    assert ivy.get("/api/deciles", params={"peer_group": "nobody"}).status_code == 422
    repeated = ivy.get("/api/prescribers?limit=1&limit=2")
    assert repeated.status_code == 422 and "given more than once" in repeated.json()["detail"][0]["msg"]
    assert ivy.get("/api/prescribers", params={"peer_group": "Dentist | WV"}).json()["total"] == 2


def test_pages_refuse_unknown_parameters_and_values_too(ivy):
    for url, said in (("/prescribers?peer_group=Nope", "&#39;Nope&#39; is not a peer group of prescribers"),
                      ("/prescribers?sort=rank", "takes no parameter &#39;sort&#39;"),
                      ("/counties?measure=deaths", "&#39;deaths&#39; is not a county measure"),
                      ("/prescribers/P1?tab=flags", "takes no parameter &#39;tab&#39;"),
                      ("/?x=1", "takes no parameter &#39;x&#39;")):
        r = ivy.get(url)
        assert (r.status_code, "text/html" in r.headers["content-type"]) == (422, True), url
        assert said in r.text, url
    assert ivy.get("/prescribers?peer_group=&flagged=false&page=1").status_code == 200  # the form's own query


def test_openapi_says_how_parameters_are_checked(ivy):
    spec = ivy.get("/openapi.json").json()
    leads = {p["name"]: p for p in spec["paths"]["/api/prescribers"]["get"]["parameters"]}
    assert set(leads) == {"peer_group", "flagged", "limit", "offset"}
    assert "a 422 lists them" in leads["peer_group"]["description"]
    for path, ops in spec["paths"].items():
        refused = ops["get"]["responses"]["422"]["content"]["application/json"]["schema"]
        assert refused == {"$ref": "#/components/schemas/Refused"}, path
    assert ivy.get("/api/summary?x=1").json()["detail"][0].keys() <= set(spec["components"]["schemas"]["Problem"]
                                                                         ["properties"])


# --- the report's styles --------------------------------------------------------------------------

def test_the_reports_styles_read_as_css_with_every_font_family_intact(workspace, tmp_path):
    from rxradar.serve.report import HERE, write_report

    with Workspace(workspace, create=False) as ws:
        html = write_report(ws, tmp_path / "report.html", public=True, actor="test").path.read_text()
    [style] = re.findall(r"<style>(.*?)</style>", html, re.S)
    found, invalid = declarations(style)
    assert invalid == []
    fonts = [d for d in found if d.property in ("font", "font-family")]
    families = [f for d in fonts for f in font_families(d)]
    assert families and all(well_formed_family(f) for f in families), families
    assert ("string", '"Segoe UI"') in families  # the body's font: a quoted name, as written
    # Everything the dashboard's stylesheet declares is in the report, as it is.
    sheet, _ = declarations((HERE / "static" / "rxradar.css").read_text())
    assert found[:len(sheet)] == sheet
