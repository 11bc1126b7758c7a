"""Retention: ``rxradar purge`` on a small hand-built workspace, every count worked out by hand.

The workspace: two ASAP files and two death files on either side of the cutoff 2020-01-01.

old.asap (created 2019-03-01)   OLDHAMPTON  fills 2019-01-10, 2019-02-10, one rejected (days supply 0)
                                BOTHWELL    fill 2019-01-15
new.asap (created 2024-02-01)   BOTHWELL    fill 2024-01-04
                                NEWCASTLE   fill 2024-01-20, one rejected (days supply 0)
deaths_mixed.csv                D1 died 2019-06-01, D2 died 2024-03-01, one rejected (no death date)
deaths_old.csv                  D3 died 2018-12-01, one rejected (no death date)

The purge removes 3 fills, OLDHAMPTON's identity (BOTHWELL has a 2024 fill and stays), deaths D1
and D3, and the raw text of the rejects of old.asap and deaths_old.csv (every record of those
files is before the cutoff; new.asap and deaths_mixed.csv have later ones).
"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
import time
from datetime import date, datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from rxradar import cli
from rxradar.catalog import open_engine, table_counts
from rxradar.ingest.asap_writer import AsapDispensation, AsapFile, AsapPatient, AsapPharmacy, write_asap
from rxradar.analytics import store
from rxradar.retention import PATIENT_LEVEL_TABLES, cutoff_for
from rxradar.settings import Settings, load
from rxradar.workspace import Workspace

TESTS = Path(__file__).parent
sys.path.insert(0, str(TESTS))
from asap_builders import NPI_PHARMACY, NPI_PRESCRIBER, DEA_PRESCRIBER, OXYCODONE_10MG  # noqa: E402

CUTOFF = "2020-01-01"
NAMES = ("OLDHAMPTON", "BOTHWELL", "NEWCASTLE", "OPHELIA", "BRIDGET", "NORA", "DEADWOOD", "DELACROIX", "DUNMORE")
BIRTH_DATES = ("1961-01-01", "1972-02-02", "1983-03-03", "1950-05-05", "1955-06-06", "1945-07-07")
DEATHS_HEADER = ("death_id,last_name,first_name,middle_name,sex,birth_date,death_date,residence_zip,"
                 "residence_county_fips,residence_state,ssn,underlying_cause,multiple_causes,manner\n")


def fill(rx: str, day: str, days: str = "30") -> AsapDispensation:
    return AsapDispensation(
        dsp={"DSP01": "00", "DSP02": rx, "DSP03": day, "DSP04": "0", "DSP05": day, "DSP06": "0", "DSP07": "01",
             "DSP08": OXYCODONE_10MG, "DSP09": "60", "DSP10": days, "DSP11": "01", "DSP16": "01"},
        pre={"PRE01": NPI_PRESCRIBER, "PRE02": DEA_PRESCRIBER})


def patient(last: str, first: str, dob: str, fills: list[AsapDispensation]) -> AsapPatient:
    return AsapPatient({"PAT07": last, "PAT08": first, "PAT15": "WV", "PAT16": "25301", "PAT18": dob, "PAT19": "F",
                        "PAT20": "01"}, fills)


def asap(path: Path, control: str, created: datetime, patients: list[AsapPatient]) -> Path:
    f = AsapFile("4.2", control, created, "5555550100", "SENDER",
                 [AsapPharmacy({"PHA01": NPI_PHARMACY, "PHA04": "MAIN ST PHARMACY", "PHA08": "WV"}, patients)])
    with open(path, "w") as out:
        write_asap(out, f)
    return path


def write_inputs(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    old = asap(folder / "old.asap", "OLD1", datetime(2019, 3, 1, 9), [
        patient("OLDHAMPTON", "OPHELIA", "19610101", [fill("RXO1", "20190110"), fill("RXO2", "20190210"),
                                                      fill("RXO3", "20190220", days="0")]),
        patient("BOTHWELL", "BRIDGET", "19720202", [fill("RXB1", "20190115")])])
    new = asap(folder / "new.asap", "NEW1", datetime(2024, 2, 1, 9), [
        patient("BOTHWELL", "BRIDGET", "19720202", [fill("RXB2", "20240104")]),
        patient("NEWCASTLE", "NORA", "19830303", [fill("RXN1", "20240120"), fill("RXN2", "20240125", days="0")])])
    mixed = folder / "deaths_mixed.csv"
    mixed.write_text(DEATHS_HEADER
                     + "D1,DEADWOOD,DINA,,F,1950-05-05,2019-06-01,25301,54039,WV,,X42,T40.2,A\n"
                     + "D2,DELACROIX,DORA,,F,1955-06-06,2024-03-01,25301,54039,WV,,I21.9,,N\n"
                     + "D9,DUNMORE,DARA,,F,1945-07-07,,25301,54039,WV,,I21.9,,N\n")
    old_deaths = folder / "deaths_old.csv"
    old_deaths.write_text(DEATHS_HEADER
                          + "D3,DUNMORE,DELIA,,F,1945-07-07,2018-12-01,25301,54039,WV,,X42,T40.1,A\n"
                          + "D8,DUNMORE,DARA,,F,1945-07-07,,25301,54039,WV,,I21.9,,N\n")
    return {"old": old, "new": new, "mixed": mixed, "old_deaths": old_deaths}


runner = CliRunner()


pytestmark = pytest.mark.usefixtures("hermetic_cli")


def rxradar(*args: str | Path, env: dict[str, str] | None = None):
    return runner.invoke(cli.app, [str(a) for a in args], env=env)


def build(root: Path, inputs: Path, *, batched: bool) -> dict[str, Path]:
    files = write_inputs(inputs)
    if batched:  # one ingest batch: old and new fills share data files
        assert rxradar("ingest", "asap", files["old"], files["new"], "-w", root).exit_code == 0
    else:
        for name in ("old", "new"):
            assert rxradar("ingest", "asap", files[name], "-w", root).exit_code == 0
    for name in ("mixed", "old_deaths"):
        assert rxradar("ingest", "deaths", files[name], "-w", root).exit_code == 0
    return files


def meta(root: Path, sql: str, params: tuple = ()) -> list[tuple]:
    with sqlite3.connect(root / "meta.sqlite") as con:
        return con.execute(sql, params).fetchall()


def counts(root: Path) -> dict[str, int]:
    """Rows of the canonical views, stored identity rows, and rejects still holding raw text."""
    with Workspace(root, create=False) as ws, open_engine(ws, Settings(workspace=root)) as engine:
        out = table_counts(engine)
        out["identity records"] = int(engine.scalar("SELECT count(*) FROM identities_records"))
    out["rejects"] = meta(root, "SELECT count(*) FROM rejects")[0][0]
    out["raw kept"] = meta(root, "SELECT count(*) FROM rejects WHERE raw IS NOT NULL")[0][0]
    return out


BEFORE = {"dispensations": 5, "identities": 3, "prescribers": 1, "pharmacies": 1, "deaths": 3, "zip_counties": 0,
          "rejects": 4, "raw kept": 4}
AFTER = {"dispensations": 2, "identities": 2, "prescribers": 1, "pharmacies": 1, "deaths": 1, "zip_counties": 0,
         "rejects": 4, "raw kept": 2}
# identities as stored: one row per identity per ingest batch (BOTHWELL is in both files).
IDENTITY_RECORDS = {False: (4, 3), True: (3, 2)}


def removed_rows(output: str) -> dict[str, int]:
    rows = re.finditer(r"│ ([a-z ()]+?)\s*│\s*([\d,]+) │", output)
    return {m[1].strip(): int(m[2].replace(",", "")) for m in rows}


def listed_files_match_the_disk(root: Path) -> None:
    listed = meta(root, "SELECT path, rows FROM data_files")
    on_disk = {str(p.relative_to(root)) for p in (root / "tables").rglob("*") if p.is_file()}
    assert on_disk == {p for p, _ in listed}
    for path, rows in listed:
        assert pq.ParquetFile(root / path).metadata.num_rows == rows


def snapshot(root: Path) -> dict:
    files = {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*")
             if p.is_file() and p.suffix in {".parquet", ".json"}}
    tables = {t: meta(root, f"SELECT * FROM {t} ORDER BY 1, 2") for t in ("data_files", "rejects", "audit_log",
                                                                       "manifest")}
    return {"files": files, "meta": tables}


# --- what goes, and what stays ---------------------------------------------------------------------


@pytest.mark.parametrize("batched", [False, True], ids=["file-by-file", "one-batch"])
def test_purge_removes_records_before_the_cutoff_and_reports_each_table(tmp_path, batched):
    root = tmp_path / "ws"
    build(root, tmp_path / "in", batched=batched)
    assert counts(root) == {**BEFORE, "identity records": IDENTITY_RECORDS[batched][0]}

    result = rxradar("purge", "--before", CUTOFF, "-w", root)
    assert result.exit_code == 0, result.output
    assert "removed: identified records dated before 2020-01-01 (--before)" in result.output
    assert removed_rows(result.output) == {"dispensations": 3, "identities": 1, "deaths": 2, "rejects (raw text)": 2}
    # File by file: old.asap's fills and deaths_old.csv go whole; old.asap's identities
    # (BOTHWELL stays) and deaths_mixed.csv are rewritten. One batch: its fills and identities
    # files are rewritten, deaths_old.csv goes.
    rewritten, gone = (3, 1) if batched else (2, 2)
    assert f"{rewritten} data file(s) were rewritten and {gone} removed" in result.output
    assert counts(root) == {**AFTER, "identity records": IDENTITY_RECORDS[batched][1]}
    listed_files_match_the_disk(root)

    with Workspace(root, create=False) as ws, open_engine(ws, Settings(workspace=root)) as engine:
        fills = engine.query("SELECT rx_number, fill_date FROM dispensations ORDER BY rx_number").to_pylist()
        deaths = engine.query("SELECT death_id FROM deaths").to_pylist()
    assert fills == [{"rx_number": "RXB2", "fill_date": date(2024, 1, 4)},
                     {"rx_number": "RXN1", "fill_date": date(2024, 1, 20)}]
    assert deaths == [{"death_id": "D2"}]
    # Reasons stay; raw text goes only where every record of the file is before the cutoff.
    assert meta(root, "SELECT source_file, reason, raw IS NOT NULL FROM rejects ORDER BY source_file") == [
        ("deaths_mixed.csv", "missing death_date", 1), ("deaths_old.csv", "missing death_date", 0),
        ("new.asap", "days supply must be between 1 and 365", 1),
        ("old.asap", "days supply must be between 1 and 365", 0)]


def test_an_identity_with_one_recent_fill_stays_whole(tmp_path):
    root = tmp_path / "ws"
    build(root, tmp_path / "in", batched=False)
    assert rxradar("purge", "--before", CUTOFF, "-w", root).exit_code == 0
    with Workspace(root, create=False) as ws, open_engine(ws, Settings(workspace=root)) as engine:
        kept = engine.query("SELECT DISTINCT last_name FROM identities_records ORDER BY 1")["last_name"].to_pylist()
        unmatched = engine.scalar("SELECT count(*) FROM dispensations d ANTI JOIN identities i USING (identity_id)")
    assert kept == ["BOTHWELL", "NEWCASTLE"]
    assert unmatched == 0


def test_dry_run_says_what_would_go_and_changes_nothing(tmp_path):
    root = tmp_path / "ws"
    build(root, tmp_path / "in", batched=False)
    assert rxradar("analyze", "-w", root).exit_code == 0
    before = snapshot(root)
    result = rxradar("purge", "--before", CUTOFF, "--dry-run", "-w", root)
    assert result.exit_code == 0, result.output
    assert "would remove: identified records dated before 2020-01-01" in result.output
    assert removed_rows(result.output) == {"dispensations": 3, "identities": 1, "deaths": 2, "rejects (raw text)": 2}
    assert "2 data file(s) would be rewritten and 2 removed" in result.output
    assert "patient-level tables persons, patient_indicators, identity_persons would be removed" in result.output
    assert "dry run: nothing was changed" in result.output
    assert snapshot(root) == before


def test_one_audit_entry_per_purge_with_the_counts_and_no_identified_values(tmp_path):
    root = tmp_path / "ws"
    build(root, tmp_path / "in", batched=False)
    first = rxradar("purge", "--before", CUTOFF, "-w", root)
    again = rxradar("purge", "--before", CUTOFF, "-w", root)
    assert removed_rows(again.output) == {"dispensations": 0, "identities": 0, "deaths": 0, "rejects (raw text)": 0}
    entries = meta(root, "SELECT action, target, detail FROM audit_log WHERE action = 'purge' ORDER BY rowid")
    assert [(a, t) for a, t, _ in entries] == [("purge", "workspace")] * 2
    assert json.loads(entries[0][2]) == {
        "before": "2020-01-01", "removed": {"dispensations": 3, "identities": 1, "deaths": 2, "rejects (raw text)": 2},
        "files_rewritten": 2, "files_removed": 2, "analysis_tables": []}
    assert json.loads(entries[1][2])["removed"] == {"dispensations": 0, "identities": 0, "deaths": 0,
                                                    "rejects (raw text)": 0}
    said = first.output + again.output + "".join(d for _, _, d in entries)
    for value in NAMES + BIRTH_DATES + ("19610101", "RXO1", "D1,", "D3,"):
        assert value not in said


def test_reingesting_a_purged_file_brings_nothing_back(tmp_path):
    root = tmp_path / "ws"
    files = build(root, tmp_path / "in", batched=False)
    assert rxradar("purge", "--before", CUTOFF, "-w", root).exit_code == 0
    again = rxradar("ingest", "asap", files["old"], "-w", root)
    assert re.search(r"old\.asap\s*│\s*already-ingested", again.output), again.output
    deaths = rxradar("ingest", "deaths", files["old_deaths"], "-w", root)
    assert re.search(r"deaths_old\.csv\s*│\s*already-ingested", deaths.output), deaths.output
    assert counts(root) == {**AFTER, "identity records": 3}


# --- analyses ----------------------------------------------------------------------------------------

AGGREGATES = ("prescriber_metrics", "prescriber_months", "pharmacy_metrics", "deciles", "county_metrics")


def analysis_files(root: Path) -> dict[str, bytes]:
    """The current analysis version's tables (name -> bytes)."""
    return {name: path.read_bytes() for name, path in store.saved_tables(root).items()}


