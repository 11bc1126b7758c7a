"""Where a benchmarked run spends its time: the engine's steps, from its DEBUG log.

The engine logs every statement with its label and seconds (``rxradar -vv`` shows the same
lines). Steps repeated per bucket of persons or per slice of records add up under one label, with
their numbers written ``#`` (``write segments-#.parquet``), so the heaviest steps of a whole run
can be listed.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict

from rxradar.engine import STEP

ENGINE_LOGGER = "rxradar.engine"


class EngineSteps(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.seconds: dict[str, float] = defaultdict(float)
        self.runs: dict[str, int] = defaultdict(int)

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg != STEP:  # not a step
            return
        label, seconds = record.args
        key = re.sub(r"-\d+\.", "-#.", label)
        self.seconds[key] += seconds
        self.runs[key] += 1

    def __enter__(self) -> EngineSteps:
        logger = logging.getLogger(ENGINE_LOGGER)
        self._level = logger.level
        logger.setLevel(logging.DEBUG)
        logger.addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logger = logging.getLogger(ENGINE_LOGGER)
        logger.removeHandler(self)
        logger.setLevel(self._level)

    def total(self) -> float:
        return round(sum(self.seconds.values()), 2)

    def heaviest(self, n: int = 12) -> list[list]:
        """The n steps with most time in all: [label, seconds, times run]."""
        ranked = sorted(self.seconds.items(), key=lambda kv: -kv[1])[:n]
        return [[label, round(seconds, 2), self.runs[label]] for label, seconds in ranked]


def describe(steps: list[list], engine_s: float, run_s: float) -> str:
    """The steps as lines, then what the engine took in all and what the run spent elsewhere."""
    lines = [f"    {seconds:8.2f} s  {label}" + (f"  ({runs} runs)" if runs > 1 else "")
             for label, seconds, runs in steps]
    lines.append(f"    {engine_s:8.2f} s  in the engine, all steps; {run_s - engine_s:.2f} s outside it "
                 "(imports, reading files, Python)")
    return "\n".join(lines)
