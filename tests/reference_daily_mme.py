"""Daily MME the slow, obvious way: walk every day of the period and add up what is on hand.

The reference the engine's interval arithmetic (sql/rx_segments.sql) is tested against. It
expands prescriptions into days on purpose; nothing here is shared with the product code.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal


@dataclass(frozen=True)
class Fill:
    person: str
    fill_date: date
    days_supply: int
    drug_class: str  # opioid or benzodiazepine
    drug: str
    mme_per_day: float | None  # None for benzodiazepines and opioids without a factor
    fill_id: str = ""
    prescriber: str = "P1"
    pharmacy: str = "H1"


@dataclass
class Day:
    mme: Decimal
    opioids: int
    benzos: int


def supply_intervals(fills: list[Fill], mode: str) -> list[tuple[Fill, date, date]]:
    """(fill, first day, day after the last) of each fill's supply. ``shift``: a fill of the same
    drug made while earlier supply remains starts the day after that supply ends."""
    out = []
    last_stop: dict[tuple[str, str, str], date] = {}
    # Same-day fills of one drug queue shortest first (then the lower dose): the engine's order.
    for f in sorted(fills, key=lambda f: (f.fill_date, f.days_supply, f.mme_per_day or 0)):
        start = f.fill_date
        key = (f.person, f.drug_class, f.drug)
        if mode == "shift" and key in last_stop:
            start = max(start, last_stop[key])
        stop = start + timedelta(days=f.days_supply)
        last_stop[key] = stop
        out.append((f, start, stop))
    return out


def daily(fills: list[Fill], start: date, end: date, mode: str = "overlap") -> dict[str, dict[date, Day]]:
    """Every person's every day in [start, end] with anything on hand."""
    days: dict[str, dict[date, Day]] = defaultdict(dict)
    for f, first, stop in supply_intervals(fills, mode):
        d = max(first, start)
        while d < stop and d <= end:
            day = days[f.person].setdefault(d, Day(Decimal(0), 0, 0))
            if f.drug_class == "opioid":
                day.opioids += 1
                day.mme += round(Decimal(repr(f.mme_per_day)), 6) if f.mme_per_day is not None else Decimal(0)
            else:
                day.benzos += 1
            d += timedelta(days=1)
    return days


def summary(person_days: dict[date, Day], start: date, end: date, window: int = 90) -> dict:
    opioid_days = [d for d in person_days.values() if d.opioids > 0]
    total = sum((d.mme for d in person_days.values()), Decimal(0))
    n_days = (end - start).days + 1
    best_window = None
    if n_days >= window and opioid_days:
        series = [person_days.get(start + timedelta(days=i), Day(Decimal(0), 0, 0)).mme for i in range(n_days)]
        best_window = max(sum(series[i:i + window]) for i in range(n_days - window + 1)) / window
    return {
        "opioid_days": len(opioid_days),
        "avg_daily_mme": total / len(opioid_days) if opioid_days else None,
        "max_daily_mme": max(d.mme for d in opioid_days) if opioid_days else None,
        "days_ge_50mme": sum(1 for d in person_days.values() if d.mme >= 50),
        "days_ge_90mme": sum(1 for d in person_days.values() if d.mme >= 90),
        "opioid_overlap_days": sum(1 for d in person_days.values() if d.opioids >= 2),
        "opioid_benzo_overlap_days": sum(1 for d in person_days.values() if d.opioids and d.benzos),
        "total_mme": total,
        "max_window_average": best_window,
    }
