"""Persons and patient indicators: the first two stages of an analysis.

Persons come from the deterministic stage in ``sql/persons.sql`` (one replaceable stage: a later
probabilistic resolver writes the same ``identity_persons`` and ``persons``). Patient indicators
are the declarations in :mod:`rxradar.indicators`, evaluated over the daily MME step function and
the period's fills that ``sql/rx_fills.sql``, ``rx_segments.sql`` and ``rx_opioid.sql`` stage.
"""

from __future__ import annotations

from dataclasses import dataclass
import math
from datetime import date, timedelta
from pathlib import Path

from rxradar.engine import Engine, hmac_pads, sql_text
from rxradar.indicators import Indicator, indicator_sql

EARLY_REFILL_MODES = ("overlap", "shift")
# Persons are processed in buckets of about this many fills: the windows of one bucket need
# roughly 1.5 GB of engine memory, and a bucket costs one scan of the staged fills.
FILLS_PER_BUCKET = 10_000_000
BUCKET_STAGES = {"segments": "rx_segments", "opioid_rx": "rx_opioid", "prescriber_patients": "rx_prescriber_patients"}


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


def buckets_for(engine: Engine) -> int:
    """Buckets of about FILLS_PER_BUCKET stored dispensation records (a count Parquet metadata
    answers at once)."""
    return max(1, math.ceil(int(engine.scalar("SELECT count(*) FROM dispensations_records")) / FILLS_PER_BUCKET))


def build_patient_indicators(engine: Engine, period: Period, items: list[Indicator], *, early_refill: str,
                             lookback_days: int, stage_dir: Path, early_refill_used_share: float = 0.75,
                             buckets: int = 1) -> int:
    """Views ``rx``, ``segments``, ``opioid_rx``, ``prescriber_patients`` and ``patient_indicators``
    (one row per person with opioids on hand in the period), staged as Parquet in ``stage_dir``;
    returns the number of patients. An opioid fill is marked ``early`` when it came before
    ``early_refill_used_share`` of the same drug's previous supply had passed.

    Every per-person stage (daily MME steps, early refills, the indicators) runs one of
    ``buckets`` groups of persons at a time, so memory holds one bucket's fills, whatever the
    size of the state (:func:`buckets_for` sizes them).
    """
    if early_refill not in EARLY_REFILL_MODES:
        raise ValueError(f"early_refill must be one of {EARLY_REFILL_MODES}, not {early_refill!r}")
    stage_dir.mkdir(parents=True, exist_ok=True)
    engine.set_variables(period_start=period.start, period_end=period.end,
                         lookback_start=period.start - timedelta(days=lookback_days), early_refill=early_refill,
                         early_refill_used_share=early_refill_used_share)
    # Fills are written once, partitioned by bucket (pid modulo the number of buckets); then each
    # bucket of persons goes through every per-person stage alone, the indicators included.
    engine.set_variables(buckets=buckets)
    engine.copy_partitioned(sql_text("rx_fills"), stage_dir / "rx", "bucket")
    sql, params = indicator_sql(items)
    params = {**params, "period_days": period.days}
    staged: dict[str, list[Path]] = {name: [] for name in (*BUCKET_STAGES, "patient_indicator_rows")}
    for k in range(buckets):
        files = sorted((stage_dir / "rx" / f"bucket={k}").glob("*.parquet"))
        if files:
            engine.view_over("rx_bucket_files", files)
            engine.materialize("rx_bucket", "SELECT * FROM rx_bucket_files")
        else:  # no one in this bucket: the stages still get (empty) files, with their columns
            engine.materialize("rx_bucket", f"SELECT * EXCLUDE (bucket) FROM ({sql_text('rx_fills')}) LIMIT 0")
        engine.define_view("rx", "SELECT * FROM rx_bucket")
        for name, sql_file in BUCKET_STAGES.items():
            path = stage_dir / f"{name}-{k}.parquet"
            engine.copy_sql_to_parquet(sql_file, path)
            engine.view_over(name, [path])
            staged[name].append(path)
        if k == 0:
            engine.execute("patient_macros")  # over the views segments, opioid_rx and rx
        staged["patient_indicator_rows"].append(stage_dir / f"patient_indicators-{k}.parquet")
        engine.stage("patient_indicator_rows", sql, staged["patient_indicator_rows"][-1], params)
    for name, paths in staged.items():
        engine.view_over(name, paths)
    # The pseudonymous person_id joins once, here, not in every bucket.
    engine.define_view("patient_indicators",
                       "SELECT p.person_id, i.* FROM patient_indicator_rows AS i JOIN persons AS p USING (pid)")
    all_fills = sorted((stage_dir / "rx").rglob("*.parquet"))
    if all_fills:  # `rx`, every fill; with none at all it stays the (empty) last bucket
        engine.view_over("rx", all_fills)
        engine.drop("rx_bucket")
    return int(engine.scalar("SELECT count(*) FROM patient_indicators"))
