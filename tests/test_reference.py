"""Shipped reference data: NDC products, MME factor tables, counties, adjacency, TopoJSON.

Expected values come from the sources, not from the loaders: the worked MME examples are the
CDC ones (2017 file Documentation; 2022 guideline Table), counts are those of the CDC sheets,
and the West Virginia population is the Census Vintage 2019 total for its 55 counties.
"""

from __future__ import annotations

import csv
import json

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from rxradar.reference import counties as co
from rxradar.reference import data_path, ndc

FORM_GROUPS = {"oral", "rectal", "transdermal", "buccal_sublingual", "film_spray", "nasal", "implant", "injection"}


def product(ndc11: str, table: str = "cdc2017_datafile") -> dict:
    rows = ndc.products_with_factors(table).filter(pc.field("ndc11") == ndc11).to_pylist()
    assert len(rows) == 1, ndc11
    return rows[0]


# (NDC, drug, strength, unit, qty, days, MME/day with cdc2017_datafile, with cdc2022)
WORKED = [
    ("00603499321", "oxycodone", 10, "MG", 60, 30, 30, 30),  # OXYCODONE HCL 10 mg tablet
    ("00093056701", "hydrocodone", 5, "MG", 120, 30, 20, 20),  # hydrocodone/APAP 5 mg tablet
    ("50458009105", "fentanyl", 25, "MCG/HR", 10, 30, 60, 60),  # DURAGESIC 25 mcg/hr patch
    ("00045065960", "tramadol", 50, "MG", 90, 30, 15, 30),  # ULTRAM 50 mg
    ("00044102202", "hydromorphone", 2, "MG", 120, 30, 32, 40),  # DILAUDID 2 mg
    ("00054421725", "methadone", 10, "MG", 90, 30, 90, 141),  # DOLOPHINE HCL 10 mg
]


@pytest.mark.parametrize("ndc11,drug,strength,unit,qty,days,mme2017,mme2022", WORKED)
def test_worked_mme_examples(ndc11, drug, strength, unit, qty, days, mme2017, mme2022):
    for table, expected in (("cdc2017_datafile", mme2017), ("cdc2022", mme2022)):
        p = product(ndc11, table)
        assert (p["drug"], p["strength_per_unit"], p["strength_unit"], p["drug_class"]) == (drug, strength, unit, "opioid")
        assert p["strength_per_unit"] * qty / days * p["mme_factor"] == pytest.approx(expected)


def test_fentanyl_patch_factor_equals_2022_clinical_dose():
    # 2022 Table: 2.4 MME per mcg/hr worn; one 72-h patch at a time means days = 3 × patches.
    p = product("50458009105", "cdc2022")
    patches = 10
    assert p["strength_per_unit"] * patches / (3 * patches) * p["mme_factor"] == pytest.approx(25 * 2.4)


def test_every_cdc_ndc_is_present_once_with_its_types():
    t = ndc.ndc_products()
    assert t.schema == ndc.NDC_PRODUCTS.schema
    sources = pc.value_counts(t["source"]).to_pylist()
    assert {s["values"]: s["counts"] for s in sources} == {
        "cdc2017_opioids": 13_661, "cdc2017_benzodiazepines": 7_570, "opioiddatalab_mat": 57,
    }
    assert pc.count_distinct(t["ndc11"]).as_py() == t.num_rows
    assert pc.all(pc.match_substring_regex(t["ndc11"], r"^\d{11}$")).as_py()
    assert set(t["form_group"].to_pylist()) == FORM_GROUPS
    assert set(t["drug_class"].to_pylist()) == {"opioid", "benzodiazepine", "moud"}


@pytest.mark.parametrize("table", ["cdc2017_datafile", "cdc2022"])
def test_factor_present_exactly_for_opioids(table):
    t = ndc.products_with_factors(table)
    opioid = pc.equal(t["drug_class"], "opioid")
    assert t.filter(opioid)["mme_factor"].null_count == 0
    assert t.filter(pc.invert(opioid))["mme_factor"].null_count == t.num_rows - pc.sum(opioid).as_py()


