"""The synthetic state: deterministic, consistent with its truth, and shaped like real data."""

from __future__ import annotations

from collections import Counter
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pytest
from reference_miles import miles_by_cosines

from rxradar.catalog import open_engine
from rxradar.ingest.pipeline import ingest_files
from rxradar.reference.ndc import products_with_factors
from rxradar.settings import load as load_settings
from rxradar.synth.build import synthesize
from rxradar.synth.config import SCALES, SynthConfig, for_scale
from rxradar.synth.generate import build_world
from rxradar.workspace import Workspace

CONFIG = SynthConfig(persons=20_000, start=date(2021, 1, 1), end=date(2022, 12, 31), seed=11)


@pytest.fixture(scope="module")
def world():
    return build_world(CONFIG)


def test_same_seed_same_state_other_seed_other_state(world):
    again = build_world(CONFIG)
    assert again.fills.equals(world.fills)
    assert again.deaths.equals(world.deaths)
    assert again.anomalies.equals(world.anomalies)
    other = build_world(SynthConfig(**{**CONFIG.__dict__, "seed": 12}))
    assert not other.fills.equals(world.fills)


def test_every_fill_points_at_real_entities_inside_the_period(world):
    f = world.fills
    assert pc.max(f["person_id"]).as_py() < world.persons.num_rows
    assert pc.max(f["prescriber_key"]).as_py() < world.prescribers.num_rows
    assert pc.max(f["pharmacy_key"]).as_py() < world.pharmacies.num_rows
    assert pc.min(f["fill_date"]).as_py() >= CONFIG.start and pc.max(f["fill_date"]).as_py() <= CONFIG.end
    # a reported identity always belongs to the person who filled
    variants = dict(zip(world.identity_variants["variant_id"].to_pylist(),
                        world.identity_variants["person_id"].to_pylist()))
    assert all(variants[v] == p for v, p in zip(f["variant_id"].to_pylist(), f["person_id"].to_pylist()))
    assert pc.all(pc.less_equal(f["written_date"], f["fill_date"])).as_py()
    known = set(products_with_factors("cdc2017_datafile")["ndc11"].to_pylist())
    assert set(f["ndc11"].to_pylist()) <= known


def test_nobody_fills_a_prescription_after_their_death(world):
    died = dict(zip(world.deaths["person_id"].to_pylist(), world.deaths["death_date"].to_pylist()))
    late = [(p, d) for p, d in zip(world.fills["person_id"].to_pylist(), world.fills["fill_date"].to_pylist())
            if p in died and d > died[p]]
    assert late == []


def test_planted_anomalies_are_real_entities_with_their_signature(world):
    kinds = Counter(world.anomalies["kind"].to_pylist())
    assert kinds["pill_mill"] >= 4 and kinds["disproportionate_pharmacy"] >= 2 and kinds["doctor_shopper"] >= 6
    assert kinds["overdose_cluster"] == CONFIG.anomalies.cluster_size and kinds["treatment_desert"] == 1
    npis = set(world.prescribers["npi"].to_pylist())
    rows = world.anomalies.to_pylist()
    assert {r["entity_id"] for r in rows if r["kind"] == "pill_mill"} <= npis
    # A doctor shopper sees many prescribers and pharmacies.
    f = world.fills
    for r in (r for r in rows if r["kind"] == "doctor_shopper"):
        mine = f.filter(pc.equal(f["person_id"], int(r["entity_id"])))
        assert len(set(mine["prescriber_key"].to_pylist())) >= 4
        assert len(set(mine["pharmacy_key"].to_pylist())) >= 4
    # No buprenorphine prescriber practises in the treatment desert.
    desert = next(r["entity_id"] for r in rows if r["kind"] == "treatment_desert")
    p = world.prescribers
    assert not any(c == desert and s == "Addiction Medicine"
                   for c, s in zip(p["county_fips"].to_pylist(), p["specialty"].to_pylist()))


def test_pill_mill_prescribing_stands_out_from_its_specialty(world):
    """Total morphine milligram equivalents a mill prescribes exceed its specialty's 90th percentile."""
    ref = products_with_factors("cdc2017_datafile")
    mme_per_unit = {n: (s or 0) * (m or 0) for n, s, m in zip(ref["ndc11"].to_pylist(), ref["strength_per_unit"].to_pylist(),
                                                            ref["mme_factor"].to_pylist())}
    f, p = world.fills, world.prescribers
    npi = p["npi"].to_pylist()
    total = Counter()
    for k, ndc, q in zip(f["prescriber_key"].to_pylist(), f["ndc11"].to_pylist(), f["quantity"].to_pylist()):
        total[npi[k]] += mme_per_unit[ndc] * q
    mills = {r["entity_id"] for r in world.anomalies.to_pylist() if r["kind"] == "pill_mill"}
    specialty = dict(zip(npi, p["specialty"].to_pylist()))
    for mill in mills:
        peers = [total.get(n, 0) for n in npi if specialty[n] == specialty[mill] and n not in mills]
        assert total[mill] > np.percentile(peers, 90), (specialty[mill], total[mill], peers)


