"""Persons and patient indicators: the first two stages of an analysis.

Persons come from the deterministic stage in ``sql/persons.sql`` (one replaceable stage: a later
probabilistic resolver writes the same ``identity_persons`` and ``persons``). Patient indicators
are the declarations in :mod:`rxradar.indicators`, evaluated over the daily MME step function and
the period's fills that ``sql/patient_rx.sql`` builds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from rxradar.engine import Engine, hmac_pads
from rxradar.indicators import Indicator, indicator_sql

EARLY_REFILL_MODES = ("overlap", "shift")


@dataclass(frozen=True)
class Period:
    start: date
    end: date

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"the period ends ({self.end}) before it starts ({self.start})")

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def __str__(self) -> str:
        return f"{self.start} to {self.end}"


def resolve_persons(engine: Engine, key: bytes) -> int:
    """Temporary tables ``identity_persons`` and ``persons``; returns the number of persons."""
    inner, outer = hmac_pads(key)
    engine.set_variables(hmac_inner=inner, hmac_outer=outer)
    engine.execute("persons")
    return int(engine.scalar("SELECT count(*) FROM persons"))


def build_patient_indicators(engine: Engine, period: Period, items: list[Indicator], *, early_refill: str,
                             lookback_days: int) -> int:
    """Temporary tables ``rx``, ``opioid_rx``, ``segments`` and ``patient_indicators`` (one row per
    person with opioids on hand in the period); returns the number of patients."""
    if early_refill not in EARLY_REFILL_MODES:
        raise ValueError(f"early_refill must be one of {EARLY_REFILL_MODES}, not {early_refill!r}")
    engine.set_variables(period_start=period.start, period_end=period.end,
                         lookback_start=period.start - timedelta(days=lookback_days), early_refill=early_refill)
    engine.execute("patient_rx")
    sql, params = indicator_sql(items)
    return engine.materialize("patient_indicators", sql, {**params, "period_days": period.days})