def test_an_analysis_over_the_purged_period_keeps_only_its_aggregates_and_analyze_runs_after(tmp_path):
    root = tmp_path / "ws"
    build(root, tmp_path / "in", batched=False)
    assert rxradar("analyze", "-w", root).exit_code == 0  # 2019-01-10 to 2024-01-20
    before = analysis_files(root)
    assert set(before) == set(AGGREGATES) | set(PATIENT_LEVEL_TABLES)

    result = rxradar("purge", "--before", CUTOFF, "-w", root)
    assert "patient-level tables persons, patient_indicators, identity_persons were removed, aggregates kept" \
        in result.output
    assert analysis_files(root) == {name: before[name] for name in AGGREGATES}
    assert json.loads(meta(root, "SELECT detail FROM audit_log WHERE action = 'purge'")[0][0])["analysis_tables"] \
        == ["persons", "patient_indicators", "identity_persons"]

    analysed = rxradar("analyze", "-w", root)
    assert analysed.exit_code == 0, analysed.output
    assert "analysed 2024-01-04 to 2024-01-20: 2 persons (2 with opioids)" in analysed.output
    persons = pq.read_table(store.saved_tables(root)["identity_persons"])
    assert persons.num_rows == 2
    # Nothing left to purge: the new analysis is after the cutoff and all its identities remain.
    again = rxradar("purge", "--before", CUTOFF, "-w", root)
    assert "stored analysis: nothing to remove" in again.output
    assert set(analysis_files(root)) == set(AGGREGATES) | set(PATIENT_LEVEL_TABLES)


