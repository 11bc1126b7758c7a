"""``rxradar synth``: build a synthetic state and write it as a PDMP would receive it, with truth."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow.csv as pacsv

from rxradar.synth.config import SynthConfig
from rxradar.synth.generate import build_world
from rxradar.synth.writers import write_asap, write_deaths, write_registries, write_truth, write_workspace

FORMATS = ("asap", "parquet")


@dataclass(frozen=True)
class SynthSummary:
    out: Path
    persons: int
    prescribers: int
    pharmacies: int
    dispensations: int
    deaths: int
    anomalies: int
    faults: int


def synthesize(config: SynthConfig, out: Path, fmt: str = "asap",
               step: Callable[[str], None] | None = None) -> SynthSummary:
    """Generate the state and write it under ``out`` (layout in the README and ``truth/README.md``)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    say = step or (lambda _msg: None)
    say("generating people, providers, prescriptions and deaths")
    world = build_world(config)
    out.mkdir(parents=True, exist_ok=True)
    faults = 0
    if fmt == "asap":
        say("writing ASAP submissions")
        fault_table = write_asap(world, out / "asap", seed=config.seed)
        faults = fault_table.num_rows
        say("writing death records and registries")
        write_deaths(world, out)
        write_registries(world, out)
        say("writing truth")
        write_truth(world, out)
        pacsv.write_csv(fault_table, out / "truth" / "faults.csv")
    else:
        say("writing canonical tables into a workspace")
        write_workspace(world, out / "workspace")
        say("writing truth")
        write_truth(world, out)
    return SynthSummary(out, world.persons.num_rows, world.prescribers.num_rows, world.pharmacies.num_rows,
                        world.fills.num_rows, world.deaths.num_rows, world.anomalies.num_rows, faults)
