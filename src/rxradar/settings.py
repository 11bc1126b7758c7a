"""Every setting in one table: name, default, help. Flags win, then RXRADAR_* variables, then defaults.

This is the only module that reads the environment.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields, replace
from datetime import date
from pathlib import Path
from typing import Any

from rxradar.disclosure import SMALL_CELL


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
    max_quantity: float = field(
        default=10_000.0,
        metadata={"help": "an ASAP quantity dispensed (DSP09: tablets, mL, g or patches) above this is rejected "
                          "as implausible. A 365-day supply (max_days_supply) of 24 tablets a day is 8,760; "
                          "NCPDP quantities are at most 9,999,999.999, so larger values are keying errors (an "
                          "Rx or NDC number in the wrong element) and would overflow MME arithmetic"},
    )
    earliest_asap_date: str = field(
        default="1995-01-01",
        metadata={"help": "fill dates (DSP05) before this are rejected, and written dates (DSP03) before it "
                          "are not kept: the first ASAP standard for PDMP reporting is ASAP 1995, the oldest "
                          "version PDMPs accept, so no ASAP record is older"},
    )
    max_days_after_file: int = field(
        default=7,
        metadata={"help": "a fill date more than this many days after the file was created (TH05, or today) "
                          "is rejected; up to it, kept with a warning (a sender's clock may be off; PDMPs "
                          "take weekly submissions)"},
    )
    max_age_years: int = field(
        default=120,
        metadata={"help": "a patient birth date (PAT18) more than this many years ago, or in the future, is not "
                          "kept (warning): the longest verified human life is 122 years (Robine & Allard, "
                          "Science 1998)"},
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
    csv_max_record_bytes: int = field(
        default=131_072,
        metadata={"help": "a CSV record (all its lines) longer than this many bytes is rejected with its line, "
                          "not read; the csv module's own field limit is the same 131,072, and no death, "
                          "prescriber, pharmacy or crosswalk record comes near it"},
    )
    csv_max_record_lines: int = field(
        default=10,
        metadata={"help": "a quoted CSV field may run over at most this many lines (an address with a line "
                          "break); a quote that does not close by then is rejected with its first line and "
                          "reading goes on at the next line, so one stray quote cannot swallow the file"},
    )
    early_refill: str = field(
        default="overlap",
        metadata={"help": "daily MME when a refill comes before the last supply ran out: overlap (count both, "
                          "CDC/PBSS daily dose) or shift (the refill of the same drug starts when the earlier "
                          "supply ends)",
                  "choices": ("overlap", "shift")},
    )
    indicator_params: str = field(
        default="",
        metadata={"help": "patient indicator parameters to change, e.g. 'mpe_pbss.window_days=90; "
                          "oig_high_amounts.threshold=100' (see rxradar indicators)"},
    )
    risk_indicators: str = field(
        default="oig_high_amounts,oig_extreme_use,oig_doctor_shopping,mpe_pbss,omp_pqa,opioid_benzo_overlap,"
                "pqa_high_dosage_mme,naive_long_acting",
        metadata={"help": "patient flags that make a patient 'at risk' in prescriber measures (HHS-OIG counts "
                          "at-risk patients per prescriber)"},
    )
    high_dose_mme: float = field(
        default=90.0,
        metadata={"help": "a fill is high-dose at or above this MME/day (CDC 2022 guideline; PBSS)"},
    )
    peer_scope: str = field(
        default="state",
        metadata={"help": "prescriber peers: same specialty in the same state, HHS region (region) or "
                          "everywhere (national)",
                  "choices": ("state", "region", "national")},
    )
    min_peers: int = field(
        default=10,
        metadata={"help": "a peer group with fewer members falls back to all prescribers (pharmacies) of "
                          "the same scope"},
    )
    outlier_iqr: float = field(
        default=3.0, metadata={"help": "extreme outlier above peer Q3 + this x IQR (HHS-OIG OEI-02-09-00600)"})
    posterior_ratio: float = field(
        default=2.0, metadata={"help": "flag a rate likely above this multiple of the peer rate"})
    posterior_probability: float = field(
        default=0.95, metadata={"help": "... when the posterior probability of that is at least this"})
    early_refill_used_share: float = field(
        default=0.75,
        metadata={"help": "an opioid refill is early before this share of the last fill's days supply has "
                          "passed (payers' refill-too-soon edits)"},
    )
    small_cell: int = field(
        default=SMALL_CELL,
        metadata={"help": "counts of people from 1 to this minus one are withheld, with complementary "
                          "suppression, wherever the dashboard and API show aggregates by place (CMS cell size "
                          "suppression policy: no cell under 11)"},
    )
    retention_years: int = field(
        default=0,
        metadata={"help": "rxradar purge removes identified records (fills, identities, deaths, rejects' raw "
                          "text) dated more than this many years ago; 0 keeps them until purge --before is given. "
                          "PDMP statutes differ (South Dakota ARSD 20:51:32:11: 3 years; Iowa IAC 657-37.6: 4; "
                          "Kansas K.S.A. 65-1687 and Idaho Code 37-2726: 5; West Virginia Code ch. 60A art. 9: "
                          "at least 5), so no one default is right, and deleting by a guessed limit cannot be "
                          "undone (docs/retention.md)"},
    )
    urban_county_population: int = field(
        default=50_000,
        metadata={"help": "pharmacy peers: a county of at least this many residents is urban (the OMB "
                          "urban-core size of a metropolitan area)"},
    )

    secure_cookies: bool = field(
        default=False,
        metadata={"help": "mark the dashboard's cookies Secure, so browsers send them over HTTPS only: turn on "
                          "when serving behind TLS (a reverse proxy), where the server itself sees plain HTTP"},
    )
    max_request_bytes: int = field(
        default=16 * 1024,
        metadata={"help": "the dashboard refuses request bodies over this many bytes with 413, while they "
                          "arrive (its only body is the sign-in form, well under 1 KB)"},
    )

    request_threads: int = field(
        default=4,
        metadata={"help": "the dashboard answers at most this many requests at once, the rest waiting in "
                          "order: Python runs one thread at a time, and more threads only take turns at it "
                          "with the server's own loop, which made the slowest answers slower (docs/performance.md)"},
    )


def _coerce(value: str, like: Any) -> Any:
    if isinstance(like, Path):
        return Path(value)
    if isinstance(like, bool):
        return value.lower() in {"1", "true", "yes"}
    if isinstance(like, int):
        return int(value)
    if isinstance(like, float):
        return float(value)
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
    for f in fields(Settings):
        allowed = f.metadata.get("choices")
        if allowed and getattr(settings, f.name) not in allowed:
            raise ValueError(f"{f.name} must be one of {', '.join(allowed)}, not {getattr(settings, f.name)!r}")
    from rxradar.indicators import indicators, parse_overrides

    known = {i.id: i.kind for i in indicators(parse_overrides(settings.indicator_params))}
    for name in filter(None, (x.strip() for x in settings.risk_indicators.split(","))):
        if known.get(name) != "flag":
            raise ValueError(f"risk_indicators: {name!r} is not a patient flag; flags are "
                             f"{', '.join(k for k, v in known.items() if v == 'flag')}")
    if settings.retention_years < 0:
        raise ValueError(f"retention_years must be 0 (keep) or a number of years, not {settings.retention_years}")
    for name in ("csv_max_record_bytes", "csv_max_record_lines"):
        if getattr(settings, name) < 1:
            raise ValueError(f"{name} must be at least 1, not {getattr(settings, name)}")
    if settings.max_request_bytes < 1024:
        raise ValueError(f"max_request_bytes must be at least 1024 (the sign-in form), not {settings.max_request_bytes}")
    if settings.request_threads < 1:
        raise ValueError(f"request_threads must be at least 1, not {settings.request_threads}")
    if settings.max_days_supply < 1:
        raise ValueError(f"max_days_supply must be at least 1, not {settings.max_days_supply}")
    if not settings.max_quantity > 0:
        raise ValueError(f"max_quantity must be more than 0, not {settings.max_quantity}")
    if settings.max_days_after_file < 0 or settings.max_age_years < 1:
        raise ValueError("max_days_after_file must be at least 0 and max_age_years at least 1")
    try:
        date.fromisoformat(settings.earliest_asap_date)
    except ValueError:
        raise ValueError(f"earliest_asap_date must be a date as YYYY-MM-DD, not {settings.earliest_asap_date!r}") \
            from None
    byte_size(settings.memory_limit)  # a size the engine understands, or a clear error now


SIZE_UNITS = {"": 1, "B": 1, "KB": 1000, "MB": 1000**2, "GB": 1000**3, "TB": 1000**4,
              "KIB": 1024, "MIB": 1024**2, "GIB": 1024**3, "TIB": 1024**4}


def byte_size(text: str) -> int:
    """Bytes in a size as the engine's memory_limit takes it: '6GB', '512MB', '1.5GiB'."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*", text)
    if not match or match.group(2).upper() not in SIZE_UNITS:
        raise ValueError(f"memory_limit {text!r} is not a size such as 6GB, 512MB or 2GiB")
    return int(float(match.group(1)) * SIZE_UNITS[match.group(2).upper()])


def choices(name: str) -> tuple[str, ...]:
    """The values a setting with a fixed set of choices may take."""
    return next(f.metadata["choices"] for f in fields(Settings) if f.name == name)


def describe() -> list[tuple[str, Any, str]]:
    """(name, default, help) for every setting, for docs and ``rxradar settings``."""
    return [(f.name, f.default, f.metadata["help"]) for f in fields(Settings)]
