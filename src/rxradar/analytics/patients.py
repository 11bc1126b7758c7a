"""Persons and patient indicators: the first two stages of an analysis.

Persons come from the deterministic stage in ``sql/persons.sql`` (one replaceable stage: a later
probabilistic resolver writes the same ``identity_persons`` and ``persons``). Patient indicators
are the declarations in :mod:`rxradar.indicators`, evaluated over the daily MME step function and
the period's fills that ``sql/rx_fills.sql``, ``rx_segments.sql`` and ``rx_opioid.sql`` stage.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from rxradar.engine import Engine, sql_text
from rxradar.privacy import keyed_hash_function
from rxradar.indicators import Indicator, indicator_sql
from rxradar.settings import choices

EARLY_REFILL_MODES = choices("early_refill")
# Persons are processed in buckets of about this many fills. Smaller buckets keep each sort and
# hash table closer to the cache: on 2 cores, four buckets of 2.5M fills take 20 s where one of
# 10M takes 22 s (the whole large-state analysis 442 s against 474 s), and memory stays lower;
# below 2.5M the gain is gone, and each bucket still costs one read of its staged fills.
FILLS_PER_BUCKET = 2_500_000
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
    with keyed_hash_function(engine, key):
        engine.execute("persons")
    return int(engine.scalar("SELECT count(*) FROM persons"))


def buckets_for(engine: Engine) -> int:
    """Buckets of about FILLS_PER_BUCKET stored dispensation records (a count Parquet metadata
    answers at once)."""
    return max(1, math.ceil(int(engine.scalar("SELECT count(*) FROM dispensations_records")) / FILLS_PER_BUCKET))


def stage_fills(engine: Engine, period: Period, *, early_refill: str, lookback_days: int, stage_dir: Path,
                early_refill_used_share: float = 0.75, buckets: int = 1) -> None:
    """Write the fills every per-person stage reads (``sql/rx_fills.sql``) once, as Parquet under
    ``stage_dir/rx``, partitioned into ``buckets`` groups of persons (pid modulo ``buckets``)."""
    if early_refill not in EARLY_REFILL_MODES:
        raise ValueError(f"early_refill must be one of {EARLY_REFILL_MODES}, not {early_refill!r}")
    stage_dir.mkdir(parents=True, exist_ok=True)
    engine.set_variables(period_start=period.start, period_end=period.end,
                         lookback_start=period.start - timedelta(days=lookback_days), early_refill=early_refill,
                         early_refill_used_share=early_refill_used_share, buckets=buckets)
    engine.copy_partitioned(sql_text("rx_fills"), stage_dir / "rx", "bucket")


def each_bucket(engine: Engine, stage_dir: Path, buckets: int) -> Iterator[int]:
    """For each bucket of persons in turn, table ``rx_bucket`` (and view ``rx``) holds its staged
    fills while the caller works on it. Afterwards ``rx`` is every staged fill."""
    everything = sorted((stage_dir / "rx").rglob("*.parquet"))
    if everything:  # the bucket column comes from the folder names; a bucket reads only its files
        engine.view_over("rx_staged", everything, partitioned=True)
        bucket_sql = "SELECT * EXCLUDE (bucket) FROM rx_staged WHERE bucket = $k"
    else:  # no fills at all: every bucket is empty, with the columns of the query itself
        bucket_sql = f"SELECT * EXCLUDE (bucket) FROM ({sql_text('rx_fills')}) LIMIT 0"
    for k in range(buckets):
        engine.materialize("rx_bucket", bucket_sql, {"k": k} if everything else None)
        engine.define_view("rx", "SELECT * FROM rx_bucket")
        yield k
    if everything:  # with none at all, `rx` stays the (empty) last bucket
        engine.define_view("rx", "SELECT * EXCLUDE (bucket) FROM rx_staged")
        engine.drop("rx_bucket")


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
    stage_fills(engine, period, early_refill=early_refill, lookback_days=lookback_days, stage_dir=stage_dir,
                early_refill_used_share=early_refill_used_share, buckets=buckets)
    sql, params = indicator_sql(items)
    params = {**params, "period_days": period.days}
    staged: dict[str, list[Path]] = {name: [] for name in (*BUCKET_STAGES, "patient_indicator_rows")}
    for k in each_bucket(engine, stage_dir, buckets):
        for name, sql_file in BUCKET_STAGES.items():
            staged[name].append(stage_dir / f"{name}-{k}.parquet")
            engine.stage(name, sql_text(sql_file), staged[name][-1])
        if k == 0:
            engine.execute("patient_macros")  # over the views segments, opioid_rx and rx
        staged["patient_indicator_rows"].append(stage_dir / f"patient_indicators-{k}.parquet")
        engine.stage("patient_indicator_rows", sql, staged["patient_indicator_rows"][-1], params)
    for name, paths in staged.items():
        engine.view_over(name, paths)
    # The pseudonymous person_id is joined only where it is output; readers that need the
    # indicators by pid read patient_indicator_rows.
    engine.define_view("patient_indicators",
                       "SELECT p.person_id, i.* FROM patient_indicator_rows AS i JOIN persons AS p USING (pid)")
    return int(engine.scalar("SELECT count(*) FROM patient_indicator_rows"))