def test_drug_mix_days_supply_and_cash_look_like_dispensing_data(world):
    products = products_with_factors("cdc2017_datafile")
    drug = dict(zip(products["ndc11"].to_pylist(), products["drug"].to_pylist()))
    klass = dict(zip(products["ndc11"].to_pylist(), products["drug_class"].to_pylist()))
    f = world.fills
    ndcs = f["ndc11"].to_pylist()
    opioids = [drug[n] for n in ndcs if klass[n] == "opioid"]
    mix = Counter(opioids)
    top_two = {d for d, _ in mix.most_common(2)}
    assert top_two == {"hydrocodone", "oxycodone"}
    assert 0.45 < (mix["hydrocodone"] + mix["oxycodone"]) / len(opioids) < 0.9
    assert mix["buprenorphine"] == 0  # treatment is classed moud, not opioid
    days = Counter(f["days_supply"].to_pylist())
    assert days[30] / sum(days.values()) > 0.4  # chronic and benzodiazepine months
    assert sum(v for d, v in days.items() if d <= 7) / sum(days.values()) > 0.1  # acute courses
    cash = Counter(f["payment_type"].to_pylist())["01"] / f.num_rows
    assert 0.01 < cash < 0.12


def test_specialty_mix_and_death_rates(world):
    spec = Counter(world.prescribers["specialty"].to_pylist())
    primary = sum(spec[s] for s in ("Family Medicine", "Internal Medicine", "Nurse Practitioner",
                                    "Physician Assistant"))
    assert primary / world.prescribers.num_rows > 0.4
    deaths = world.deaths
    years = CONFIG.years
    from rxradar.icd10 import classify_death

    overdoses = sum(classify_death(u, c).is_overdose for u, c in
                    zip(deaths["underlying_cause"].to_pylist(), deaths["multiple_causes"].to_pylist()))
    per_100k = overdoses / world.persons.num_rows / years * 100_000
    all_per_1k = deaths.num_rows / world.persons.num_rows / years * 1_000
    assert 15 < per_100k < 400, per_100k  # WV 2019-2021: 50-90 per 100k; small samples vary
    assert 5 < all_per_1k < 20, all_per_1k  # WV crude death rate ~ 12-15 per 1,000


