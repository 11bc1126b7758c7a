"""The ``rxradar`` command end to end on a small hand-written state (CliRunner, no subprocess).

The state: one ASAP file (two patients, four fills, one rejected for days supply 0), two death
records, two prescribers and two pharmacies, one of each already reported in the ASAP file.
Expected counts and MME values are worked out by hand below.
"""

from __future__ import annotations

import csv
import json
import logging
import re
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from rxradar import cli
from rxradar.ingest.asap_writer import AsapDispensation, AsapFile, AsapPatient, AsapPharmacy, write_asap
from rxradar.settings import describe

OXYCODONE_10MG = "00603499321"  # OXYCODONE HCL 10 mg tablet: factor 1.5 in both tables
TRAMADOL_50MG = "00045065910"  # ULTRAM 50 mg tablet: factor 0.1 (CDC 2017 file), 0.2 (CDC 2022)
PHARMACY_NPI, PRESCRIBER_NPI, OTHER_NPI, PRESCRIBER_DEA = "1234567893", "9876543213", "1114567898", "BJ6543210"
IDENTIFIED_COLUMNS = {"last_name", "first_name", "middle_name", "name_suffix", "birth_date", "address", "city",
                      "phone"}
PATIENT_NAMES = ("ALPHAWORTH", "BETANCOURT", "ANNABEL", "BARNABY")

DEATHS_CSV = """\
death_id,last_name,first_name,middle_name,sex,birth_date,death_date,residence_zip,residence_county_fips,\
residence_state,ssn,underlying_cause,multiple_causes,manner
D001,GAMMASON,GRETA,,F,1966-06-06,2024-03-01,25301,54039,WV,,X42,T40.2;T40.4,A
D002,DELTAVILLE,DORIAN,Q,M,1959-09-09,2024-04-02,25302,54039,WV,,I21.9,,N
"""
PRESCRIBERS_CSV = f"""npi,dea,last_name,first_name,specialty,taxonomy_code,state,zip,county_fips
{PRESCRIBER_NPI},{PRESCRIBER_DEA},CASEY,MORGAN,Family Medicine,207Q00000X,WV,25301,54039
{OTHER_NPI},,RIVERS,JORDAN,,207R00000X,WV,25302,54039
"""
PHARMACIES_CSV = f"""pharmacy_id,npi,ncpdp,dea,name,address,city,state,zip,county_fips,lat,lon
{PHARMACY_NPI},{PHARMACY_NPI},5100001,,MAIN ST PHARMACY,1 MAIN ST,CHARLESTON,WV,25301,54039,38.35,-81.63
,,5100002,,HILLTOP DRUGS,9 HILL RD,CHARLESTON,WV,25302,54039,38.36,-81.60
"""


def fill(rx: str, ndc: str, quantity: str, days: str) -> AsapDispensation:
    return AsapDispensation(
        dsp={"DSP01": "00", "DSP02": rx, "DSP03": "20240102", "DSP04": "0", "DSP05": "20240104", "DSP06": "0",
             "DSP07": "01", "DSP08": ndc, "DSP09": quantity, "DSP10": days, "DSP11": "01", "DSP16": "01"},
        pre={"PRE01": PRESCRIBER_NPI, "PRE02": PRESCRIBER_DEA})


def write_state_asap(path: Path) -> Path:
    patients = [
        AsapPatient({"PAT07": "ALPHAWORTH", "PAT08": "ANNABEL", "PAT16": "25301", "PAT18": "19700101", "PAT19": "F"},
                    [fill("RXA1", OXYCODONE_10MG, "60", "30"),     # 10 mg x 60 / 30 d x 1.5 = 30 MME/day
                     fill("RXA2", TRAMADOL_50MG, "90", "30")]),    # 50 mg x 90 / 30 d x 0.1 = 15 (0.2 -> 30)
        AsapPatient({"PAT07": "BETANCOURT", "PAT08": "BARNABY", "PAT16": "25302", "PAT18": "19800202",
                     "PAT19": "M"},
                    [fill("RXB1", OXYCODONE_10MG, "20", "10"),     # 10 x 20 / 10 x 1.5 = 30
                     fill("RXB2", OXYCODONE_10MG, "20", "0")]),    # rejected: days supply 0
    ]
    f = AsapFile("4.2", "CLI1", datetime(2024, 2, 1, 10), "5555550100", "SENDER",
                 [AsapPharmacy({"PHA01": PHARMACY_NPI, "PHA04": "MAIN ST PHARMACY", "PHA08": "WV"}, patients)])
    with open(path, "w") as out:
        write_asap(out, f)
    return path


