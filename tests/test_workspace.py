"""Workspace guarantees: the key, re-ingest by content hash, failure records, recovery, crash safety.

Inputs are small ASAP files written with :mod:`rxradar.ingest.asap_writer`; expected counts are
worked out from the records written in each test. The crash tests kill a real ingest with SIGKILL
(``tests/crash_ingest.py`` runs in a subprocess) and then check that the workspace holds exactly
what its manifest says was committed.
"""

from __future__ import annotations

import gzip
import shutil
import sqlite3
import stat
import subprocess
import sys
import time
import warnings
from datetime import datetime
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from rxradar.catalog import open_engine, table_counts
from rxradar.ingest.asap_writer import AsapDispensation, AsapFile, AsapPatient, AsapPharmacy, write_asap
from rxradar.ingest.pipeline import FileOutcome, ingest_files
from rxradar.settings import Settings
from rxradar.workspace import KEY_BYTES, Workspace, file_sha256

TESTS = Path(__file__).parent
sys.path.insert(0, str(TESTS))
from crash_ingest import write_big_asap  # noqa: E402

OXYCODONE_10MG = "00603499321"  # OXYCODONE HCL 10 mg tablet, CDC 2017 file
PHARMACY = {"PHA01": "1234567893", "PHA03": "BJ6543210", "PHA04": "MAIN ST PHARMACY", "PHA07": "CHARLESTON",
            "PHA08": "WV", "PHA09": "25301"}
PRESCRIBER = {"PRE01": "9876543213", "PRE02": "BJ6543210"}


def fill(rx: str, **dsp: str) -> AsapDispensation:
    elements = {"DSP01": "00", "DSP02": rx, "DSP03": "20240102", "DSP04": "0", "DSP05": "20240104", "DSP06": "0",
                "DSP07": "01", "DSP08": OXYCODONE_10MG, "DSP09": "60", "DSP10": "30", "DSP11": "01", "DSP16": "01"}
    elements.update(dsp)
    return AsapDispensation(dsp={k: v for k, v in elements.items() if v is not None}, pre=dict(PRESCRIBER))


def patient(last: str, fills: list[AsapDispensation], first: str = "ANN", dob: str = "19700101") -> AsapPatient:
    return AsapPatient({"PAT07": last, "PAT08": first, "PAT15": "WV", "PAT16": "25301", "PAT18": dob,
                        "PAT19": "F", "PAT20": "01"}, fills)


def write_file(path: Path, patients: list[AsapPatient], control: str = "C1") -> Path:
    f = AsapFile("4.2", control, datetime(2024, 2, 1, 10), "5555550100", "SENDER",
                 [AsapPharmacy(dict(PHARMACY), patients)])
    with open(path, "w") as out:
        write_asap(out, f)
    return path


def simple_file(path: Path, n: int, prefix: str = "RX") -> Path:
    """``n`` valid fills for one patient; ``prefix`` makes files with different contents."""
    return write_file(path, [patient("DOE", [fill(f"{prefix}{i}") for i in range(n)])], control=prefix)


def ingest(root: Path, *paths: Path, kind: str = "asap") -> list[FileOutcome]:
    with Workspace(root) as ws:
        return ingest_files(ws, kind, list(paths), Settings(workspace=root))


def counts(root: Path) -> dict[str, int]:
    settings = Settings(workspace=root)
    with Workspace(root) as ws, open_engine(ws, settings) as engine:
        return table_counts(engine)


def meta_rows(root: Path, sql: str, params: tuple = ()) -> list[tuple]:
    with sqlite3.connect(root / "meta.sqlite") as con:
        return con.execute(sql, params).fetchall()


def files_under_tables(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in (root / "tables").rglob("*") if p.is_file()}


# --- the key ----------------------------------------------------------------------------------


def test_new_workspace_key_is_32_random_bytes_readable_by_owner_only(tmp_path):
    with Workspace(tmp_path / "ws") as ws:
        key = ws.key
    path = tmp_path / "ws" / "key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(path.read_bytes()) == KEY_BYTES == 32
    assert key == path.read_bytes()
    with Workspace(tmp_path / "other") as other:
        assert other.key != key  # random, not derived from anything


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_key_readable_by_others_is_refused_naming_the_file(tmp_path, mode):
    Workspace(tmp_path).close()
    (tmp_path / "key").chmod(mode)
    with pytest.raises(PermissionError, match=str(tmp_path / "key")):
        Workspace(tmp_path)


