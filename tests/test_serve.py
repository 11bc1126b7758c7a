"""The dashboard and API (``rxradar serve``) over a hand-made analysis: what each endpoint returns,
small-cell suppression, escaping, 404s, nothing loaded from outside; and the county maps drawn
from the shipped TopoJSON."""

from __future__ import annotations

import json
import math
import re
from datetime import date

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from rxradar.analytics.analyze import deciles_table
from rxradar.reference.counties import counties
from rxradar.serve import charts, maps
from rxradar.serve.app import create_app
from rxradar.serve.auth import set_user
from rxradar.serve.results import Results
from rxradar.workspace import Workspace

from dashboard_client import sign_in

NAN = float("nan")
EVIL = '<script>alert("x")</script>'


def prescriber(pid: str, rank: int, score: float, mme: float, mme_eb: float, pctile: float, flags=(), reasons=(),
               components: str = "", group: str = "Family Medicine | WV") -> dict:
    return {"prescriber_id": pid, "specialty": group.split(" | ")[0], "state": "WV", "county_fips": "54039",
            "patients": 40, "opioid_rx": 120, "mme_total": mme * 40, "mme_per_patient": mme,
            "mme_per_patient_eb": mme_eb, "mme_per_patient_pctile": pctile, "mean_patient_age": 51.5,
            "peer_group": group, "lead_score": score, "lead_components": components, "rank": rank,
            "flags": list(flags), "reasons": list(reasons)}


PRESCRIBERS = [
    prescriber("P2", 2, 1.25, 900.0, 850.0, 70.0),
    prescriber("P1", 1, 6.5, 4000.0, 3100.0, 95.0, ["oig_outlier_mme_per_patient"],
               ["MME per patient: 3,100 > peer Q3 + 3 x IQR = 2,000"], "mme_per_patient 4.50; patients 2.00"),
    prescriber("P3", 3, 0.0, NAN, NAN, NAN, group="Dentist | WV"),
    prescriber(EVIL, 4, 0.0, 10.0, 10.0, 5.0, group="Dentist | WV"),
]
PHARMACIES = [{"pharmacy_id": "H1", "county_fips": "54039", "peer_group": "urban | chain", "opioid_rx": 500,
               "patients": 100, "cash_share": 0.25, "cash_share_eb": 0.2, "cash_share_pctile": 99.0,
               "early_refill_share": 0.1, "lead_score": 3.0, "lead_components": "cash_share 3.00", "rank": 1,
               "flags": ["posterior_cash_share"], "reasons": ["cash share 25% of 500"]}]
# As the analysis lists them: whole-period rows (no month) first, then the monthly ones.
DECILES = [{"peer_group": "Family Medicine | WV", "measure": "mme_per_patient", "n": 12,
            **{f"p{10 * i}": 100.0 * i for i in range(1, 10)}},
           {"peer_group": "Family Medicine | WV", "measure": "mme_total", "n": 12,
            **{f"p{10 * i}": 1000.0 * i for i in range(1, 10)}},
           {"peer_group": "Family Medicine | WV", "measure": "mme_total", "month": date(2023, 1, 1), "n": 12,
            **{f"p{10 * i}": 1.0 * i for i in range(1, 10)}}]
MONTHS = [{"prescriber_id": "P1", "month": date(2023, m, 1), "opioid_rx": 10, "patients": 5, "mme_total": 1000.0 * m,
           "peer_group": "Family Medicine | WV", "mme_total_pctile": 95.0 if m >= 2 else 50.0} for m in (3, 1, 2)]


def county(fips: str, population: int, patients: int, at_risk: int, doctor_shopping: int) -> dict:
    return {"county_fips": fips, "state": fips[:2] == "54" and "WV" or "OH", "county": f"County {fips}",
            "population": population, "patients": patients, "patients_at_risk": at_risk,
            "patients_oig_doctor_shopping": doctor_shopping,
            "patients_per_1000": 1000 * patients / population, "at_risk_per_1000": 1000 * at_risk / population,
            "prescribers": 2, "flagged_prescribers": 1, "pharmacies": 1, "flagged_pharmacies": 0}


