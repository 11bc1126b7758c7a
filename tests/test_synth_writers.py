"""Synthetic-state writers: ASAP files, deaths, registries, truth and the direct workspace writer.

A tiny World is built by hand below (three pharmacies on ASAP 4.2 with '~', 4.2A with '\\' and
5.0 with '~'; five prescribers; eight people reported under one to three spellings; a few
hundred fills over four weeks; three deaths). Everything written is read back through rxradar's
own ingest, so the tests hold whatever either side does inside.
"""

from __future__ import annotations

import csv
import io
import os
import random
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import csv as pa_csv
import pytest
from asap_builders import ALPRAZOLAM_025MG, BUPRENORPHINE_2MG, FENTANYL_25MCGHR, HYDROCODONE_5MG, OXYCODONE_10MG

from rxradar.catalog import open_engine, table_counts
from rxradar.codes import dea_with_check_digit, npi_with_check_digit
from rxradar.ingest.asap_writer import AsapDispensation, AsapFile, AsapPatient, AsapPharmacy, zero_report
from rxradar.ingest.asap_writer import write_asap as asap_writer_write
from rxradar.ingest.deaths import read_deaths_csv
from rxradar.ingest.ije import read_deaths_ije
from rxradar.ingest.pipeline import ingest_files
from rxradar.ingest.registries import read_pharmacies, read_prescribers
from rxradar.privacy import Pseudonymiser
from rxradar.reference.taxonomy import specialty_for
from rxradar.settings import load as load_settings
from rxradar.synth.faults import FAULTS, FaultRates
from rxradar.synth.submissions import created_seconds, patient_fields
from rxradar.synth.world import (
    ANOMALIES, DEATHS, FILLS, IDENTITY_VARIANTS, PERSONS, PHARMACIES, PRESCRIBERS, World,
)
from rxradar.synth.writers import write_asap, write_deaths, write_registries, write_truth, write_workspace
from rxradar.synth.writers_asap import _record_order
from rxradar.workspace import Workspace

START, END = date(2023, 1, 2), date(2023, 1, 29)  # four ISO weeks, Monday to Sunday
GAP = (2, date(2023, 1, 16))  # pharmacy 2 fills nothing in the week of 16 January: a zero report

PHARMACY_ROWS = [
    # key, ncpdp, name, city, zip, county, version, terminator, software
    (0, "5112345", "KANAWHA DRUG", "CHARLESTON", "25301", "54039", "4.2", "~", "RXSOFT"),
    (1, "5167890", "RIVERSIDE PHARMACY", "HUNTINGTON", "25701", "54011", "4.2A", "\\", "PHARMASYS"),
    (2, "5154321", "LOGAN APOTHECARY", "LOGAN", "25601", "54045", "5.0", "~", None),
]
PRESCRIBER_ROWS = [
    # key, last, first, middle, credential, taxonomy, specialty
    (0, "HALL", "ANNA", "B", "MD", "207Q00000X", "Family Medicine"),
    (1, "KING", "ROBERT", None, "DO", "207R00000X", "Internal Medicine"),
    (2, "WRIGHT", "SUSAN", "L", "NP", "363L00000X", "Nurse Practitioner"),
    (3, "SCOTT", "DAVID", None, "DDS", "1223G0001X", "Dentist"),
    (4, "GREEN", "PAUL", "J", "MD", "208VP0014X", "Pain Medicine"),
]
PERSON_ROWS = [
    # id, last, first, middle, sex, birth, ssn, zip, county, variants [(last, first, middle, birth, zip, noise)]
    (0, "ADKINS", "MARY", "ELLEN", "F", date(1961, 4, 3), "232451234", "25301", "54039",
     [("ADKINS", "MARY", "E", date(1961, 4, 3), "25301", "missing middle name"),
      ("ADKINS", "MOLLY", "ELLEN", date(1961, 4, 3), "25301", "nickname")]),
    (1, "MULLINS", "JAMES", None, "M", date(1975, 11, 12), "232459876", "25701", "54011",
     [("MULINS", "JAMES", None, date(1975, 11, 12), "25701", "typo"),
      ("MULLINS", "JAMES", None, date(1975, 12, 11), "25701", "swapped day and month")]),
    (2, "BALL", "LINDA", "SUE", "F", date(1988, 6, 30), "", "25601", "54045",
     [("Bäll", "Línda", "Émilie", date(1988, 6, 30), "25601", "accents and lower case")]),
    (3, "MAYNARD", "ROBERT", "LEE", "M", date(1950, 1, 15), "232450001", "25601", "54045",
     [("MAYNARD", "BOB", "LEE", date(1950, 1, 15), "25301", "nickname and address move")]),
    (4, "COLLINS-WEBB", "PATRICIA", None, "F", date(1969, 9, 9), "232457777", "25301", "54039",
     [("COLLINS", "PATRICIA", None, date(1969, 9, 9), "25301", "hyphenated name dropped")]),
    (5, "SMITH", "JOHN", "A", "M", date(1992, 2, 29), "999999999", "25701", "54011", []),
    (6, "JOHNSON", "BARBARA", None, "F", date(1958, 7, 4), "232451111", "25301", "54039", []),
    (7, "DAVIS", "MICHAEL", "T", "M", date(1983, 3, 21), "232452222", "25601", "54045",
     [("DAVIS", "MIKE", None, date(1983, 3, 21), "25601", "nickname, missing middle name")]),
]
PRODUCTS = [(OXYCODONE_10MG, 4, 30), (HYDROCODONE_5MG, 4, 5), (FENTANYL_25MCGHR, 0.33, 30),
            (BUPRENORPHINE_2MG, 2, 30), (ALPRAZOLAM_025MG, 2, 30)]
