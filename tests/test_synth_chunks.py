"""A synthetic state made a chunk of people at a time: keys unique across chunks, anomalies
planted once, and a chunked Parquet state that ingests as many dispensations as it has fills."""

from __future__ import annotations

import json
from collections import Counter
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from rxradar.catalog import open_engine, table_counts
from rxradar.settings import load as load_settings
from rxradar.synth import chunks
from rxradar.synth.build import synthesize
from rxradar.synth.config import SynthConfig
from rxradar.synth.generate import build_world, generate_worlds
from rxradar.synth.writers import write_truth
from rxradar.workspace import Workspace

CONFIG = SynthConfig(persons=9_000, start=date(2021, 1, 1), end=date(2022, 12, 31), seed=4)
CHUNK = 3_000  # three chunks of CONFIG's people


@pytest.fixture()
def small_chunks(monkeypatch):
    monkeypatch.setattr(chunks, "CHUNK_PERSONS", CHUNK)


@pytest.fixture(scope="module")
def parts():
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(chunks, "CHUNK_PERSONS", CHUNK)
        return list(generate_worlds(CONFIG))


@pytest.fixture(scope="module")
def world(parts):
    return chunks.concat_worlds(parts)


def column(table, name) -> np.ndarray:
    return np.asarray(table[name].to_numpy(zero_copy_only=False))


def test_chunk_sizes_cover_everyone_in_near_equal_chunks(small_chunks):
    assert chunks.chunk_sizes(9_000) == [3_000] * 3
    assert chunks.chunk_sizes(9_001) == [2_251, 2_250, 2_250, 2_250]
    assert chunks.chunk_sizes(10) == [10]


def test_death_ids_continue_each_year_and_never_pass_six_digits():
    deaths = pa.table({"death_id": ["2021WV000001", "2021WV000002", "2022WV000003"],
                       "death_date": [date(2021, 3, 1), date(2021, 5, 2), date(2022, 1, 9)]})
    keys = chunks.KeyRanges()
    assert keys.number_deaths(deaths, "WV", first_chunk=True).equals(deaths)
    assert keys.death_sequence == {2021: 2, 2022: 3}
    later = keys.number_deaths(deaths, "WV", first_chunk=False)
    assert later["death_id"].to_pylist() == ["2021WV000003", "2021WV000004", "2022WV000004"]
    keys.death_sequence[2022] = chunks.DEATH_SEQUENCE_MAX
    with pytest.raises(ValueError, match="six digits"):
        keys.number_deaths(deaths, "WV", first_chunk=False)


def test_each_chunk_holds_its_own_people(parts):
    assert [p.notes["chunk"] for p in parts] == [0, 1, 2]
    for k, p in enumerate(parts):
        ids = column(p.persons, "person_id")
        assert ids.min() == k * CHUNK and ids.max() == (k + 1) * CHUNK - 1
        for table in (p.fills, p.deaths, p.identity_variants):
            owners = column(table, "person_id")
            assert ((owners >= k * CHUNK) & (owners < (k + 1) * CHUNK)).all()
        assert p.fills.num_rows > 0 and p.deaths.num_rows > 0


def test_keys_are_unique_across_chunks(world):
    for table, key in ((world.persons, "person_id"), (world.identity_variants, "variant_id"),
                       (world.fills, "fill_key"), (world.deaths, "death_id")):
        assert pc.count_distinct(table[key]).as_py() == table.num_rows, key
    # Noisy reports are numbered on from the last person.
    variants = world.identity_variants
    noisy = column(variants, "variant_id")[column(variants, "noise") != "none"]
    assert noisy.min() == CONFIG.persons and noisy.max() == variants.num_rows - 1
    # An Rx number is one prescription at one pharmacy: its refills, never another chunk's.
    f = world.fills
    rx = f.group_by(["pharmacy_key", "rx_number"]).aggregate([("person_id", "min"), ("person_id", "max")])
    assert pc.all(pc.equal(rx["person_id_min"], rx["person_id_max"])).as_py()
    fill = f.group_by(["pharmacy_key", "rx_number", "refill_number", "fill_date", "partial_fill"]).aggregate([])
    assert fill.num_rows == f.num_rows
    # Death certificate numbers stay year, state and six digits, the year the death's.
    ids = world.deaths["death_id"].to_pylist()
    years = [d.year for d in world.deaths["death_date"].to_pylist()]
    assert all(len(i) == 12 and i[:4] == str(y) and i[4:6] == "WV" for i, y in zip(ids, years))


def test_fills_and_deaths_name_variants_of_the_same_person(world):
    variant_owner = dict(zip(world.identity_variants["variant_id"].to_pylist(),
                             world.identity_variants["person_id"].to_pylist()))
    for table in (world.fills, world.deaths):
        assert all(variant_owner[v] == p for v, p in zip(table["variant_id"].to_pylist(),
                                                          table["person_id"].to_pylist()))


