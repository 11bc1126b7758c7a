"""`rxradar demo` end to end: a synthetic state built, every file ingested, planted truth shown."""

from __future__ import annotations

import re

from typer.testing import CliRunner

from rxradar.cli import app


def test_demo_builds_and_ingests_a_state_and_a_rerun_adds_nothing(tmp_path):
    runner = CliRunner()
    first = runner.invoke(app, ["demo", "--dir", str(tmp_path)], env={"COLUMNS": "200"})
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
    for name in ("prescriber_metrics.csv", "pharmacy_metrics.csv", "deciles.csv", "patient_indicators.csv",
                 "settings.json"):
        assert (tmp_path / "results" / name).exists()
    first_metrics = (tmp_path / "results" / "prescriber_metrics.csv").read_bytes()
    again = runner.invoke(app, ["demo", "--dir", str(tmp_path)], env={"COLUMNS": "200"})
    assert again.exit_code == 0, again.output
    assert re.search(r"asap: 0 file\(s\) ingested", again.output)
    assert re.search(rf"│ dispensations\s*│\s*{dispensations:,}\s*│", again.output)
    assert (tmp_path / "results" / "prescriber_metrics.csv").read_bytes() == first_metrics
    _identified_patient_file_is_private_and_audited(runner, tmp_path)
    _analysis_periods_peer_scope_and_columns(runner, tmp_path)


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
