"""ASAP reader, property tests: what the writer writes comes back field for field, whatever the
delimiters and layout; and no input, however broken, makes ingest raise or lose count of records."""

from __future__ import annotations

import gzip
import io
import tempfile
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from asap_builders import (
    DEA_PRESCRIBER,
    NPI_PHARMACY,
    NPI_PRESCRIBER,
    OXYCODONE_10MG,
    ingest,
    npi_check_digit,
    put,
    rows,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rxradar.ingest.asap_writer import AsapDispensation, AsapFile, AsapPatient, AsapPharmacy, asap_segments, write_asap
from rxradar.privacy import Pseudonymiser
from rxradar.reference.ndc import products_with_factors
from rxradar.workspace import Workspace

PROPERTY = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CREATED = datetime(2024, 1, 5, 23, 15, 0)


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("asap-properties")


def fresh(base: Path) -> tuple[Path, Workspace]:
    """A new directory and workspace per example (hypothesis reruns the body many times)."""
    directory = Path(tempfile.mkdtemp(dir=base))
    return directory, Workspace(directory / "ws")


# --- strategies ------------------------------------------------------------------------------------

_PRODUCTS = {r["ndc11"]: r for r in products_with_factors("cdc2017_datafile").to_pylist()}
_NDCS = sorted(_PRODUCTS)


def _dea_check(first8: str) -> str:
    d = [int(c) for c in first8[2:]]
    return first8 + str((d[0] + d[2] + d[4] + 2 * (d[1] + d[3] + d[5])) % 10)


npis = st.from_regex(r"[12][0-9]{8}", fullmatch=True).map(lambda s: s + npi_check_digit(s))
deas = st.from_regex(r"[ABFGM][A-Z][0-9]{6}", fullmatch=True).map(_dea_check)
names = st.from_regex(r"[A-Z][A-Z'-]{0,8}( [A-Z]{1,6})?", fullmatch=True)
codes2 = st.integers(1, 7).map(lambda n: f"{n:02d}") | st.just("99")


def ccyymmdd(d: date) -> str:
    return d.strftime("%Y%m%d")


@dataclass
class Written:
    """One file as written, and what each of its records and patients should read back as."""

    file: AsapFile
    expected: dict[str, dict]  # dispensations view row by rx number (identity_key and mme_per_day to check apart)
    patients: list[dict]


def identity_key(p: dict) -> str:
    """upper last|first|middle initial|birth date|sex|zip5, as asap_records.sql hashes it."""
    return "|".join([p["last"], p["first"], p["middle"][0], p["birth"].isoformat(), p["sex"], p["zip5"]])


@st.composite
def quantities(draw) -> str:
    return f"{draw(st.integers(1, 400))}{draw(st.sampled_from(['', '.5', '.25', '.125']))}"


@st.composite
def patients(draw, version: str) -> tuple[dict, dict]:
    """(the person, their PAT elements)."""
    zip5, plus4 = draw(st.from_regex(r"[0-9]{5}", fullmatch=True)), draw(st.sampled_from(["", "1234"]))
    hyphen = "-" if version == "5.0" else ""  # 5.0 writes ZIP+4 with a hyphen, earlier versions without
    person = {"last": draw(names), "first": draw(names),
              # never empty here: test_asap_spec covers an empty middle initial
              "middle": draw(st.from_regex(r"[A-Z]{1,6}", fullmatch=True)),
              "birth": draw(st.dates(date(1920, 1, 1), date(2010, 12, 31))),
              "sex": draw(st.sampled_from("FMU")), "zip5": zip5, "state": draw(st.sampled_from(["IL", "OH", "WV"]))}
    pat = {"PAT01": person["state"], "PAT02": "06", "PAT03": draw(st.from_regex(r"[A-Z][0-9]{7}", fullmatch=True)),
           "PAT07": person["last"], "PAT08": person["first"], "PAT09": person["middle"], "PAT12": "12 ELM ST",
           "PAT14": "SPRINGFIELD", "PAT15": person["state"], "PAT16": zip5 + (hyphen + plus4 if plus4 else ""),
           "PAT18": ccyymmdd(person["birth"]), "PAT19": person["sex"], "PAT20": "01",
           "PAT21": draw(st.sampled_from(["01", "10", "99"]))}
    return person, pat


@st.composite
def dispensations(draw, version: str, rx: str) -> tuple[AsapDispensation, dict]:
    """(the DSP and PRE elements, the dispensations-view fields they should give)."""
    fill = draw(st.dates(date(2018, 1, 1), date(2023, 12, 31)))
    written = fill - timedelta(days=draw(st.integers(0, 60)))
    sold = draw(st.none() | st.integers(0, 5).map(lambda n: fill + timedelta(days=n)))
    refill, partial = draw(st.integers(0, 5)), draw(st.integers(0, 3))
    ndc, qty, days = draw(st.sampled_from(_NDCS)), draw(quantities()), draw(st.integers(1, 90))
    npi = draw(st.none() | npis)
    dea = draw(deas) if npi is None else draw(st.none() | deas)
    dsp = {"DSP01": "00", "DSP02": rx, "DSP03": ccyymmdd(written), "DSP04": str(refill + draw(st.integers(0, 5))),
           "DSP05": ccyymmdd(fill), "DSP06": str(refill), "DSP07": "01", "DSP08": ndc, "DSP09": qty,
           "DSP10": str(days), "DSP11": draw(st.sampled_from(["01", "02", "03"])), "DSP12": draw(codes2),
           "DSP13": f"{partial:02d}", "DSP16": draw(codes2), "DSP17": ccyymmdd(sold) if sold else ""}
    if version != "4.2":  # DSP24-25 arrived in 4.2A
        dsp["DSP24"] = draw(st.sampled_from(["01", "02", "03", "11", ""]))
        dsp["DSP25"] = draw(st.sampled_from(["F11.20", "G89.4", ""]))
    pre = {"PRE01": npi or "", "PRE02": dea or "", "PRE05": draw(names), "PRE06": draw(names)}
    product = _PRODUCTS[ndc]
    factor = product["mme_factor"]  # plain-Python MME: strength x quantity / days x factor
    mme = None if factor is None else product["strength_per_unit"] * float(qty) / days * factor
    want = {"rx_number": rx, "prescriber_id": npi or dea, "prescriber_npi": npi, "prescriber_dea": dea,
            "refills_authorized": int(dsp["DSP04"]), "refill_number": refill, "partial_fill": partial,
            "written_date": written, "fill_date": fill, "sold_date": sold, "ndc_source": ndc, "ndc11": ndc,
            "quantity": float(qty), "days_supply": days, "dosage_unit": dsp["DSP11"], "rx_origin": dsp["DSP12"],
            "payment_type": dsp["DSP16"], "treatment_type": dsp.get("DSP24") or None,
            "diagnosis_code": dsp.get("DSP25") or None, "asap_version": version, "file_created": CREATED,
            "drug": product["drug"], "species": "01", "mme_per_day": mme}
    return AsapDispensation(dsp, pre), want


@st.composite
def asap_files(draw) -> Written:
    version = draw(st.sampled_from(["4.2", "4.2A", "4.2B", "5.0"]))
    expected: dict[str, dict] = {}
    people: list[dict] = []
    pharmacies = []
    for _ in range(draw(st.integers(1, 2))):
        pharmacy_npi = draw(npis)
        pha = {"PHA01": pharmacy_npi, "PHA02": draw(st.from_regex(r"[0-9]{7}", fullmatch=True)),
               "PHA03": draw(deas), "PHA04": draw(names), "PHA08": "IL"}
        pats = []
        for _ in range(draw(st.integers(1, 2))):
            person, pat = draw(patients(version))
            people.append(person)
            dsps = []
            for _ in range(draw(st.integers(1, 3))):
                rx = f"{draw(st.from_regex(r'[A-Z0-9]{0,6}', fullmatch=True))}R{len(expected) + 1}"  # unique
                d, want = draw(dispensations(version, rx))
                dsps.append(d)
                expected[rx] = {**want, "pharmacy_id": pharmacy_npi, "identity_key": identity_key(person),
                                "patient_location": pat["PAT21"]}
            pats.append(AsapPatient(pat, dsps))
        pharmacies.append(AsapPharmacy(pha, pats))
    tcn = draw(st.from_regex(r"[A-Z0-9]{1,20}", fullmatch=True))
    f = AsapFile(version, tcn, CREATED, "5555550100", "SENDER", pharmacies)
    for number, segment in enumerate(asap_segments(f), start=1):  # record_number: the DSP's segment number
        if segment.startswith("DSP*"):
            expected[segment.split("*")[2]]["record_number"] = number
    return Written(f, expected, people)


layouts = st.fixed_dictionaries({
    "sep": st.sampled_from(["*", "|", "^"]),
    "term": st.sampled_from(["~", "\\"]),
    "newline": st.sampled_from(["", "\n", "\r\n"]),
    "trim": st.booleans(),
})


# --- round trip ----------------------------------------------------------------------------------


@PROPERTY
@given(w=asap_files(), layout=layouts, compress=st.booleans())
def test_written_records_read_back_field_for_field(base, w, layout, compress):
    out = io.StringIO()
    write_asap(out, w.file, **layout)
    data = out.getvalue().encode("utf-8")
    directory, ws = fresh(base)
    with ws:
        path = put(directory, "roundtrip.txt.gz" if compress else "roundtrip.txt",
                   gzip.compress(data) if compress else data)
        outcome = ingest(ws, path)
        assert (outcome.status, outcome.records, outcome.rejected) == ("ingested", len(w.expected), 0), outcome
        assert ws.rejects().num_rows == 0, ws.rejects().to_pylist()
        hasher = Pseudonymiser(ws.key)
        got = {r["rx_number"]: r for r in rows(ws, "SELECT * FROM dispensations")}
        assert set(got) == set(w.expected)
        for rx, want in w.expected.items():
            have = got[rx]
            want = {**want, "identity_id": hasher.hash(want["identity_key"])}
            del want["identity_key"]
            mme = want.pop("mme_per_day")
            assert {k: have[k] for k in want} == want
            assert have["mme_per_day"] == (None if mme is None else pytest.approx(mme))
        identities = {r["identity_id"]: r for r in rows(ws, "SELECT * FROM identities")}
        for p in w.patients:
            i = identities[hasher.hash(identity_key(p))]
            assert (i["last_name"], i["first_name"], i["birth_date"], i["sex"], i["zip"]) == (
                p["last"], p["first"], p["birth"], p["sex"], p["zip5"])


# --- nothing breaks it -----------------------------------------------------------------------------

GOOD = (
    "TH*4.2*TCN1*01**20240105*231500*P**~~\n"
    "IS*5555550100*SENDER~\n"
    f"PHA*{NPI_PHARMACY}*0512345~\n"
    "PAT*IL*06*D1234567****DOE*JANE*Q***12 ELM ST**SPRINGFIELD*IL*62704**19700115*F*01*01~\n"
    f"DSP*00*RX1*20240102*0*20240104*0*01*{OXYCODONE_10MG}*60*30*01*05*00***03~\n"
    f"PRE*{NPI_PRESCRIBER}*{DEA_PRESCRIBER}~\n"
    "PAT*IL*06*D7777777****MUÑOZ*JOSÉ*Q******IL*62704**19800101*M*01*01~\n"
    f"DSP*00*RX2*20240102*0*20240104*0*01*{OXYCODONE_10MG}*30*15*01*05*00***03~\n"
    f"PRE*{NPI_PRESCRIBER}~\n"
    "TP*8~\n"
    "TT*TCN1*11~\n"
).encode("utf-8")
HEADER = GOOD[:GOOD.index(b"IS*")]

segment_soup = st.lists(
    st.one_of(
        st.sampled_from([s for s in GOOD.decode("utf-8").split("~\n") if s and not s.startswith("TH")]),
        st.builds(lambda sid, elements: "*".join([sid, *elements]),
                  st.sampled_from(["PHA", "PAT", "DSP", "PRE", "CDI", "AIR", "TP", "TT", "IS", "TH", "ZZ", ""]),
                  st.lists(st.text(alphabet="0123456789ABZ .-~*\\\r\n", max_size=12), max_size=30)),
    ),
    max_size=25,
).map(lambda segs: HEADER + "".join(s + "~\n" for s in segs).encode("utf-8"))


@st.composite
def mutations(draw) -> bytes:
    data = bytearray(GOOD)
    for _ in range(draw(st.integers(1, 3))):
        if draw(st.booleans()):
            del data[draw(st.integers(0, len(data))):]
        elif data:
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data)