runner = CliRunner()


pytestmark = pytest.mark.usefixtures("hermetic_cli")


@pytest.fixture(autouse=True)
def rxradar_log_level_restored():
    """Every invocation sets the rxradar logger's level from its -v flags; the next test starts clean."""
    yield
    logging.getLogger("rxradar").setLevel(logging.NOTSET)


def rxradar(*args: str | Path, env: dict[str, str] | None = None):
    return runner.invoke(cli.app, [str(a) for a in args], env=env)


@dataclass
class State:
    root: Path
    inputs: Path
    first: object
    second: object
    registries: dict


@pytest.fixture(scope="module")
def state(tmp_path_factory) -> State:
    inputs = tmp_path_factory.mktemp("inputs")
    root = tmp_path_factory.mktemp("cli") / "ws"
    asap = write_state_asap(inputs / "cli.asap")
    first = rxradar("ingest", "asap", asap, "--workspace", root)
    second = rxradar("ingest", "asap", asap, "--workspace", root)
    registries = {}
    for kind, text in (("deaths", DEATHS_CSV), ("prescribers", PRESCRIBERS_CSV), ("pharmacies", PHARMACIES_CSV)):
        path = inputs / f"{kind}.csv"
        path.write_text(text)
        registries[kind] = rxradar("ingest", kind, path, "--workspace", root)
    return State(root, inputs, first, second, registries)


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def audit_rows(root: Path) -> list[tuple]:
    with sqlite3.connect(root / "meta.sqlite") as con:
        return con.execute("SELECT actor, action, target, detail FROM audit_log WHERE action LIKE 'export%' "
                           "ORDER BY rowid").fetchall()


# --- ingest ---------------------------------------------------------------------------------------


def test_ingest_asap_lists_the_file_as_ingested_then_already_ingested(state):
    assert state.first.exit_code == 0, state.first.output
    # file │ status │ records │ rows kept │ rejected
    row = re.search(r"cli\.asap\s*│\s*ingested\s*│\s*4\s*│\s*3\s*│\s*1\s*│", state.first.output)
    assert row, state.first.output
    assert re.search(r"\b1 [^\n]*ingested[^\n]*\b0 already in the workspace\W+0 failed", state.first.output)
    assert state.second.exit_code == 0, state.second.output
    assert re.search(r"cli\.asap\s*│\s*already-ingested", state.second.output), state.second.output
    assert re.search(r"\b0 [^\n]*ingested[^\n]*\b1 already in the workspace\W+0 failed", state.second.output)


@pytest.mark.parametrize("kind,records,kept", [("deaths", 2, 2), ("prescribers", 2, 2), ("pharmacies", 2, 2)])
def test_ingest_registries_and_deaths(state, kind, records, kept):
    result = state.registries[kind]
    assert result.exit_code == 0, result.output
    row = rf"{kind}\.csv\s*│\s*ingested\s*│\s*{records}\s*│\s*{kept}\s*│\s*0\s*│"
    assert re.search(row, result.output), result.output


def test_ingest_zip_counties_counts_the_kept_crosswalk_rows(tmp_path):
    hud = tmp_path / "ZIP_COUNTY_122023.csv"
    hud.write_text('"ZIP","COUNTY","USPS_ZIP_PREF_STATE","RES_RATIO"\n"25301","54039","WV",1\n'
                   '"25701","54011","WV",0.98\n"25701","54099","WV",0.02\n')
    result = rxradar("ingest", "zip-counties", hud, "--workspace", tmp_path / "ws")
    assert result.exit_code == 0, result.output
    assert re.search(r"ZIP_COUNTY_122023\.csv\s*│\s*ingested\s*│\s*3\s*│\s*3\s*│\s*0\s*│", result.output), result.output


