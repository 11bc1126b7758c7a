"""A large, valid ASAP 4.2 file for benchmarks: realistic shapes, real NDCs, valid check digits."""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta
from pathlib import Path

from rxradar.codes import dea_with_check_digit, npi_with_check_digit
from rxradar.ingest.asap_writer import AsapDispensation, AsapFile, AsapPatient, AsapPharmacy, write_asap
from rxradar.reference.ndc import ndc_products


def make_file(path: Path, dispensations: int, seed: int = 1) -> Path:
    rng = random.Random(seed)
    products = ndc_products()
    opioid = [n for n, c in zip(products["ndc11"].to_pylist(), products["drug_class"].to_pylist()) if c == "opioid"]
    ndcs = rng.sample(opioid, 400)
    prescribers = [(npi_with_check_digit(f"1{rng.randrange(10**8):08d}"), dea_with_check_digit("B" + rng.choice("ABCDEFGHJKLMNPRSTW"), f"{rng.randrange(10**6):06d}"))
                   for _ in range(5000)]
    start = date(2023, 1, 1)
    pharmacies, written = [], 0
    while written < dispensations:
        pha = {"PHA01": npi_with_check_digit(f"1{rng.randrange(10**8):08d}"), "PHA02": f"51{rng.randrange(10**5):05d}",
               "PHA04": f"PHARMACY {len(pharmacies)}", "PHA05": "1 MAIN ST", "PHA07": "CHARLESTON", "PHA08": "WV",
               "PHA09": "25301"}
        patients = []
        for _ in range(500):
            dob = date(1940, 1, 1) + timedelta(days=rng.randrange(25000))
            pat = {"PAT01": "WV", "PAT02": "06", "PAT03": f"D{rng.randrange(10**7):07d}",
                   "PAT07": f"LAST{rng.randrange(10**6)}", "PAT08": rng.choice(["JOHN", "MARY", "JAMES", "LINDA"]),
                   "PAT12": "2 ELM ST", "PAT14": "CHARLESTON", "PAT15": "WV", "PAT16": "25301",
                   "PAT18": dob.strftime("%Y%m%d"), "PAT19": rng.choice("FM"), "PAT20": "01"}
            disp = []
            for _ in range(rng.choice((1, 1, 2, 3))):
                npi, dea = rng.choice(prescribers)
                fill = start + timedelta(days=rng.randrange(365))
                days = rng.choice((3, 5, 7, 30, 30))
                disp.append(AsapDispensation(
                    dsp={"DSP01": "00", "DSP02": f"RX{rng.randrange(10**8):08d}", "DSP03": fill.strftime("%Y%m%d"),
                         "DSP04": "0", "DSP05": fill.strftime("%Y%m%d"), "DSP06": "0", "DSP07": "01",
                         "DSP08": rng.choice(ndcs), "DSP09": str(days * rng.choice((1, 2, 3, 4))),
                         "DSP10": str(days), "DSP11": "01", "DSP12": "05", "DSP13": "00", "DSP16": rng.choice("0234")
                         .replace("0", "01").zfill(2)},
                    pre={"PRE01": npi, "PRE02": dea, "PRE05": "DOCTOR", "PRE06": "ANNA"}))
            patients.append(AsapPatient(pat, disp))
            written += len(disp)
            if written >= dispensations:
                break
        pharmacies.append(AsapPharmacy(pha, patients))
    f = AsapFile("4.2", "BENCH0001", datetime(2024, 1, 2, 3, 4, 5), "5555550100", "BENCH", pharmacies)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as out:
        write_asap(out, f)
    return path