PAYMENTS = ["01", "02", "03", "04", "04", None]


def tiny_world(n_fills: int = 240, seed: int = 7) -> World:
    rng = random.Random(seed)
    pharmacies = [{
        "pharmacy_key": k, "npi": npi_with_check_digit(f"1{500000 + k:08d}"), "ncpdp": ncpdp,
        "dea": dea_with_check_digit("F" + name[0], f"{300000 + k:06d}"), "name": name, "address": f"{10 + k} MAIN ST",
        "city": city, "state": "WV", "zip": zip5, "county_fips": county, "lat": 38.3 + k / 10, "lon": -81.6 - k / 10,
        "chain_site_id": "1000" if k == 0 else None, "asap_version": version, "terminator": term, "software": software,
    } for k, ncpdp, name, city, zip5, county, version, term, software in PHARMACY_ROWS]
    prescribers = [{
        "prescriber_key": k, "npi": npi_with_check_digit(f"1{700000 + k:08d}"),
        "dea": dea_with_check_digit("B" + last[0], f"{400000 + k:06d}"), "last_name": last, "first_name": first,
        "middle_name": middle, "credential": credential, "taxonomy_code": taxonomy, "specialty": specialty,
        "address": f"{200 + k} HOSPITAL DR", "city": "CHARLESTON", "state": "WV", "zip": "25301",
        "county_fips": "54039", "gender": "F" if k % 2 == 0 else "M",
    } for k, last, first, middle, credential, taxonomy, specialty in PRESCRIBER_ROWS]
    persons, variants, variants_of = [], [], {}
    for pid, last, first, middle, sex, birth, ssn, zip5, county, noisy in PERSON_ROWS:
        city = {"25301": "CHARLESTON", "25701": "HUNTINGTON", "25601": "LOGAN"}[zip5]
        persons.append({"person_id": pid, "last_name": last, "first_name": first, "middle_name": middle, "sex": sex,
                        "birth_date": birth, "ssn": ssn or None, "address": f"{pid + 1} ELM ST", "city": city,
                        "state": "WV", "zip": zip5, "county_fips": county, "user_type": "chronic"})
        spellings = [(last, first, middle, birth, zip5, "true identity"), *noisy]
        for v_last, v_first, v_middle, v_birth, v_zip, noise in spellings:
            vid = len(variants)
            variants.append({"variant_id": vid, "person_id": pid, "last_name": v_last, "first_name": v_first,
                             "middle_name": v_middle, "sex": sex, "birth_date": v_birth,
                             "address": f"{pid + 1} ELM ST" if v_zip == zip5 else "9 NEW RD", "city": city,
                             "zip": v_zip, "noise": noise})
            variants_of.setdefault(pid, []).append(vid)
    fills = []
    for i in range(n_fills):
        person = rng.randrange(len(persons))
        pharmacy = rng.randrange(len(pharmacies))
        filled = START + timedelta(days=rng.randrange((END - START).days + 1))
        if (pharmacy, filled - timedelta(days=filled.weekday())) == GAP:
            pharmacy = 0
        ndc, per_day, days = rng.choice(PRODUCTS)
        days = days if rng.random() < 0.8 else 7
        fills.append({
            "fill_key": 1000 + i, "person_id": person, "variant_id": rng.choice(variants_of[person]),
            "prescriber_key": rng.randrange(len(prescribers)), "pharmacy_key": pharmacy, "rx_number": f"{600000 + i}",
            "written_date": filled - timedelta(days=rng.randrange(4)), "fill_date": filled,
            "refill_number": rng.choice((0, 0, 1)), "refills_authorized": rng.choice((0, 1, 2)),
            "partial_fill": rng.choice((0, 0, 0, 1)), "ndc11": ndc,
            "quantity": round(max(1.0, per_day * days), 1) if rng.random() < 0.9 else 2.5, "days_supply": days,
            "payment_type": rng.choice(PAYMENTS),
        })
    deaths = [
        {"death_id": "2023WV000101", "person_id": 1, "variant_id": variants_of[1][1], "death_date": date(2023, 2, 3),
         "underlying_cause": "X42", "multiple_causes": ["T402", "T404"], "manner": "A", "ssn_reported": "232459876"},
        {"death_id": "2023WV000102", "person_id": 3, "variant_id": variants_of[3][1], "death_date": date(2023, 2, 9),
         "underlying_cause": "I219", "multiple_causes": ["I219", "I251"], "manner": "N", "ssn_reported": None},
        {"death_id": "2023WV000103", "person_id": 6, "variant_id": variants_of[6][0], "death_date": date(2023, 2, 20),
         "underlying_cause": "X64", "multiple_causes": ["T424", "T402"], "manner": "S", "ssn_reported": "232451111"},
    ]
    anomalies = [{"kind": "pill_mill", "entity_type": "prescriber", "entity_id": prescribers[4]["npi"],
                  "parameters": '{"volume_multiplier": 5}'}]
    counties = pa.table({"fips": ["54011", "54039", "54045"], "name": ["Cabell", "Kanawha", "Logan"],
                         "zips": [["25701", "25702"], ["25301"], ["25601"]]})
    return World(
        state="WV", seed=seed,
        persons=pa.Table.from_pylist(persons, schema=PERSONS),
        identity_variants=pa.Table.from_pylist(variants, schema=IDENTITY_VARIANTS),
        prescribers=pa.Table.from_pylist(prescribers, schema=PRESCRIBERS),
        pharmacies=pa.Table.from_pylist(pharmacies, schema=PHARMACIES),
        fills=pa.Table.from_pylist(fills, schema=FILLS),
        deaths=pa.Table.from_pylist(deaths, schema=DEATHS),
        anomalies=pa.Table.from_pylist(anomalies, schema=ANOMALIES),
        counties=counties, notes={"start": START.isoformat(), "end": END.isoformat()},
    )