def test_an_analysis_after_the_cutoff_loses_patient_tables_resolved_from_a_purged_identity(tmp_path):
    root = tmp_path / "ws"
    build(root, tmp_path / "in", batched=False)
    # Persons resolve from every identity, whatever the period: OLDHAMPTON is among them.
    assert rxradar("analyze", "--start", "2024-01-01", "--end", "2024-12-31", "-w", root).exit_code == 0
    assert pq.read_table(store.saved_tables(root)["identity_persons"]).num_rows == 3
    result = rxradar("purge", "--before", CUTOFF, "-w", root)
    assert "patient-level tables persons, patient_indicators, identity_persons were removed" in result.output
    assert set(analysis_files(root)) == set(AGGREGATES)


# --- the cutoff --------------------------------------------------------------------------------------


@pytest.mark.parametrize("years, today, cutoff", [(5, date(2026, 5, 10), date(2021, 5, 10)),
                                                  (1, date(2024, 2, 29), date(2023, 2, 28)),
                                                  (4, date(2024, 2, 29), date(2020, 2, 29))])
def test_the_cutoff_is_the_same_day_retention_years_ago(years, today, cutoff):
    assert cutoff_for(Settings(retention_years=years), None, today) == cutoff


def test_before_wins_over_retention_years_and_may_not_be_in_the_future():
    assert cutoff_for(Settings(retention_years=5), date(2023, 7, 1), date(2026, 1, 1)) == date(2023, 7, 1)
    with pytest.raises(ValueError, match="in the future"):
        cutoff_for(Settings(), date(2026, 1, 2), date(2026, 1, 1))