def test_drug_and_form_group_reproduce_every_cdc_factor():
    t = ndc.products_with_factors("cdc2017_datafile").filter(pc.field("cdc2017_factor").is_valid())
    assert t.num_rows == 13_661 - 156  # every CDC opioid except buprenorphine
    assert t["mme_factor"].equals(t["cdc2017_factor"])


def test_2022_table_changes_only_hydromorphone_methadone_tramadol():
    old, new = (
        {(r["drug"], r["form_group"]): r["mme_factor"] for r in ndc.mme_factors(name).to_pylist()}
        for name in ("cdc2017_datafile", "cdc2022")
    )
    assert old.keys() == new.keys()
    changed = {k: (old[k], new[k]) for k in old if old[k] != new[k]}
    assert changed == {
        ("hydromorphone", "oral"): (4, 5), ("hydromorphone", "rectal"): (4, 5),
        ("methadone", "oral"): (3, 4.7), ("tramadol", "oral"): (0.1, 0.2),
    }
    assert new[("fentanyl", "transdermal")] == 7.2 and new[("codeine", "oral")] == 0.15


def test_every_factor_row_cites_its_source():
    with data_path("cdc", "mme_factors.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert {r["factor_table"] for r in rows} == set(ndc.mme_factor_tables()) == {"cdc2017_datafile", "cdc2022"}
    assert all(r["source"] and r["url"].startswith("https://") for r in rows)
    fallbacks = [r for r in rows if r["factor_table"] == "cdc2022" and "falls back" in r["note"]]
    assert {r["drug"] for r in fallbacks} == {
        "butorphanol", "dihydrocodeine", "fentanyl", "levomethadyl", "levorphanol", "meperidine",
        "opium", "pentazocine", "propoxyphene",
    }
    assert all("2017" in r["source"] for r in fallbacks)
    assert not any(r["drug"] == "buprenorphine" for r in rows)


def test_unknown_factor_table_names_the_valid_ones():
    with pytest.raises(ValueError, match="cdc2017_datafile.*cdc2022"):
        ndc.mme_factors("cdc2016")
    assert ndc.mme_factors("cdc2022").column_names == ["drug", "form_group", "mme_factor"]


def test_buprenorphine_is_moud_without_factor():
    t = ndc.products_with_factors("cdc2022").filter(pc.field("drug") == "buprenorphine")
    assert t.num_rows == 156 + 37  # CDC rows + sublingual NDCs added from the MAT list
    assert set(t["drug_class"].to_pylist()) == {"moud"}
    assert t["mme_factor"].null_count == t["cdc2017_factor"].null_count == t.num_rows
    butrans = product("35356060504")
    assert (butrans["product_name"], butrans["form_group"], butrans["strength_per_unit"]) == ("BUTRANS", "transdermal", 10)


def test_moud_additions_from_the_mat_list():
    vivitrol = product("65757030001", "cdc2022")
    assert (vivitrol["drug"], vivitrol["drug_class"], vivitrol["form_group"], vivitrol["dea_schedule"]) == (
        "naltrexone", "moud", "injection", None)
    # Strengths the spreadsheet had turned into dates: "1-apr" is 4 mg/1 mg, "3-dec" 12 mg/3 mg.
    assert product("00781722764")["strength_per_unit"] == 4
    assert product("00781724964")["strength_per_unit"] == 12
    # A methadone tablet only in the MAT list is still a pain opioid with the methadone factor.
    m = product("00054855411", "cdc2022")
    assert (m["drug_class"], m["strength_per_unit"], m["mme_factor"], m["cdc2017_factor"]) == ("opioid", 10, 4.7, None)


def test_known_benzodiazepine_and_fentanyl_forms():
    alprazolam = product("00005334031")
    assert (alprazolam["drug"], alprazolam["drug_class"], alprazolam["strength_per_unit"],
            alprazolam["strength_unit"], alprazolam["dea_schedule"], alprazolam["mme_factor"],
            alprazolam["long_acting"]) == ("alprazolam", "benzodiazepine", 0.25, "MG", "4", None, None)
    forms = ndc.products_with_factors("cdc2017_datafile").filter(pc.field("drug") == "fentanyl")
    by_product = {(r["product_name"], r["form_group"], r["mme_factor"]) for r in forms.to_pylist()}
    assert {("LAZANDA", "nasal", 0.16), ("SUBSYS", "film_spray", 0.18), ("ONSOLIS", "film_spray", 0.18),
            ("FENTORA", "buccal_sublingual", 0.13), ("ACTIQ", "buccal_sublingual", 0.13)} <= by_product


def test_west_virginia_counties():
    wv = co.counties("WV")
    assert wv.num_rows == 55
    assert pc.sum(wv["pop2019"]).as_py() == 1_792_147  # Census Vintage 2019, sum of WV counties
    assert all(wv[f"pop{y}"].null_count == 0 for y in range(2010, 2020))
    neighbours = co.adjacency("WV")
    assert sorted(neighbours) == sorted(wv["fips"].to_pylist())
    assert all(neighbours.values())
    kanawha = wv.filter(pc.field("fips") == "54039").to_pylist()[0]
    assert kanawha["name"] == "Kanawha County" and kanawha["lat"] == pytest.approx(38.33, abs=0.1)
    assert neighbours["54039"] == ["54005", "54015", "54019", "54035", "54043", "54067", "54079", "54081", "54087"]


def test_counties_table():
    t = co.counties()
    assert t.schema == co.COUNTIES.schema
    assert t.num_rows == 3_220 and pc.count_distinct(t["fips"]).as_py() == 3_220
    assert pc.sum(t["pop2019"]).as_py() == 328_239_523  # US resident population, July 2019
    assert co.counties("PR")["pop2019"].null_count == 78
    with pytest.raises(ValueError, match="unknown state 'W V'"):
        co.counties("W V")


def test_adjacency_is_symmetric_and_uses_2019_codes():
    adj = co.adjacency()
    fips = set(co.counties()["fips"].to_pylist())
    assert set(adj) == fips
    pairs = {(a, b) for a, bs in adj.items() for b in bs}
    assert all((b, a) in pairs for a, b in pairs)
    assert not any(a == b for a, b in pairs)
    assert {b for _, b in pairs} <= fips
    assert "46102" in adj["46071"] and "02158" in adj["02050"]  # Oglala Lakota, Kusilvak
    assert "51515" not in adj and "46113" not in adj
    assert [f for f, bs in adj.items() if not bs] == ["15001", "15003", "15007"]  # Hawaiian islands


def test_topojson():
    topo = json.loads(co.topojson_path().read_text())
    geometries = topo["objects"]["counties"]["geometries"]
    assert topo["type"] == "Topology" and len(geometries) == 3_231
    assert set(co.counties()["fips"].to_pylist()) <= {g["id"] for g in geometries}
    states = json.loads(co.topojson_path("states").read_text())
    assert len(states["objects"]["states"]["geometries"]) == 56


@pytest.mark.parametrize("folder,licence", [("cdc", False), ("opioiddatalab", True), ("counties", False), ("topojson", True)])
def test_each_data_folder_states_its_source(folder, licence):
    source = data_path(folder, "SOURCE.md").read_text()
    assert "Publisher" in source and ("Licence" in source or "public domain" in source)
    assert data_path(folder, "LICENSE").exists() == licence


def test_loaders_return_cached_immutable_tables():
    assert ndc.ndc_products() is ndc.ndc_products()
    assert isinstance(ndc.products_with_factors("cdc2022"), pa.Table)
    co.adjacency("WV")["54039"].append("99999")  # callers get their own dict
    assert "99999" not in co.adjacency("WV")["54039"]