# --- helpers -------------------------------------------------------------------------------------

# High enough that every kind of fault is planted in a few hundred fills (checked below).
MANY_FAULTS = FaultRates(invalid_npi=0.03, missing_days_supply=0.03, unknown_ndc=0.03, duplicate_file=0.3,
                         revision=0.03, void=0.03)
COMPARED = ("dispensation_id", "identity_id", "pharmacy_id", "prescriber_id", "prescriber_npi", "prescriber_dea",
            "rx_number", "refills_authorized", "refill_number", "partial_fill", "written_date", "fill_date",
            "ndc_source", "ndc11", "quantity", "days_supply", "payment_type", "dosage_unit", "rx_origin",
            "patient_location", "species", "drug", "mme_per_day")
FILE_COLUMNS = ("source_file", "file_created", "asap_version")


def ingest(ws: Workspace, kind: str, *paths: Path):
    outcomes = ingest_files(ws, kind, list(paths), load_settings(workspace=ws.root))
    assert [o.status for o in outcomes if o.status == "failed"] == []
    return outcomes


def query(ws: Workspace, sql: str) -> list[dict]:
    with open_engine(ws, load_settings(workspace=ws.root)) as engine:
        return engine.query(sql).to_pylist()


def dispensations(ws: Workspace, columns=COMPARED + FILE_COLUMNS) -> list[dict]:
    return query(ws, f"SELECT {', '.join(columns)} FROM dispensations ORDER BY dispensation_id")


def workspace_with_key(path: Path, key: bytes) -> Path:
    """An empty workspace directory holding ``key``, so identities hash alike in two workspaces."""
    path.mkdir(parents=True)
    fd = os.open(path / "key", os.O_WRONLY | os.O_CREAT, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key)
    return path