def test_ingest_of_a_file_that_is_not_asap_exits_1_and_says_failed(tmp_path):
    bad = tmp_path / "memo.asap"
    bad.write_text("not a PDMP file\n")
    result = rxradar("ingest", "asap", bad, "--workspace", tmp_path / "ws")
    assert result.exit_code == 1
    assert re.search(r"memo\.asap\s*│\s*failed", result.output)
    assert re.search(r"\b0 already in the workspace\W+1 failed", result.output)


def test_ingest_of_a_missing_path_exits_2_naming_it(tmp_path):
    result = rxradar("ingest", "asap", tmp_path / "nowhere.asap", "--workspace", tmp_path / "ws")
    assert result.exit_code == 2
    assert "nowhere.asap" in result.output and "no such file" in result.output


# --- tables -----------------------------------------------------------------------------------------


def table_rows(output: str) -> dict[str, int]:
    return {m[1]: int(m[2].replace(",", "")) for m in re.finditer(r"│\s*(\w+)\s*│\s*([\d,]+)\s*│", output)}


def test_tables_shows_exact_row_counts_of_every_table(state):
    result = rxradar("tables", "--workspace", state.root)
    assert result.exit_code == 0, result.output
    # Prescriber 9876543213 and pharmacy 1234567893 come from both the ASAP file and a registry:
    # one row each.
    assert table_rows(result.output) == {"dispensations": 3, "identities": 2, "prescribers": 2, "pharmacies": 2,
                                         "deaths": 2, "zip_counties": 0}
    assert re.search(r"identities\s*│\s*2\s*│\s*identified \(restricted\)", result.output)


def test_tables_reads_the_workspace_from_the_environment(state):
    result = rxradar("tables", env={"RXRADAR_WORKSPACE": str(state.root)})
    assert result.exit_code == 0, result.output
    assert table_rows(result.output)["dispensations"] == 3


@pytest.mark.parametrize("flags, files, engine_steps", [((), False, False), (("-v",), True, False),
                                                       (("-vv",), True, True)])
def test_v_logs_each_file_and_vv_each_engine_step_with_its_time(tmp_path, caplog, flags, files, engine_steps):
    path = write_state_asap(tmp_path / "logged.asap")
    with caplog.at_level(logging.NOTSET):  # the CLI's flags alone decide what is logged
        result = rxradar(*flags, "ingest", "asap", path, "--workspace", tmp_path / "ws")
    assert result.exit_code == 0, result.output
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("rxradar")]
    assert any(m == "ingested logged.asap as #1" for m in messages) is files
    steps = [r.getMessage() for r in caplog.records if r.name == "rxradar.engine"]
    assert all(re.fullmatch(r".+: \d+\.\d\d s", m) for m in steps)
    if engine_steps:
        assert {"asap_patients", "table asap_rows", "write asap_dispensations"} <= {m.rsplit(": ", 1)[0] for m in steps}
    else:
        assert steps == []


def test_tables_on_a_missing_workspace_exits_nonzero_without_creating_it(tmp_path):
    missing = tmp_path / "no-such-workspace"
    result = rxradar("tables", "--workspace", missing)
    assert result.exit_code == 2
    assert f"no rxradar workspace at {missing}" in result.output
    assert not missing.exists()


def test_serve_refuses_a_missing_workspace_and_a_busy_port(state, tmp_path):
    import socket

    missing = tmp_path / "no-such-workspace"
    result = rxradar("serve", "--workspace", missing)
    assert result.exit_code == 2 and f"no rxradar workspace at {missing}" in result.output
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        result = rxradar("serve", "--workspace", state.root, "--port", str(port))
    assert result.exit_code == 2, result.output
    assert f"cannot listen on 127.0.0.1:{port}" in result.output and "choose another with --port" in result.output


# --- export -----------------------------------------------------------------------------------------


