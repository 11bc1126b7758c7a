"""`rxradar demo` end to end: a synthetic state built, every file ingested, planted truth shown."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from rxradar.cli import app


def test_demo_builds_and_ingests_a_state_and_a_rerun_adds_nothing(tmp_path, monkeypatch):
    runner = CliRunner()
    first = runner.invoke(app, ["demo", "--dir", str(tmp_path), "--no-serve"], env={"COLUMNS": "200"})
    assert first.exit_code == 0, first.output
    assert re.search(r"asap: [\d,]+ file\(s\) ingested .* 0 failed", first.output)
    dispensations = int(re.search(r"│ dispensations\s*│\s*([\d,]+)", first.output).group(1).replace(",", ""))
    assert 150_000 < dispensations < 250_000  # the small preset: ~200,000
    for kind in ("pill mill", "disproportionate pharmacy", "doctor shopper", "overdose cluster", "treatment desert"):
        assert kind in first.output
    # The analysis ran and its detectors find every planted pill mill and pharmacy at k = planted,
    # where ranking by raw volume does not.
    assert re.search(r"│ pill mill\s*│\s*4 │\s*1\.000 │\s*0\.750 │", first.output), first.output
    assert re.search(r"│ disproportionate pharmacy\s*│\s*2 │\s*1\.000 │\s*0\.000 │", first.output)
    for name in ("prescriber_metrics.csv", "pharmacy_metrics.csv", "deciles.csv", "county_metrics.csv",
                 "patient_indicators.csv", "settings.json", "report.html"):
        assert (tmp_path / "results" / name).exists()
    # The report names the strongest leads: readable by its owner only.
    assert "wrote a report naming 35 prescribers and pharmacies" in " ".join(first.output.split())
    assert oct((tmp_path / "results" / "report.html").stat().st_mode & 0o777) == "0o600"
    assert "Ctrl+C" not in first.output  # --no-serve: no dashboard
    first_metrics = (tmp_path / "results" / "prescriber_metrics.csv").read_bytes()
    # Without --no-serve the demo ends by serving the dashboard (the server itself replaced here).
    served = []
    monkeypatch.setattr("rxradar.serve.server.uvicorn.run", lambda app, **kw: served.append((app, kw)))
    again = runner.invoke(app, ["demo", "--dir", str(tmp_path), "--port", "0"], env={"COLUMNS": "200"})
    assert again.exit_code == 0, again.output
    assert re.search(r"asap: 0 file\(s\) ingested", again.output)
    assert re.search(rf"│ dispensations\s*│\s*{dispensations:,}\s*│", again.output)
    assert (tmp_path / "results" / "prescriber_metrics.csv").read_bytes() == first_metrics
    assert "http://127.0.0.1:0/" in again.output and "Ctrl+C stops it" in again.output
    password = re.search(r"sign in as demo with password (\S+)", again.output).group(1)
    _dashboard_serves_the_demo_analysis(served, password, tmp_path)
    _county_metrics_count_the_patient_file(tmp_path / "results")
    _identified_patient_file_is_private_and_audited(runner, tmp_path)
    _analysis_periods_peer_scope_and_columns(runner, tmp_path)


def _dashboard_serves_the_demo_analysis(served, password, tmp_path):
    import csv
    import json

    from fastapi.testclient import TestClient

    from rxradar.workspace import Workspace

    [(dashboard, options)] = served
    assert (options["host"], options["port"]) == ("127.0.0.1", 0)
    assert TestClient(dashboard).get("/api/summary").status_code == 401
    client = TestClient(dashboard)
    client.auth = ("demo", password)
    with open(tmp_path / "results" / "prescriber_metrics.csv", newline="") as f:
        expected = sorted(csv.DictReader(f), key=lambda r: int(r["rank"]))
    leads = client.get("/api/prescribers", params={"limit": 5}).json()
    assert leads["total"] == len(expected)
    assert [r["prescriber_id"] for r in leads["rows"]] == [r["prescriber_id"] for r in expected[:5]]
    top = expected[0]
    assert client.get(f"/prescribers/{top['prescriber_id']}").status_code == 200
    # Each measure of the profile sits against its peer group's whole-period deciles, as deciles.csv has them.
    with open(tmp_path / "results" / "deciles.csv", newline="") as f:
        whole = {r["measure"]: r for r in csv.DictReader(f) if r["peer_group"] == top["peer_group"] and not r["month"]}
    profile = client.get(f"/api/prescribers/{top['prescriber_id']}").json()
    for m in profile["measures"]:
        if m["id"] in whole:
            assert (m["deciles"]["n"], m["deciles"]["p90"]) == (int(whole[m["id"]]["n"]),
                                                                 pytest.approx(float(whole[m["id"]]["p90"]))), m["id"]
    assert {"mme_total", "mme_per_patient", "cash_share"} <= {m["id"] for m in profile["measures"] if m["deciles"]}
    assert client.get("/").status_code == 200 and client.get("/counties").status_code == 200
    with Workspace(tmp_path / "workspace", create=False) as ws:
        audited = ws.meta.execute("SELECT target, detail FROM audit_log WHERE action = 'serve'").fetchall()
        views = ws.meta.execute("SELECT actor, target FROM audit_log WHERE action = 'view'").fetchall()
        demo_users = ws.meta.execute("SELECT target, detail FROM audit_log WHERE action = 'user_set'").fetchall()
    # The demo's administrator is made like any user: audited.
    assert [(t, json.loads(d)) for t, d in demo_users] == [("demo", {"role": "administrator"})]
    assert [(t, json.loads(d)) for t, d in audited] == [("dashboard", {"host": "127.0.0.1", "port": 0})]
    assert ("demo", f"/api/prescribers/{top['prescriber_id']}") in views


def _county_metrics_count_the_patient_file(results):
    """county_metrics against a plain count over patient_indicators.csv (one row per patient, with
    the county they live in and every flag)."""
    import csv
    from collections import Counter

    from rxradar.reference.counties import counties
    from rxradar.settings import Settings

    risk = Settings().risk_indicators.split(",")
    patients, at_risk, shoppers = Counter(), Counter(), Counter()
    with open(results / "patient_indicators.csv", newline="") as f:
        for r in csv.DictReader(f):
            patients[r["county_fips"]] += 1
            at_risk[r["county_fips"]] += any(r[flag] == "true" for flag in risk)
            shoppers[r["county_fips"]] += r["oig_doctor_shopping"] == "true"
    population = {c["fips"]: c["pop2019"] for c in counties("WV").to_pylist()}
    with open(results / "county_metrics.csv", newline="") as f:
        rows = {r["county_fips"]: r for r in csv.DictReader(f)}
    assert {f for f in rows if f.startswith("54")} == set(population)  # every WV county, zeros included
    assert sum(patients[f] for f in rows) == sum(v for k, v in patients.items() if k)
    for fips, r in rows.items():
        assert (int(r["patients"]), int(r["patients_at_risk"]), int(r["patients_oig_doctor_shopping"])) == (
            patients[fips], at_risk[fips], shoppers[fips]), fips
        if fips in population:
            assert float(r["at_risk_per_1000"]) == pytest.approx(1000 * at_risk[fips] / population[fips], abs=1e-6)
    assert sum(at_risk.values()) > 100


def _identified_patient_file_is_private_and_audited(runner, tmp_path):
    import json
    import stat

    from rxradar.workspace import Workspace

    out = tmp_path / "year"
    result = runner.invoke(app, ["analyze", "-w", str(tmp_path / "workspace"), "--period", "2022", "--out", str(out),
                                 "--identified"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "analysed 2022-01-01 to 2022-12-31" in result.output
    path = out / "patient_indicators.csv"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    header = path.read_text().splitlines()[0].split(",")
    assert header[:6] == ["person_id", "last_name", "first_name", "birth_date", "birth_year", "sex"]
    about = json.loads((out / "settings.json").read_text())
    assert about["period"] == {"start": "2022-01-01", "end": "2022-12-31"}
    assert about["indicators"]["omp_pqa"] == {"prescribers": 4, "pharmacies": 4, "window_days": 180}
    with Workspace(tmp_path / "workspace", create=False) as ws:
        audited = ws.meta.execute("SELECT target, detail FROM audit_log WHERE action = 'export_identified'").fetchall()
    assert [(t, json.loads(d)["path"]) for t, d in audited] == [("patient_indicators", str(path))]


def _analysis_periods_peer_scope_and_columns(runner, tmp_path):
    import csv

    workspace = str(tmp_path / "workspace")
    clash = runner.invoke(app, ["analyze", "-w", workspace, "--period", "2022", "--start", "2022-01-01"])
    assert clash.exit_code == 2 and "give --period or --start/--end, not both" in clash.output
    out = tmp_path / "quarter"
    result = runner.invoke(app, ["analyze", "-w", workspace, "--start", "2022-01-01", "--end", "2022-03-31",
                                 "--peer-scope", "national", "--out", str(out)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "analysed 2022-01-01 to 2022-03-31" in result.output
    with open(out / "prescriber_metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    required = ["prescriber_id", "specialty", "peer_group", "patients", "opioid_rx", "mme_total", "mme_per_patient",
                "mean_patient_age", "lead_score", "rank", "flags", "reasons"]
    assert set(required) <= set(rows[0])
    assert sorted(int(r["rank"]) for r in rows) == list(range(1, len(rows) + 1))
    # National peers: a specialty's prescribers compared across every state, so the group is the
    # specialty alone, or everyone when the specialty has too few prescribers.
    for r in rows:
        specialty = r["specialty"] or "Unknown specialty"
        assert r["peer_group"] in (specialty, "all specialties | national"), r
    assert any(r["peer_group"] == r["specialty"] for r in rows)
    # Pharmacies are compared within urban/rural and chain/independent (chain stores report their
    # site ID in PHA12), falling back to all pharmacies where a group has too few.
    with open(out / "pharmacy_metrics.csv", newline="") as f:
        groups = {r["peer_group"] for r in csv.DictReader(f)}
    assert "urban | chain" in groups
    assert groups <= {f"{place} | {kind}" for place in ("urban", "rural", "unknown place")
                      for kind in ("chain", "independent or unknown")} | {"all pharmacies"}
