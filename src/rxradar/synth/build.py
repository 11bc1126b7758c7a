"""``rxradar synth``: build a synthetic state and write it as a PDMP would receive it, with truth."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from rxradar.synth import chunks
from rxradar.synth.chunks import chunk_sizes
from rxradar.synth.config import SynthConfig
from rxradar.synth.generate import build_world, generate_worlds
from rxradar.synth.submissions import patient_fields
from rxradar.synth.world import World
from rxradar.synth.writers import write_asap, write_deaths, write_registries, write_truth, write_workspace
from rxradar.synth.writers_other import TRUTH_README

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
    """Generate the state and write it under ``out`` (layout in the README and ``truth/README.md``).

    ``parquet`` is written a chunk of people at a time (generate.generate_worlds), so memory stays
    bounded whatever the size; ``asap`` builds the whole state in memory first.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt == "asap" and len(chunk_sizes(config.persons)) > 1:
        raise ValueError(f"ASAP files are written from a state held in memory, at most {chunks.CHUNK_PERSONS:,} "
                         f"persons; use --format parquet for {config.persons:,}")
    say = step or (lambda _msg: None)
    out.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        return _synthesize_parquet(config, out, say)
    say("generating people, providers, prescriptions and deaths")
    world = build_world(config)
    say("writing ASAP submissions")
    fault_table = write_asap(world, out / "asap", seed=config.seed)
    say("writing death records and registries")
    write_deaths(world, out)
    write_registries(world, out)
    say("writing truth")
    write_truth(world, out)
    pacsv.write_csv(fault_table, out / "truth" / "faults.csv")
    return SynthSummary(out, world.persons.num_rows, world.prescribers.num_rows, world.pharmacies.num_rows,
                        world.fills.num_rows, world.deaths.num_rows, world.anomalies.num_rows, fault_table.num_rows)


def _synthesize_parquet(config: SynthConfig, out: Path, say: Callable[[str], None]) -> SynthSummary:
    """Each chunk goes into the workspace as an ingest of its own (appended; providers again each
    time, which the canonical views merge) and is appended to truth/."""
    truth = TruthWriter(out)
    sizes = chunk_sizes(config.persons)
    worlds = generate_worlds(config)
    if len(sizes) > 1:
        worlds = _made_ahead(worlds)
    try:
        for k in range(len(sizes)):
            where = f" (people chunk {k + 1} of {len(sizes)})" if len(sizes) > 1 else ""
            say(f"generating people, providers, prescriptions and deaths{where}")
            world = next(worlds)
            say(f"writing canonical tables into a workspace{where}")
            write_workspace(world, out / "workspace")
            say(f"writing truth{where}")
            truth.add(world)
            del world  # at most two chunks in memory: this one being written, the next being made
    except BaseException:
        truth.abandon()
        raise
    rows = truth.close()
    return SynthSummary(out, rows["persons"], rows["prescribers"], rows["pharmacies"], rows["fills"], rows["deaths"],
                        rows["anomalies"], 0)


def _made_ahead(worlds: Iterator[World]) -> Iterator[World]:
    """The worlds, each next one made in a background thread while the caller writes the last.

    Generation is mostly numpy and writing mostly Arrow and DuckDB, which release the GIL: on two
    cores a 3-chunk state took 178 s instead of 231 s, at 6.2 GB instead of 4.1 GB (two chunks are
    in memory at once)."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="synth-chunk") as pool:
        ahead = pool.submit(next, worlds, None)
        while (world := ahead.result()) is not None:
            ahead = pool.submit(next, worlds, None)
            yield world
            del world


class TruthWriter:
    """``truth/`` as :func:`~rxradar.synth.writers_other.write_truth` writes it, but fed a chunk at
    a time: persons, identity variants, fills and deaths are appended to their Parquet files;
    providers and anomalies (the same in every chunk) are written once."""

    APPENDED = ("persons", "identity_variants", "fills", "deaths")

    def __init__(self, out: Path):
        self.truth = out / "truth"
        self.truth.mkdir(parents=True, exist_ok=True)
        self.writers: dict[str, pq.ParquetWriter] = {}
        self.rows: dict[str, int] = {}
        self.about: dict | None = None  # state, seed, notes and anomaly count, from the first chunk

    def add(self, world: World) -> None:
        variants = world.identity_variants.append_column("identity_key", patient_fields(world)["identity_key"])
        tables = {"persons": world.persons, "identity_variants": variants, "fills": world.fills,
                  "deaths": world.deaths}
        if self.about is None:
            self.about = {"state": world.state, "seed": world.seed, "anomalies": world.anomalies.num_rows,
                          "notes": {k: v for k, v in world.notes.items() if k != "chunk"}}
            for name in ("prescribers", "pharmacies"):
                pq.write_table(getattr(world, name), self.truth / f"{name}.parquet", compression="zstd")
                self.rows[name] = getattr(world, name).num_rows
            pacsv.write_csv(world.anomalies, self.truth / "anomalies.csv")
        for name, table in tables.items():
            if name not in self.writers:
                self.writers[name] = pq.ParquetWriter(self.truth / f"{name}.parquet", table.schema,
                                                      compression="zstd")
            self.writers[name].write_table(table)
            self.rows[name] = self.rows.get(name, 0) + table.num_rows

    def close(self) -> dict[str, int]:
        """Finish the files and write world.json and README.md; returns rows per table."""
        if self.about is None:
            raise ValueError("no chunk of the state was written")
        for writer in self.writers.values():
            writer.close()
        self.writers.clear()
        rows = {name: self.rows[name] for name in (*self.APPENDED, "prescribers", "pharmacies")}
        rows["anomalies"] = self.about["anomalies"]
        summary = {"state": self.about["state"], "seed": self.about["seed"], "rows": rows,
                   "notes": self.about["notes"]}
        (self.truth / "world.json").write_text(json.dumps(summary, indent=2, sort_keys=True, default=str) + "\n")
        (self.truth / "README.md").write_text(TRUTH_README)
        return rows

    def abandon(self) -> None:
        """Close the files without world.json, which only a complete truth/ has."""
        for writer in self.writers.values():
            writer.close()
        self.writers.clear()
        (self.truth / "world.json").unlink(missing_ok=True)
