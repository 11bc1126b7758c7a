"""Public reference data shipped with rxradar, each file with its SOURCE and terms beside it."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def data_path(*parts: str) -> Path:
    """Path of a shipped reference file, e.g. ``data_path("cdc", "opioids_mme_2017.csv")``."""
    return Path(str(files("rxradar.reference").joinpath("data", *parts)))
