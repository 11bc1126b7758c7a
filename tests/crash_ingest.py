"""Crash-test helper: the big ASAP input, and a child process that ingests it until it is killed.

``tests/test_workspace.py`` builds the input once per session with :func:`write_big_asap` and runs
this file as a script::

    python tests/crash_ingest.py WORKSPACE FILE [--pause-after-rename MARKER]

The child ingests FILE into WORKSPACE and prints the outcome as JSON. With
``--pause-after-rename`` it stops (sleeping) right after its first data file has been renamed to
its final name under ``tables/``, having touched MARKER, so the parent's SIGKILL lands
deterministically between the renames and the manifest commit: the one window a timing race
rarely hits.
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import datetime
from pathlib import Path

from rxradar.ingest.asap_writer import AsapDispensation, AsapFile, AsapPatient, AsapPharmacy, asap_segments

# Oxycodone HCl 10 mg tablet, tramadol 50 mg tablet, hydrocodone/APAP (all in the CDC NDC file).
BIG_NDCS = ("00603499321", "00045065910", "00406012301")
PRESCRIBER = {"PRE01": "9876543213", "PRE02": "BJ6543210"}


def _pharmacy_block(pha: dict[str, str], patients: list[AsapPatient]) -> list[str]:
    """PHA ... TP segments of one pharmacy, as the writer makes them."""
    segs = asap_segments(AsapFile("4.2", "X", datetime(2024, 1, 1), "S", "S", [AsapPharmacy(pha, patients)]))
    return segs[2:-1]


def write_big_asap(path: Path, pharmacies: int, patients_per_pharmacy: int, fills_per_patient: int = 2) -> int:
    """Write a valid ASAP 4.2 file; returns its number of dispensations (all valid).

    The writer makes one pharmacy's block; the file repeats it under distinct NCPDP numbers (so
    every fill has its own dispensation_id), which keeps generation well under a second for
    hundreds of thousands of fills. Trailers are recounted as the writer counts them.
    """
    patients = []
    rx = 0
    for p in range(patients_per_pharmacy):
        fills = []
        for _ in range(fills_per_patient):
            rx += 1
            fills.append(AsapDispensation(
                dsp={"DSP01": "00", "DSP02": f"RX{rx:08d}", "DSP03": "20231231", "DSP04": "0",
                     "DSP05": f"202401{1 + rx % 28:02d}", "DSP06": "0", "DSP07": "01",
                     "DSP08": BIG_NDCS[rx % len(BIG_NDCS)], "DSP09": "60", "DSP10": "30", "DSP11": "01",
                     "DSP16": "01"},
                pre=PRESCRIBER))
        patients.append(AsapPatient({"PAT07": f"CRASHLAST{p}", "PAT08": "TESTA", "PAT15": "WV", "PAT16": "25301",
                                     "PAT18": "19700101", "PAT19": "F", "PAT20": "01"}, fills))
    first = asap_segments(AsapFile("4.2", "BIGCRASH", datetime(2024, 2, 1, 12), "5555550100", "CRASH", []))
    segs = first[:2]
    block = _pharmacy_block({"PHA02": "5100000", "PHA04": "CRASH PHARMACY"}, patients)
    for i in range(pharmacies):
        pha = _pharmacy_block({"PHA02": f"51{i:05d}", "PHA04": f"CRASH PHARMACY {i}"}, [])[0]
        segs += [pha, *block[1:]]
    segs.append(f"TT*BIGCRASH*{len(segs) + 1}")
    with open(path, "w") as out:
        out.write("".join(s + "~\n" for s in segs))
    return pharmacies * patients_per_pharmacy * fills_per_patient


def _pause_after_first_rename(marker: Path) -> None:
    real_replace = os.replace

    def replace(src, dst, *args, **kwargs):
        real_replace(src, dst, *args, **kwargs)
        if "tables" in Path(dst).parts and str(dst).endswith(".parquet"):
            marker.touch()
            time.sleep(60)  # the parent kills us here

    os.replace = replace


def main(argv: list[str]) -> int:
    from rxradar import settings
    from rxradar.ingest.pipeline import ingest_files
    from rxradar.workspace import Workspace

    root, source = Path(argv[0]), Path(argv[1])
    if len(argv) > 3 and argv[2] == "--pause-after-rename":
        _pause_after_first_rename(Path(argv[3]))
    s = settings.load(workspace=root)
    with Workspace(root) as ws:
        [outcome] = ingest_files(ws, "asap", [source], s)
    print(json.dumps({"status": outcome.status, "rows": outcome.rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
