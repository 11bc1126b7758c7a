"""Looking at what was loaded: table counts, exports and a summary of rejects."""

from __future__ import annotations

import getpass
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from rxradar.analytics import store
from rxradar.durable import replacing
from rxradar.engine import Engine
from rxradar.reference.counties import counties
from rxradar.reference.ndc import products_with_factors
from rxradar.schema import DISPENSATION_DERIVED, TABLES
from rxradar.settings import Settings
from rxradar.workspace import Workspace

EXPORT_FORMATS = ("csv", "parquet")
PRODUCT_COLUMNS = ("ndc11", "drug", "drug_class", "long_acting", "dea_schedule", "strength_per_unit",
                   "strength_unit", "mme_factor")


class RestrictedError(PermissionError):
    """Identified data was asked for without saying so explicitly."""


def open_engine(ws: Workspace, settings: Settings) -> Engine:
    """An engine with the workspace's canonical tables and the reference tables attached."""
    engine = Engine(memory_limit=settings.memory_limit, threads=settings.threads, temp_directory=ws.root / "tmp")
    products = products_with_factors(settings.mme_table).select(list(PRODUCT_COLUMNS))
    places = counties().select(["fips", "state", "name", "lat", "lon", "pop2019"])
    engine.attach_tables(ws.live_files(), {"products": products, "counties": places})
    return engine


def table_counts(engine: Engine) -> dict[str, int]:
    return {name: int(engine.scalar(f"SELECT count(*) FROM {name}")) for name in TABLES}


def table_columns(table: str, identified: bool) -> list[str]:
    spec = TABLES[table]
    cols = [c for c in spec.columns if identified or not c.identified]
    if table == "dispensations":
        cols = [c for c in cols if c.name != "reporting_status"] + list(DISPENSATION_DERIVED)
    return [c.name for c in cols]


@dataclass(frozen=True)
class ExportResult:
    path: Path
    rows: int
    columns: list[str]


def export_table(ws: Workspace, settings: Settings, table: str, fmt: str, out: Path, *,
                 identified: bool = False, actor: str | None = None) -> ExportResult:
    """Write one canonical table, or one table of the last analysis. Identified columns only
    when ``identified`` is asked for (audited). The file is readable by its owner only: rows of
    records, people, prescribers or pharmacies, none through disclosure control."""
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"unknown format {fmt!r}; use one of {EXPORT_FORMATS}")
    if table in store.ANALYTICS_TABLES:
        return _export_analysis_table(ws, settings, table, fmt, out)
    if table not in TABLES:
        raise ValueError(f"unknown table {table!r}; tables are {sorted(TABLES)} and, from the last analysis, "
                         f"{list(store.ANALYTICS_TABLES)}")
    if TABLES[table].restricted and not identified:
        raise RestrictedError(f"{table} holds identified data; pass --identified to export it (the export is audited)")
    columns = table_columns(table, identified)
    select = f"SELECT {', '.join(_quote(c) for c in columns)} FROM {table} ORDER BY {_quote(columns[0])}"
    out.parent.mkdir(parents=True, exist_ok=True)
    with open_engine(ws, settings) as engine, replacing(out, private=True) as tmp:
        _copy(engine, select, fmt, tmp)
        rows = int(engine.scalar(f"SELECT count(*) FROM {table}"))
    if identified:
        ws.audit(actor or getpass.getuser(), "export_identified", table,
                 {"path": str(out), "rows": rows, "format": fmt})
    return ExportResult(out, rows, columns)


def _export_analysis_table(ws: Workspace, settings: Settings, table: str, fmt: str, out: Path) -> ExportResult:
    """One table of the current analysis, read from the version current when the export began
    (held until the file is written)."""
    snap = store.open_current(ws.root)
    path = snap.path(table) if snap else None
    if path is None:
        raise ValueError(f"the workspace has no {table} analysis table: run rxradar analyze first")
    out.parent.mkdir(parents=True, exist_ok=True)
    with snap, Engine(memory_limit=settings.memory_limit, threads=settings.threads,
                      temp_directory=ws.root / "tmp") as engine, replacing(out, private=True) as tmp:
        columns = pq.read_schema(path).names
        if fmt == "csv":
            lists = ", ".join(f"array_to_string({c}, '; ') AS {c}" for c in ("flags", "reasons") if c in columns)
            engine.copy_to_csv("SELECT * " + (f"REPLACE ({lists}) " if lists else "") + "FROM read_parquet(?)",
                               tmp, [str(path)])
        else:
            engine.copy_to_parquet("SELECT * FROM read_parquet($path)", tmp, {"path": str(path)})
        rows = pq.read_metadata(path).num_rows
    return ExportResult(out, rows, columns)


def _copy(engine: Engine, select: str, fmt: str, path: Path) -> None:
    if fmt == "csv":
        engine.copy_to_csv(select, path)
    else:
        engine.copy_to_parquet(select, path)


def _quote(identifier: str) -> str:
    # Column names come from the schema declarations, never from user input.
    return '"' + identifier.replace('"', '""') + '"'


@dataclass(frozen=True)
class RejectSummary:
    reason: str
    field: str | None
    severity: str
    source_file: str | None  # None when grouped across files
    count: int
    files: int


def rejects_summary(ws: Workspace, by_file: bool = False) -> list[RejectSummary]:
    """Rejects and warnings grouped by reason and element (and file, if asked), most frequent first."""
    file_column = "source_file" if by_file else "NULL"
    rows = ws.meta.execute(
        f"SELECT reason, field, severity, {file_column}, count(*), count(DISTINCT source_file) FROM rejects "
        f"GROUP BY reason, field, severity, {file_column} ORDER BY count(*) DESC, reason"
    ).fetchall()
    return [RejectSummary(*r) for r in rows]


def reject_totals(ws: Workspace) -> Counter:
    return Counter(dict(ws.meta.execute("SELECT severity, count(*) FROM rejects GROUP BY severity").fetchall()))