@pytest.mark.parametrize("length", [0, 16])
def test_key_of_the_wrong_length_is_refused(tmp_path, length):
    # An empty key is what a crash between creating and writing the key file leaves behind;
    # HMAC with it is no secret at all, yet the ASAP path hashes identities with it.
    Workspace(tmp_path).close()
    (tmp_path / "key").write_bytes(b"k" * length)
    with pytest.raises((ValueError, PermissionError), match="key"):
        Workspace(tmp_path)


# --- re-ingest is a no-op -----------------------------------------------------------------------


def test_same_file_twice_is_already_ingested_and_changes_nothing(tmp_path):
    root, source = tmp_path / "ws", simple_file(tmp_path / "a.asap", 3)
    [first] = ingest(root, source)
    before = counts(root)
    [second] = ingest(root, source)
    assert (first.status, second.status) == ("ingested", "already-ingested")
    assert second.ingest_id == first.ingest_id
    assert "a.asap" in second.message
    assert meta_rows(root, "SELECT kind, source_name, status FROM manifest") == [("asap", "a.asap", "committed")]
    assert counts(root) == before
    assert before["dispensations"] == 3


def test_same_content_under_another_name_is_recognised_by_hash(tmp_path):
    root, source = tmp_path / "ws", simple_file(tmp_path / "a.asap", 2)
    ingest(root, source)
    copy = tmp_path / "renamed" / "january.asap"
    copy.parent.mkdir()
    shutil.copy(source, copy)
    [again] = ingest(root, copy)
    assert again.status == "already-ingested"
    assert "a.asap" in again.message  # names the file it was first ingested as
    assert meta_rows(root, "SELECT count(*), sha256 FROM manifest") == [(1, file_sha256(source))]
    assert counts(root)["dispensations"] == 2


def test_directory_ingests_every_file_inside_in_name_order(tmp_path):
    incoming = tmp_path / "incoming"
    (incoming / "z_sub").mkdir(parents=True)
    simple_file(incoming / "c.asap", 1, "C")
    simple_file(incoming / "a.asap", 2, "A")
    simple_file(incoming / "b.asap", 3, "B")
    simple_file(incoming / "z_sub" / "d.asap", 4, "D")
    (incoming / ".hidden.asap").write_text("not even ASAP")
    root = tmp_path / "ws"
    outcomes = ingest(root, incoming)
    assert [o.path.relative_to(incoming).as_posix() for o in outcomes] == ["a.asap", "b.asap", "c.asap", "z_sub/d.asap"]
    assert [o.status for o in outcomes] == ["ingested"] * 4
    assert [o.ingest_id for o in outcomes] == sorted(o.ingest_id for o in outcomes)
    assert meta_rows(root, "SELECT source_name FROM manifest ORDER BY ingest_id") == [
        ("a.asap",), ("b.asap",), ("c.asap",), ("d.asap",)]
    assert counts(root)["dispensations"] == 1 + 2 + 3 + 4


# --- failures ---------------------------------------------------------------------------------


def test_failed_file_is_recorded_once_and_leaves_no_data(tmp_path):
    root, bad = tmp_path / "ws", tmp_path / "notes.asap"
    bad.write_text("Dear PDMP, please find attached...\n")
    [outcome] = ingest(root, bad)
    assert outcome.status == "failed"
    assert "not an ASAP file" in outcome.message
    reject_sql = "SELECT ingest_id, source_file, record_number, field, severity, reason FROM rejects"
    manifest_sql = "SELECT ingest_id, status, detail FROM manifest"
    expected_reason = "does not start with a TH segment; not an ASAP file"
    assert meta_rows(root, manifest_sql) == [(outcome.ingest_id, "failed", expected_reason)]
    assert meta_rows(root, reject_sql) == [(outcome.ingest_id, "notes.asap", None, "TH", "rejected", expected_reason)]
    assert meta_rows(root, "SELECT count(*) FROM data_files") == [(0,)]
    assert files_under_tables(root) == set()

    [again] = ingest(root, bad)
    assert again.status == "failed"
    assert meta_rows(root, manifest_sql) == [(again.ingest_id, "failed", expected_reason)]
    assert meta_rows(root, reject_sql) == [(again.ingest_id, "notes.asap", None, "TH", "rejected", expected_reason)]
    assert counts(root) == {"dispensations": 0, "identities": 0, "prescribers": 0, "pharmacies": 0, "deaths": 0,
                            "zip_counties": 0}