@pytest.fixture(scope="module")
def world() -> World:
    return tiny_world()


@pytest.fixture(scope="module")
def faulty(world, tmp_path_factory):
    """The tiny world's ASAP files with many faults, ingested: (files dir, truth, workspace)."""
    root = tmp_path_factory.mktemp("faulty")
    truth = write_asap(world, root / "asap", seed=11, faults=MANY_FAULTS)
    ws = Workspace(root / "ws")
    ingest(ws, "asap", root / "asap")
    yield root / "asap", truth, ws
    ws.close()


# --- ASAP: faults ----------------------------------------------------------------------------------


def test_every_kind_of_fault_is_planted(faulty):
    _, truth, _ = faulty
    assert set(truth["fault"].to_pylist()) == {f.name for f in FAULTS}
    declared = {f.name: (f.field, f.severity) for f in FAULTS}
    for row in truth.to_pylist():
        assert (row["field"], row["severity"]) == declared[row["fault"]]


def test_rejects_are_exactly_the_planted_faults(faulty):
    """Every rejecting or warning fault is in ws.rejects() with its field and severity, and
    nothing else is: no structural warnings, and resends, revisions and voids reject nothing."""
    _, truth, ws = faulty
    expected = sorted((r["file"], r["record_number"], r["field"], r["severity"]) for r in truth.to_pylist()
                      if r["severity"] != "none")
    got = sorted((r["source_file"], r["record_number"], r["field"], r["severity"]) for r in ws.rejects().to_pylist())
    assert got == expected
    assert {r[2] for r in got} == {"PRE01", "DSP10", "DSP08"}


def test_ingested_fills_are_the_world_less_rejected_records(faulty, world):
    """Revisions restore the true quantity, voided copies disappear, duplicates collapse, unknown
    NDCs are kept as reported: the canonical table is the world's fills minus the rejected ones."""
    _, truth, ws = faulty
    faults = {r["fill_key"]: r for r in truth.to_pylist() if r["fill_key"] is not None}
    rejected = {k for k, r in faults.items() if r["severity"] == "rejected"}
    fills = {f["rx_number"]: f for f in world.fills.to_pylist() if f["fill_key"] not in rejected}
    got = {d["rx_number"]: d for d in dispensations(ws)}
    assert set(got) == set(fills)
    for rx, d in got.items():
        f = fills[rx]
        assert (d["quantity"], d["days_supply"], d["fill_date"], d["refill_number"]) == (
            f["quantity"], f["days_supply"], f["fill_date"], f["refill_number"])
        fault = faults.get(f["fill_key"], {}).get("fault")
        assert (d["ndc11"] == f["ndc11"]) == (fault != "unknown_ndc")
    resent = {r["file"] for r in truth.to_pylist() if r["fault"] == "duplicate_file"}
    assert resent and resent & {d["source_file"] for d in got.values()}


def test_correction_files_follow_their_weekly_file(faulty):
    asap_dir, truth, _ = faulty
    for row in truth.to_pylist():
        if row["fault"] in ("revision", "void", "duplicate_file"):
            original = row["file"] if row["fault"] != "duplicate_file" else row["related_file"]
            later = row["related_file"] if row["fault"] != "duplicate_file" else row["file"]
            assert _created(asap_dir / later) > _created(asap_dir / original)


def _created(path: Path) -> str:
    th = path.read_bytes().split(b"*")
    return (th[5] + th[6][:6]).decode()


def test_same_seed_same_files_other_seed_other_faults(world, tmp_path):
    """Same seed, same bytes and faults, also when the fills table is stored in several chunks."""
    a = write_asap(world, tmp_path / "a", seed=5, faults=MANY_FAULTS)
    pieces = pa.concat_tables([world.fills.slice(i, 33) for i in range(0, world.fills.num_rows, 33)])
    b = write_asap(replace(world, fills=pieces), tmp_path / "b", seed=5, faults=MANY_FAULTS)
    c = write_asap(world, tmp_path / "c", seed=6, faults=MANY_FAULTS)
    assert a.equals(b) and not a.equals(c)
    names = sorted(os.listdir(tmp_path / "a"))
    assert names == sorted(os.listdir(tmp_path / "b"))
    assert all((tmp_path / "a" / n).read_bytes() == (tmp_path / "b" / n).read_bytes() for n in names)


# --- ASAP: layout ----------------------------------------------------------------------------------


