"""ASAP text in bulk: segments built over whole columns, and a file's header and trailers.

Everything here writes what :mod:`rxradar.ingest.asap_writer` writes for the same content
(trailing empty elements trimmed, ``PRE*`` when all are empty; TP01 = segments PHA..TP, TT02 =
segments TH..TT; formats.md §1.3), only without a Python call per segment.
"""

from __future__ import annotations

import os
from datetime import timedelta
from functools import lru_cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rxradar.synth.submissions import DAY_SECONDS, EPOCH, SEP

FILE_MODE = 0o644


def trimmed_segment(seg_id: str, elements: list[str | None]) -> str:
    """One segment from its elements (None reads as empty), trailing empty elements dropped."""
    values = ["" if e is None else e for e in elements]
    while values and values[-1] == "":
        values.pop()
    return SEP.join([seg_id, *(values or [""])])


def segment_column(seg_id: str, elements: list) -> pa.Array:
    """:func:`trimmed_segment` over columns: each element is an array (nulls read as empty) or a str."""
    elements = [e.combine_chunks() if isinstance(e, pa.ChunkedArray) else e for e in elements]
    args = [pa.scalar(e, pa.string()) if isinstance(e, str) else e for e in elements]
    joined = pc.binary_join_element_wise(seg_id, *args, SEP, null_handling="replace", null_replacement="")
    last = elements[-1]
    if isinstance(last, str):
        needs_trim = last == ""
    else:
        needs_trim = last.null_count > 0 or bool(pc.any(pc.equal(last, "")).as_py())
    if needs_trim:  # values never hold the separator (checked upstream), so only empty elements go
        joined = pc.utf8_rtrim(joined, characters=SEP)
        joined = pc.if_else(pc.equal(joined, seg_id), seg_id + SEP, joined)
    return joined


class TextBuffer:
    """The UTF-8 bytes of a string array, sliced by element ranges without copying."""

    def __init__(self, texts: pa.Array | pa.ChunkedArray):
        texts = texts.combine_chunks() if isinstance(texts, pa.ChunkedArray) else texts
        texts = texts.cast(pa.large_string())
        _, offsets, data = texts.buffers()
        self.offsets = np.frombuffer(offsets, dtype=np.int64)[texts.offset:texts.offset + len(texts) + 1]
        self.data = memoryview(data) if data is not None else memoryview(b"")

    def slice(self, start: int, end: int) -> memoryview:
        return self.data[self.offsets[start]:self.offsets[end]]


@lru_cache(maxsize=8192)
def _day_text(days: int) -> str:
    return (EPOCH + timedelta(days=days)).strftime("%Y%m%d")


class Envelope:
    """What one submitted file says about itself: TH, IS and PHA before the records, TP and TT after."""

    def __init__(self, version: str, prefix: str, created_s: int, term: str, newline: str, sender_id: str,
                 sender_name: str, pha: str):
        """``prefix`` starts the control number (the pharmacy's file prefix); ``created_s`` is UTC
        seconds since the epoch; ``pha`` is the PHA segment without its terminator."""
        days, seconds = divmod(created_s, DAY_SECONDS)
        hours, rest = divmod(seconds, 3600)
        self.day, self.time = _day_text(days), f"{hours:02d}{rest // 60:02d}{rest % 60:02d}"
        self.tcn = f"{prefix}{self.day}{self.time}"
        self.version, self.term, self.end = version, term, term + newline
        self.sender_id, self.sender_name, self.pha = sender_id, sender_name, pha

    def head(self, message: str = "") -> str:
        # TH06 is HHMMSS, with a Z (UTC) from 5.0 on (formats.md TH06); TH09 is the terminator.
        time = self.time + ("Z" if self.version.startswith("5") else "")
        th = SEP.join(["TH", self.version, self.tcn, "01", "", self.day, time, "P", "", self.term])
        is_ = trimmed_segment("IS", [self.sender_id, self.sender_name, message])
        return f"{th}{self.end}{is_}{self.end}{self.pha}{self.end}"

    def tail(self, tp01: int) -> str:
        return f"TP{SEP}{tp01}{self.end}TT{SEP}{self.tcn}{SEP}{tp01 + 3}{self.end}"  # TT02 adds TH, IS, TT

    def zero_report(self, monday: int) -> str:
        """A whole zero report for the week from ``monday`` (formats.md §1.6; asap_writer.zero_report)."""
        segs = ["PAT*******REPORT*ZERO", f"DSP*****{self.day}", "PRE*"]
        body = "".join(s + self.end for s in segs)
        return self.head(f"#{_day_text(monday)}#-#{_day_text(monday + 6)}#") + body + self.tail(len(segs) + 2)


def write_parts(path: str, *parts: bytes | memoryview) -> None:
    """Create ``path`` holding ``parts`` (one system call to write them all)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        total, written = sum(len(p) for p in parts), os.writev(fd, parts)
        if written < total:  # short write (rare): finish with plain writes
            data = b"".join(bytes(p) for p in parts)[written:]
            while data:
                data = data[os.write(fd, data):]
    finally:
        os.close(fd)
