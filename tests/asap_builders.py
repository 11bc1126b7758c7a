"""Helpers shared by the ASAP test suites: valid identifiers, real NDCs, a wrapper that adds the
header and correctly counted trailers around PHA..PRE segments, and one-call ingest and query."""

from __future__ import annotations

from pathlib import Path

from rxradar.catalog import open_engine
from rxradar.ingest.pipeline import FileOutcome, ingest_files
from rxradar.settings import load as load_settings
from rxradar.workspace import Workspace

# Pass their check digits (formats.md §4.1, §4.2).
NPI_PHARMACY, NPI_PRESCRIBER, NPI_PHARMACIST, NPI_OTHER = "1234567893", "9876543213", "1114567898", "1558598797"
DEA_PRESCRIBER, DEA_OTHER, DEA_PHARMACY = "BJ6543210", "AP5836727", "F91234563"

# Real NDCs from the shipped reference; test_asap_spec checks each is the product named here.
OXYCODONE_10MG = "00228298311"  # oxycodone-acetaminophen 10 mg tablet, oral, short-acting
OXYCODONE_ER_10MG = "00093002401"  # oxycodone HCl 10 mg extended-release tablet, long-acting
HYDROCODONE_5MG = "00029136533"  # Anexsia, hydrocodone 5 mg, oral
FENTANYL_25MCGHR = "00093690045"  # fentanyl transdermal system 25 mcg/hr
TRAMADOL_50MG = "00045065910"  # Ultram 50 mg, oral
BUPRENORPHINE_2MG = "00054017613"  # buprenorphine 2 mg sublingual, drug_class moud
ALPRAZOLAM_025MG = "00005334031"  # alprazolam 0.25 mg, benzodiazepine
# 10 digits, no hyphens: two of its three 11-digit readings (00093001301, 00093013001) are known.
AMBIGUOUS_NDC10 = "0009301301"


def npi_check_digit(first9: str) -> str:
    """Luhn over the nine digits, plus 24 for the implied 80840 prefix (formats.md §4.1)."""
    total = 24
    for i, ch in enumerate(reversed(first9)):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return str((10 - total % 10) % 10)


def wrap(body: list[str], *, version: str = "4.2", tcn: str = "TCN1", created: str = "20240105*231500",
         term: str = "~", newline: str = "\n") -> str:
    """A whole ``*``-separated file: TH, IS, ``body`` (PHA..PRE segments) with a TP closing each
    pharmacy, and TT. Trailer counts are right, so only the body can cause rejects."""
    segs = [f"TH*{version}*{tcn}*01**{created}*P**{term}", "IS*5555550100*TEST SENDER"]
    start = None
    for seg in body:
        if seg.startswith("PHA*") and start is not None:
            segs.append(f"TP*{len(segs) - start + 1}")
        if seg.startswith("PHA*"):
            start = len(segs)
        segs.append(seg)
    if start is not None:
        segs.append(f"TP*{len(segs) - start + 1}")
    segs.append(f"TT*{tcn}*{len(segs) + 1}")
    return "".join(s + term + newline for s in segs)


def put(directory: Path, name: str, data: str | bytes) -> Path:
    path = directory / name
    path.write_bytes(data.encode("latin-1") if isinstance(data, str) else data)
    return path


def ingest(ws: Workspace, path: Path, **settings: object) -> FileOutcome:
    (outcome,) = ingest_files(ws, "asap", [path], load_settings(workspace=ws.root, **settings))
    return outcome


def rows(ws: Workspace, sql: str, **settings: object) -> list[dict]:
    with open_engine(ws, load_settings(workspace=ws.root, **settings)) as engine:
        return engine.query(sql).to_pylist()
