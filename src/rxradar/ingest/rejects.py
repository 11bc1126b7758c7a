"""Rejected records and warnings, as one Arrow table per file."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from rxradar.privacy import mask_ssn_shaped
from rxradar.schema import REJECTS

REJECTED = "rejected"
WARNING = "warning"


class UnreadableFile(ValueError):
    """A source file none of which can be kept. The message names the file and the rule it breaks,
    never a value from it: it becomes the manifest's detail and the command's output."""


@dataclass(frozen=True)
class Reject:
    """One problem with one record. ``severity`` says whether the record was kept."""

    source_file: str
    record_number: int | None
    field: str | None
    reason: str
    raw: str | None = None
    segment: str | None = None
    segment_number: int | None = None
    line: int | None = None
    severity: str = REJECTED


def rejects_table(rejects: list[Reject], ingest_id: int | None = None) -> pa.Table:
    """The readers' rejects as one table; raw text has SSN-shaped digits starred wherever they
    stand (here, where every reader's rejects pass, and only for the records that have one)."""
    rows = {c.name: [] for c in REJECTS.columns}
    for r in rejects:
        rows["ingest_id"].append(ingest_id)
        for name in rows:
            if name != "ingest_id":
                rows[name].append(getattr(r, name))
    rows["raw"] = [mask_ssn_shaped(raw) for raw in rows["raw"]]
    return pa.Table.from_pydict(rows, schema=REJECTS.schema)


@dataclass
class Parsed:
    """What a reader returns for one file: canonical rows per table, and rejects."""

    tables: dict[str, pa.Table]
    rejects: pa.Table
    records_read: int
