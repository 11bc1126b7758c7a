"""Where analysis results live: ``DIR/analytics/<table>.parquet`` plus ``analysis.json`` (the
period and settings that made them). Each file is written under a temporary name and renamed,
so a reader sees the previous run's table or this run's, never half of one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rxradar.durable import fsync_dir, replacing
from rxradar.engine import Engine

ANALYTICS_TABLES = ("persons", "identity_persons", "patient_indicators", "prescriber_metrics",
                    "prescriber_months", "pharmacy_metrics", "deciles", "county_metrics")


def analytics_dir(root: Path) -> Path:
    return root / "analytics"


def save_table(engine: Engine, root: Path, name: str, sql: str) -> Path:
    folder = analytics_dir(root)
    folder.mkdir(exist_ok=True)
    final = folder / f"{name}.parquet"
    with replacing(final) as tmp:
        engine.copy_to_parquet(sql, tmp)
    return final


def save_about(root: Path, about: dict[str, Any]) -> None:
    folder = analytics_dir(root)
    folder.mkdir(exist_ok=True)
    write_json(folder / "analysis.json", about)
    fsync_dir(folder)


def write_json(path: Path, about: dict[str, Any]) -> Path:
    """``about`` (period, settings, parameters) as JSON, written under a temporary name and renamed."""
    with replacing(path) as tmp:
        tmp.write_text(json.dumps(about, indent=2, sort_keys=True, default=str) + "\n")
    return path


def load_about(root: Path) -> dict[str, Any] | None:
    path = analytics_dir(root) / "analysis.json"
    return json.loads(path.read_text()) if path.exists() else None


def saved_tables(root: Path) -> dict[str, Path]:
    folder = analytics_dir(root)
    return {n: folder / f"{n}.parquet" for n in ANALYTICS_TABLES if (folder / f"{n}.parquet").exists()}