COUNTIES = [county("54039", 178_124, 1_848, 142, 4), county("54011", 91_945, 962, 7, 0),
            county("54045", 32_019, 0, 0, 0), county("39053", 29_898, 20, 11, 0)]


PASSWORDS = {"ivy": "investigator-pass-1", "ana": "aggregate-pass-22"}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("served")
    with Workspace(root) as ws:
        set_user(ws, "ivy", "investigator", PASSWORDS["ivy"], actor="test")
        set_user(ws, "ana", "aggregate", PASSWORDS["ana"], actor="test")
    write_analysis(root)
    return root


def write_analysis(root, prescribers=PRESCRIBERS, finished="2024-01-05T10:00:00+00:00"):
    folder = root / "analytics"
    folder.mkdir(exist_ok=True)
    for name, table in (("prescriber_metrics", pa.Table.from_pylist(prescribers)),
                        ("pharmacy_metrics", pa.Table.from_pylist(PHARMACIES)), ("deciles", deciles_table(DECILES)),
                        ("prescriber_months", pa.Table.from_pylist(MONTHS)),
                        ("county_metrics", pa.Table.from_pylist(COUNTIES))):
        pq.write_table(table, folder / f"{name}.parquet")
    about = {"period": {"start": "2023-01-01", "end": "2023-12-31"}, "finished_at": finished,
             "rows": {"persons": 3000, "patients": 2830, "prescribers": len(prescribers), "pharmacies": 1,
                      "counties": 4},
             "settings": {"early_refill": "overlap", "workspace": str(root)}}
    (folder / "analysis.json.tmp").write_text(json.dumps(about))
    (folder / "analysis.json.tmp").replace(folder / "analysis.json")  # as the analysis writes it


def as_user(app, name: str, password: str) -> TestClient:
    """A client calling with HTTP Basic, as a script would."""
    client = TestClient(app)
    client.auth = (name, password)
    return client


@pytest.fixture(scope="module")
def app(workspace):
    return create_app(workspace, small_cell=11)


@pytest.fixture(scope="module")
def client(app):
    """An investigator calling with HTTP Basic, as a script would."""
    return as_user(app, "ivy", PASSWORDS["ivy"])


def test_leads_are_ranked_filtered_and_paged(client):
    page = client.get("/api/prescribers").json()
    assert page["total"] == 4 and [r["prescriber_id"] for r in page["rows"]] == ["P1", "P2", "P3", EVIL]
    # NaN is not JSON: a measure without a value comes back as null.
    assert page["rows"][2]["mme_per_patient"] is None
    dentists = client.get("/api/prescribers", params={"peer_group": "Dentist | WV"}).json()
    assert [r["prescriber_id"] for r in dentists["rows"]] == ["P3", EVIL]
    flagged = client.get("/api/prescribers", params={"flagged": "true"}).json()
    assert (flagged["total"], flagged["rows"][0]["flags"]) == (1, ["oig_outlier_mme_per_patient"])
    second = client.get("/api/prescribers", params={"limit": 1, "offset": 1}).json()
    assert (second["total"], second["offset"], [r["prescriber_id"] for r in second["rows"]]) == (4, 1, ["P2"])
    assert client.get("/api/prescribers", params={"limit": 0}).status_code == 422