def test_people_and_providers_live_where_the_state_does_and_the_cluster_is_contiguous(world):
    from rxradar.reference.counties import adjacency, counties

    population = {r["fips"]: r["pop2019"] for r in counties("WV").to_pylist()}
    residents = Counter(world.persons["county_fips"].to_pylist())
    fips = sorted(population)
    r = np.corrcoef([population[f] for f in fips], [residents.get(f, 0) for f in fips])[0, 1]
    assert r > 0.99  # 20,000 residents over 55 counties, drawn in proportion to population
    # Rural areas are thinner: fewer prescribers and pharmacies per resident in the smallest
    # quarter of counties than in the largest.
    by_size = sorted(fips, key=population.get)
    smallest, largest = by_size[:len(fips) // 4], by_size[-(len(fips) // 4):]
    for table in (world.prescribers, world.pharmacies):
        here = Counter(table["county_fips"].to_pylist())
        per_100k = [sum(here.get(f, 0) for f in group) / sum(population[f] for f in group) * 100_000
                    for group in (smallest, largest)]
        assert per_100k[0] < per_100k[1], per_100k
    # The overdose cluster is a connected group of adjacent counties.
    cluster = {a["entity_id"] for a in world.anomalies.to_pylist() if a["kind"] == "overdose_cluster"}
    neighbours = adjacency("WV")
    reached, frontier = set(), [next(iter(cluster))]
    while frontier:
        county = frontier.pop()
        reached.add(county)
        frontier += [n for n in neighbours[county] if n in cluster and n not in reached]
    assert reached == cluster and len(cluster) == CONFIG.anomalies.cluster_size


def test_death_records_carry_identity_noise_too(world):
    noise = dict(zip(world.identity_variants["variant_id"].to_pylist(), world.identity_variants["noise"].to_pylist()))
    kinds = Counter(noise[v] for v in world.deaths["variant_id"].to_pylist())
    noisy = world.deaths.num_rows - kinds["none"]
    assert 0.03 < noisy / world.deaths.num_rows < 0.3, kinds
    assert len(set(kinds) - {"none"}) >= 4  # typos, nicknames, changed names, swapped dates...


STATE_CONFIG = SynthConfig(persons=200_000, seed=11)  # five years: about 600 opioid overdose deaths


@pytest.fixture(scope="module")
def state():
    """A state large enough for rates of rare events (built in about 5 s)."""
    return build_world(STATE_CONFIG)


@pytest.fixture(scope="module")
def died(state) -> np.ndarray:
    """Per resident of the state: died of an opioid overdose (classified from the death record)."""
    from rxradar.icd10 import classify_death

    died = np.zeros(state.persons.num_rows, dtype=bool)
    deaths = state.deaths
    for who, underlying, causes in zip(deaths["person_id"].to_pylist(), deaths["underlying_cause"].to_pylist(),
                                       deaths["multiple_causes"].to_pylist()):
        died[who] = classify_death(underlying, causes).is_opioid_overdose
    return died


def test_overdose_risk_rises_with_dose_benzodiazepines_and_multiple_prescribers(state, died):
    """Computed here from the fills and death records alone: the death rate among opioid users is
    higher at >= 90 MME/day than under 50, with a benzodiazepine than without, and with >= 4 opioid
    prescribers within 180 days than without; the state's rate is of West Virginia's order."""
    world, config = state, STATE_CONFIG
    f, n = world.fills, world.persons.num_rows
    products = products_with_factors("cdc2017_datafile")
    at = pc.index_in(f["ndc11"], products["ndc11"]).to_numpy()
    drug_class = np.asarray(products["drug_class"].to_pylist(), dtype=object)[at]
    per_unit = np.nan_to_num(np.asarray(products["strength_per_unit"].to_numpy(zero_copy_only=False), dtype=float)
                             * np.asarray(products["mme_factor"].to_numpy(zero_copy_only=False), dtype=float))[at]
    person = f["person_id"].to_numpy()
    opioid_fill, benzo_fill = drug_class == "opioid", drug_class == "benzodiazepine"
    mme = per_unit * f["quantity"].to_numpy() / np.maximum(f["days_supply"].to_numpy(), 1)
    max_mme = np.zeros(n)
    np.maximum.at(max_mme, person[opioid_fill], mme[opioid_fill])
    opioid = np.bincount(person[opioid_fill], minlength=n) > 0
    benzo = np.bincount(person[benzo_fill], minlength=n) > 0
    window = f["fill_date"].to_numpy().astype("datetime64[D]").astype(np.int64) // 180
    seen: dict[tuple[int, int], set[int]] = {}
    for who, w, prescriber in zip(person[opioid_fill], window[opioid_fill], f["prescriber_key"].to_numpy()[opioid_fill]):
        seen.setdefault((who, w), set()).add(prescriber)
    many = np.zeros(n, dtype=bool)
    many[[who for (who, _), prescribers in seen.items() if len(prescribers) >= 4]] = True

    def ratio(exposed: np.ndarray, unexposed: np.ndarray) -> float:
        return died[opioid & exposed].mean() / died[opioid & unexposed].mean()

    assert 40 < died.sum() / n / config.years * 100_000 < 90
    assert ratio(max_mme >= 90, max_mme < 50) > 3
    assert ratio(benzo, ~benzo) > 1.5
    assert ratio(many, ~many) > 1.5


def test_pill_mill_patients_pay_cash_travel_further_and_die_more(state, died):
    world = state
    f = world.fills
    prescriber, person = f["prescriber_key"].to_numpy(), f["person_id"].to_numpy()
    mills = {a["entity_id"] for a in world.anomalies.to_pylist() if a["kind"] == "pill_mill"}
    at_mill = np.isin(prescriber, [k for k, npi in enumerate(world.prescribers["npi"].to_pylist()) if npi in mills])
    cash = np.asarray(f["payment_type"].to_pylist(), dtype=object) == "01"
    assert cash[at_mill].mean() > 3 * cash[~at_mill].mean()
    # Miles from the patient's county to the prescriber's, centroid to centroid (once per pair of counties).
    home = np.asarray(world.persons["county_fips"].to_pylist(), dtype=object)[person]
    office = np.asarray(world.prescribers["county_fips"].to_pylist(), dtype=object)[prescriber]
    pairs, which = np.unique(np.stack([home, office]).astype(str), axis=1, return_inverse=True)
    miles = np.array([miles_by_cosines(h, o) for h, o in pairs.T])[which.ravel()]
    assert np.median(miles[at_mill]) > 20 > np.median(miles[~at_mill])
    patients = np.zeros(world.persons.num_rows, dtype=bool)
    patients[np.unique(person[at_mill])] = True
    others = np.zeros_like(patients)
    others[np.unique(person[~at_mill])] = True
    assert died[patients].mean() > 1.2 * died[others & ~patients].mean()


def test_scale_presets_promise_sizes():
    assert for_scale("small").persons == SCALES["small"][0] == 20_000
    assert for_scale("medium").persons == 500_000 and for_scale("large").persons == 10_000_000
    with pytest.raises(ValueError, match="unknown scale"):
        for_scale("huge")


def test_more_persons_than_the_state_has_residents_is_warned_with_states_that_fit():
    from rxradar.synth.population import overpopulated

    assert overpopulated(for_scale("medium")) is None  # 500,000 of West Virginia's 1,792,147
    assert overpopulated(for_scale("large", state="OH")) is None
    # The 2019 estimates: North Carolina 10,488,084, Georgia 10,617,423, Ohio 11,689,100.
    assert overpopulated(for_scale("large")) == (
        "10,000,000 persons is more than WV's 1,792,147 residents (2019), so rates per resident will come out "
        "impossible; states with as many people: NC, GA, OH (--state)")
    assert overpopulated(for_scale("large", persons=40_000_000)).endswith("will come out impossible")


def test_dispensations_per_person_match_the_presets():
    default_period = build_world(SynthConfig(persons=5_000, seed=3))
    per_person = default_period.fills.num_rows / 5_000
    promised = SCALES["small"][1] / SCALES["small"][0]
    assert promised * 0.75 < per_person < promised * 1.25, (per_person, promised)


def test_synthetic_asap_files_ingest_with_only_the_planted_faults(tmp_path: Path):
    config = SynthConfig(persons=1_500, start=date(2022, 1, 1), end=date(2022, 6, 30), seed=5)
    summary = synthesize(config, tmp_path / "state")
    ws_root = tmp_path / "ws"
    settings = load_settings(workspace=ws_root)
    with Workspace(ws_root) as ws:
        outcomes = ingest_files(ws, "asap", [tmp_path / "state" / "asap"], settings)
        # A weekly file whose only records are planted faults fails whole, with one reason.
        failed = {o.path.name for o in outcomes if o.status == "failed"}
        assert all(o.status in ("ingested", "already-ingested") or "none of its" in o.message for o in outcomes)
        rejects = ws.rejects().to_pylist()
    faults = pacsv.read_csv(tmp_path / "state" / "truth" / "faults.csv").to_pylist()
    expected = Counter((f["field"], f["severity"]) for f in faults
                       if f["severity"] in ("rejected", "warning") and f["file"] not in failed)
    assert expected  # the small state has planted faults of each kind
    found = Counter((r["field"], r["severity"]) for r in rejects if r["record_number"] is not None)
    assert found == expected
    with open_engine(ws := Workspace(ws_root), settings) as engine:
        kept = engine.scalar("SELECT count(*) FROM dispensations")
    ws.close()
    assert kept <= summary.dispensations


def test_overdose_cluster_and_treatment_desert_carry_a_higher_burden(state, died):
    """Residents of the planted cluster die of opioid overdoses at about rr_cluster_county times
    the rate elsewhere, and the treatment desert at about rr_desert_county times (10 deaths at
    this size, so its bound is looser): the burden a hot-spot scan and a desert finder must see."""
    world, mortality = state, STATE_CONFIG.mortality
    home = np.asarray(world.persons["county_fips"].to_pylist(), dtype=object)
    planted = world.anomalies.to_pylist()
    in_cluster = np.isin(home, [a["entity_id"] for a in planted if a["kind"] == "overdose_cluster"])
    in_desert = home == next(a["entity_id"] for a in planted if a["kind"] == "treatment_desert")
    elsewhere = died[~in_cluster & ~in_desert].mean()
    assert in_cluster.sum() > 5_000 and in_desert.sum() > 1_000
    assert 0.7 * mortality.rr_cluster_county < died[in_cluster].mean() / elsewhere < 1.4 * mortality.rr_cluster_county
    assert 1.2 < died[in_desert].mean() / elsewhere < 1.6 * mortality.rr_desert_county
