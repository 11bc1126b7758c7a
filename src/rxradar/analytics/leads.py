"""Reading the last analysis back: the strongest leads, for the CLI, report and dashboard."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from rxradar.analytics import store

class Entity(NamedTuple):
    table: str  # the analysis table of its metrics
    id_column: str
    singular: str


ENTITIES = {"prescribers": Entity("prescriber_metrics", "prescriber_id", "prescriber"),
            "pharmacies": Entity("pharmacy_metrics", "pharmacy_id", "pharmacy")}


def top_leads(root: Path, entity: str, limit: int) -> list[dict]:
    """The ``limit`` best-ranked prescribers or pharmacies: id, peer group, score, what drives it, flags."""
    if entity not in ENTITIES:
        raise ValueError(f"entity must be one of {', '.join(ENTITIES)}, not {entity!r}")
    table, id_column, _ = ENTITIES[entity]
    snap = store.open_current(root)
    path = snap.path(table) if snap else None
    if path is None:
        raise FileNotFoundError(f"no analysis results in {root}: run rxradar analyze first")
    with snap:  # the table is read from the version current now, even if another lands meanwhile
        t = pq.read_table(path, columns=[id_column, "peer_group", "lead_score", "lead_components", "rank", "flags",
                                         "reasons"])
    return [{"id": str(r.pop(id_column)), **r} for r in ranked(t).slice(0, limit).to_pylist()]


def ranked(table: pa.Table, *, peer_group: str | None = None, flagged: bool = False) -> pa.Table:
    """A metrics table's rows, strongest lead (rank 1) first; only one peer group's, or only the
    flagged, when asked."""
    mask = None
    if peer_group:
        mask = pc.equal(table["peer_group"], peer_group)
    if flagged:
        mask = flagged_mask(table) if mask is None else pc.and_(mask, flagged_mask(table))
    return (table if mask is None else table.filter(mask)).sort_by("rank")


def flagged_mask(table: pa.Table) -> pa.ChunkedArray:
    """Which rows of a metrics table carry at least one flag."""
    return pc.fill_null(pc.greater(pc.list_value_length(table["flags"]), 0), False)


def count_flagged(table: pa.Table) -> int:
    return int(pc.sum(flagged_mask(table)).as_py() or 0) if table.num_rows else 0