def reference_files(world: World) -> dict[str, str]:
    """The weekly files built one record at a time with rxradar.ingest.asap_writer."""
    pats = {p["variant_id"]: p for p in patient_fields(world).to_pylist()}
    order = {v: i for i, v in enumerate(world.identity_variants["variant_id"].to_pylist())}
    prescribers = {p["prescriber_key"]: p for p in world.prescribers.to_pylist()}
    weeks: dict[tuple[int, date], list[dict]] = {}
    for f in world.fills.to_pylist():
        weeks.setdefault((f["pharmacy_key"], f["fill_date"] - timedelta(days=f["fill_date"].weekday())), []).append(f)
    files = {}
    for ph in world.pharmacies.to_pylist():
        five = ph["asap_version"] == "5.0"
        for monday in sorted(m for k, m in weeks if k == ph["pharmacy_key"]):
            fills = sorted(weeks[ph["pharmacy_key"], monday],
                           key=lambda f: (order[f["variant_id"]], f["fill_date"], f["fill_key"]))
            patients: list[AsapPatient] = []
            for f in fills:
                p, pre = pats[f["variant_id"]], prescribers[f["prescriber_key"]]
                if not patients or patients[-1].pat["_variant"] != f["variant_id"]:
                    zip_text = f"{p['zip5']}-{p['zip4']}" if five else p["zip5"]
                    patients.append(AsapPatient({
                        "_variant": f["variant_id"], "PAT01": p["pat01"], "PAT02": p["pat02"], "PAT03": p["pat03"],
                        "PAT07": p["last_name"], "PAT08": p["first_name"], "PAT09": p["middle_name"] or "",
                        "PAT12": p["address"], "PAT14": p["city"], "PAT15": p["state"], "PAT16": zip_text,
                        "PAT18": p["birth_date"].strftime("%Y%m%d"), "PAT19": p["sex"], "PAT20": "01", "PAT21": "01",
                    }, []))
                q = f["quantity"]
                patients[-1].dispensations.append(AsapDispensation(
                    dsp={"DSP01": "00", "DSP02": f["rx_number"], "DSP03": f["written_date"].strftime("%Y%m%d"),
                         "DSP04": str(f["refills_authorized"]), "DSP05": f["fill_date"].strftime("%Y%m%d"),
                         "DSP06": str(f["refill_number"]), "DSP07": "01", "DSP08": f["ndc11"],
                         "DSP09": str(int(q)) if q == int(q) else str(q), "DSP10": str(f["days_supply"]),
                         "DSP11": "01", "DSP12": "05", "DSP13": f"{f['partial_fill']:02d}",
                         "DSP16": f["payment_type"] or ""},
                    pre={"PRE01": pre["npi"], "PRE02": pre["dea"], "PRE05": pre["last_name"],
                         "PRE06": pre["first_name"], "PRE07": pre["middle_name"] or ""}))
            for patient in patients:
                del patient.pat["_variant"]
            monday_days = (monday - date(1970, 1, 1)).days
            created = datetime(1970, 1, 1) + timedelta(
                seconds=int(created_seconds(world.seed, ph["pharmacy_key"], monday_days)[0]))
            pha = {"PHA01": ph["npi"], "PHA02": ph["ncpdp"], "PHA03": ph["dea"], "PHA04": ph["name"],
                   "PHA05": ph["address"], "PHA07": ph["city"], "PHA08": ph["state"], "PHA09": ph["zip"],
                   "PHA12": ph["chain_site_id"] or ""}
            f = AsapFile(ph["asap_version"], f"{ph['ncpdp']}{created:%Y%m%d%H%M%S}", created, ph["npi"],
                         ph["software"] or ph["name"], [AsapPharmacy(pha, patients)])
            text = io.StringIO()
            asap_writer_write(text, f, term=ph["terminator"], newline="\n" if ph["terminator"] == "~" else "")
            year, week, _ = monday.isocalendar()
            files[f"{ph['ncpdp']}_{year}w{week:02d}.asap"] = text.getvalue()
    return files