def test_profile_sets_each_measure_beside_its_peer_deciles(client):
    p1 = client.get("/api/prescribers/P1").json()
    mme = next(m for m in p1["measures"] if m["id"] == "mme_per_patient")
    # Compared after shrinkage (the _eb column), against the peer group's (not monthly) deciles.
    assert (mme["value"], mme["compared"], mme["percentile"]) == (4000.0, 3100.0, 95.0)
    assert mme["deciles"]["p50"] == 500.0 and mme["deciles"]["n"] == 12
    assert mme["shown"] == "4,000"
    assert p1["place"] == "Kanawha County, WV"  # from county_fips 54039
    # Total MME is set against the whole period's deciles, not a month's (p90 9,000, not 9).
    total = next(m for m in p1["measures"] if m["id"] == "mme_total")
    assert (total["deciles"]["p90"], total["deciles"]["month"]) == (9000.0, None)
    assert p1["flags"] == [{"rule": "oig_outlier_mme_per_patient", "reason": "MME per patient: 3,100 > peer Q3 + 3 x "
                                                                            "IQR = 2,000"}]
    assert [(c["measure"], c["contribution"], c["title"]) for c in p1["components"]] == [
        ("mme_per_patient", 4.5, "MME per patient"), ("patients", 2.0, "Opioid patients")]
    # Months in calendar order, whatever the order stored.
    assert [(m["month"], m["mme_total"]) for m in p1["months"]] == [("2023-01-01", 1000.0), ("2023-02-01", 2000.0),
                                                                      ("2023-03-01", 3000.0)]
    assert client.get("/api/prescribers/P9").status_code == 404
    h1 = client.get("/api/pharmacies/H1").json()
    cash = next(m for m in h1["measures"] if m["id"] == "cash_share")
    assert (cash["compared"], cash["shown"], cash["shown_compared"]) == (0.2, "25.0%", "20.0%")


def test_county_counts_go_through_disclosure_control(client):
    rows = {r["county_fips"]: r for r in client.get("/api/counties").json()}
    kanawha, cabell, logan, ohio = rows["54039"], rows["54011"], rows["54045"], rows["39053"]
    # Small cells: 4 doctor shoppers in Kanawha, 7 at-risk patients in Cabell (and Cabell's rate).
    assert kanawha["patients_oig_doctor_shopping"] is None
    assert (cabell["patients_at_risk"], cabell["at_risk_per_1000"]) == (None, None)
    # Cabell alone withheld among West Virginia's at-risk counts would follow from the state's
    # total: Kanawha's 142 goes too. 11 of Ohio's 20 patients at risk: the 9 not at risk are a
    # small cell, so the 11 are withheld; Ohio is its state's only county, so its state total
    # gives them back, and its 20 patients go as well, then enough of the others that the grand
    # total gives nothing back (disclosure.py): every patient count but Logan's zero.
    assert (kanawha["patients_at_risk"], ohio["patients_at_risk"]) == (None, None)
    assert [r["patients"] for r in (kanawha, cabell, ohio)] == [None, None, None]
    assert kanawha["suppressed"] == ["patients", "patients_per_1000", "patients_at_risk", "at_risk_per_1000",
                                     "patients_oig_doctor_shopping"]
    # Zero is not a small cell; rates on fewer than 20 patients are marked unstable.
    assert (logan["patients"], logan["suppressed"]) == (0, [])
    assert logan["unstable"] == ["patients_per_1000", "at_risk_per_1000"]
    page = client.get("/counties").text
    assert "&lt;11" in page and "withheld (small numbers)" in page
    # A small cell reads '<11'; a cell withheld so as not to reveal one reads 'w' ('<11' would be untrue).
    assert (cabell["small"], kanawha["small"]) == (["patients_at_risk"], ["patients_oig_doctor_shopping"])
    kanawha_row = re.search(r"<tr><td>County 54039</td>.*?</tr>", page, re.S).group(0)
    assert "&lt;11" not in kanawha_row and 'title="withheld: it would reveal a small number">w<' in kanawha_row
    # Investigators also see each county's prescribers and pharmacies.
    assert (kanawha["prescribers"], kanawha["flagged_prescribers"]) == (2, 1)


def test_map_shows_the_states_where_patients_live(workspace):
    results = Results(workspace)
    # 20 of 2,830 patients live in Ohio: under 5%, so the map is West Virginia's.
    assert results.map_states() == ["WV"]
    assert results.map_states(share=0.005) == ["OH", "WV"]


