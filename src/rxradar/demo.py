"""``rxradar demo``: a small worked sample of a state's files, ingested end to end.

The sample is what a PDMP receives in a month or two from a handful of West Virginia pharmacies:
ASAP files in several versions and layouts (with the faults real submissions have: a bad NPI
check digit, a missing days supply, an unknown NDC, a resubmitted file, a revision, a void and
a zero report), death certificates as CSV and IJE, and prescriber and pharmacy registries.
Everything is generated from a seed, so the demo prints the same numbers every time.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from rxradar.codes import dea_with_check_digit, npi_with_check_digit
from rxradar.ingest.asap_writer import AsapDispensation, AsapFile, AsapPatient, AsapPharmacy, write_asap, zero_report
from rxradar.ingest.ije import write_deaths_ije

# Real NDCs from the CDC 2017 file: (ndc11, typical quantity per day, typical days supply).
PRODUCTS = {
    "oxycodone 10 mg": ("00406052301", 4, 30),
    "hydrocodone 5 mg": ("00406012301", 4, 5),
    "tramadol 50 mg": ("00093005801", 3, 30),
    "fentanyl 25 mcg/hr patch": ("00093690045", 1 / 3, 30),
    "buprenorphine 8 mg": ("00054017713", 2, 30),
    "alprazolam 1 mg": ("00005334231", 2, 30),
}
COUNTIES = {"54039": ("CHARLESTON", "25301"), "54011": ("HUNTINGTON", "25701"), "54045": ("LOGAN", "25601")}
FIRST = ["JAMES", "MARY", "ROBERT", "PATRICIA", "JOHN", "JENNIFER", "MICHAEL", "LINDA", "DAVID", "BARBARA"]
LAST = ["SMITH", "JOHNSON", "WILLIAMS", "BROWN", "JONES", "MILLER", "DAVIS", "WILSON", "MOORE", "TAYLOR",
        "ADKINS", "MULLINS", "COLLINS", "BALL", "MAYNARD"]


@dataclass(frozen=True)
class SampleFiles:
    asap: Path
    deaths_csv: Path
    deaths_ije: Path
    prescribers: Path
    pharmacies: Path


def build_sample(out: Path, seed: int = 7) -> SampleFiles:
    """Write the sample state's source files under ``out``."""
    rng = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    (out / "asap").mkdir(exist_ok=True)
    pharmacies = [
        {"npi": npi_with_check_digit(f"1{rng.randrange(10**8):08d}"), "ncpdp": f"51{rng.randrange(10**5):05d}",
         "dea": dea_with_check_digit("F" + name[0], f"{rng.randrange(10**6):06d}"), "name": f"{name} PHARMACY",
         "county": county}
        for name, county in [("KANAWHA", "54039"), ("RIVERSIDE", "54011"), ("LOGAN", "54045"), ("HILLTOP", "54039")]
    ]
    prescribers = [
        {"npi": npi_with_check_digit(f"1{rng.randrange(10**8):08d}"),
         "dea": dea_with_check_digit("B" + last[0], f"{rng.randrange(10**6):06d}"),
         "last": last, "first": rng.choice(FIRST), "taxonomy": taxonomy, "county": rng.choice(list(COUNTIES))}
        for last, taxonomy in [("HALL", "207Q00000X"), ("KING", "207R00000X"), ("WRIGHT", "363L00000X"),
                               ("SCOTT", "1223G0001X"), ("GREEN", "208VP0014X"), ("BAKER", "207P00000X")]
    ]
    patients = [
        {"last": rng.choice(LAST), "first": rng.choice(FIRST), "sex": rng.choice("FM"),
         "dob": date(1945, 1, 1) + timedelta(days=rng.randrange(20000)), "county": rng.choice(list(COUNTIES)),
         "licence": f"D{rng.randrange(10**7):07d}"}
        for _ in range(60)
    ]
    _write_registries(out, pharmacies, prescribers)
    _write_asap(out / "asap", rng, pharmacies, prescribers, patients)
    deaths = _deaths(rng, patients)
    _write_deaths_csv(out / "deaths.csv", deaths)
    write_deaths_ije(deaths, out / "deaths.ije")
    return SampleFiles(out / "asap", out / "deaths.csv", out / "deaths.ije", out / "prescribers.csv",
                       out / "pharmacies.csv")