def test_failed_file_next_to_good_ones_does_not_stop_them(tmp_path):
    incoming = tmp_path / "in"
    incoming.mkdir()
    simple_file(incoming / "a.asap", 2, "A")
    (incoming / "b.asap").write_bytes(b"\x1f\x8b garbage")
    simple_file(incoming / "c.asap", 3, "C")
    outcomes = ingest(tmp_path / "ws", incoming)
    assert [o.status for o in outcomes] == ["ingested", "failed", "ingested"]
    assert counts(tmp_path / "ws")["dispensations"] == 5


def test_kept_rows_plus_distinct_rejected_records_equal_records_read(tmp_path):
    fills = [
        fill("GOOD1"),
        fill("GOOD2"),
        fill("ZERODAYS", DSP10="0"),                        # rejected: days supply 1..365
        fill("NOQTYNODAYS", DSP09=None, DSP10=None),         # rejected twice, one record
        fill("BADNPI"),                                      # rejected: prescriber NPI check digit
        fill("BADDEA"),                                      # warning only: kept
    ]
    fills[4].pre = {"PRE01": "1234567890", "PRE02": "BJ6543210"}
    fills[5].pre = {"PRE01": "9876543213", "PRE02": "BJ6543211"}
    root = tmp_path / "ws"
    [o] = ingest(root, write_file(tmp_path / "mixed.asap", [patient("DOE", fills)]))
    assert o.status == "ingested"
    assert (o.records, o.rows["dispensations"], o.rejected, o.warnings) == (6, 3, 3, 1)
    assert o.rows["dispensations"] + o.rejected == o.records
    # Four rejecting problems on three records, in file order (whatever record numbers are).
    rejected: dict[int, list[str]] = {}
    for record, field in meta_rows(root, "SELECT record_number, field FROM rejects WHERE severity = 'rejected' "
                                         "ORDER BY record_number, field"):
        rejected.setdefault(record, []).append(field)
    assert list(rejected.values()) == [["DSP10"], ["DSP09", "DSP10"], ["PRE01"]]
    assert meta_rows(root, "SELECT field FROM rejects WHERE severity = 'warning'") == [("PRE02",)]
    assert meta_rows(root, "SELECT records_read, rejected, warnings FROM manifest") == [(6, 3, 1)]
    settings = Settings(workspace=root)
    with Workspace(root) as ws, open_engine(ws, settings) as engine:
        kept = engine.query("SELECT rx_number FROM dispensations ORDER BY rx_number")["rx_number"].to_pylist()
    assert kept == ["BADDEA", "GOOD1", "GOOD2"]


# --- recovery ---------------------------------------------------------------------------------


def test_stray_files_are_never_read_and_are_swept_by_the_next_writer(tmp_path):
    root = tmp_path / "ws"
    ingest(root, simple_file(tmp_path / "a.asap", 2))
    committed = files_under_tables(root)
    live = {p for (p,) in meta_rows(root, "SELECT path FROM data_files")}
    assert committed == live and "tables/dispensations/000000001.parquet" in live

    # What a crash after the rename but before the manifest commit leaves: a complete, valid
    # Parquet file with new rows under a final-looking name, plus a half-written temporary.
    rows = pq.read_table(root / "tables/dispensations/000000001.parquet")
    stray = rows.set_column(0, "dispensation_id", pc.binary_join_element_wise(rows["dispensation_id"], "|STRAY", ""))
    pq.write_table(stray, root / "tables/dispensations/000000002.parquet")
    (root / "tables/dispensations/.000000002-engine.parquet.tmp").write_bytes(b"PAR1 half a file")
    (root / "tables/deaths").mkdir()
    pq.write_table(stray, root / "tables/deaths/000000003.parquet")

    assert counts(root)["dispensations"] == 2  # not 4: readers only see listed files
    assert counts(root)["deaths"] == 0

    with Workspace(root) as ws, ws.writer_lock():
        pass
    assert files_under_tables(root) == committed
    assert counts(root)["dispensations"] == 2