def test_pages_render_escaped_and_load_nothing_from_elsewhere(client):
    for url in ("/", "/prescribers", "/prescribers?peer_group=Dentist+%7C+WV&flagged=true", "/pharmacies",
                "/prescribers/P1", "/prescribers/P3", "/pharmacies/H1", "/counties",
                "/counties?measure=patients_per_1000", "/indicators", "/api"):
        r = client.get(url)
        assert r.status_code == 200, url
        assert "text/html" in r.headers["content-type"]
        # Air-gapped: every src and href is local.
        assert re.findall(r'(?:src|href|action)="(?:https?:)?//', r.text) == [], url
        assert "<script" not in r.text, url
    listing = client.get("/prescribers", params={"peer_group": "Dentist | WV"}).text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in listing
    # Its profile link works, '/' and all: the id is one path segment, encoded.
    link = re.search(r'href="(/prescribers/%3Cscript[^"]*)"', listing).group(1)
    assert "%2F" in link
    profile = client.get(link)
    assert profile.status_code == 200 and "&lt;script&gt;" in profile.text and "<script" not in profile.text
    assert client.get("/api/prescribers/" + link.split("/", 2)[2]).json()["id"] == EVIL
    assert client.get("/static/rxradar.css").status_code == 200
    missing = client.get("/prescribers/P9")
    assert missing.status_code == 404 and "no prescriber P9 in the last analysis" in missing.text
    assert client.get("/wholesalers").status_code == 404
    odd = client.get("/prescribers", params={"flagged": "perhaps"})
    assert odd.status_code == 422 and "text/html" in odd.headers["content-type"] and "flagged" in odd.text


def test_the_servers_own_paths_are_not_shown(workspace, client):
    for url in ("/", "/counties", "/api", "/api/summary"):
        assert str(workspace) not in client.get(url).text, url


def test_openapi_describes_every_endpoint_and_the_docs_need_no_cdn(client):
    spec = client.get("/openapi.json").json()
    assert {"/api/summary", "/api/indicators", "/api/counties", "/api/deciles", "/api/prescribers",
            "/api/prescribers/{entity_id}", "/api/pharmacies", "/api/pharmacies/{entity_id}"} == set(spec["paths"])
    assert client.get("/docs").status_code == 404  # Swagger UI would load from a CDN
    assert spec["paths"]["/api/prescribers"]["get"]["security"] == [{"HTTPBasic": []}]
    assert "/api/prescribers/{entity_id}" in client.get("/api").text
    summary = client.get("/api/summary").json()
    assert (summary["flagged"], summary["rows"]["patients"]) == ({"prescribers": 1, "pharmacies": 1}, 2830)
    assert {i["id"] for i in client.get("/api/indicators").json()} >= {"oig_high_amounts", "mpe_pbss"}
    deciles = client.get("/api/deciles", params={"measure": "mme_total"}).json()
    assert [(d["month"], d["p90"]) for d in deciles] == [(None, 9000.0), ("2023-01-01", 9.0)]


def test_indicators_are_shown_with_the_parameters_the_analysis_used(tmp_path):
    with Workspace(tmp_path) as ws:
        set_user(ws, "ana", "aggregate", PASSWORDS["ana"], actor="test")
    ana = as_user(create_app(tmp_path), "ana", PASSWORDS["ana"])
    declared = {i["id"]: i["parameters"] for i in ana.get("/api/indicators").json()}  # no analysis yet
    assert declared["mpe_pbss"]["window_days"] == 182
    write_analysis(tmp_path)
    about_path = tmp_path / "analytics" / "analysis.json"
    about = json.loads(about_path.read_text())
    about["indicators"] = {"mpe_pbss": {**declared["mpe_pbss"], "window_days": 91}}
    about_path.write_text(json.dumps(about))
    used = {i["id"]: i["parameters"] for i in ana.get("/api/indicators").json()}
    assert used["mpe_pbss"]["window_days"] == 91 and used["oig_high_amounts"] == declared["oig_high_amounts"]
    assert "<code>window_days = 91</code>" in ana.get("/indicators").text


def test_a_workspace_without_an_analysis_says_what_to_run(tmp_path):
    with Workspace(tmp_path) as ws:
        set_user(ws, "ivy", "investigator", PASSWORDS["ivy"], actor="test")
    client = as_user(create_app(tmp_path), "ivy", PASSWORDS["ivy"])
    page = client.get("/")
    assert page.status_code == 404 and "run rxradar analyze first" in page.text
    assert client.get("/api/prescribers").json() == {"detail": f"no analysis results in {tmp_path}: run rxradar "
                                                               "analyze first"}