def _write_registries(out: Path, pharmacies: list[dict], prescribers: list[dict]) -> None:
    with open(out / "pharmacies.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["pharmacy_id", "npi", "ncpdp", "dea", "name", "address", "city", "state", "zip", "county_fips",
                    "lat", "lon"])
        for p in pharmacies:
            city, zip5 = COUNTIES[p["county"]]
            w.writerow([p["npi"], p["npi"], p["ncpdp"], p["dea"], p["name"], "1 MAIN ST", city, "WV", zip5,
                        p["county"], "38.35", "-81.63"])
    with open(out / "prescribers.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["npi", "dea", "last_name", "first_name", "specialty", "taxonomy_code", "state", "zip",
                    "county_fips"])
        for p in prescribers:
            w.writerow([p["npi"], p["dea"], p["last"], p["first"], "", p["taxonomy"], "WV",
                        COUNTIES[p["county"]][1], p["county"]])


def _dispensation(rng: random.Random, product: str, fill: date, prescriber: dict, rx: str,
                  refill: int = 0) -> AsapDispensation:
    ndc, per_day, typical_days = PRODUCTS[product]
    days = typical_days if rng.random() < 0.8 else 7
    quantity = max(1, round(per_day * days))
    return AsapDispensation(
        dsp={"DSP01": "00", "DSP02": rx, "DSP03": (fill - timedelta(days=1)).strftime("%Y%m%d"), "DSP04": "2",
             "DSP05": fill.strftime("%Y%m%d"), "DSP06": str(refill), "DSP07": "01", "DSP08": ndc,
             "DSP09": str(quantity), "DSP10": str(days), "DSP11": "01", "DSP12": "05", "DSP13": "00",
             "DSP16": rng.choice(["01", "02", "03", "04", "04"])},
        pre={"PRE01": prescriber["npi"], "PRE02": prescriber["dea"], "PRE05": prescriber["last"],
             "PRE06": prescriber["first"]},
    )


def _patient_segment(p: dict) -> dict[str, str]:
    city, zip5 = COUNTIES[p["county"]]
    return {"PAT01": "WV", "PAT02": "06", "PAT03": p["licence"],
            "PAT07": p["last"], "PAT08": p["first"], "PAT12": "12 ELM ST", "PAT14": city, "PAT15": "WV",
            "PAT16": zip5, "PAT18": p["dob"].strftime("%Y%m%d"), "PAT19": p["sex"], "PAT20": "01", "PAT21": "01"}