def test_without_retention_years_or_before_purge_refuses_and_says_what_to_set(tmp_path):
    root = tmp_path / "ws"
    build(root, tmp_path / "in", batched=False)
    result = rxradar("purge", "-w", root)
    assert result.exit_code == 2
    assert "retention_years is 0" in result.output and "RXRADAR_RETENTION_YEARS" in result.output
    assert counts(root)["dispensations"] == 5


def test_retention_years_comes_from_the_environment(tmp_path):
    root = tmp_path / "ws"
    build(root, tmp_path / "in", batched=False)
    result = rxradar("purge", "--dry-run", "-w", root, env={"RXRADAR_RETENTION_YEARS": "100"})
    assert result.exit_code == 0, result.output
    cutoff = cutoff_for(Settings(retention_years=100), None, date.today())
    assert f"dated before {cutoff} (retention_years = 100)" in result.output


def test_a_negative_retention_is_refused():
    with pytest.raises(ValueError, match="retention_years"):
        load(retention_years=-1)


# --- crash safety: SIGKILL at each step of a purge ---------------------------------------------------

KILL_POINTS = {"staged": BEFORE, "switched": AFTER, "deleted": AFTER}


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_sigkill_during_a_purge_leaves_the_old_workspace_or_the_new_one(tmp_path, point):
    root = tmp_path / "ws"
    build(root, tmp_path / "in", batched=False)
    assert rxradar("analyze", "-w", root).exit_code == 0
    marker = tmp_path / "paused.marker"
    child = subprocess.Popen([sys.executable, str(TESTS / "crash_purge.py"), str(root), CUTOFF, point, str(marker)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while child.poll() is None and not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    child.kill()
    _, err = child.communicate()
    assert child.returncode == -9, err.decode()[-2000:]

    # Readers see exactly one state, before anyone recovers.
    expected = KILL_POINTS[point]
    assert {k: v for k, v in counts(root).items() if k != "identity records"} == expected
    purges = meta(root, "SELECT count(*) FROM audit_log WHERE action = 'purge'")[0][0]
    assert purges == (0 if expected is BEFORE else 1)

    listed = {p for (p,) in meta(root, "SELECT path FROM data_files")}
    unlisted = {str(p.relative_to(root)) for p in (root / "tables").rglob("*.parquet")} - listed
    # staged: the new files, not yet listed; switched: the old ones, no longer listed.
    assert bool(unlisted) is (point != "deleted"), unlisted
    with Workspace(root) as ws, ws.writer_lock():  # the next writer sweeps what the crash left
        pass
    listed_files_match_the_disk(root)

    # Running the purge again finishes it, the analysis's patient-level tables included.
    again = rxradar("purge", "--before", CUTOFF, "-w", root)
    assert again.exit_code == 0, again.output
    assert {k: v for k, v in counts(root).items() if k != "identity records"} == AFTER
    assert set(analysis_files(root)) == set(AGGREGATES)
    listed_files_match_the_disk(root)


def test_every_stored_analysis_version_over_the_purged_period_loses_its_patient_tables(tmp_path):
    root = tmp_path / "ws"
    build(root, tmp_path / "in", batched=False)
    assert rxradar("analyze", "-w", root).exit_code == 0  # the whole period: becomes the previous version
    previous = store.open_current(root)
    previous.close()
    assert rxradar("purge", "--before", CUTOFF, "--dry-run", "-w", root).exit_code == 0
    assert rxradar("analyze", "--start", "2024-01-01", "--end", "2024-12-31", "-w", root).exit_code == 0
    assert store.current_run(root) != previous.run
    result = rxradar("purge", "--before", CUTOFF, "-w", root)
    assert result.exit_code == 0, result.output
    # The previous version, kept for readers of the one before, held the purged patients too.
    assert sorted(p.stem for p in previous.folder.glob("*.parquet")) == sorted(AGGREGATES)