def test_a_new_analysis_is_read_without_a_restart(tmp_path):
    with Workspace(tmp_path) as ws:
        set_user(ws, "ivy", "investigator", PASSWORDS["ivy"], actor="test")
    write_analysis(tmp_path)
    client = as_user(create_app(tmp_path), "ivy", PASSWORDS["ivy"])
    assert client.get("/api/prescribers").json()["total"] == 4
    write_analysis(tmp_path, PRESCRIBERS[:1], finished="2024-01-05T11:00:00+00:00")
    assert client.get("/api/prescribers").json()["total"] == 1


# --- who may see what -----------------------------------------------------------------------------

def test_nobody_gets_in_without_signing_in(app, workspace):
    anonymous = TestClient(app, follow_redirects=False)
    page = anonymous.get("/prescribers?flagged=true")
    assert (page.status_code, page.headers["location"]) == (303, "/login?next=%2Fprescribers%3Fflagged%3Dtrue")
    api = anonymous.get("/api/summary")
    assert (api.status_code, api.headers["www-authenticate"]) == (401, 'Basic realm="rxradar"')
    assert as_user(app, "ivy", "not-her-password").get("/api/summary").status_code == 401
    assert as_user(app, "nobody", "whatever-pass").get("/api/summary").status_code == 401
    assert as_user(app, "x" * 500, "whatever-pass").get("/api/summary").status_code == 401
    with Workspace(workspace, create=False) as ws:
        failed = ws.meta.execute("SELECT actor, target FROM audit_log WHERE action = 'login' "
                                 "AND detail LIKE '%false%'").fetchall()
    assert {("ivy", "api"), ("nobody", "api")} <= set(failed)
    assert all(len(actor) < 100 for actor, _ in failed)  # a name no user can have is refused unchecked, unlogged
    assert anonymous.get("/login").status_code == 200 and anonymous.get("/static/rxradar.css").status_code == 200


def test_an_aggregate_user_sees_places_but_no_leads(app, workspace):
    ana = as_user(app, "ana", PASSWORDS["ana"])
    assert ana.get("/api/counties").status_code == 200 and ana.get("/api/summary").status_code == 200
    assert ana.get("/api/prescribers").status_code == 403
    assert ana.get("/api/pharmacies/H1").status_code == 403
    refused = ana.get("/prescribers")
    assert refused.status_code == 403 and "needs the &#39;leads&#39; capability" in refused.text
    overview = ana.get("/").text
    assert "Prescriber and pharmacy leads are for investigators" in overview and "P1" not in overview
    assert 'href="/prescribers"' not in overview
    # Peer deciles and flagged prescribers by county would point at prescribers: not for this role.
    assert ana.get("/api/deciles").status_code == 403
    counties = ana.get("/api/counties").json()
    assert not {"prescribers", "flagged_prescribers", "pharmacies", "flagged_pharmacies"} & set(counties[0])
    hidden = ana.get("/counties", params={"measure": "flagged_prescribers"})
    assert hidden.status_code == 422 and "use one of &#39;at_risk_per_1000&#39;, &#39;patients_per_1000&#39;" in hidden.text
    assert "flagged" not in re.sub(r"<style>.*?</style>|<link[^>]*>", "", ana.get("/counties").text, flags=re.S)


def test_each_view_of_leads_is_audited_with_its_reader(app, workspace):
    ivy = as_user(app, "ivy", PASSWORDS["ivy"])
    ivy.get("/api/prescribers/P2")
    ivy.get("/")  # the overview lists the strongest leads to an investigator
    ivy.get("/counties")  # and the counties page, flagged prescribers by county
    with Workspace(workspace, create=False) as ws:
        views = ws.meta.execute("SELECT actor, target FROM audit_log WHERE action = 'view'").fetchall()
        logins = ws.meta.execute("SELECT actor, target, detail FROM audit_log WHERE action = 'login' "
                                 "AND actor = 'ivy' AND detail LIKE '%true%'").fetchall()
    assert {("ivy", "/api/prescribers/P2"), ("ivy", "/"), ("ivy", "/counties")} <= set(views)
    # A script's sign-in is audited when its password is checked, once, not on every call.
    assert [(a, t) for a, t, _ in logins] == [("ivy", "api")]
    assert all(actor == "ivy" for actor, _ in views)  # places (ana's) are not leads: not logged as views