def test_export_dispensations_csv_has_the_kept_rows_and_no_identified_columns(state, tmp_path):
    out = tmp_path / "d.csv"
    result = rxradar("export", "dispensations", "--format", "csv", "--out", out, "--workspace", state.root)
    assert result.exit_code == 0, result.output
    header, rows = read_csv(out)
    assert sorted(r["rx_number"] for r in rows) == ["RXA1", "RXA2", "RXB1"]
    assert IDENTIFIED_COLUMNS.isdisjoint(header)
    assert {"dispensation_id", "identity_id", "prescriber_id", "ndc11", "drug", "mme_per_day"} <= set(header)
    assert "reporting_status" not in header
    text = out.read_text()
    assert [n for n in PATIENT_NAMES if n in text] == []
    assert {r["rx_number"]: (r["drug"], float(r["mme_per_day"])) for r in rows} == {
        "RXA1": ("oxycodone", 30.0), "RXA2": ("tramadol", 15.0), "RXB1": ("oxycodone", 30.0)}
    assert f"wrote 3 rows x {len(header)} columns" in result.output
    assert [r for r in audit_rows(state.root) if r[2] == "dispensations"] == []  # not identified: not audited


def test_export_parquet_round_trips_the_same_rows(state, tmp_path):
    as_csv, as_parquet = tmp_path / "d.csv", tmp_path / "d.parquet"
    assert rxradar("export", "dispensations", "--out", as_csv, "--workspace", state.root).exit_code == 0
    result = rxradar("export", "dispensations", "--format", "parquet", "--out", as_parquet, "--workspace", state.root)
    assert result.exit_code == 0, result.output
    table = pq.read_table(as_parquet)
    header, rows = read_csv(as_csv)
    assert table.column_names == header
    assert table.num_rows == 3
    by_id = {r["dispensation_id"]: r for r in table.to_pylist()}
    for row in rows:
        got = by_id[row["dispensation_id"]]
        assert (got["rx_number"], got["ndc11"], got["quantity"], got["days_supply"], got["mme_per_day"]) == (
            row["rx_number"], row["ndc11"], float(row["quantity"]), int(row["days_supply"]), float(row["mme_per_day"]))


def test_export_identities_without_identified_is_refused(state, tmp_path):
    out = tmp_path / "identities.csv"
    result = rxradar("export", "identities", "--out", out, "--workspace", state.root)
    assert result.exit_code != 0
    assert "identities holds identified data" in result.output
    assert "--identified" in result.output
    assert not out.exists()


def test_export_identities_with_identified_is_written_and_audited(state, tmp_path):
    out = tmp_path / "identities.csv"
    before = audit_rows(state.root)
    result = rxradar("export", "identities", "--identified", "--out", out, "--workspace", state.root)
    assert result.exit_code == 0, result.output
    header, rows = read_csv(out)
    assert sorted((r["last_name"], r["first_name"], r["birth_date"]) for r in rows) == [
        ("ALPHAWORTH", "ANNABEL", "1970-01-01"), ("BETANCOURT", "BARNABY", "1980-02-02")]
    new = audit_rows(state.root)[len(before):]
    assert [(action, target) for _, action, target, _ in new] == [("export_identified", "identities")]
    detail = json.loads(new[0][3])
    assert (detail["path"], detail["rows"], detail["format"]) == (str(out), 2, "csv")


def test_export_deaths_without_identified_drops_names_and_birth_dates(state, tmp_path):
    out = tmp_path / "deaths.csv"
    before = audit_rows(state.root)
    result = rxradar("export", "deaths", "--out", out, "--workspace", state.root)
    assert result.exit_code == 0, result.output
    header, rows = read_csv(out)
    assert {"last_name", "first_name", "middle_name", "birth_date"}.isdisjoint(header)
    assert [(r["death_id"], r["death_date"], r["underlying_cause"], r["is_opioid_overdose"]) for r in rows] == [
        ("D001", "2024-03-01", "X42", "true"), ("D002", "2024-04-02", "I219", "false")]
    text = out.read_text()
    assert [n for n in ("GAMMASON", "GRETA", "DELTAVILLE", "DORIAN", "1966-06-06", "1959-09-09") if n in text] == []
    assert audit_rows(state.root) == before  # nothing identified left the workspace


def test_export_of_an_unknown_table_exits_2_naming_it(state, tmp_path):
    result = rxradar("export", "patients", "--out", tmp_path / "x.csv", "--workspace", state.root)
    assert result.exit_code == 2
    assert "unknown table 'patients'" in result.output


