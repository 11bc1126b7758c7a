"""The attack on the product, replayed: every hostile or careless input issue 14 names goes
through the ``rxradar`` command into one workspace, as a user would give it, and then the whole
workspace is analysed and reported on.

Each input must end as kept records or named rejects (file, line or record, element, rule), never
a traceback; nothing identified may reach an unrestricted column, the manifest, the audit log, a
log line or anything the CLI prints; and the analysis must run over what was kept.
"""

from __future__ import annotations

import gzip
import logging
import sqlite3
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from asap_builders import DEA_PRESCRIBER, NPI_PHARMACY, NPI_PRESCRIBER, OXYCODONE_10MG, wrap
from rxradar import cli
from rxradar.analytics import store

SSN = "219099999"  # an SSN SSA could issue (area 219), used only as a planted identifier
SURNAME, GIVEN, STREET = "QUILLFEATHER", "ZEPHYRINE", "77 OBSCURA LANE"
BIRTH_US, BIRTH_ISO, BIRTH_ASAP = "03/14/1961", "1961-03-14", "19610314"
IDENTIFIED = (SSN, "219-09-9999", SURNAME, GIVEN, STREET, BIRTH_US, BIRTH_ISO, BIRTH_ASAP, "JOSÉ", "JOSÃ")

PHA = f"PHA*{NPI_PHARMACY}*0512345**EXAMPLE PHARMACY*100 MAIN ST**SPRINGFIELD*IL*62701"
PAT = (f"PAT*IL*07*{SSN}****{SURNAME}*{GIVEN}*Q***{STREET}**SPRINGFIELD*IL*62704*2175550199*{BIRTH_ASAP}*F*01*01")
PRE = f"PRE*{NPI_PRESCRIBER}*{DEA_PRESCRIBER}**MD12345*SMITH*JOHN"
DEATHS_HEADER = ("death_id,last_name,first_name,middle_name,sex,birth_date,death_date,residence_zip,"
                 "residence_county_fips,residence_state,ssn,underlying_cause,multiple_causes,manner")
PHARMACIES_HEADER = "pharmacy_id,npi,ncpdp,dea,name,address,city,state,zip,county_fips,lat,lon"


def dsp(rx: str, *, status: str = "00", fill: str = "20240104", qty: str = "60", days: str = "30") -> str:
    return f"DSP*{status}*{rx}*20240102*0*{fill}*0*01*{OXYCODONE_10MG}*{qty}*{days}*01*05*00***03"


def asap(*records: str, tcn: str = "T1") -> bytes:
    return wrap([PHA, PAT, *records], tcn=tcn).encode("latin-1")


def death(i: int, *, last: str = "MOSS", birth: str = "1970-05-02", ssn: str = "") -> str:
    return f"D{i:04d},{last},ANN,,F,{birth},2024-03-04,25301,54039,WV,{ssn},X42,T40.2,A"


def deaths_csv(*rows: str) -> bytes:
    return "\n".join([DEATHS_HEADER, *rows]).encode() + b"\n"


def pharmacy(i: int) -> str:
    return f",,{5100000 + i},,PHARMACY {i},{i} MAIN ST,CHARLESTON,WV,25301,54039,38.35,-81.63"