def test_running_rows_of_a_dead_writer_are_forgotten(tmp_path):
    root = tmp_path / "ws"
    source = simple_file(tmp_path / "a.asap", 2)
    with Workspace(root) as ws:
        ws.begin("asap", source, file_sha256(source))  # and then the process "dies"
    assert meta_rows(root, "SELECT status FROM manifest") == [("running",)]
    [o] = ingest(root, source)
    assert o.status == "ingested"
    assert meta_rows(root, "SELECT status FROM manifest") == [("committed",)]
    assert counts(root)["dispensations"] == 2


# --- crash safety: SIGKILL during a real ingest -----------------------------------------------

BIG_PHARMACIES, BIG_PATIENTS = 40, 1250  # 100,000 fills, about 13 MB


@pytest.fixture(scope="session")
def big_asap(tmp_path_factory) -> tuple[Path, int]:
    path = tmp_path_factory.mktemp("crash") / "big.asap"
    return path, write_big_asap(path, BIG_PHARMACIES, BIG_PATIENTS)


@pytest.fixture(scope="session")
def big_asap_gz(big_asap, tmp_path_factory) -> tuple[Path, int]:
    source, n = big_asap
    path = tmp_path_factory.mktemp("crash_gz") / "big.asap.gz"
    with open(source, "rb") as f, gzip.open(path, "wb", compresslevel=1) as out:
        shutil.copyfileobj(f, out)
    return path, n


def _running(root: Path) -> bool:
    try:
        con = sqlite3.connect(f"file:{root / 'meta.sqlite'}?mode=ro", uri=True, timeout=0.05)
        try:
            return bool(con.execute("SELECT count(*) FROM manifest WHERE status = 'running'").fetchone()[0])
        finally:
            con.close()
    except sqlite3.OperationalError:
        return False


def _temp_files(root: Path) -> list[Path]:
    return [p for p in (root / "tables").rglob("*.tmp")]


def _uncommitted_finals(root: Path) -> set[str]:
    live = {p for (p,) in meta_rows(root, "SELECT path FROM data_files")}
    return {p for p in files_under_tables(root) if p.endswith(".parquet") and p not in live}


KILL_POINTS = {
    # name: (what the parent waits for before SIGKILL, whether the child pauses after its first rename)
    "parsing": (lambda root, marker: _running(root), False),
    "writing": (lambda root, marker: bool(_temp_files(root)), False),
    "committing": (lambda root, marker: marker.exists(), True),
    "gzip": (lambda root, marker: _running(root), False),  # while the compressed file is being read
}
CRASH_STATE = {"parsing": "running", "writing": "tmp", "committing": "uncommitted", "gzip": "running"}


