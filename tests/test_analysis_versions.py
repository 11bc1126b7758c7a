"""Analysis results are replaced as one set, and every restricted output is owner-only.

A small synthetic state (1,500 persons, written straight into a workspace) is analysed for 2019
(the old set) and, in a copy, for 2020 (the new set). Then a real ``analyze`` for 2020 is killed
with SIGKILL (``tests/crash_analyze.py`` in a subprocess) at chosen points of its final save and
at timed moments, and the readers (the dashboard's Results, ``leads``, ``export``) must see every
table and ``analysis.json`` of the old set or every one of the new set, never a mix.
"""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rxradar import catalog, settings
from rxradar.analytics import store
from rxradar.analytics.analyze import analyze
from rxradar.analytics.leads import top_leads
from rxradar.serve.results import Results
from rxradar.synth.build import synthesize
from rxradar.synth.config import for_scale
from rxradar.workspace import Workspace

TESTS = Path(__file__).parent
OLD, NEW = ("2019-01-01", "2019-12-31"), ("2020-01-01", "2020-12-31")


def run_analysis(root: Path, period: tuple[str, str], out: Path | None = None, identified: bool = False):
    with Workspace(root) as ws:
        return analyze(ws, settings.load(workspace=root), start=date.fromisoformat(period[0]),
                       end=date.fromisoformat(period[1]), out=out, identified=identified, actor="test")


def read_set(root: Path) -> tuple[dict, dict[str, pa.Table]]:
    """What a reader sees: the period of analysis.json and every table, through the dashboard's
    loader."""
    results = Results(root)
    return results.about["period"], {n: results.table(n) for n in store.ANALYTICS_TABLES}


