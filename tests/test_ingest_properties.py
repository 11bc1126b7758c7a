"""Properties of the death-record and registry readers, driven through ``ingest_files`` and the CLI:

* identified values (names, birth dates, SSNs, addresses, patient ids), put in any column of any
  row and through every way a row can break, never reach a column of the rejects other than the
  restricted ``raw``, the manifest, the log, or what ``rxradar ingest`` and ``rxradar rejects`` print;
* garbage (random bytes, NULs, huge lines, wrong headers, BOMs, CRLF, a header only) never ends in
  an exception: the file is ingested or failed with a message naming it, and every good row of a
  file mixing good and bad lines is kept.
"""

from __future__ import annotations

import gzip
import logging
import sqlite3
import tempfile
from datetime import date
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from asap_builders import npi_check_digit
from rxradar import cli
from rxradar.ingest.ije import FIELDS, ije_record
from rxradar.ingest.pipeline import ingest_files
from rxradar.ingest.registries import PHARMACY_CSV_REQUIRED, PRESCRIBER_CSV_REQUIRED
from rxradar.settings import load
from rxradar.workspace import Workspace

DEATHS_HEADER = ("death_id,last_name,first_name,middle_name,sex,birth_date,death_date,residence_zip,"
                 "residence_county_fips,residence_state,ssn,underlying_cause,multiple_causes,manner")
ZIP_HEADER = "ZIP,COUNTY,USPS_ZIP_PREF_STATE,RES_RATIO"


def npi(first9: str) -> str:
    """A valid NPI, its check digit computed independently of rxradar.codes."""
    return first9 + npi_check_digit(first9)


def good_row(kind: str, i: int) -> list[str]:
    """A row every reader keeps, with ids unique per ``i``."""
    if kind == "deaths":
        return [f"G{i:04d}", "Moss", "Ann", "", "F", "1980-05-02", "2023-03-04", "43215", "39049", "OH",
                "", "X42", "T40.2", "A"]
    if kind == "prescribers":
        return [npi(f"1{i:08d}"), "", "Moss", "Ann", "", "363L00000X", "WV", "25301", "54039"]
    if kind == "pharmacies":
        return ["", f"{1000000 + i}", "", "Main Pharmacy", "1 Main St", "Charleston", "WV", "25301", "54039",
                "38.3", "-81.6"]
    return [f"{25301 + i:05d}", "54039", "WV", "1"]


HEADERS = {"deaths": DEATHS_HEADER, "prescribers": ",".join(PRESCRIBER_CSV_REQUIRED),
           "pharmacies": ",".join(PHARMACY_CSV_REQUIRED), "zip_counties": ZIP_HEADER}
KEYS = {"deaths": "death_id", "prescribers": "prescriber_id", "pharmacies": "pharmacy_id", "zip_counties": "zip"}
CLI_KINDS = {"zip_counties": "zip-counties"}


def ije_good(i: int) -> bytes:
    return ije_record({"death_id": f"2023OH{i:06d}", "death_date": date(2023, 3, 4), "state": "OH",
                       "first_name": "Ann", "last_name": "Moss", "underlying_cause": "X42"}).encode("latin-1")


# --- identified values never leave the restricted raw column ------------------------------------

identified = st.fixed_dictionaries({
    "name": st.from_regex(r"Xq[a-z]{4,8}", fullmatch=True),
    "birth": st.dates(date(1900, 1, 1), date(2020, 12, 31)).map(lambda d: d.strftime("%m/%d/%Y")),
    "iso_birth": st.dates(date(1900, 1, 1), date(2020, 12, 31)).map(date.isoformat),
    "ssn": st.from_regex(r"[1-6][0-9]{2}-[1-9][0-9]-[1-9][0-9]{3}", fullmatch=True),
    "address": st.from_regex(r"[1-9][0-9]{1,3} Xq[a-z]{3,6} St", fullmatch=True),
    "patient_id": st.from_regex(r"PXq[0-9]{6}", fullmatch=True),
})  # fmt: skip

DAMAGES = ("none", "insert", "delete", "quote", "latin1", "crlf")


@st.composite
def hostile_csv(draw, kind: str) -> tuple[bytes, set[str]]:
    values = draw(identified)
    secrets = set(values.values()) | {values["ssn"].replace("-", "")}
    pool = sorted(set(values.values()) | {values["ssn"].replace("-", ""), values["name"] + ", Jr"})
    lines = [HEADERS[kind].encode()]
    for i in range(draw(st.integers(1, 4))):
        row = good_row(kind, i)
        for _ in range(draw(st.integers(0, 3))):
            row[draw(st.integers(0, len(row) - 1))] = draw(st.sampled_from(pool))
        damage, at = draw(st.sampled_from(DAMAGES)), draw(st.integers(0, len(row) - 1))
        if damage == "insert":
            row.insert(at, draw(st.sampled_from(pool)))
        elif damage == "delete":
            del row[at]
        elif damage == "quote":
            row[at] = '"' + row[at]
        line = ",".join(row)
        encoded = (line + "é").encode("latin-1") if damage == "latin1" else line.encode()
        lines.append(encoded + (b"\r" if damage == "crlf" else b""))
    return b"\n".join(lines) + b"\n", secrets