def crash_and_recover(tmp_path: Path, source: Path, n_big: int, ready, pause: bool = False) -> dict:
    """Kill an ingest of ``source`` once ``ready(root, marker)``; check what recovery leaves.

    Returns what the workspace held at the moment of the kill (``finished`` if the child was done
    before the condition was met). Fails if recovery leaves anything but committed data.
    """
    root = tmp_path / "ws"
    ingest(root, simple_file(tmp_path / "first.asap", 3))
    before = counts(root)
    assert before["dispensations"] == 3

    marker = tmp_path / "renamed.marker"
    args = [sys.executable, str(TESTS / "crash_ingest.py"), str(root), str(source)]
    if pause:
        args += ["--pause-after-rename", str(marker)]
    child = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while child.poll() is None and not ready(root, marker) and time.monotonic() < deadline:
        time.sleep(0.002)
    finished = child.poll() is not None
    child.kill()
    out, err = child.communicate()
    state = {"finished": finished, "running": _running(root), "tmp": [p.name for p in _temp_files(root)],
             "uncommitted": sorted(_uncommitted_finals(root))}
    if finished:
        warnings.warn(f"the ingest finished before the kill (exit {child.returncode}: {out.decode()[-200:]} "
                      f"{err.decode()[-500:]}); checked consistency only")
    else:
        assert child.returncode == -9, err.decode()[-2000:]
    sha = file_sha256(source)
    committed_sql = "SELECT count(*) FROM manifest WHERE sha256 = ? AND status = 'committed'"
    committed = meta_rows(root, committed_sql, (sha,))[0][0]
    # Readers never see half a file, even before anyone recovers.
    assert counts(root)["dispensations"] == before["dispensations"] + committed * n_big

    # Recovery: an ingest of nothing takes the writer lock, which sweeps the crash away.
    with Workspace(root) as ws:
        assert ingest_files(ws, "asap", [], Settings(workspace=root)) == []
    assert meta_rows(root, committed_sql, (sha,))[0][0] == committed
    assert meta_rows(root, "SELECT count(*) FROM manifest WHERE status = 'running'") == [(0,)]
    assert _temp_files(root) == []
    live = meta_rows(root, "SELECT path, rows FROM data_files ORDER BY path")
    assert files_under_tables(root) == {p for p, _ in live}
    for path, rows in live:
        assert pq.ParquetFile(root / path).metadata.num_rows == rows
    after = counts(root)
    assert after["dispensations"] == before["dispensations"] + committed * n_big
    if not committed:
        assert after == before
    leftovers = sorted(p.name for p in (root / "tmp" / "ingest").glob("*"))

    # The file goes in whole afterwards.
    [again] = ingest(root, source)
    assert again.status == ("already-ingested" if committed else "ingested")
    assert counts(root)["dispensations"] == before["dispensations"] + n_big
    assert meta_rows(root, "SELECT count(*) FROM manifest WHERE status = 'committed'") == [(2,)]

    # Working copies an interrupted ingest left in the scratch folder are swept like the rest.
    assert leftovers == [], f"recovery left scratch files in {root / 'tmp' / 'ingest'}: {leftovers}"
    return state


@pytest.mark.parametrize("kill_point", list(KILL_POINTS))
def test_sigkill_during_ingest_leaves_only_committed_data(tmp_path, big_asap, big_asap_gz, kill_point):
    source, n_big = big_asap_gz if kill_point == "gzip" else big_asap
    ready, pause = KILL_POINTS[kill_point]
    state = crash_and_recover(tmp_path, source, n_big, ready, pause)
    # The kill landed where it was meant to: otherwise this test proves less than it says.
    assert not state["finished"] and state[CRASH_STATE[kill_point]], state


LARGE_KILL_POINTS = {
    # Progress a large ingest shows, in order: the file is scanned and checked (no output yet),
    # then each table's temporary file is written, then renamed and committed.
    "scanning": lambda size: lambda root, marker: _running(root),
    "dispensations": lambda size: lambda root, marker: bool(list((root / "tables" / "dispensations").glob("*.tmp"))),
    "identities": lambda size: lambda root, marker: bool(list((root / "tables" / "identities").glob("*.tmp"))),
    "committing": lambda size: lambda root, marker: marker.exists(),
}


@pytest.fixture(scope="session")
def large_asap(tmp_path_factory) -> tuple[Path, int]:
    path = tmp_path_factory.mktemp("crash_large") / "large.asap"
    return path, write_big_asap(path, 400, 1250)


@pytest.mark.slow
@pytest.mark.parametrize("kill_point", list(LARGE_KILL_POINTS))
def test_sigkill_during_a_large_ingest(tmp_path, large_asap, kill_point):
    """1,000,000 fills (about 130 MB), killed at each stage of the ingest in turn."""
    source, n = large_asap
    ready = LARGE_KILL_POINTS[kill_point](source.stat().st_size)
    state = crash_and_recover(tmp_path, source, n, ready, pause=kill_point == "committing")
    expected = {"scanning": "running", "dispensations": "tmp", "identities": "tmp", "committing": "uncommitted"}
    assert not state["finished"] and state[expected[kill_point]], state