def test_signing_in_sets_a_session_that_ends_when_the_user_is_removed(tmp_path):
    with Workspace(tmp_path) as ws:
        set_user(ws, "ivy", "investigator", PASSWORDS["ivy"], actor="test")
    write_analysis(tmp_path)
    browser = TestClient(create_app(tmp_path), follow_redirects=False)
    wrong = sign_in(browser, "ivy", "nope-nope-nope", "/counties")
    assert wrong.status_code == 401 and "do not match" in wrong.text
    # Only a path on this server is a place to go next.
    elsewhere = sign_in(browser, "ivy", PASSWORDS["ivy"], "//evil.example")
    assert (elsewhere.status_code, elsewhere.headers["location"]) == (303, "/")
    cookie = elsewhere.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert browser.get("/prescribers").status_code == 200
    # Signing out revokes the cookie, even where a copy of it survives.
    copy = browser.cookies.get("rxradar_session")
    assert browser.post("/logout").headers["location"] == "/login"
    thief = TestClient(browser.app, follow_redirects=False, cookies={"rxradar_session": copy})
    assert thief.get("/prescribers").status_code == 303
    # A new password ends the sessions opened with the old one.
    sign_in(browser, "ivy", PASSWORDS["ivy"], "/")
    assert browser.get("/prescribers").status_code == 200
    with Workspace(tmp_path) as ws:
        set_user(ws, "ivy", "investigator", "a-new-password-9", actor="test")
    assert browser.get("/prescribers").status_code == 303
    sign_in(browser, "ivy", "a-new-password-9", "/")
    with Workspace(tmp_path) as ws:
        logins = ws.meta.execute("SELECT actor, detail FROM audit_log WHERE action = 'login'").fetchall()
        assert [(a, json.loads(d)["ok"]) for a, d in logins] == [("ivy", False), ("ivy", True), ("ivy", True),
                                                                 ("ivy", True)]
        with ws.write_transaction():
            ws.meta.execute("DELETE FROM users WHERE name = 'ivy'")
    assert browser.get("/prescribers").status_code == 303


# --- maps and charts ------------------------------------------------------------------------------

def test_topojson_arcs_decode_by_running_sums_and_rings_join_arcs_once():
    # Quantized deltas (0,0) (2,0) (0,3) scaled by (0.5, 0.25) from (-80, 38).
    assert maps.decode_arc([[0, 0], [2, 0], [0, 3]], (0.5, 0.25), (-80.0, 38.0)) == [
        (-80.0, 38.0), (-79.0, 38.0), (-79.0, 38.75)]
    arcs = {0: ((0, 0), (1, 0), (1, 1)), 1: ((0, 0), (0, 1), (1, 1))}
    # Arc 0, then arc 1 reversed (~1): the shared corner (1, 1) appears once.
    assert maps.ring_points([0, ~1], arcs.__getitem__) == [(0, 0), (1, 0), (1, 1), (0, 1), (0, 0)]


def test_every_west_virginia_county_outline_holds_its_census_internal_point():
    wv = counties("WV").to_pylist()
    assert len(wv) == 55
    for c in wv:
        rings = maps.county_rings(c["fips"])
        assert rings, c["fips"]
        assert any(_inside((c["lon"], c["lat"]), ring) for ring in rings), c["name"]
    assert maps.county_name("54039") == "Kanawha"
    assert maps.county_rings("54999") == []


def test_projection_keeps_shape_within_a_state():
    paths, projection = maps.county_paths(["54039"], width=400)
    ring = maps.county_rings("54039")[0]
    lon = [p[0] for p in ring]
    lat = [p[1] for p in ring]
    # Width over height on the page equals east-west over north-south miles (cos of the middle latitude).
    aspect = (max(lon) - min(lon)) * math.cos(math.radians((max(lat) + min(lat)) / 2)) / (max(lat) - min(lat))
    assert (projection.width - 8) / (projection.height - 8) == pytest.approx(aspect, rel=1e-9)
    assert paths["54039"].startswith("M") and paths["54039"].endswith("Z")


