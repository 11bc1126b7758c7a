"""Identified values never leave the restricted `raw` column on any ASAP reject path.

Names, SSNs, birth dates in several formats, patient IDs and addresses are put where every kind
of reject comes from: a PAT with the wrong separator, a stray terminator that makes the rest of a
PAT an unknown segment, a segment without an id, a birth date in the wrong format, trailers
holding values, a rejected record quoting its PAT, a file none of whose records fit, and a file
whose header holds them. None may appear in any column of rejects but `raw`, in the manifest's
detail, in the log, or in what ``rxradar ingest asap`` and ``rxradar rejects`` print; in `raw`,
SSN-shaped digits are starred wherever they stand.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import tempfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
from asap_builders import DEA_PRESCRIBER, NPI_PHARMACY, NPI_PRESCRIBER, OXYCODONE_10MG, put, wrap
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from rxradar import cli

PHA = f"PHA*{NPI_PHARMACY}*0512345**EXAMPLE PHARMACY*100 MAIN ST**SPRINGFIELD*IL*62701"
PRE = f"PRE*{NPI_PRESCRIBER}*{DEA_PRESCRIBER}"
GOOD_PAT = "PAT*IL*06*D0000001****ROE*RUTH******IL*62704**19600101*F*01*01"


def dsp(rx: str, qty: str = "60") -> str:
    return f"DSP*00*{rx}*20240102*0*20240104*0*01*{OXYCODONE_10MG}*{qty}*30*01*05*00***03"


@dataclass(frozen=True)
class Person:
    last: str
    first: str
    ssn: str  # as written: 123456789 or 123-45-6789
    birth: str  # as written: CCYYMMDD, MM/DD/YYYY or YYYY-MM-DD
    patient_id: str
    address: str

    def values(self) -> list[str]:
        digits = self.ssn.replace("-", "")
        return [self.last, self.first, self.ssn, digits, self.birth, self.patient_id, self.address]


# Rare letters keep a generated name from being a word that reasons use anyway.
names = st.from_regex(r"[QXZ][A-Z]{2}[QXZ][A-Z]{1,5}", fullmatch=True)
ssns = st.from_regex(r"[1-5][0-9]{2}[1-9][0-9][1-9][0-9]{3}", fullmatch=True).flatmap(
    lambda d: st.sampled_from([d, f"{d[:3]}-{d[3:5]}-{d[5:]}"]))
births = st.dates(date(1901, 1, 1), date(2019, 12, 31)).flatmap(lambda d: st.sampled_from(
    [d.strftime("%Y%m%d"), d.strftime("%m/%d/%Y"), d.isoformat()]))
patient_ids = st.from_regex(r"[QXZ][0-9]{7}[A-Z]", fullmatch=True)
addresses = st.from_regex(r"[1-9][0-9]{2} [QXZ][A-Z]{3,6} (ST|AVE|RD)", fullmatch=True)
people = st.builds(Person, names, names, ssns, births, patient_ids, addresses)


def pat(p: Person, sep: str = "*", birth: str | None = None) -> str:
    e = ["PAT", "US", "07", p.ssn, "IL", "02", p.patient_id, p.last, p.first, "Q", "", "", p.address, "",
         "SPRINGFIELD", "IL", "62704", "", birth or p.birth, "F", "01", "01"]
    return sep.join(e)


def files(p: Person) -> dict[str, str]:
    """One file per reject path, each with a good record so that it is ingested (but the last)."""
    keep = [GOOD_PAT, dsp("RXG"), PRE]
    return {
        "wrong-separator.txt": wrap([PHA, pat(p, "|"), dsp("RX1"), PRE, *keep]),
        "stray-terminator.txt": wrap([PHA, pat(p).replace(f"*{p.patient_id}*", f"*{p.patient_id}~"), dsp("RX1"), PRE,
                                      *keep]),
        "no-id.txt": wrap([PHA, *keep, f"*{p.last}*{p.first}*{p.birth}*{p.ssn}*{p.address}"]),
        "birth-format.txt": wrap([PHA, pat(p, birth=p.birth.replace("-", "/")), dsp("RX1", qty="0"), PRE, *keep]),
        "trailers.txt": wrap([PHA, *keep]).replace("TP*5", f"TP*{p.last}").replace(
            "TT*TCN1*", f"TT*{p.ssn}*{p.birth}").replace("TT*TCN1", f"TT*{p.patient_id}"),
        "nothing-fits.txt": wrap([PHA, pat(p), dsp("RX1", qty="0"), PRE, dsp("RX2", qty="-1"), PRE]),
        "header.txt": wrap([PHA, *keep], version=p.last, tcn=p.ssn),
    }


runner = CliRunner()
PROPERTY = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                            HealthCheck.function_scoped_fixture])


@pytest.fixture(autouse=True)
def wide_console(monkeypatch):
    """Rich would wrap long reasons at 80 columns, splitting a value across lines."""
    monkeypatch.setattr(cli.console, "_width", 400)
    monkeypatch.setattr(cli.err, "_width", 400)
    yield
    logging.getLogger("rxradar").setLevel(logging.NOTSET)


@PROPERTY
@given(p=people)
def test_identified_values_appear_nowhere_but_raw(p, caplog, tmp_path_factory):
    base = Path(tempfile.mkdtemp(dir=tmp_path_factory.getbasetemp()))
    inputs = base / "in"
    inputs.mkdir()
    for name, text in files(p).items():
        put(inputs, name, text.encode("utf-8"))
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="rxradar"):
        ingested = runner.invoke(cli.app, ["-vv", "ingest", "asap", str(inputs), "--workspace", str(base / "ws")])
        shown = runner.invoke(cli.app, ["rejects", "--by-file", "--limit", "500", "--workspace", str(base / "ws")])
    assert ingested.exit_code == 1 and shown.exit_code == 0, (ingested.output, shown.output)
    with sqlite3.connect(base / "ws" / "meta.sqlite") as meta:
        columns = [r[1] for r in meta.execute("PRAGMA table_info(rejects)")]
        rejects = [dict(zip(columns, r)) for r in meta.execute("SELECT * FROM rejects")]
        manifest = [dict(zip(("status", "detail"), r)) for r in meta.execute("SELECT status, detail FROM manifest")]
    assert {m["status"] for m in manifest} == {"committed", "failed"}
    assert sum(r["raw"] is not None for r in rejects) >= 2  # the record paths did quote their segments
    public = "\n".join([
        *(str(v) for r in rejects for k, v in r.items() if k != "raw"),
        *(m["detail"] or "" for m in manifest),
        caplog.text, ingested.output, shown.output,
    ])
    flat = re.sub(r"\s+", " ", public)
    for value in p.values():
        assert value not in public and value not in flat, value
    digits = p.ssn.replace("-", "")
    for r in rejects:
        raw = r["raw"] or ""
        assert p.ssn not in raw and digits not in raw and digits[-4:] + "*" not in raw
