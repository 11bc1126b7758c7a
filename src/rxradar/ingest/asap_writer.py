"""Write ASAP PDMP files (4.1-5.0): the round-trip partner of :mod:`rxradar.ingest.asap`.

Segments are built from dicts keyed by element id (``{"DSP05": "20240104", ...}``); trailers
are counted, never supplied: TP01 = segments PHA..TP of that pharmacy, TT02 = all segments
TH..TT, TT01 = TH02 (formats.md §1.3).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import IO

# Highest element written per segment; fields beyond what a version defines are simply empty.
SEGMENT_WIDTH = {"IS": 5, "PHA": 13, "PAT": 27, "DSP": 34, "PRE": 15, "CDI": 5, "AIR": 11}


@dataclass
class AsapDispensation:
    dsp: dict[str, str]
    pre: dict[str, str]
    cdi: list[dict[str, str]] = field(default_factory=list)
    air: dict[str, str] | None = None


@dataclass
class AsapPatient:
    pat: dict[str, str]
    dispensations: list[AsapDispensation]


@dataclass
class AsapPharmacy:
    pha: dict[str, str]
    patients: list[AsapPatient]


@dataclass
class AsapFile:
    version: str
    control_number: str
    created: datetime
    sender_id: str
    sender_name: str
    pharmacies: list[AsapPharmacy]
    file_type: str = "P"
    message: str = ""


def _segment(seg_id: str, values: dict[str, str], sep: str, trim: bool) -> str:
    width = SEGMENT_WIDTH[seg_id]
    elements = [values.get(f"{seg_id}{k:02d}", "") for k in range(1, width + 1)]
    if trim:
        while elements and elements[-1] == "":
            elements.pop()
        if not elements:
            elements = [""]  # "PRE*" as zero reports write it
    return sep.join([seg_id, *elements])


def _created_time(version: str, created: datetime) -> str:
    # 5.0 carries UTC time with a Z suffix; earlier versions HHMMSS (formats.md TH06).
    return created.strftime("%H%M%S") + ("Z" if version.startswith("5") else "")


def asap_segments(f: AsapFile, *, sep: str = "*", term: str = "~", trim: bool = True) -> list[str]:
    """All segments of ``f`` without terminators, TH first and TT last."""
    th = sep.join(["TH", f.version, f.control_number, "01", "", f.created.strftime("%Y%m%d"),
                   _created_time(f.version, f.created), f.file_type, "", term])
    segs = [th, _segment("IS", {"IS01": f.sender_id, "IS02": f.sender_name, "IS03": f.message}, sep, trim)]
    for pharmacy in f.pharmacies:
        start = len(segs)
        segs.append(_segment("PHA", pharmacy.pha, sep, trim))
        for patient in pharmacy.patients:
            segs.append(_segment("PAT", patient.pat, sep, trim))
            for d in patient.dispensations:
                segs.append(_segment("DSP", d.dsp, sep, trim))
                segs.append(_segment("PRE", d.pre, sep, trim))
                segs.extend(_segment("CDI", c, sep, trim) for c in d.cdi)
                if d.air is not None:
                    segs.append(_segment("AIR", d.air, sep, trim))
        segs.append(sep.join(["TP", str(len(segs) - start + 1)]))
    segs.append(sep.join(["TT", f.control_number, str(len(segs) + 1)]))
    return segs


def write_asap(out: IO[str], f: AsapFile, *, sep: str = "*", term: str = "~", newline: str = "\n",
               trim: bool = True) -> int:
    """Write ``f`` to a text stream; returns the number of segments written."""
    segs = asap_segments(f, sep=sep, term=term, trim=trim)
    out.write("".join(s + term + newline for s in segs))
    return len(segs)


def zero_report(version: str, control_number: str, created: datetime, sender_id: str, sender_name: str,
                pharmacy: dict[str, str], period: tuple[date, date]) -> AsapFile:
    """A zero report: the pharmacy dispensed nothing reportable in ``period`` (formats.md §1.6)."""
    start, end = (d.strftime("%Y%m%d") for d in period)
    dsp = AsapDispensation(dsp={"DSP05": created.strftime("%Y%m%d")}, pre={})
    return AsapFile(version, control_number, created, sender_id, sender_name,
                    [AsapPharmacy(pharmacy, [AsapPatient({"PAT07": "REPORT", "PAT08": "ZERO"}, [dsp])])],
                    message=f"#{start}#-#{end}#")

