"""The straightforward way to read an ASAP file: line by line in Python, one dict per record.

It is the yardstick for ``bench/ingest.py``: it splits segments, keeps the current pharmacy and
patient, types the fields, checks NPI check digits, and writes the records to Parquet, which
is the least any reader has to do.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from rxradar.codes import npi_is_valid


def _date(s: str) -> date | None:
    try:
        return date(int(s[:4]), int(s[4:6]), int(s[6:8])) if len(s) == 8 else None
    except ValueError:
        return None


def parse(path: Path, out: Path) -> int:
    with open(path, encoding="utf-8") as f:
        head = f.readline()
        sep = head[2]
        term = head.rstrip("\r\n")[-1]
        pha: list[str] = []
        pat: list[str] = []
        rows: list[dict] = []
        dsp: list[str] | None = None
        for line in f:
            seg = line.rstrip("\r\n").rstrip(term).split(sep)
            kind = seg[0]
            if kind == "PHA":
                pha = seg
            elif kind == "PAT":
                pat = seg + [""] * (24 - len(seg))
            elif kind == "DSP":
                dsp = seg + [""] * (26 - len(seg))
            elif kind == "PRE" and dsp is not None:
                npi = seg[1] if len(seg) > 1 else ""
                days = int(dsp[10]) if dsp[10].isdigit() else None
                rows.append({
                    "pharmacy_id": pha[1], "last_name": pat[7], "first_name": pat[8], "birth_date": _date(pat[18]),
                    "sex": pat[19], "rx_number": dsp[2], "fill_date": _date(dsp[5]), "refill_number": int(dsp[6] or 0),
                    "ndc11": dsp[8], "quantity": float(dsp[9]) if dsp[9] else None, "days_supply": days,
                    "payment_type": dsp[16], "prescriber_npi": npi, "npi_ok": npi_is_valid(npi) if npi else False,
                })
                dsp = None
    pq.write_table(pa.Table.from_pylist(rows), out)
    return len(rows)
