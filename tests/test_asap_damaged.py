"""ASAP reader on damaged and doubtful input: nothing leaked, nothing lost.

A damaged file fails alone with a clear message, never the import; a damaged record costs only
itself; values outside plausible bounds are rejected with their element; a gzipped copy is the
same file; a correction waits for its original.
"""

from __future__ import annotations

import gzip
import os

import pytest
from asap_builders import DEA_PRESCRIBER, NPI_PHARMACY, NPI_PRESCRIBER, OXYCODONE_10MG, ingest, put, rows, wrap
from typer.testing import CliRunner

from rxradar import cli
from rxradar.ingest.pipeline import ingest_files
from rxradar.settings import load as load_settings
from rxradar.workspace import Workspace

PHA = f"PHA*{NPI_PHARMACY}*0512345**EXAMPLE PHARMACY*100 MAIN ST**SPRINGFIELD*IL*62701"
PAT = "PAT*IL*06*D1234567****DOE*JANE*Q***12 ELM ST**SPRINGFIELD*IL*62704*2175550199*19700115*F*01*01"
PRE = f"PRE*{NPI_PRESCRIBER}*{DEA_PRESCRIBER}**MD12345*SMITH*JOHN"


def dsp(rx="RX1", *, status="00", written="20240102", fill="20240104", qty="60", days="30"):
    return f"DSP*{status}*{rx}*{written}*0*{fill}*0*01*{OXYCODONE_10MG}*{qty}*{days}*01*05*00***03"


def good(n: int, prefix: str = "RX") -> list[str]:
    return [PHA, PAT, *(seg for k in range(n) for seg in (dsp(f"{prefix}{k}"), PRE))]


@pytest.fixture
def ws(tmp_path):
    with Workspace(tmp_path / "ws") as w:
        yield w


def kept(ws) -> list[str]:
    return sorted(r["rx_number"] for r in rows(ws, "SELECT rx_number FROM dispensations"))


def problems(ws) -> set[tuple]:
    return {(p["field"], p["severity"]) for p in ws.rejects().to_pylist()}


# --- item 5: a damaged file in a directory fails alone ------------------------------------------