def test_bulk_text_is_what_asap_writer_writes(world, tmp_path):
    truth = write_asap(world, tmp_path, seed=1, faults=FaultRates.none())
    assert truth.num_rows == 0
    expected = reference_files(world)
    assert len(expected) == 11  # 3 pharmacies x 4 weeks, less the week pharmacy 2 filled nothing
    ph = world.pharmacies.to_pylist()[2]
    monday = date(2023, 1, 16)
    created = datetime(1970, 1, 1) + timedelta(
        seconds=int(created_seconds(world.seed, 2, (monday - date(1970, 1, 1)).days)[0]))
    zero = zero_report("5.0", f"5154321{created:%Y%m%d%H%M%S}", created, ph["npi"], ph["name"],
                       {"PHA01": ph["npi"], "PHA02": ph["ncpdp"], "PHA03": ph["dea"], "PHA04": ph["name"],
                        "PHA05": ph["address"], "PHA07": ph["city"], "PHA08": ph["state"], "PHA09": ph["zip"]},
                       (monday, monday + timedelta(days=6)))
    text = io.StringIO()
    asap_writer_write(text, zero, term="~", newline="\n")
    expected["5154321_2023w03.asap"] = text.getvalue()
    for name, text in expected.items():
        assert (tmp_path / name).read_bytes() == text.encode(), name
    assert sorted(os.listdir(tmp_path)) == sorted(expected)


