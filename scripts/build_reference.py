"""Regenerate rxradar's shipped reference data from the public source files in ../shared/data.

This is the only code that reads the source folders; the package and its tests read only what
this script writes under src/rxradar/reference/data/. Every derivation rule is below, and the
script stops (AssertionError) when a source file no longer matches what the rules expect.

    python scripts/build_reference.py [--source ../shared/data] [--out src/rxradar/reference/data]

Hand-written files (SOURCE.md files, cdc/mme_factors.csv) are not generated; mme_factors.csv
is checked against the CDC 2017 file here.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import shutil
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

NDC_COLUMNS = [
    "ndc11", "product_name", "generic_name", "drug", "form_group", "dosage_form", "drug_class",
    "long_acting", "dea_schedule", "strength_per_unit", "strength_unit", "cdc2017_factor", "source",
]

# Master_Form values that are not swallowed. Everything else in the CDC sheets (tablets,
# capsules, ER forms, solutions, suspensions, syrups, disintegrating tablets) is "oral".
RECTAL_FORMS = {"Suppository", "Gel/Jelly"}  # Gel/Jelly is Diastat rectal diazepam
# Subsys is a sublingual spray; every other spray in the CDC file is nasal (Lazanda, butorphanol).
# Listed so that a new spray product in a future source stops the build instead of defaulting.
ORAL_SPRAYS = {"SUBSYS"}
NASAL_SPRAYS = {"LAZANDA", "BUTORPHANOL", "BUTORPHANOL TARTRATE", "STADOL NS"}

# Opioid Data Lab MAT-list names for NDCs the CDC file lacks: (drug, generic_name); None = left out.
MAT_NAMES = {
    "buprenorphine and naloxone": ("buprenorphine", "Buprenorphine/Naloxone"),
    "buprenorphine hcl and naloxone hcl": ("buprenorphine", "Buprenorphine/Naloxone"),
    "buprenorphine hydrochloride and naloxone hydrochloride dihydrate": ("buprenorphine", "Buprenorphine/Naloxone"),
    "suboxone": ("buprenorphine", "Buprenorphine/Naloxone"),
    "vivitrol": ("naltrexone", "Naltrexone"),
    "methadone": ("methadone", "Methadone Hydrochloride"),
    "dolophine": ("methadone", "Methadone Hydrochloride"),
    "methadose": ("methadone", "Methadone Hydrochloride"),
    "orlaam": ("levomethadyl", "Levomethadyl Acetate Hydrochloride"),
    "methadone (bulk)": None,  # powder; CDC excludes "opioids in powder"
    "methadone in 0.9 % sod. chlor": None,  # injection; CDC excludes injectable opioids
}
# Methadone "mg/ml" products may be oral concentrate or injection; only brands that are oral
# solutions are kept (a wrong route would apply the oral factor to an injection).
ORAL_LIQUID_BRANDS = {"methadose", "orlaam"}
# NDCs in both lists whose strengths differ; the CDC value is kept. 00054854916 (Roxane
# methadone oral solution): CDC 1 mg/mL, Opioid Data Lab 10 mg/5 mL (2 mg/mL).
STRENGTH_DISAGREEMENTS = {"00054854916"}
MONTHS = "jan feb mar apr may jun jul aug sep oct nov dec".split()

# 2010-vintage county codes in the Census adjacency file → 2019 codes (None = merged away).
FIPS_2010_TO_2019 = {"46113": "46102", "02270": "02158", "51515": None}  # Bedford city → 51019


def read_csv(path: Path, encoding: str = "utf-8-sig") -> list[dict[str, str]]:
    with path.open(newline="", encoding=encoding) as f:
        return list(csv.DictReader(f))


def write_csv(path: Path, columns: list[str], rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, columns, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    print(f"wrote {path.relative_to(REPO)}: {len(rows)} rows")


def num(x: float | None) -> str:
    """Shortest round-tripping text for a float, without a trailing '.0'."""
    if x is None:
        return ""
    s = repr(float(x))
    return s[:-2] if s.endswith(".0") else s


def form_group(drug: str, master_form: str, product: str) -> str:
    if master_form == "Patch, Extended Release":
        return "transdermal"
    if master_form == "Implant":
        return "implant"
    if master_form in RECTAL_FORMS:
        return "rectal"
    if master_form == "Spray":
        assert product in ORAL_SPRAYS | NASAL_SPRAYS, f"unclassified spray product {product!r}"
        return "film_spray" if product in ORAL_SPRAYS else "nasal"
    if drug == "fentanyl" and master_form == "Film":
        return "film_spray"  # CDC: films are 40% more bioavailable than buccal tablets/lozenges
    if drug in ("fentanyl", "buprenorphine") and master_form in ("Tablet", "Film", "Lozenge/Troche"):
        return "buccal_sublingual"
    return "oral"


def cdc_rows(src: Path) -> list[dict]:
    out = []
    for sheet, path in (("opioids", "opioids_mme_2017.csv"), ("benzodiazepines", "benzodiazepines_2017.csv")):
        for r in read_csv(src / "cdc-mme-ndc-2017" / path):
            drug = re.sub(r" (SA|LA)$", "", r["Drug"]).lower()
            assert re.fullmatch(r"\d{11}", r["NDC"]), r["NDC"]
            if sheet == "opioids":
                drug_class = "moud" if drug == "buprenorphine" else "opioid"
                long_acting = {"LA": "true", "SA": "false"}[r["LongShortActing"]]
            else:
                drug_class, long_acting = "benzodiazepine", ""
            factor = r.get("MME_Conversion_Factor") or None
            out.append({
                "ndc11": r["NDC"], "product_name": r["Product_Name"].strip(),
                "generic_name": r["Generic_Drug_Name"].strip(), "drug": drug,
                "form_group": form_group(drug, r["Master_Form"], r["Product_Name"].strip()),
                "dosage_form": r["Master_Form"], "drug_class": drug_class, "long_acting": long_acting,
                "dea_schedule": r["DEAClassCode"], "strength_per_unit": num(float(r["Strength_Per_Unit"])),
                "strength_unit": r["UOM"], "cdc2017_factor": num(float(factor) if factor else None),
                "source": f"cdc2017_{sheet}",
            })
    return out


def mat_strength(r: dict[str, str]) -> tuple[float, str] | None:
    """(strength, unit) of the controlled ingredient from an Opioid Data Lab MAT-list row.

    Combination strengths were mangled by Excel into dates: buprenorphine/naloxone "8-2" is
    stored as "2-aug" (day-month), so the month number is the buprenorphine strength.
    """
    s, uom = r["strength"].strip().lower(), r["strength_uom"].strip().lower()
    if m := re.fullmatch(r"(\d+)-([a-z]{3})", s):
        bup, nalox = MONTHS.index(m[2]) + 1, int(m[1])
        assert bup == 4 * nalox, f"unexpected Excel-date strength {s!r}"  # products are 4:1
        return float(bup), "MG"
    value = float(re.match(r"\s*(\d*\.?\d+)", s)[1])
    if uom in ("mg", "mg/1", "na"):
        return value, "MG"
    if uom == "mg/5 ml":
        return value / 5, "MG/ML"
    if uom == "mg/ml" and r["drug_name"] in ORAL_LIQUID_BRANDS:
        return value, "MG/ML"
    return None  # route unknown (mg/ml may be an injection), bulk powder, or injection syringe


def mat_rows(src: Path, cdc: list[dict]) -> tuple[list[dict], list[tuple[str, str]]]:
    """MOUD-list NDCs absent from the CDC file, in the ndc_products layout, plus what was left out."""
    by_ndc = {r["ndc11"]: r for r in cdc}
    per_drug: dict[str, dict[str, set]] = defaultdict(lambda: defaultdict(set))
    for r in cdc:
        per_drug[r["drug"]]["dea_schedule"].add(r["dea_schedule"])
        per_drug[r["drug"]]["long_acting"].add(r["long_acting"])
    rows, skipped, disagree = [], [], set()
    for r in read_csv(src / "opioiddatalab-codelists" / "MAT_for_OUD_NDCs.csv"):
        ndc = r["ndc"].strip("'")
        assert re.fullmatch(r"\d{11}", ndc), ndc
        name = r["drug_name"].strip().lower()
        parsed = mat_strength({**r, "drug_name": name})
        if ndc in by_ndc:  # CDC row wins; use the overlap to check the strength parser
            c = by_ndc[ndc]
            assert c["source"] == "cdc2017_opioids", ndc
            if parsed and c["strength_unit"] and (num(parsed[0]), parsed[1]) != (c["strength_per_unit"], c["strength_unit"]):
                disagree.add(ndc)
            continue
        assert name in MAT_NAMES, f"MAT-list product {name!r} has no rule"
        if MAT_NAMES[name] is None or parsed is None:
            skipped.append((ndc, f"{name} {r['strength']} {r['strength_uom']}"))
            continue
        drug, generic = MAT_NAMES[name]
        inherited = {k: per_drug[drug][k] for k in ("dea_schedule", "long_acting")}
        for k, values in inherited.items():
            assert len(values) <= 1, (drug, k, values)  # naltrexone is absent from CDC: blank
        rows.append({
            "ndc11": ndc, "product_name": name.upper(), "generic_name": generic, "drug": drug,
            "form_group": {"buprenorphine": "buccal_sublingual", "naltrexone": "injection"}.get(drug, "oral"),
            "dosage_form": "", "drug_class": "opioid" if drug in ("methadone", "levomethadyl") else "moud",
            "long_acting": next(iter(inherited["long_acting"]), ""),
            "dea_schedule": next(iter(inherited["dea_schedule"]), ""),
            "strength_per_unit": num(parsed[0]), "strength_unit": parsed[1], "cdc2017_factor": "",
            "source": "opioiddatalab_mat",
        })
    assert disagree == STRENGTH_DISAGREEMENTS, f"CDC and MAT list disagree on strength: {sorted(disagree)}"
    return rows, skipped


def check_factors(products: list[dict], factors_csv: Path) -> None:
    """(drug, form_group) must determine the CDC factor, and mme_factors.csv must agree with it."""
    seen: dict[tuple[str, str], set[str]] = defaultdict(set)
    for r in products:
        if r["drug_class"] == "opioid" and r["cdc2017_factor"]:
            seen[(r["drug"], r["form_group"])].add(r["cdc2017_factor"])
    ambiguous = {k: v for k, v in seen.items() if len(v) > 1}
    assert not ambiguous, f"(drug, form_group) does not determine the CDC factor: {ambiguous}"
    assert all(r["cdc2017_factor"] for r in products if r["source"] == "cdc2017_opioids" and r["drug_class"] == "opioid")
    assert not any(r["cdc2017_factor"] for r in products if r["drug_class"] != "opioid")

    tables: dict[str, dict[tuple[str, str], str]] = defaultdict(dict)
    for f in read_csv(factors_csv):
        key = (f["drug"], f["form_group"])
        assert key not in tables[f["factor_table"]], f"duplicate factor row {f['factor_table']} {key}"
        assert f["source"] and f["url"].startswith("https://"), f
        tables[f["factor_table"]][key] = num(float(f["mme_factor"]))
    assert set(tables) == {"cdc2017_datafile", "cdc2022"}, set(tables)
    assert tables["cdc2017_datafile"] == {k: v.pop() for k, v in seen.items()}, "mme_factors.csv ≠ CDC 2017 file"
    needed = {(r["drug"], r["form_group"]) for r in products if r["drug_class"] == "opioid"}
    for name, table in tables.items():
        assert set(table) == needed, (name, set(table) ^ needed)
    print(f"checked {factors_csv.name}: {len(needed)} (drug, form_group) pairs in each table")


def check_long_acting(src: Path, products: list[dict]) -> None:
    """Cross-check CDC's LA flag against Opioid Data Lab's independent extended-release list."""
    la = {r["ndc11"]: r["long_acting"] for r in products}
    er = [r["NDC"].strip("'") for r in read_csv(src / "opioiddatalab-codelists" / "ER_opioids_NDC.csv")]
    wrong = [n for n in er if n in la and la[n] != "true"]
    assert not wrong, f"ER-list NDCs marked short-acting: {wrong[:10]}"
    print(f"checked long_acting: {sum(n in la for n in er)} of {len(er)} ER-list NDCs present, all LA")


def build_counties(src: Path, out: Path) -> set[str]:
    pops = [f"pop{y}" for y in range(2010, 2020)]
    rows = [
        {"fips": r["fips"], "state": r["state"], "state_fips": r["state_fips"], "name": r["county_name"],
         "lat": r["lat"], "lon": r["lon"], "land_sqmi": r["land_sqmi"], **{p: r[p] for p in pops}}
        for r in read_csv(src / "us-counties-master" / "us_counties_2019.csv")
    ]
    assert all(len(r["fips"]) == 5 and r["fips"][:2] == r["state_fips"] for r in rows)
    rows.sort(key=lambda r: r["fips"])
    write_csv(out / "counties" / "counties.csv", list(rows[0]), rows)
    return {r["fips"] for r in rows}


def build_adjacency(src: Path, out: Path, fips: set[str]) -> None:
    pairs, dropped = set(), set()
    for r in read_csv(src / "census-county-adjacency" / "county_adjacency_pairs.csv"):
        a, b = (FIPS_2010_TO_2019.get(x, x) for x in (r["fips"], r["neighbor_fips"]))
        if a is None or b is None or a == b:
            continue
        if a not in fips or b not in fips:  # island areas (AS, GU, MP, VI): not in counties.csv
            dropped.add(a if a not in fips else b)
            continue
        pairs.add((a, b))
    assert all((b, a) in pairs for a, b in pairs), "adjacency is not symmetric"
    print(f"adjacency: left out pairs touching {sorted(dropped)}; "
          f"counties without neighbours: {sorted(fips - {a for a, _ in pairs})}")
    rows = [{"fips": a, "neighbor_fips": b} for a, b in sorted(pairs)]
    write_csv(out / "counties" / "county_adjacency.csv", ["fips", "neighbor_fips"], rows)


def copy_topojson(src: Path, out: Path) -> None:
    (out / "topojson").mkdir(parents=True, exist_ok=True)
    for name in ("counties-10m.json", "states-10m.json", "LICENSE"):
        shutil.copyfile(src / "us-atlas-topojson" / name, out / "topojson" / name)
    counties = json.loads((out / "topojson" / "counties-10m.json").read_text())
    print(f"copied topojson: {len(counties['objects']['counties']['geometries'])} county geometries")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--source", type=Path, default=REPO.parent / "shared" / "data")
    p.add_argument("--out", type=Path, default=REPO / "src" / "rxradar" / "reference" / "data")
    args = p.parse_args()
    src, out = args.source, args.out

    cdc = cdc_rows(src)
    assert len({r["ndc11"] for r in cdc}) == len(cdc), "NDC in both CDC sheets"
    mat, skipped = mat_rows(src, cdc)
    print(f"MAT list: {len(mat)} NDCs added, {len(skipped)} left out:")
    for ndc, why in skipped:
        print(f"  {ndc}  {why}")
    check_factors(cdc + mat, out / "cdc" / "mme_factors.csv")
    check_long_acting(src, cdc)
    write_csv(out / "cdc" / "ndc_products.csv", NDC_COLUMNS, sorted(cdc, key=lambda r: r["ndc11"]))
    write_csv(out / "opioiddatalab" / "ndc_products_mat.csv", NDC_COLUMNS, sorted(mat, key=lambda r: r["ndc11"]))

    build_adjacency(src, out, build_counties(src, out))
    copy_topojson(src, out)


if __name__ == "__main__":
    main()