broken = st.one_of(
    st.binary(max_size=600),
    st.binary(max_size=600).map(lambda b: HEADER + b),
    st.text(max_size=400).map(lambda t: HEADER + t.encode("utf-8")),
    segment_soup,
    mutations(),
)


@PROPERTY
@given(data=broken, compress=st.booleans())
def test_broken_input_never_raises_and_every_record_is_accounted_for(base, data, compress):
    directory, ws = fresh(base)
    with ws:
        name = "input.txt.gz" if compress else "input.txt"
        outcome = ingest(ws, put(directory, name, gzip.compress(data) if compress else data))
        problems = ws.rejects().to_pylist()
        kept = rows(ws, "SELECT count(*) AS n FROM dispensations_records")
        if outcome.status == "failed":
            assert outcome.message.startswith(name) and len(outcome.message) > len(name) + 2
            assert kept[0]["n"] == 0
            assert [(p["source_file"], p["severity"]) for p in problems] == [(name, "rejected")]
            return
        assert outcome.status == "ingested", outcome
        rejected = {p["record_number"] for p in problems if p["severity"] == "rejected"}
        assert None not in rejected
        assert outcome.rows.get("dispensations", 0) == kept[0]["n"]
        assert kept[0]["n"] + len(rejected) == outcome.records
        assert outcome.rejected == len(rejected)
        assert all(p["reason"] and p["source_file"] == name for p in problems)
        assert all(p["raw"] for p in problems if p["severity"] == "rejected")
        assert rows(ws, "SELECT count(*) AS n FROM dispensations WHERE mme_per_day < 0") == [{"n": 0}]