@pytest.mark.parametrize("seed", range(5))
def test_packed_record_order_is_the_six_key_sort(seed):
    rng = np.random.default_rng(seed)
    n = 2_000
    keys = [rng.integers(0, 4, n), 7 * rng.integers(2_600, 2_610, n), rng.integers(0, 30, n),
            rng.integers(18_000, 18_100, n), rng.integers(0, n // 2, n) + 10**6, rng.random(n) < 0.1]
    ph, monday, var, days, fill_key, phantom = keys
    expected = np.lexsort((phantom, fill_key, days, var, monday, ph))
    assert np.array_equal(_record_order(ph, monday, var, days, fill_key, phantom), expected)


def test_layout_follows_each_pharmacys_version_and_terminator(world, tmp_path):
    write_asap(world, tmp_path, seed=1, faults=FaultRates.none())
    v42, v42a, v50 = ((tmp_path / f"{n}_2023w02.asap").read_bytes() for n in ("5112345", "5167890", "5154321"))
    assert v42.startswith(b"TH*4.2*") and v42.count(b"~\n") == v42.count(b"~") - 1  # TH09 is itself '~'
    assert v42a.startswith(b"TH*4.2A*") and b"\n" not in v42a and v42a.split(b"*")[9] == b"\\\\IS"
    assert v50.startswith(b"TH*5.0*") and v50.split(b"*")[6].endswith(b"Z")
    pat16 = [s.split(b"*")[16] for s in v50.split(b"~\n") if s.startswith(b"PAT*")]
    assert pat16 and all(len(z) == 10 and z[5:6] == b"-" for z in pat16)
    created = v42.split(b"*")
    assert created[5] == b"20230116" and b"010000" <= created[6] <= b"055959"  # the Monday after, early
    zero = (tmp_path / "5154321_2023w03.asap").read_bytes()
    assert b"PAT*******REPORT*ZERO~" in zero and b"#20230116#-#20230122#" in zero


def test_clean_files_ingest_without_a_single_reject(world, tmp_path):
    write_asap(world, tmp_path / "asap", seed=1, faults=FaultRates.none())
    with Workspace(tmp_path / "ws") as ws:
        outcomes = ingest(ws, "asap", tmp_path / "asap")
        assert ws.rejects().num_rows == 0
        assert sum(o.records for o in outcomes) == world.fills.num_rows
        key = Pseudonymiser(ws.key)
        expected = {key.hash("|".join([v["last_name"].upper(), v["first_name"].upper(), (v["middle_name"] or "")[:1],
                                       v["birth_date"].isoformat(), v["sex"], v["zip"]]))
                    for v in world.identity_variants.to_pylist()
                    if v["variant_id"] in set(world.fills["variant_id"].to_pylist())}
        assert {r["identity_id"] for r in query(ws, "SELECT identity_id FROM identities")} == expected


# --- deaths, registries, truth ---------------------------------------------------------------------


def test_deaths_csv_and_ije_are_the_same_deaths(world, tmp_path):
    write_deaths(world, tmp_path)
    key = Pseudonymiser(b"synthetic-writer-test-key-" * 2)
    from_csv, from_ije = read_deaths_csv(tmp_path / "deaths.csv", "deaths.csv", key), \
        read_deaths_ije(tmp_path / "deaths.ije", "deaths.ije", key)
    assert from_csv.rejects.num_rows == 0 and from_ije.rejects.num_rows == 0
    a, b = from_csv.tables["deaths"].to_pylist(), from_ije.tables["deaths"].to_pylist()
    for row in a + b:
        row["middle_name"] = (row["middle_name"] or "")[:1]  # IJE keeps the initial only
        del row["source_format"]
    assert a == b
    by_id = {r["death_id"]: r for r in a}
    overdose = by_id["2023WV000101"]  # person 1 under the 'MULINS' typo, residence Huntington
    assert (overdose["last_name"], overdose["zip"], overdose["county_fips"]) == ("MULINS", "25701", "54011")
    assert overdose["is_opioid_overdose"] and overdose["multiple_causes"] == ["T402", "T404"]
    assert overdose["ssn_hash"] == key.hash("232459876") and by_id["2023WV000102"]["ssn_hash"] is None
    assert by_id["2023WV000102"]["first_name"] == "BOB"
    rows = list(csv.DictReader(open(tmp_path / "deaths.csv")))
    assert [r["multiple_causes"] for r in rows] == ["T40.2 T40.4", "I219 I251", "T42.4 T40.2"]


def test_nppes_file_reads_as_nppes_with_each_specialty(world, tmp_path):
    write_registries(world, tmp_path)
    path = tmp_path / "prescribers_nppes.csv"
    lines = path.read_text().splitlines()
    assert lines[0] == (Path(__file__).parent / "fixtures" / "nppes_header.csv").read_text().rstrip("\n")
    assert all(len(next(csv.reader([line]))) == 330 and line.startswith('"') and line.endswith('"')
               and '",,"' not in line for line in lines)
    parsed = read_prescribers(path, path.name)
    assert parsed.rejects.num_rows == 0
    got = {r["npi"]: r for r in parsed.tables["prescribers"].to_pylist()}
    for p in world.prescribers.to_pylist():
        row = got[p["npi"]]
        assert (row["specialty"], row["taxonomy_code"], row["last_name"], row["credential"], row["source"]) == (
            p["specialty"], p["taxonomy_code"], p["last_name"], p["credential"], "nppes")
        assert specialty_for(p["taxonomy_code"]) == p["specialty"]


def test_pharmacy_registry_reads_back(world, tmp_path):
    write_registries(world, tmp_path)
    parsed = read_pharmacies(tmp_path / "pharmacies.csv", "pharmacies.csv")
    assert parsed.rejects.num_rows == 0
    got = parsed.tables["pharmacies"].select(["pharmacy_id", "ncpdp", "county_fips", "lat", "lon"]).to_pylist()
    assert got == [{"pharmacy_id": p["npi"], "ncpdp": p["ncpdp"], "county_fips": p["county_fips"], "lat": p["lat"],
                    "lon": p["lon"]} for p in world.pharmacies.to_pylist()]


def test_truth_maps_every_identity_and_death_to_its_person(world, faulty, tmp_path):
    _, faults, ws = faulty
    write_truth(world, tmp_path, faults)
    truth = tmp_path / "truth"
    readme = (truth / "README.md").read_text()
    for name in ("persons", "identity_variants", "fills", "deaths", "prescribers", "pharmacies"):
        assert pq.read_table(truth / f"{name}.parquet").num_rows == getattr(world, name).num_rows
        assert f"`{name}.parquet`" in readme
    types = pa_csv.ConvertOptions(column_types=faults.schema, strings_can_be_null=True)
    assert pa_csv.read_csv(truth / "faults.csv", convert_options=types).equals(faults) and "`faults.csv`" in readme
    assert (truth / "anomalies.csv").read_text().splitlines()[0] == '"kind","entity_type","entity_id","parameters"'
    variants = pq.read_table(truth / "identity_variants.parquet").to_pylist()
    person_of = {Pseudonymiser(ws.key).hash(v["identity_key"]): v["person_id"] for v in variants}
    reported = query(ws, "SELECT DISTINCT identity_id FROM dispensations")
    assert reported and all(r["identity_id"] in person_of for r in reported)
    assert pq.read_table(truth / "deaths.parquet").column("person_id").to_pylist() == [1, 3, 6]


# --- straight into a workspace ---------------------------------------------------------------------


def test_workspace_writer_equals_ingesting_the_files(world, tmp_path):
    """write_workspace gives the tables ingesting the clean files gives: same ids, identities,
    quantities, dates, NDCs, MME; the same file names and times; same deaths and providers."""
    write_asap(world, tmp_path / "asap", seed=1, faults=FaultRates.none())
    write_deaths(world, tmp_path)
    write_registries(world, tmp_path)
    with Workspace(tmp_path / "from_files") as files:
        ingest(files, "prescribers", tmp_path / "prescribers_nppes.csv")
        ingest(files, "pharmacies", tmp_path / "pharmacies.csv")
        ingest(files, "asap", tmp_path / "asap")
        ingest(files, "deaths", tmp_path / "deaths.csv")
        ingest(files, "zip_counties", tmp_path / "zip_county.csv")
        direct_root = workspace_with_key(tmp_path / "direct", files.key)
        rows = write_workspace(world, direct_root)
        assert rows == {"dispensations": 240, "identities": 15, "prescribers": 5, "pharmacies": 3, "deaths": 3,
                        "zip_counties": 4}
        with Workspace(direct_root, create=False) as direct:
            assert dispensations(direct) == dispensations(files)
            identity = "identity_id, upper(last_name), upper(first_name), birth_date, sex, zip, id_qualifier, id_hash"
            assert query(direct, f"SELECT {identity} FROM identities ORDER BY 1") == query(
                files, f"SELECT {identity} FROM identities ORDER BY 1")
            death = "* EXCLUDE (ingest_id, source_format)"
            assert query(direct, f"SELECT {death} FROM deaths ORDER BY death_id") == query(
                files, f"SELECT {death} FROM deaths ORDER BY death_id")
            provider = "prescriber_id, npi, dea, last_name, first_name, taxonomy_code, specialty, state, zip"
            assert query(direct, f"SELECT {provider} FROM prescribers ORDER BY 1") == query(
                files, f"SELECT {provider} FROM prescribers ORDER BY 1")
            crosswalk = "zip_county, zip, county_fips, state, res_ratio"
            assert query(direct, f"SELECT {crosswalk} FROM zip_counties ORDER BY 1") == query(
                files, f"SELECT {crosswalk} FROM zip_counties ORDER BY 1")
            place = "pharmacy_id, npi, ncpdp, dea, name, county_fips, lat, lon, chain_site_id"
            assert query(direct, f"SELECT {place} FROM pharmacies ORDER BY 1") == query(
                files, f"SELECT {place} FROM pharmacies ORDER BY 1")
            # The chain store's site ID comes from its own reports (PHA12): the registry has none.
            assert query(files, "SELECT name, chain_site_id FROM pharmacies WHERE chain_site_id IS NOT NULL") == [
                {"name": world.pharmacies["name"][0].as_py(), "chain_site_id": "1000"}]
            with open_engine(direct, load_settings(workspace=direct_root)) as engine:
                assert table_counts(engine) == rows
            assert [m["kind"] for m in direct.manifest()] == ["synthetic"]


def test_workspace_writer_twice_is_a_no_op(world, tmp_path):
    first = write_workspace(world, tmp_path / "ws")
    assert write_workspace(world, tmp_path / "ws") == first
    with Workspace(tmp_path / "ws") as ws:
        assert len(ws.manifest()) == 1 and not list((ws.root / "tmp" / "ingest").iterdir())


def test_workspace_writer_works_in_chunks(world, tmp_path, monkeypatch):
    """Chunks of 7 fills over a table stored in chunks of 50 give the same tables as one pass."""
    from rxradar.synth import writers_workspace

    whole = write_workspace(world, workspace_with_key(tmp_path / "whole", b"k" * 32))
    monkeypatch.setattr(writers_workspace, "CHUNK_FILLS", 7)
    pieces = pa.concat_tables([world.fills.slice(i, 50) for i in range(0, world.fills.num_rows, 50)])
    assert pieces["rx_number"].num_chunks > 1
    chunked = write_workspace(replace(world, fills=pieces), workspace_with_key(tmp_path / "chunked", b"k" * 32))
    assert whole == chunked
    with Workspace(tmp_path / "whole") as a, Workspace(tmp_path / "chunked") as b:
        assert dispensations(a) == dispensations(b)


def test_zip_county_crosswalk_reads_back_with_every_county_zip(world, tmp_path):
    from rxradar.ingest.zip_counties import read_zip_counties

    write_registries(world, tmp_path)
    parsed = read_zip_counties(tmp_path / "zip_county.csv", "zip_county.csv")
    assert parsed.rejects.num_rows == 0
    assert sorted(parsed.tables["zip_counties"]["zip_county"].to_pylist()) == [
        "25301|54039", "25601|54045", "25701|54011", "25702|54011"]