@pytest.fixture(scope="module")
def state(tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("versions")
    synthesize(for_scale("small", state="WV", seed=3, start=date(2019, 1, 1), end=date(2020, 12, 31), persons=1500),
               base / "synth", "parquet")
    old = base / "old"
    shutil.copytree(base / "synth" / "workspace", old)
    run_analysis(old, OLD)
    new = base / "new"
    shutil.copytree(old, new)
    run_analysis(new, NEW)
    sets = {"old": read_set(old), "new": read_set(new)}
    assert sets["old"][0] != sets["new"][0]
    assert not sets["old"][1]["prescriber_metrics"].equals(sets["new"][1]["prescriber_metrics"])
    return {"base": base, "old": old, "sets": sets}


def which_set(state: dict, seen: tuple[dict, dict[str, pa.Table]]) -> str:
    period, tables = seen
    for name, (want_period, want) in state["sets"].items():
        if period == want_period:
            mixed = [n for n in store.ANALYTICS_TABLES if not tables[n].equals(want[n])]
            assert not mixed, f"analysis.json of the {name} set beside other tables: {mixed}"
            return name
    raise AssertionError(f"a period of neither set: {period}")


def child(root: Path, *pause: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS.parent / "src"), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, str(TESTS / "crash_analyze.py"), str(root), *NEW, *pause], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for(check, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if proc.poll() is not None:
            raise AssertionError(f"the analysis ended first: {proc.stderr.read().decode()[-2000:]}")
        assert time.monotonic() < deadline, "the analysis never got there"
        time.sleep(0.01)


def kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


# name: (file renamed, how many times, which set readers must see after the kill)
KILL_POINTS = {
    "between tables": ("*.parquet", 4, "old"),
    "after the last table": ("analysis.json", 1, "old"),
    "after the switch": ("current", 1, "new"),
}


@pytest.mark.parametrize("point", KILL_POINTS)
def test_a_kill_during_the_save_leaves_the_whole_old_set_or_the_whole_new_one(state, tmp_path, point):
    root = tmp_path / "ws"
    shutil.copytree(state["old"], root)
    name, count, expected = KILL_POINTS[point]
    marker = tmp_path / "paused"
    proc = child(root, "--pause-after", name, str(count), str(marker))
    wait_for(marker.exists, proc)
    kill(proc)
    assert which_set(state, read_set(root)) == expected
    # The next analysis starts afresh: what the killed one left is removed, and it lands whole.
    run_analysis(root, NEW)
    assert which_set(state, read_set(root)) == "new"
    assert len(list(store.runs_dir(root).iterdir())) <= 2  # the current version and the one before it


def test_kills_at_timed_moments_never_show_a_mix(state, tmp_path):
    root = tmp_path / "ws"
    shutil.copytree(state["old"], root)
    seen = set()
    for delay in (0.4, 0.8, 1.2, 1.6, 2.0):
        proc = child(root)
        time.sleep(delay)
        if proc.poll() is None:
            kill(proc)
        seen.add(which_set(state, read_set(root)))
        if seen == {"new"}:  # the analysis finished: start over from the old set
            shutil.rmtree(root)
            shutil.copytree(state["old"], root)
    assert "old" in seen


def test_a_request_reads_one_analysis_while_another_lands(state, tmp_path):
    root = tmp_path / "ws"
    shutil.copytree(state["old"], root)
    served = Results(root)  # as the dashboard keeps it, across requests
    proc = child(root)
    sets = []
    while proc.poll() is None or not sets:
        for results in (served, Results(root)):
            with results.held():
                sets.append(which_set(state, (results.about["period"],
                                              {n: results.table(n) for n in store.ANALYTICS_TABLES})))
    assert proc.wait() == 0
    with served.held():
        assert served.about["period"] == state["sets"]["new"][0]


def test_a_version_a_reader_holds_is_not_removed(state, tmp_path):
    root = tmp_path / "ws"
    shutil.copytree(state["old"], root)
    held = store.open_current(root)
    first = held.run
    run_analysis(root, NEW)
    run_analysis(root, OLD)  # the first version is now two behind: removable, but held
    assert (store.runs_dir(root) / first).exists()
    assert pq.read_table(held.path("prescriber_metrics")).equals(state["sets"]["old"][1]["prescriber_metrics"])
    held.close()
    run_analysis(root, NEW)
    assert not (store.runs_dir(root) / first).exists()
    assert len(list(store.runs_dir(root).iterdir())) == 2  # the current version and the one before it


def test_a_workspace_in_the_flat_layout_is_read_then_moved_to_versions(state, tmp_path):
    root = tmp_path / "ws"
    shutil.copytree(state["old"], root)
    # The layout before versions: every table and analysis.json directly in analytics/, 0644.
    flat = store.analytics_dir(root)
    version = store.version_dir(root, store.current_run(root))
    for path in version.iterdir():
        if path.name != store.READERS:
            shutil.copy(path, flat / path.name)
            os.chmod(flat / path.name, 0o644)
    shutil.rmtree(store.runs_dir(root))
    (flat / store.POINTER).unlink()
    assert which_set(state, read_set(root)) == "old"
    assert top_leads(root, "prescribers", 3)[0]["rank"] == 1
    run_analysis(root, NEW)
    assert which_set(state, read_set(root)) == "new"
    # The flat set is the previous version now: kept, but owner-only.
    assert stat.S_IMODE((flat / "persons.parquet").stat().st_mode) == 0o600
    run_analysis(root, NEW)
    assert not (flat / "persons.parquet").exists() and not (flat / store.ABOUT).exists()
    assert which_set(state, read_set(root)) == "new"


def test_patient_level_tables_are_named_for_retention(state):
    assert store.PATIENT_LEVEL_TABLES == ("persons", "patient_indicators", "identity_persons")
    persons = state["sets"]["old"][1]
    for name in store.ANALYTICS_TABLES:
        per_person = "person_id" in persons[name].column_names
        assert per_person == (name in store.PATIENT_LEVEL_TABLES), name
    files = store.table_files(state["old"], "persons")
    assert len(files) == 1 and files[0].parent.parent == store.runs_dir(state["old"])


# --- restricted outputs are owner-only -------------------------------------------------------------


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_every_analysis_table_and_every_out_file_is_owner_only(state, tmp_path):
    root = tmp_path / "ws"
    shutil.copytree(state["old"], root)
    out = tmp_path / "out"
    old_umask = os.umask(0o022)  # the usual umask, under which files are created 0644
    try:
        result = run_analysis(root, NEW, out=out, identified=True)
    finally:
        os.umask(old_umask)
    assert {p.name for p in result.outputs} == {"prescriber_metrics.csv", "pharmacy_metrics.csv", "deciles.csv",
                                                "county_metrics.csv", "patient_indicators.csv", "settings.json"}
    assert {p.name: mode(p) for p in result.outputs} == {p.name: 0o600 for p in result.outputs}
    version = store.version_dir(root, store.current_run(root))
    for folder in (store.analytics_dir(root), store.runs_dir(root), version):
        assert mode(folder) == 0o700, folder
    for path in version.iterdir():
        assert mode(path) == 0o600, path
    assert mode(store.analytics_dir(root) / store.POINTER) == 0o600


def test_exports_are_owner_only_and_analysis_tables_come_from_one_version(state, tmp_path):
    root = tmp_path / "ws"
    shutil.copytree(state["old"], root)
    s = settings.load(workspace=root)
    old_umask = os.umask(0o022)
    try:
        with Workspace(root) as ws:
            records = catalog.export_table(ws, s, "dispensations", "csv", tmp_path / "d.csv")
            counties = catalog.export_table(ws, s, "county_metrics", "parquet", tmp_path / "c.parquet")
            leads = catalog.export_table(ws, s, "prescriber_metrics", "csv", tmp_path / "p.csv")
    finally:
        os.umask(old_umask)
    assert [mode(r.path) for r in (records, counties, leads)] == [0o600, 0o600, 0o600]
    assert pq.read_table(counties.path).to_pylist() == state["sets"]["old"][1]["county_metrics"].to_pylist()
    assert leads.rows == state["sets"]["old"][1]["prescriber_metrics"].num_rows
    first = (tmp_path / "p.csv").read_text().splitlines()[1]
    assert "[" not in first  # flags and reasons as text, as analyze --out writes them


def test_concurrent_readers_of_one_results_share_the_version_they_started_with(state, tmp_path):
    root = tmp_path / "ws"
    shutil.copytree(state["old"], root)
    results = Results(root)
    started, landed, seen = threading.Event(), threading.Event(), {}

    def request() -> None:
        with results.held():
            seen["before"] = results.about["period"]
            started.set()
            landed.wait(60)
            seen["after"] = results.about["period"]
            seen["table"] = results.table("county_metrics")

    reader = threading.Thread(target=request)
    reader.start()
    started.wait(60)
    run_analysis(root, NEW)
    landed.set()
    reader.join(60)
    assert seen["before"] == seen["after"] == state["sets"]["old"][0]
    assert seen["table"].equals(state["sets"]["old"][1]["county_metrics"])
    assert results.about["period"] == state["sets"]["new"][0]  # the next request gets the new one