def test_export_in_an_unknown_format_exits_2(state, tmp_path):
    result = rxradar("export", "dispensations", "--format", "xlsx", "--out", tmp_path / "x.xlsx",
                     "--workspace", state.root)
    assert result.exit_code == 2
    assert "unknown format 'xlsx'" in result.output


def test_mme_table_cdc2022_doubles_tramadol_mme(state, tmp_path):
    out = tmp_path / "d2022.csv"
    result = rxradar("export", "dispensations", "--mme-table", "cdc2022", "--out", out, "--workspace", state.root)
    assert result.exit_code == 0, result.output
    _, rows = read_csv(out)
    mme = {r["rx_number"]: (float(r["mme_factor"]), float(r["mme_per_day"])) for r in rows}
    assert mme == {"RXA1": (1.5, 30.0), "RXA2": (0.2, 30.0), "RXB1": (1.5, 30.0)}


def test_unknown_mme_table_exits_2_with_the_choices(state):
    result = rxradar("tables", "--mme-table", "cdc1999", "--workspace", state.root)
    assert result.exit_code == 2, result.output
    assert "cdc1999" in result.output and "cdc2022" in result.output


# --- rejects and settings ---------------------------------------------------------------------------


def test_rejects_lists_the_reason_with_its_count(state):
    result = rxradar("rejects", "--workspace", state.root)
    assert result.exit_code == 0, result.output
    # count │ severity │ field │ reason │ files
    row = r"│\s*1\s*│\s*rejected\s*│\s*DSP10\s*│\s*days supply must be between 1 and 365\s*│\s*1\s*│"
    assert re.search(row, result.output), result.output
    assert "1 rejected, 0 warnings" in result.output
    by_file = rxradar("rejects", "--by-file", "--workspace", state.root)
    row = r"│\s*1\s*│\s*rejected\s*│\s*DSP10\s*│\s*days supply must be between 1 and 365\s*│\s*cli\.asap"
    assert re.search(row, by_file.output), by_file.output


def test_settings_lists_every_setting_with_its_variable(state):
    result = rxradar("settings")
    assert result.exit_code == 0, result.output
    for name, default, help_text in describe():
        # Long defaults wrap inside their cell: their first 20 characters start the row.
        row = rf"{name}\s*│\s*{re.escape(str(default)[:20])}.*│\s*RXRADAR_{name.upper()}"
        assert re.search(row, result.output), name
        assert help_text.split()[0] in result.output


# --- synth ------------------------------------------------------------------------------------------


def test_synth_writes_a_state_and_says_what_is_in_it(tmp_path):
    out = tmp_path / "state"
    result = rxradar("synth", "--persons", "1500", "--seed", "3", "--start", "2023-01-01", "--end", "2023-06-30",
                     "--out", out, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    m = re.search(r"wrote a synthetic WV to .*: 1,500 persons, ([\d,]+) prescribers, ([\d,]+) pharmacies, "
                  r"([\d,]+) dispensations, ([\d,]+) deaths, ([\d,]+) planted anomalies", result.output)
    assert m, result.output
    for name in ("deaths.csv", "deaths.ije", "prescribers_nppes.csv", "pharmacies.csv", "zip_county.csv",
                 "truth/anomalies.csv", "truth/identity_variants.parquet"):
        assert (out / name).is_file(), name
    weekly = sorted((out / "asap").rglob("*.asap"))
    assert weekly and all(f.stat().st_size > 0 for f in weekly)
    with open(out / "pharmacies.csv", newline="") as f:
        assert sum(1 for _ in csv.DictReader(f)) == int(m.group(2).replace(",", ""))


def test_synth_refuses_large_asap_and_a_bad_date_without_writing(tmp_path):
    large = rxradar("synth", "--scale", "large", "--format", "asap", "--out", tmp_path / "big")
    assert large.exit_code == 2
    assert "the large scale is written as --format parquet only" in " ".join(large.output.split())
    bad = rxradar("synth", "--start", "2023-02-30", "--out", tmp_path / "bad")
    assert bad.exit_code == 2 and "error" in bad.output
    assert not (tmp_path / "big").exists() and not (tmp_path / "bad").exists()