def test_anomalies_are_planted_once_and_their_people_are_in_chunk_zero(parts, world):
    assert all(p.anomalies.equals(parts[0].anomalies) and p.prescribers.equals(parts[0].prescribers)
               for p in parts)
    kinds = Counter(world.anomalies["kind"].to_pylist())
    assert kinds["pill_mill"] >= 4 and kinds["doctor_shopper"] == CONFIG.persons // 500
    assert kinds["overdose_cluster"] == CONFIG.anomalies.cluster_size and kinds["treatment_desert"] == 1
    assert len(set(world.anomalies["entity_id"].to_pylist())) == world.anomalies.num_rows
    shoppers = [int(r["entity_id"]) for r in world.anomalies.to_pylist() if r["kind"] == "doctor_shopper"]
    assert max(shoppers) < CHUNK
    f = world.fills
    dead = set(world.deaths["person_id"].to_pylist())  # a shopper can die before the ring starts
    for person in set(shoppers) - dead:
        mine = f.filter(pc.equal(f["person_id"], person))
        assert len(set(mine["prescriber_key"].to_pylist())) >= 4, person
    # Mill patients are all in chunk 0; later chunks see the mills only as ordinary patients do.
    npi = world.prescribers["npi"].to_pylist()
    mills = {npi.index(r["entity_id"]) for r in world.anomalies.to_pylist() if r["kind"] == "pill_mill"}
    by_mill = f.filter(pc.is_in(f["prescriber_key"], pa.array(sorted(mills), "int32")))
    per_chunk = np.bincount(column(by_mill, "person_id") // CHUNK, minlength=3)
    assert per_chunk[0] > 2 * max(per_chunk[1], per_chunk[2])


def test_same_seed_same_chunks_and_each_chunk_draws_afresh(parts, world, small_chunks):
    again = build_world(CONFIG)
    assert again.fills.equals(world.fills) and again.deaths.equals(world.deaths)
    assert again.identity_variants.equals(world.identity_variants)
    # Chunks 1 and 2 have generators of their own, so their people differ.
    assert not parts[1].persons["birth_date"].equals(parts[2].persons["birth_date"])
    other = list(generate_worlds(SynthConfig(**{**CONFIG.__dict__, "seed": 5})))
    assert not other[1].persons["birth_date"].equals(parts[1].persons["birth_date"])


def test_one_chunk_is_the_in_memory_build():
    config = SynthConfig(persons=2_000, start=date(2022, 1, 1), end=date(2022, 12, 31), seed=9)
    whole = build_world(config)
    [only] = list(generate_worlds(config))
    assert "chunk" not in only.notes
    assert only.fills.equals(whole.fills) and only.identity_variants.equals(whole.identity_variants)
    assert column(whole.fills, "fill_key").tolist() == list(range(whole.fills.num_rows))
    assert whole.deaths["death_id"][0].as_py().endswith("000001")


def test_chunked_parquet_state_keeps_every_fill_apart(world, small_chunks, tmp_path: Path):
    summary = synthesize(CONFIG, tmp_path / "state", "parquet")
    assert summary.dispensations == world.fills.num_rows and summary.persons == CONFIG.persons
    ws_root = tmp_path / "state" / "workspace"
    with Workspace(ws_root) as ws, open_engine(ws, load_settings(workspace=ws_root)) as engine:
        counts = table_counts(engine)
        assert counts["dispensations"] == world.fills.num_rows  # no two fills share a dispensation_id
        assert counts["deaths"] == world.deaths.num_rows
        assert counts["prescribers"] == world.prescribers.num_rows  # written per chunk, merged by the view
        assert counts["pharmacies"] == world.pharmacies.num_rows
        assert len(ws.manifest()) == 3
    truth = tmp_path / "state" / "truth"
    assert pq.read_table(truth / "fills.parquet").equals(world.fills)
    assert pq.read_table(truth / "persons.parquet").num_rows == CONFIG.persons
    rows = json.loads((truth / "world.json").read_text())["rows"]
    assert rows["fills"] == world.fills.num_rows and rows["identity_variants"] == world.identity_variants.num_rows
    # Written again: every chunk is already there, nothing is added.
    synthesize(CONFIG, tmp_path / "state", "parquet")
    with Workspace(ws_root) as ws:
        assert len(ws.manifest()) == 3


def test_asap_text_needs_the_state_in_one_chunk(small_chunks, tmp_path: Path):
    with pytest.raises(ValueError, match="use --format parquet"):
        synthesize(CONFIG, tmp_path / "state", "asap")
    assert not (tmp_path / "state" / "asap").exists()


def test_truth_written_chunk_by_chunk_is_what_write_truth_writes(tmp_path: Path):
    config = SynthConfig(persons=1_500, start=date(2022, 1, 1), end=date(2022, 6, 30), seed=2)
    synthesize(config, tmp_path / "chunked", "parquet")
    write_truth(build_world(config), tmp_path / "whole")
    a, b = tmp_path / "chunked" / "truth", tmp_path / "whole" / "truth"
    assert sorted(p.name for p in a.iterdir()) == sorted(p.name for p in b.iterdir())
    for name in ("persons", "identity_variants", "fills", "deaths", "prescribers", "pharmacies"):
        assert pq.read_table(a / f"{name}.parquet").equals(pq.read_table(b / f"{name}.parquet")), name
    for name in ("anomalies.csv", "world.json", "README.md"):
        assert (a / name).read_text() == (b / name).read_text(), name