def _write_asap(folder: Path, rng: random.Random, pharmacies: list[dict], prescribers: list[dict],
                patients: list[dict]) -> None:
    versions = [("4.2", "~"), ("4.2A", "\\"), ("5.0", "~"), ("4.2", "~")]
    rx_serial = 100000
    start = date(2023, 1, 2)
    for week in range(8):
        for ph_index, pharmacy in enumerate(pharmacies):
            version, term = versions[ph_index]
            pha = {"PHA01": pharmacy["npi"], "PHA02": pharmacy["ncpdp"], "PHA03": pharmacy["dea"],
                   "PHA04": pharmacy["name"], "PHA07": COUNTIES[pharmacy["county"]][0], "PHA08": "WV",
                   "PHA09": COUNTIES[pharmacy["county"]][1]}
            created = datetime.combine(start + timedelta(days=7 * week + 7), datetime.min.time()) + timedelta(hours=2)
            if ph_index == 3 and week == 5:  # a week with nothing to report
                f = zero_report(version, f"Z{week}{ph_index}", created, pharmacy["npi"], pharmacy["name"], pha,
                                (start + timedelta(days=7 * week), start + timedelta(days=7 * week + 6)))
                _save(folder, f, term, f"{pharmacy['ncpdp']}_2023w{week + 1:02d}.asap")
                continue
            patient_blocks = []
            for p in rng.sample(patients, 6):
                disp = []
                for _ in range(rng.choice((1, 1, 2))):
                    rx_serial += 1
                    fill = start + timedelta(days=7 * week + rng.randrange(7))
                    product = rng.choices(list(PRODUCTS), weights=[30, 30, 15, 5, 10, 10])[0]
                    disp.append(_dispensation(rng, product, fill, rng.choice(prescribers), f"RX{rx_serial}"))
                patient_blocks.append(AsapPatient(_patient_segment(p), disp))
            _plant_faults(week, ph_index, patient_blocks)
            f = AsapFile(version, f"T{week}{ph_index}", created, pharmacy["npi"], pharmacy["name"],
                         [AsapPharmacy(pha, patient_blocks)])
            _save(folder, f, term, f"{pharmacy['ncpdp']}_2023w{week + 1:02d}.asap")
            if week == 2 and ph_index == 0:  # the pharmacy's software sends the same file twice
                _save(folder, f, term, f"{pharmacy['ncpdp']}_2023w{week + 1:02d}_resend.asap")
            if week == 3 and ph_index == 1:  # a later correction: one revise and one void
                first = patient_blocks[0].dispensations[0]
                second = patient_blocks[1].dispensations[0]
                revise = AsapDispensation({**first.dsp, "DSP01": "01", "DSP09": str(int(first.dsp["DSP09"]) // 2)},
                                          first.pre)
                void = AsapDispensation({**second.dsp, "DSP01": "02"}, second.pre)
                fix = AsapFile(version, f"C{week}{ph_index}", created + timedelta(days=2), pharmacy["npi"],
                               pharmacy["name"], [AsapPharmacy(pha, [AsapPatient(patient_blocks[0].pat, [revise]),
                                                                     AsapPatient(patient_blocks[1].pat, [void])])])
                _save(folder, fix, term, f"{pharmacy['ncpdp']}_2023w{week + 1:02d}_correction.asap")


def _plant_faults(week: int, ph_index: int, blocks: list[AsapPatient]) -> None:
    """The errors pharmacies really make, so the demo shows rejects and warnings."""
    faults: dict[tuple[int, int], Callable[[AsapDispensation], None]] = {
        (1, 2): lambda d: d.pre.update(PRE01=d.pre["PRE01"][:9] + str((int(d.pre["PRE01"][9]) + 1) % 10)),
        (4, 0): lambda d: d.dsp.update(DSP10=""),
        (6, 3): lambda d: d.dsp.update(DSP08="99999000199"),
    }
    if (week, ph_index) in faults:
        faults[(week, ph_index)](blocks[0].dispensations[0])


def _save(folder: Path, f: AsapFile, term: str, name: str) -> None:
    with open(folder / name, "w", newline="") as out:
        write_asap(out, f, term=term, newline="\n" if term == "~" else "")


def _deaths(rng: random.Random, patients: list[dict]) -> list[dict]:
    causes = [("X42", ["T402", "T404"], "A"), ("X44", ["T404"], "A"), ("I219", [], "N"), ("X64", ["T424"], "S"),
              ("J449", [], "N")]
    deaths = []
    for n, (p, (ucod, rac, manner)) in enumerate(zip(rng.sample(patients, len(causes)), causes), start=1):
        died = date(2023, 3, 1) + timedelta(days=rng.randrange(30))
        deaths.append({
            "death_id": f"2023WV{n:06d}", "last_name": p["last"], "first_name": p["first"], "middle_name": None,
            "sex": p["sex"], "birth_date": p["dob"], "death_date": died, "zip": COUNTIES[p["county"]][1],
            "county_fips": p["county"], "state": "WV", "state_of_death": "WV", "ssn": None,
            "underlying_cause": ucod, "multiple_causes": rac, "manner": manner,
        })
    return deaths


def _write_deaths_csv(path: Path, deaths: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["death_id", "last_name", "first_name", "middle_name", "sex", "birth_date", "death_date",
                    "residence_zip", "residence_county_fips", "residence_state", "ssn", "underlying_cause",
                    "multiple_causes", "manner"])
        for d in deaths:
            w.writerow([d["death_id"], d["last_name"], d["first_name"], "", d["sex"], d["birth_date"].isoformat(),
                        d["death_date"].isoformat(), d["zip"], d["county_fips"], d["state"], "",
                        d["underlying_cause"], ";".join(d["multiple_causes"]), d["manner"]])


@dataclass(frozen=True)
class DemoStep:
    kind: str
    paths: list[Path]
    title: str


def demo_steps(files: SampleFiles) -> list[DemoStep]:
    """What the demo ingests, in order: registries first, so pharmacy reports meet known ids."""
    return [
        DemoStep("prescribers", [files.prescribers], "prescriber registry"),
        DemoStep("pharmacies", [files.pharmacies], "pharmacy registry"),
        DemoStep("asap", [files.asap], "ASAP submissions"),
        DemoStep("deaths", [files.deaths_csv, files.deaths_ije], "death records (CSV and IJE)"),
    ]