def test_legend_skips_classes_emptied_by_ties():
    # Breaks [0, 0, 0, 1, 2]: the classes that ties leave empty are not in the legend.
    svg = charts.choropleth({"54039": 0.0, "54011": 0.0, "54045": 0.0, "54005": 1.0, "54007": 2.0}, {}, str, "t")
    legend = re.findall(r'<rect [^>]*fill="([^"]+)"/><text [^>]*>([^<]+)</text>', svg)
    assert legend == [(charts.SEQUENTIAL[0], "≤ 0.0"), (charts.SEQUENTIAL[3], "0.0–1.0"),
                      (charts.SEQUENTIAL[4], "1.0–2.0"), (charts.NO_DATA, "withheld or none")]


def test_quantile_classes_and_the_legend():
    assert charts.class_breaks([5, 1, 4, 2, 3, None, NAN], classes=5) == [1, 2, 3, 4, 5]
    assert charts.class_breaks([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], classes=4) == [3, 5, 8, 10]
    assert [charts.class_of(v, [3, 5, 8, 10]) for v in (1, 3, 4, 9, 10)] == [0, 0, 1, 3, 3]
    svg = charts.choropleth({"54039": 2.0, "54011": None, "54045": 1.0}, {"54039": "Kanawha & more"},
                            lambda v: f"{v:.1f}", "test")
    assert svg.count("<path") == 3 and "Kanawha &amp; more" in svg
    assert f'fill="{charts.NO_DATA}" data-fips="54011"' in svg


def test_months_in_the_top_decile_are_red():
    bars = charts.monthly_bars([{"month": "2023-01-01", "mme_total": 10.0, "mme_total_pctile": 89.9},
                                {"month": "2023-02-01", "mme_total": 20.0, "mme_total_pctile": 90.0}], str)
    fills = re.findall(r'<rect [^>]*fill="([^"]+)"', bars)
    assert fills == ["#969696", charts.HIGHLIGHT]


def _inside(point: tuple[float, float], ring: list[tuple[float, float]]) -> bool:
    """Ray casting, independent of the drawing code."""
    x, y = point
    inside = False
    for (x1, y1), (x2, y2) in zip(ring, ring[1:] + ring[:1]):
        if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
            inside = not inside
    return inside


# --- users, passwords and sessions ----------------------------------------------------------------

def test_passwords_are_scrypt_hashes_and_rules_are_checked(tmp_path):
    import hashlib

    from rxradar.serve.auth import SCRYPT, User, Verifier, users

    with Workspace(tmp_path) as ws:
        set_user(ws, "ivy", "investigator", "first-password", actor="test")
        for name, role, password, message in (("iv y", "investigator", "long-enough-1", "user name"),
                                              ("ivy", "boss", "long-enough-1", "role 'boss'"),
                                              ("ivy", "aggregate", "short", "at least 10")):
            with pytest.raises(ValueError, match=message):
                set_user(ws, name, role, password, actor="test")
        salt, stored = ws.meta.execute("SELECT salt, hash FROM users WHERE name = 'ivy'").fetchone()
        assert stored == hashlib.scrypt(b"first-password", salt=salt, **SCRYPT)
        verifier = Verifier()
        assert verifier.verify(ws.meta, "ivy", "first-password") == (User("ivy", "investigator"), True)
        assert verifier.verify(ws.meta, "ivy", "first-password") == (User("ivy", "investigator"), False)  # remembered
        assert verifier.verify(ws.meta, "ivy", "first-passwore") == (None, True)
        # A new password replaces the old at once, even one proved a moment ago.
        set_user(ws, "ivy", "aggregate", "second-password", actor="test")
        assert verifier.verify(ws.meta, "ivy", "first-password") == (None, True)
        assert verifier.verify(ws.meta, "ivy", "second-password")[0].role == "aggregate"
        assert [(n, r) for n, r, _ in users(ws.meta)] == [("ivy", "aggregate")]