def _bad_checksum(data: bytes) -> bytes:
    packed = bytearray(gzip.compress(data))
    packed[len(packed) // 2] ^= 0xFF  # a flipped byte in the deflate stream: decompresses, CRC fails
    return bytes(packed)


def _bad_deflate(data: bytes) -> bytes:
    packed = bytearray(gzip.compress(data))
    packed[10:20] = b"\xff" * 10  # right after the gzip header: an invalid deflate block (zlib.error)
    return bytes(packed)


DAMAGED = {
    "gzip with a bad checksum": ("b.txt.gz", _bad_checksum, "gzip data is corrupt"),
    "gzip that does not inflate": ("b.txt.gz", _bad_deflate, "gzip data is corrupt"),
    "truncated gzip": ("b.txt.gz", lambda d: gzip.compress(d)[:-40], "ends early"),
    "not gzip": ("b.txt.gz", lambda d: d, "not a gzip file"),
}


@pytest.mark.parametrize("case", DAMAGED)
def test_a_damaged_gz_in_a_directory_fails_alone_and_the_rest_is_ingested(tmp_path, case):
    name, damage, words = DAMAGED[case]
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(3):
        put(folder, f"a{i}.txt", wrap(good(2, f"A{i}X"), tcn=f"TCNA{i}"))
    put(folder, name, damage(wrap(good(3, "B"), tcn="TCNB").encode()))
    put(folder, "c.txt.gz", gzip.compress(wrap(good(1, "C"), tcn="TCNC").encode()))
    with Workspace(tmp_path / "ws") as ws:
        outcomes = ingest_files(ws, "asap", [folder], load_settings(workspace=ws.root))
        status = {o.path.name: o.status for o in outcomes}
        assert status == {"a0.txt": "ingested", "a1.txt": "ingested", "a2.txt": "ingested", name: "failed",
                          "c.txt.gz": "ingested"}
        (bad,) = [o for o in outcomes if o.status == "failed"]
        assert bad.message.startswith(name) and words in bad.message
        assert kept(ws) == sorted([f"A{i}X{k}" for i in range(3) for k in range(2)] + ["C0"])
        assert "running" not in {m["status"] for m in ws.manifest()}


def test_unreadable_and_vanished_files_fail_alone(tmp_path, monkeypatch):
    folder = tmp_path / "in"
    folder.mkdir()
    put(folder, "a.txt", wrap(good(1, "A"), tcn="TCNA"))
    locked = put(folder, "b.txt", wrap(good(1, "B"), tcn="TCNB"))
    gone = put(folder, "c.txt", wrap(good(1, "C"), tcn="TCNC"))
    locked.chmod(0)
    if os.access(locked, os.R_OK):  # root reads anything: make it unreadable another way
        import rxradar.durable as durable
        real = durable.file_digests
        monkeypatch.setattr("rxradar.ingest.pipeline.file_digests",
                            lambda p: (_ for _ in ()).throw(PermissionError(13, "Permission denied"))
                            if p.name == "b.txt" else real(p))
    from rxradar.ingest import asap_scan
    real_scan = asap_scan.BatchScanner._scan

    def vanish(self, path, source, file_no):  # gone after it was hashed, before it was read
        if path.name == "c.txt":
            path.unlink()
        return real_scan(self, path, source, file_no)

    monkeypatch.setattr(asap_scan.BatchScanner, "_scan", vanish)
    with Workspace(tmp_path / "ws") as ws:
        outcomes = ingest_files(ws, "asap", [folder / "a.txt", locked, gone], load_settings(workspace=ws.root))
        assert [o.status for o in outcomes] == ["ingested", "failed", "failed"]
        assert "permission denied" in outcomes[1].message and "no longer exists" in outcomes[2].message
        assert kept(ws) == ["A0"]
        assert "running" not in {m["status"] for m in ws.manifest()}


# --- item 8: a NUL byte costs only its record; mixed encodings ----------------------------------

def test_a_nul_byte_rejects_only_the_record_that_holds_it(ws, tmp_path):
    body = good(90)
    body[2 + 2 * 45] = dsp("RX45").replace("*60*", "*6\0*")
    outcome = ingest(ws, put(tmp_path, "nul.txt", wrap(body)))
    assert (outcome.status, outcome.records, outcome.rejected) == ("ingested", 90, 1)
    assert kept(ws) == sorted(f"RX{k}" for k in range(90) if k != 45)
    assert {("DSP", "rejected"), ("segment", "warning")} <= problems(ws)
    (reject,) = [p for p in ws.rejects().to_pylist() if p["severity"] == "rejected"]
    assert reject["record_number"] == 5 + 2 * 45 and "NUL" in reject["reason"]


def test_a_nul_byte_in_a_patient_rejects_that_patients_records_only(ws, tmp_path):
    body = [PHA, PAT, dsp("RX1"), PRE, PAT.replace("JANE", "JA\0NE"), dsp("RX2"), PRE, dsp("RX3"), PRE,
            PAT, dsp("RX4"), PRE]
    outcome = ingest(ws, put(tmp_path, "nul.txt", wrap(body)))
    assert (outcome.status, outcome.records, outcome.rejected) == ("ingested", 4, 2)
    assert kept(ws) == ["RX1", "RX4"]
    assert ("PAT", "rejected") in problems(ws)


@pytest.mark.parametrize("chunk", [None, 64], ids=["one chunk", "small chunks"])
def test_utf8_and_latin1_names_in_one_file_are_both_read_right(ws, tmp_path, monkeypatch, chunk):
    from rxradar.ingest import asap_scan
    if chunk:
        monkeypatch.setattr(asap_scan, "CHUNK_BYTES", chunk)
    utf8 = PAT.replace("DOE*JANE", "MUÑOZ*JOSÉ").encode("utf-8")
    latin1 = PAT.replace("DOE*JANE", "PEÑA*RENÉ").encode("latin-1")
    text = wrap([PHA, "@UTF8@", dsp("RX1"), PRE, "@LATIN1@", dsp("RX2"), PRE]).encode("ascii")
    data = text.replace(b"@UTF8@", utf8).replace(b"@LATIN1@", latin1)
    outcome = ingest(ws, put(tmp_path, "mixed.txt", data))
    assert (outcome.status, outcome.records, outcome.rejected) == ("ingested", 2, 0)
    names = rows(ws, "SELECT last_name, first_name FROM identities ORDER BY last_name")
    assert names == [{"last_name": "MUÑOZ", "first_name": "JOSÉ"}, {"last_name": "PEÑA", "first_name": "RENÉ"}]


# --- item 9: nothing fits, nothing kept; a zero report stays valid ------------------------------

def test_a_file_none_of_whose_records_fit_fails_with_one_message(ws, tmp_path):
    body = [PHA, PAT, dsp("RX1", qty="0"), PRE, dsp("RX2", qty="abc"), PRE, dsp("RX3", days="0"), PRE]
    outcome = ingest(ws, put(tmp_path, "nofit.txt", wrap(body)))
    assert outcome.status == "failed"
    assert "none of its 3 records could be kept" in outcome.message and "DSP09" in outcome.message
    (reject,) = ws.rejects().to_pylist()
    assert (reject["source_file"], reject["severity"], reject["record_number"]) == ("nofit.txt", "rejected", None)
    assert [m["status"] for m in ws.manifest()] == ["failed"]
    assert ws.live_files()["dispensations"] == [] and ws.live_files()["identities"] == []


def test_binary_after_a_valid_header_fails(ws, tmp_path):
    data = b"TH*4.2*TCN1*01**20240105*231500*P**~~" + bytes(range(1, 256)).replace(b"~", b"") * 8
    outcome = ingest(ws, put(tmp_path, "blob.txt", data))
    assert outcome.status == "failed" and "not an ASAP file" in outcome.message
    assert [m["status"] for m in ws.manifest()] == ["failed"] and len(ws.rejects()) == 1


def test_an_empty_file_fails_with_one_message(ws, tmp_path):
    outcome = ingest(ws, put(tmp_path, "empty.txt", b""))
    assert outcome.status == "failed" and "not an ASAP file" in outcome.message and len(ws.rejects()) == 1


def test_a_zero_report_is_still_a_valid_ingest(ws, tmp_path):
    text = wrap([PHA, "PAT*******REPORT*ZERO", "DSP*****20240105", "PRE*"])
    outcome = ingest(ws, put(tmp_path, "zero.txt", text))
    assert (outcome.status, outcome.records) == ("ingested", 0) and "zero report" in outcome.message


# --- items 10 and 11: implausible quantities and dates ------------------------------------------

BOUNDS = {
    "quantity 999999999999": (dsp("RX2", qty="999999999999"), ("DSP09", "rejected")),
    "quantity of 400 digits": (dsp("RX2", qty="9" * 400), ("DSP09", "rejected")),
    "days supply of 400 digits": (dsp("RX2", days="9" * 400), ("DSP10", "rejected")),
    "fill date 9999-12-31": (dsp("RX2", fill="99991231"), ("DSP05", "rejected")),
    "fill date 1800-01-01": (dsp("RX2", fill="18000101"), ("DSP05", "rejected")),
}


@pytest.mark.parametrize("case", BOUNDS)
def test_implausible_values_are_rejected_with_their_element(ws, tmp_path, case):
    bad, expected = BOUNDS[case]
    outcome = ingest(ws, put(tmp_path, "bounds.txt", wrap([PHA, PAT, dsp("RX1"), PRE, bad, PRE])))
    assert (outcome.status, outcome.records, outcome.rejected) == ("ingested", 2, 1)
    assert kept(ws) == ["RX1"]
    assert {(p["field"], p["severity"]) for p in ws.rejects().to_pylist() if p["record_number"] == 7} == {expected}


def test_fill_date_just_after_the_file_is_a_warning_far_after_a_reject(ws, tmp_path):
    body = [PHA, PAT, dsp("RX1", fill="20240108"), PRE, dsp("RX2", fill="20240301"), PRE]
    ingest(ws, put(tmp_path, "late.txt", wrap(body)))
    assert kept(ws) == ["RX1"]
    by_record = {(p["record_number"], p["field"], p["severity"]) for p in ws.rejects().to_pylist()}
    assert by_record == {(5, "DSP05", "warning"), (7, "DSP05", "rejected")}


def test_implausible_written_and_birth_dates_are_warnings_and_not_kept(ws, tmp_path):
    body = [PHA, PAT.replace("19700115", "18000101"), dsp("RX1", written="18000101"), PRE]
    outcome = ingest(ws, put(tmp_path, "old.txt", wrap(body)))
    assert (outcome.status, outcome.rejected) == ("ingested", 0)
    assert problems(ws) == {("DSP03", "warning"), ("PAT18", "warning")}
    assert rows(ws, "SELECT written_date FROM dispensations") == [{"written_date": None}]
    assert rows(ws, "SELECT birth_date FROM identities") == [{"birth_date": None}]


def test_a_quantity_bound_is_a_setting(ws, tmp_path):
    ingest(ws, put(tmp_path, "q.txt", wrap([PHA, PAT, dsp("RX1", qty="500"), PRE, dsp("RX2", qty="400"), PRE])),
           max_quantity=400)
    assert kept(ws) == ["RX2"] and problems(ws) == {("DSP09", "rejected")}


def test_analysis_of_stored_huge_quantities_does_not_overflow(tmp_path):
    """A workspace written by an older version holds a quantity no bound stopped; analyze must
    still run for everyone else."""
    with Workspace(tmp_path / "ws") as ws:
        ingest(ws, put(tmp_path, "a.txt", wrap([PHA, PAT, dsp("RX1"), PRE, dsp("RX2", qty="999999999999"), PRE])),
               max_quantity=1e15)
        assert len(kept(ws)) == 2
    result = CliRunner().invoke(cli.app, ["analyze", "--workspace", str(tmp_path / "ws"), "--start", "2024-01-01",
                                          "--end", "2024-12-31"])
    assert result.exit_code == 0, result.output
    assert "Overflow" not in result.output


# --- item 12: a gzipped copy is the same file -----------------------------------------------------

def test_a_gzipped_copy_of_an_ingested_file_is_already_ingested(ws, tmp_path):
    text = wrap([PHA, PAT, dsp("RX1", qty="0"), PRE, dsp("RX2"), PRE])
    first = ingest(ws, put(tmp_path, "week1.txt", text))
    copy = ingest(ws, put(tmp_path, "week1.txt.gz", gzip.compress(text.encode(), compresslevel=9)))
    other = ingest(ws, put(tmp_path, "again.gz", gzip.compress(text.encode(), compresslevel=1)))
    assert (first.status, copy.status, other.status) == ("ingested", "already-ingested", "already-ingested")
    assert copy.same_as == "week1.txt"
    assert len([p for p in ws.rejects().to_pylist() if p["severity"] == "rejected"]) == 1
    assert kept(ws) == ["RX2"]


def test_a_gz_ingested_by_its_compressed_hash_is_still_known(ws, tmp_path):
    import hashlib
    data = gzip.compress(wrap([PHA, PAT, dsp("RX1"), PRE]).encode())
    path = put(tmp_path, "old.txt.gz", data)
    first = ingest(ws, path)
    ws.meta.execute("UPDATE manifest SET sha256 = ?", [hashlib.sha256(data).hexdigest()])  # an older workspace
    ws.meta.commit()
    assert ingest(ws, path).status == "already-ingested" and first.status == "ingested"


# --- item 13: corrections without their original ------------------------------------------------

def _rejects_output(root) -> str:
    result = CliRunner().invoke(cli.app, ["rejects", "--workspace", str(root)])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("order", ["correction first", "original first"])
def test_orphaned_corrections_are_kept_pending_and_reported_until_the_original_arrives(tmp_path, order):
    original = put(tmp_path, "original.txt", wrap([PHA, PAT, dsp("RX1"), PRE, dsp("RX2"), PRE],
                                                  created="20240105*100000"))
    correction = put(tmp_path, "void.txt", wrap([PHA, PAT, dsp("RX1", status="02"), PRE,
                                                 dsp("RX2", status="01", qty="30"), PRE], tcn="TCN2",
                                                created="20240106*100000"))
    with Workspace(tmp_path / "ws") as ws:
        if order == "correction first":
            outcome = ingest(ws, correction)
            assert outcome.status == "ingested" and "2 revise/void record(s) without their original" in outcome.message
            assert "2 orphaned correction(s)" in _rejects_output(ws.root) and "void.txt (2)" in _rejects_output(ws.root)
            ingest(ws, original)
        else:
            ingest(ws, original)
            outcome = ingest(ws, correction)
            assert "without their original" not in outcome.message
        assert "orphaned" not in _rejects_output(ws.root)
        assert rows(ws, "SELECT rx_number, quantity FROM dispensations") == [{"rx_number": "RX2", "quantity": 30.0}]


@pytest.mark.parametrize("header, reason", [
    ("TH*4.2*" + "X" * 5000 + "*01**20240105*231500*P**~~", "TH segment is longer than 4,096 bytes"),
    ("TH.4.2.TCN1.01..20240105.231500.P..~~", "element separator '.' cannot be told apart"),
])
def test_a_header_that_cannot_be_read_says_why(ws, tmp_path, header, reason):
    outcome = ingest(ws, put(tmp_path, "odd.asap", header + "\n" + "TT*TCN1*2~\n"))
    assert outcome.status == "failed" and reason in outcome.message