@st.composite
def hostile_ije(draw) -> tuple[bytes, set[str]]:
    values = draw(identified)
    secrets = {v for v in values.values()}
    records = []
    for i in range(draw(st.integers(1, 3))):
        record = bytearray(ije_good(i))
        record[FIELDS["SSN"].slice] = values["ssn"].replace("-", "").encode()
        for _ in range(draw(st.integers(1, 4))):
            field = FIELDS[draw(st.sampled_from(sorted(FIELDS)))]
            value = draw(st.sampled_from(sorted(values.values()))).encode()[: field.length]
            record[field.slice] = value.ljust(field.length)
            if len(value) >= 3:
                secrets.add(value.decode())
        if draw(st.booleans()):
            record = record[: draw(st.integers(0, len(record)))]
        records.append(bytes(record))
    return b"\n".join(records) + b"\n", secrets


def unrestricted_text(root: Path) -> str:
    with sqlite3.connect(root / "meta.sqlite") as con:
        rejects = con.execute("SELECT source_file, record_number, segment, segment_number, line, field, "
                              "severity, reason FROM rejects").fetchall()
        manifest = con.execute("SELECT detail, source_name FROM manifest").fetchall()
        audit = con.execute("SELECT target, detail FROM audit_log").fetchall()
    return repr((rejects, manifest, audit))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), kind=st.sampled_from(["deaths", "ije", "prescribers", "pharmacies", "zip_counties"]))
def test_identified_values_stay_in_the_restricted_raw_column(caplog, monkeypatch, data, kind):
    monkeypatch.setattr(cli.console, "_width", 400)
    monkeypatch.setattr(cli.err, "_width", 400)
    content, secrets = data.draw(hostile_ije() if kind == "ije" else hostile_csv(kind))
    caplog.clear()
    caplog.set_level(logging.DEBUG)
    runner = CliRunner()
    with tempfile.TemporaryDirectory() as d:
        source, root = Path(d) / "source.txt", Path(d) / "ws"
        source.write_bytes(content)
        command = "deaths" if kind == "ije" else CLI_KINDS.get(kind, kind)
        ingested = runner.invoke(cli.app, ["-vv", "ingest", command, str(source), "--workspace", str(root)])
        assert ingested.exception is None or isinstance(ingested.exception, SystemExit), ingested.exception
        assert ingested.exit_code in (0, 1), ingested.output
        listed = runner.invoke(cli.app, ["rejects", "--by-file", "--limit", "1000", "--workspace", str(root)])
        assert listed.exit_code == 0, listed.output
        stored = unrestricted_text(root)
    logging.getLogger("rxradar").setLevel(logging.NOTSET)
    seen = {"ingest output": ingested.output, "rejects output": listed.output, "workspace": stored,
            "log": caplog.text}
    leaks = [(where, s) for where, text in seen.items() for s in secrets if s in text]
    assert leaks == []


# --- garbage never escapes, good rows are always kept ------------------------------------------

GARBAGE_LINES = st.one_of(
    st.binary(max_size=120).map(lambda b: b.replace(b"\n", b"")),
    st.sampled_from([b"\x00" * 40, b"x" * 140_000, b'"' + b"y" * 50, b'a,"b', b"\xef\xbb\xbf", b"\r", b",,,,",
                     "Jos\u00e9,\u00c9".encode("utf-16")]).map(lambda b: b.replace(b"\n", b"")),
)


@st.composite
def mixed_file(draw, kind: str) -> tuple[bytes, list[str], bool]:
    """(content, ids of good rows, whether the header is right)."""
    newline = draw(st.sampled_from([b"\n", b"\r\n"]))
    good_header = draw(st.booleans()) or kind == "ije"
    lines, ids = [], []
    if kind != "ije":
        header = HEADERS[kind].encode() if good_header else draw(GARBAGE_LINES)
        lines.append((b"\xef\xbb\xbf" if draw(st.booleans()) else b"") + header)
    for i in range(draw(st.integers(0, 5))):
        for _ in range(draw(st.integers(0, 2))):
            lines.append(draw(GARBAGE_LINES))
        if kind == "ije":
            lines.append(ije_good(i))
            ids.append(f"2023OH{i:06d}")
        else:
            row = good_row(kind, i)
            lines.append(",".join(row).encode())
            ids.append(row[0] if kind != "pharmacies" else row[1])
    return newline.join(lines) + draw(st.sampled_from([b"", newline])), ids, good_header