def attack_inputs() -> list[tuple[str, bytes, str]]:
    """What the attack gave the ingest commands that must be ingested, bad records and all:
    (file name, content, ingest command)."""
    good_deaths = [death(i) for i in range(1, 6)]
    return [
        # 1: a PAT with the wrong separator; US-style birth dates; a name shifted by a comma onto the SSN
        ("wrong-separator.asap", wrap([PHA, PAT.replace("*", "|"), dsp("RX01"), PRE, PAT, dsp("RX02"), PRE],
                                      tcn="T2").encode("latin-1"), "asap"),
        ("us-birth-date.asap", asap(dsp("RX03"), PRE).replace(BIRTH_ASAP.encode(), BIRTH_US.encode()), "asap"),
        ("comma-in-name.csv", deaths_csv(*good_deaths,
                                         f"D0099,{SURNAME}, JR,{GIVEN},,F,{BIRTH_ISO},2024-03-04,25301,54039,WV,"
                                         f"{SSN},X42,T40.2,A", f"D0098,MOSS,ANN,,F,{BIRTH_US},2024-03-04,25301,"
                                         "54039,WV,,X42,T40.2,A"), "deaths"),
        # 6: an unclosed quote, a 200 KB field, a registry row starting with a quote
        ("unclosed-quote.csv", deaths_csv(death(11), f'D0012,"{SURNAME},ANN,,F,1970-05-02,2024-03-04,25301,'
                                                     "54039,WV,,X42,T40.2,A", *(death(i) for i in range(13, 20))),
         "deaths"),
        ("huge-field.csv", deaths_csv(death(21), death(22, last="M" * 200_000), death(23)), "deaths"),
        ("quoted-pharmacy.csv", "\n".join([PHARMACIES_HEADER, pharmacy(1), '"' + pharmacy(2)[1:],
                                           *(pharmacy(i) for i in range(3, 27))]).encode() + b"\n", "pharmacies"),
        # 7: one extra field
        ("extra-field.csv", deaths_csv(death(31), death(32) + ",EXTRA", death(33)), "deaths"),
        # 8: one Latin-1 byte among UTF-8 records; a NUL byte in an ASAP record
        ("latin1-byte.csv", deaths_csv(death(41), death(42, last="JOSÉ")).replace("JOSÉ".encode(), b"JOS\xc9")
         + deaths_csv(death(43, last="JOSÉ")).split(b"\n", 1)[1], "deaths"),
        ("nul-byte.asap", asap(dsp("RX11"), PRE, dsp("RX12").replace("RX12", "RX\x0012"), PRE, dsp("RX13"), PRE,
                               tcn="T3"), "asap"),
        # 10, 11: implausible quantities and dates
        ("implausible.asap", asap(dsp("RX21", qty="999999999999"), PRE, dsp("RX22", qty="9" * 400), PRE,
                                  dsp("RX23", fill="99991231"), PRE, dsp("RX24", fill="18000101"), PRE,
                                  dsp("RX25"), PRE, tcn="T4"), "asap"),
        # 13: a void of a record never received
        ("orphan-void.asap", asap(dsp("RX-NEVER-SENT", status="02"), PRE, dsp("RX31"), PRE, tcn="T5"), "asap"),
    ]


def failing_inputs() -> list[tuple[str, bytes, str]]:
    """9: files that fit no format, for every ingest command."""
    binary = bytes(range(256)) * 40
    return [(f"{name}-{kind}.dat", content, kind) for kind in ("asap", "deaths", "prescribers", "pharmacies",
                                                                 "zip-counties")
            for name, content in (("empty", b""), ("binary", binary))]


runner = CliRunner()


def rxradar(*args: str | Path) -> tuple[int, str]:
    """The command's output; an exception escaping the command fails the test with its traceback."""
    result = runner.invoke(cli.app, [str(a) for a in args], catch_exceptions=False)
    return result.exit_code, result.output


pytestmark = pytest.mark.usefixtures("hermetic_cli")


