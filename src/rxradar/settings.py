"""Every setting in one table: name, default, help. Flags win, then RXRADAR_* variables, then defaults.

This is the only module that reads the environment.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Settings:
    workspace: Path = field(
        default=Path("rxradar-workspace"),
        metadata={"help": "directory holding the Parquet tables, metadata database and key"},
    )
    mme_table: str = field(
        default="cdc2017_datafile",
        metadata={
            "help": "MME conversion factor table: cdc2017_datafile (CDC analytic NDC file, Sept 2017) "
            "or cdc2022 (CDC Clinical Practice Guideline 2022, MMWR 71(3))"
        },
    )
    max_days_supply: int = field(
        default=365,
        metadata={"help": "days supply above this is rejected as implausible (formats.md §3.4 data hygiene)"},
    )
    memory_limit: str = field(
        default="6GB", metadata={"help": "DuckDB memory limit; larger jobs spill to the workspace's tmp directory"}
    )
    threads: int = field(default=0, metadata={"help": "engine threads (0 = all cores)"})
    asap_batch_bytes: int = field(
        default=256 * 1024 * 1024,
        metadata={"help": "ASAP files are read by the engine in batches of up to this many bytes (many small "
                          "weekly files cost one pass; a larger file is a batch of its own)"},
    )



def _coerce(value: str, like: Any) -> Any:
    if isinstance(like, Path):
        return Path(value)
    if isinstance(like, bool):
        return value.lower() in {"1", "true", "yes"}
    if isinstance(like, int):
        return int(value)
    return value


def load(**overrides: Any) -> Settings:
    """Settings from explicit overrides (flags), then ``RXRADAR_<NAME>`` variables, then defaults."""
    base = Settings()
    values: dict[str, Any] = {}
    for f in fields(Settings):
        variable = f"RXRADAR_{f.name.upper()}"
        env = os.environ.get(variable)
        if env is not None:
            try:
                values[f.name] = _coerce(env, getattr(base, f.name))
            except ValueError:
                raise ValueError(f"{variable}={env!r} is not a valid {type(getattr(base, f.name)).__name__} "
                                 f"({f.metadata['help']})") from None
    values.update({k: v for k, v in overrides.items() if v is not None})
    unknown = set(values) - {f.name for f in fields(Settings)}
    if unknown:
        raise ValueError(f"unknown settings: {sorted(unknown)}")
    settings = replace(base, **values)
    _check(settings)
    return settings


def _check(settings: Settings) -> None:
    from rxradar.reference.ndc import mme_factor_tables

    if settings.mme_table not in mme_factor_tables():
        raise ValueError(f"mme_table {settings.mme_table!r} is not one of {', '.join(mme_factor_tables())}")
    if settings.max_days_supply < 1:
        raise ValueError(f"max_days_supply must be at least 1, not {settings.max_days_supply}")


def describe() -> list[tuple[str, Any, str]]:
    """(name, default, help) for every setting, for docs and ``rxradar settings``."""
    return [(f.name, f.default, f.metadata["help"]) for f in fields(Settings)]