@settings(max_examples=60, deadline=None)
@given(data=st.data(), kind=st.sampled_from(["deaths", "ije", "prescribers", "pharmacies", "zip_counties"]))
def test_garbage_never_escapes_and_every_good_row_is_kept(data, kind):
    content, ids, good_header = data.draw(mixed_file(kind))
    with tempfile.TemporaryDirectory() as d:
        source, root = Path(d) / "mixed.dat", Path(d) / "ws"
        source.write_bytes(content)
        with Workspace(root) as ws:
            [outcome] = ingest_files(ws, "deaths" if kind == "ije" else kind, [source],
                                     load(workspace=root, threads=1, memory_limit="1GB"))
            kept = [f for files in ws.live_files().values() for f in files]
            table = "deaths" if kind == "ije" else kind
            if outcome.status == "ingested":
                column = KEYS["deaths" if kind == "ije" else kind]
                got = [v for f in ws.live_files()[table] for v in pq.read_table(f)[column].to_pylist()]
    assert outcome.status in ("ingested", "failed")
    if outcome.status == "failed":
        assert outcome.message.startswith("mixed.dat: ") and kept == []
    if ids and good_header:
        assert outcome.status == "ingested", outcome.message
        assert sorted(set(ids) - set(got)) == []


# --- compressed sources ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["deaths", "ije", "prescribers", "pharmacies", "zip_counties"])
def test_gzipped_sources_are_read_and_known_by_their_content_and_a_corrupt_one_fails_alone(tmp_path, kind):
    table = "deaths" if kind == "ije" else kind
    if kind == "ije":
        content = b"\n".join(ije_good(i) for i in range(3)) + b"\n"
    else:
        content = "\n".join([HEADERS[kind], *(",".join(good_row(kind, i)) for i in range(3))]).encode() + b"\n"
    plain, packed, broken = tmp_path / "src.txt", tmp_path / "copy.txt.gz", tmp_path / "broken.txt.gz"
    plain.write_bytes(content)
    packed.write_bytes(gzip.compress(content))
    broken.write_bytes(gzip.compress(content)[:-12])  # cut short: the stream ends early
    settings_ = load(workspace=tmp_path / "ws", threads=1, memory_limit="1GB")
    with Workspace(tmp_path / "ws") as ws:
        first = ingest_files(ws, table, [packed], settings_)
        again = ingest_files(ws, table, [plain, broken], settings_)
        rows = sum(pq.read_table(f).num_rows for f in ws.live_files()[table])
    assert first[0].status == "ingested", first[0].message
    assert first[0].records == 3
    assert [o.status for o in again] == ["already-ingested", "failed"]
    assert again[1].message.startswith("broken.txt.gz: ")
    assert rows == 3


@pytest.mark.parametrize("kind", ["asap", "deaths"])
def test_a_file_name_that_is_not_utf8_fails_alone_and_the_rest_is_ingested(tmp_path, kind):
    import os

    from asap_builders import DEA_PRESCRIBER, NPI_PHARMACY, NPI_PRESCRIBER, OXYCODONE_10MG, wrap

    folder = tmp_path / "in"
    folder.mkdir()
    for name, i in ((b"a.txt", 1), (b"b\xff.txt", 2), (b"c.txt", 3)):
        if kind == "asap":
            content = wrap([f"PHA*{NPI_PHARMACY}*0512345", "PAT*IL*06*D1****MOSS*ANN****1 ELM ST**X*IL*62704**19700115*F",
                            f"DSP*00*RX{i}*20240102*0*20240104*0*01*{OXYCODONE_10MG}*60*30*01*05*00***03",
                            f"PRE*{NPI_PRESCRIBER}*{DEA_PRESCRIBER}"], tcn=f"T{i}").encode()
        else:
            content = "\n".join([DEATHS_HEADER, ",".join(good_row("deaths", i))]).encode() + b"\n"
        with open(os.path.join(os.fsencode(folder), name), "wb") as f:
            f.write(content)
    code_out = CliRunner().invoke(cli.app, ["ingest", kind, str(folder), "-w", str(tmp_path / "ws")],
                                  catch_exceptions=False)
    assert code_out.exit_code == 1
    assert "b\\xff.txt: the file name is not UTF-8 text" in code_out.output
    with Workspace(tmp_path / "ws") as ws:
        status = dict(ws.meta.execute("SELECT source_name, status FROM manifest"))
    assert status == {"a.txt": "committed", "c.txt": "committed"}