def test_the_attack_ends_in_kept_records_and_named_rejects_and_leaks_nothing(tmp_path, caplog):
    caplog.set_level(logging.DEBUG, logger="rxradar")
    root, inputs = tmp_path / "ws", tmp_path / "in"
    inputs.mkdir()
    printed = []

    for name, content, kind in attack_inputs():
        path = inputs / name
        path.write_bytes(content)
        code, out = rxradar("-vv", "ingest", kind, path, "-w", root)
        printed.append(out)
        assert code == 0, f"{name}: {out}"
    for name, content, kind in failing_inputs():
        path = inputs / name
        path.write_bytes(content)
        code, out = rxradar("ingest", kind, path, "-w", root)
        printed.append(out)
        assert code != 0 and name in out, f"{name}: {out}"

    # 5: a corrupt .gz among good files in one directory; 12: a gzipped copy of a file already in
    batch = inputs / "batch"
    batch.mkdir()
    (batch / "a.asap").write_bytes(asap(dsp("RX41"), PRE, tcn="T6"))
    (batch / "b.asap.gz").write_bytes(gzip.compress(asap(dsp("RX42"), PRE, tcn="T7"))[:-20])
    (batch / "c.asap").write_bytes(asap(dsp("RX43"), PRE, tcn="T8"))
    (batch / "d.asap.gz").write_bytes(gzip.compress((inputs / "implausible.asap").read_bytes()))
    code, out = rxradar("ingest", "asap", batch, "-w", root)
    printed.append(out)
    assert code != 0 and "b.asap.gz" in out

    with sqlite3.connect(root / "meta.sqlite") as db:
        status = dict(db.execute("SELECT source_name, status FROM manifest"))
        rejects = db.execute("SELECT source_file, record_number, line, field, severity, reason, raw FROM rejects"
                             ).fetchall()
        manifest_text = repr(db.execute("SELECT * FROM manifest").fetchall())
        audit_text = repr(db.execute("SELECT * FROM audit_log").fetchall())
    assert "running" not in status.values()
    assert status["a.asap"] == status["c.asap"] == "committed"
    assert status["b.asap.gz"] == "failed" and "d.asap.gz" not in status  # already ingested as implausible.asap
    assert {name for name, s in status.items() if s == "failed"} == {"b.asap.gz"} | {
        name for name, _, _ in failing_inputs()}

    def named(source: str, field: str | None = None) -> list[tuple]:
        return [r for r in rejects if r[0] == source and r[4] == "rejected" and (field is None or r[3] == field)]

    # Each bad record is a reject of its own, naming where it is; every good record around it is kept.
    assert len(named("unclosed-quote.csv")) == 1 and named("unclosed-quote.csv")[0][2] == 3
    assert len(named("huge-field.csv")) == 1 and named("huge-field.csv")[0][2] == 3
    assert len(named("quoted-pharmacy.csv")) == 1
    assert len(named("extra-field.csv")) == 1 and named("extra-field.csv")[0][2] == 3
    assert len(named("nul-byte.asap")) == 1
    assert {r[3] for r in named("implausible.asap")} == {"DSP09", "DSP05"} and len(named("implausible.asap")) == 4
    assert not named("latin1-byte.csv")
    # 12: the gzipped copy added no second set of rejects
    assert sum(1 for r in rejects if r[0] == "d.asap.gz") == 0

    code, out = rxradar("analyze", "-w", root)
    printed.append(out)
    assert code == 0, out
    assert store.load_about(root)["period"]["end"] < "2025-01-01"  # 9999-12-31 did not stretch the period
    for command in (("rejects",), ("leads",), ("report", "--public", "--out", tmp_path / "public.html")):
        code, out = rxradar(*command, "-w", root)
        printed.append(out)
        assert code == 0, out
    assert "orphan" in printed[-3].lower()  # rxradar rejects reports the void still waiting for its original

    # Names read right whichever encoding each record came in, and never as mojibake.
    names = {n for f in (root / "tables" / "deaths").glob("*.parquet") for n in pq.read_table(f)["last_name"].to_pylist()}
    assert "JOSÉ" in names and not any("Ã" in (n or "") for n in names)

    # Nothing identified anywhere unrestricted: reasons, fields, manifest, audit, logs, output.
    unrestricted = [repr(r[:6]) for r in rejects] + [manifest_text, audit_text, caplog.text, *printed,
                                                      (tmp_path / "public.html").read_text()]
    for value in IDENTIFIED:
        leaks = [text[:200] for text in unrestricted if value in text]
        assert not leaks, f"{value!r} appears in {leaks}"
    # The restricted raw text keeps the record's shape, with the SSN starred wherever it stood.
    raws = [r[6] for r in rejects if r[6]]
    assert any(SURNAME in raw for raw in raws)  # the planted values did reach the workspace
    assert not any(SSN in raw or "219-09-9999" in raw for raw in raws)
