"""Reading the last analysis back: the strongest leads, for the CLI, report and dashboard."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from rxradar.analytics import store

ENTITIES = {"prescribers": ("prescriber_metrics", "prescriber_id"), "pharmacies": ("pharmacy_metrics", "pharmacy_id")}


def top_leads(root: Path, entity: str, limit: int) -> list[dict]:
    """The ``limit`` best-ranked prescribers or pharmacies: id, peer group, score, what drives it, flags."""
    if entity not in ENTITIES:
        raise ValueError(f"entity must be one of {', '.join(ENTITIES)}, not {entity!r}")
    table, id_column = ENTITIES[entity]
    path = store.saved_tables(root).get(table)
    if path is None:
        raise FileNotFoundError(f"no analysis results in {root}: run rxradar analyze first")
    t = pq.read_table(path, columns=[id_column, "peer_group", "lead_score", "lead_components", "rank", "flags",
                                     "reasons"])
    rows = sorted(t.to_pylist(), key=lambda r: r["rank"])[:limit]
    return [{"id": str(r.pop(id_column)), **r} for r in rows]


def flagged_mask(table: pa.Table) -> pa.ChunkedArray:
    """Which rows of a metrics table carry at least one flag."""
    return pc.fill_null(pc.greater(pc.list_value_length(table["flags"]), 0), False)


def count_flagged(table: pa.Table) -> int:
    return int(pc.sum(flagged_mask(table)).as_py() or 0) if table.num_rows else 0
