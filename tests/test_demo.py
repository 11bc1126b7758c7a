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