def test_session_cookies_expire_and_cannot_be_forged():
    from rxradar.serve.auth import Sessions

    sessions = Sessions(secret=b"k" * 32, seconds=60)
    cookie = sessions.issue("ana.lyst@wv", "f1ngerpr1nt", at=1_000)
    assert sessions.read(cookie, at=1_059) == ("ana.lyst@wv", "f1ngerpr1nt")
    assert sessions.read(cookie, at=1_060) is None
    name, fp, expiry, nonce, signature = cookie.rsplit(".", 4)
    assert sessions.read(f"{name}.{fp}.{int(expiry) + 3600}.{nonce}.{signature}", at=1_000) is None
    assert sessions.read(f"admin.{fp}.{expiry}.{nonce}.{signature}", at=1_000) is None
    assert sessions.issue("ana.lyst@wv", "f1ngerpr1nt", at=1_000) != cookie  # each sign-in a new cookie
    assert Sessions(secret=b"x" * 32).read(cookie, at=1_000) is None
    assert sessions.read("garbage", at=1_000) is None and sessions.read(None) is None


def test_users_are_added_listed_and_removed_from_the_command_line(tmp_path):
    from typer.testing import CliRunner

    from rxradar.cli import app as cli

    runner = CliRunner()
    root = str(tmp_path / "ws")
    Workspace(tmp_path / "ws").close()
    added = runner.invoke(cli, ["users", "add", "ivy", "--role", "investigator", "-w", root, "--password-stdin"],
                          input="a-long-password\n")
    assert added.exit_code == 0 and "ivy may use the dashboard as investigator" in added.output
    refused = runner.invoke(cli, ["users", "add", "ana", "--role", "viewer", "-w", root, "--password-stdin"],
                            input="a-long-password\n")
    assert refused.exit_code == 2 and "choose one of aggregate, investigator, administrator" in refused.output
    listed = runner.invoke(cli, ["users", "list", "-w", root], env={"COLUMNS": "120"})
    assert re.search(r"│ ivy\s*│ investigator\s*│", listed.output), listed.output
    assert runner.invoke(cli, ["users", "remove", "ivy", "-w", root]).exit_code == 0
    assert runner.invoke(cli, ["users", "remove", "ivy", "-w", root]).exit_code == 2
    with Workspace(tmp_path / "ws", create=False) as ws:
        audited = ws.meta.execute("SELECT action, target FROM audit_log ORDER BY rowid").fetchall()
    assert audited == [("user_set", "ivy"), ("user_remove", "ivy")]


# --- the report ---------------------------------------------------------------------------------

def test_the_report_is_one_file_and_the_public_one_names_nobody(workspace, tmp_path):
    from rxradar.serve.report import write_report

    with Workspace(workspace, create=False) as ws:
        full = write_report(ws, tmp_path / "full.html", actor="test")
        public = write_report(ws, tmp_path / "public.html", public=True, actor="test")
    assert (full.leads, public.leads) == (5, 0)  # 4 prescribers and 1 pharmacy named
    text, open_text = full.path.read_text(), public.path.read_text()
    for html in (text, open_text):
        assert re.findall(r'(?:src|href)="(?:https?:)?//', html) == [] and "<script" not in html
        assert "<link" not in html and "svg.map path" in html  # the styles are inside
        assert str(workspace) not in html
    # The full report lists the leads and profiles the strongest, each linked within the file.
    assert 'href="#prescribers-1"' in text and 'id="prescribers-1"' in text and "oig_outlier_mme_per_patient" in text
    assert "&lt;script&gt;" in text
    # The public one has the counties, after disclosure control, and no prescriber or pharmacy.
    assert "County 54039" in open_text and "&lt;11" in open_text
    shown = re.sub(r"<style>.*?</style>", "", open_text, flags=re.S)
    assert not re.search(r"\bP1\b|\bH1\b|oig_outlier|flagged", shown)  # not even flagged counts by county
    assert oct(full.path.stat().st_mode & 0o777) == "0o600"
    with Workspace(workspace, create=False) as ws:
        written = ws.meta.execute("SELECT target, detail FROM audit_log WHERE action = 'report'").fetchall()
    assert [(t, json.loads(d)) for t, d in written] == [(str(full.path), {"public": False, "named": 5}),
                                                      (str(public.path), {"public": True, "named": 0})]
