"""ASAP reader, spec tests: small hand-checked files (inline below) and the exact rows they give.

Every file goes through the public path (``ingest_files`` into a fresh workspace, then the
canonical views), so these tests hold whatever the reader does inside.
"""

from __future__ import annotations

import gzip
import io
from datetime import date, datetime

import pyarrow.compute as pc
import pytest
from asap_builders import (
    ALPRAZOLAM_025MG,
    AMBIGUOUS_NDC10,
    BUPRENORPHINE_2MG,
    DEA_OTHER,
    DEA_PHARMACY,
    DEA_PRESCRIBER,
    FENTANYL_25MCGHR,
    HYDROCODONE_5MG,
    NPI_PHARMACY,
    NPI_PRESCRIBER,
    OXYCODONE_10MG,
    OXYCODONE_ER_10MG,
    TRAMADOL_50MG,
    ingest,
    put,
    rows,
    wrap,
)

from rxradar.ingest import asap, asap_scan
from rxradar.ingest.pipeline import ingest_files
from rxradar.settings import load as load_settings
from rxradar.ingest.asap_writer import (
    AsapDispensation,
    AsapFile,
    AsapPatient,
    AsapPharmacy,
    asap_segments,
    write_asap,
    zero_report,
)
from rxradar.privacy import Pseudonymiser
from rxradar.reference.ndc import ndc_products
from rxradar.schema import IDENTITIES
from rxradar.workspace import Workspace


@pytest.fixture
def ws(tmp_path):
    with Workspace(tmp_path / "ws") as w:
        yield w


def dispensations(ws, **settings):
    return rows(ws, "SELECT * FROM dispensations ORDER BY record_number, ingest_id", **settings)


def rejects(ws):
    return ws.rejects().to_pylist()


# --- the formats.md §1.7 file ----------------------------------------------------------------
# Corrected: §1.7 prints PAT with one empty element too few (PAT04-06 are three empty
# elements, so DOE is PAT07). Its NDCs are fictitious, so each record gets one warning.

SAMPLE = """\
TH*4.2*TCN000123*01**20240105*231500*T**~~
IS*5555550100*EXAMPLE RX SOFTWARE*~
PHA*1234567893*0512345*FP1234563*EXAMPLE PHARMACY*100 MAIN ST**SPRINGFIELD*IL*62701*2175550100**~
PAT*IL*06*D1234567****DOE*JANE*Q***12 ELM ST**SPRINGFIELD*IL*627040000*2175550199*19700115*F*01*01***~
DSP*00*RX100234*20240102*0*20240104*0*01*12345067890*60*30*01*05*00*1114567898**03*****~
PRE*9876543213*BJ6543210**MD12345*SMITH*JOHN*A*2175550111*~
DSP*00*RX100235*20231201*2*20240104*1*01*12345067891*30.5*15*02*01*00***01*****~
PRE*9876543213*BJ6543210**MD12345*SMITH*JOHN*A*2175550111*~
TP*7~
TT*TCN000123*10~
"""

# The same content as writer objects, for the delimiter and layout variants.
_PRE = {"PRE01": "9876543213", "PRE02": "BJ6543210", "PRE04": "MD12345", "PRE05": "SMITH", "PRE06": "JOHN",
        "PRE07": "A", "PRE08": "2175550111"}
SAMPLE_FILE = AsapFile(
    "4.2", "TCN000123", datetime(2024, 1, 5, 23, 15), "5555550100", "EXAMPLE RX SOFTWARE", file_type="T",
    pharmacies=[AsapPharmacy(
        {"PHA01": "1234567893", "PHA02": "0512345", "PHA03": "FP1234563", "PHA04": "EXAMPLE PHARMACY",
         "PHA05": "100 MAIN ST", "PHA07": "SPRINGFIELD", "PHA08": "IL", "PHA09": "62701", "PHA10": "2175550100"},
        [AsapPatient(
            {"PAT01": "IL", "PAT02": "06", "PAT03": "D1234567", "PAT07": "DOE", "PAT08": "JANE", "PAT09": "Q",
             "PAT12": "12 ELM ST", "PAT14": "SPRINGFIELD", "PAT15": "IL", "PAT16": "627040000",
             "PAT17": "2175550199", "PAT18": "19700115", "PAT19": "F", "PAT20": "01", "PAT21": "01"},
            [AsapDispensation(
                {"DSP01": "00", "DSP02": "RX100234", "DSP03": "20240102", "DSP04": "0", "DSP05": "20240104",
                 "DSP06": "0", "DSP07": "01", "DSP08": "12345067890", "DSP09": "60", "DSP10": "30",
                 "DSP11": "01", "DSP12": "05", "DSP13": "00", "DSP14": "1114567898", "DSP16": "03"}, _PRE),
             AsapDispensation(
                {"DSP01": "00", "DSP02": "RX100235", "DSP03": "20231201", "DSP04": "2", "DSP05": "20240104",
                 "DSP06": "1", "DSP07": "01", "DSP08": "12345067891", "DSP09": "30.5", "DSP10": "15",
                 "DSP11": "02", "DSP12": "01", "DSP13": "00", "DSP16": "01"}, _PRE)],
        )],
    )],
)


def written(f: AsapFile, **options) -> str:
    out = io.StringIO()
    write_asap(out, f, **options)
    return out.getvalue()


def test_sample_file_object_is_the_sample():
    """SAMPLE_FILE holds SAMPLE's content: the same segments up to trailing empty elements."""
    th, *others = [line[:-1] for line in SAMPLE.splitlines()]  # drop each terminator
    assert asap_segments(SAMPLE_FILE) == [th, *(s.rstrip("*") for s in others)]


def test_sample_gives_two_dispensations_with_exact_values(ws, tmp_path):
    outcome = ingest(ws, put(tmp_path, "sample.txt", SAMPLE))
    assert (outcome.status, outcome.records, outcome.rejected, outcome.warnings) == ("ingested", 2, 0, 2)
    assert outcome.rows["dispensations"] == 2
    got = [{k: r[k] for k in (
        "dispensation_id", "record_number", "rx_number", "written_date", "fill_date", "refills_authorized",
        "refill_number", "partial_fill", "ndc_source", "ndc11", "quantity", "days_supply", "dosage_unit",
        "rx_origin", "payment_type", "prescriber_id", "prescriber_npi", "prescriber_dea", "pharmacy_id",
        "asap_version", "file_created", "patient_location", "species", "drug_class", "mme_per_day")}
        for r in dispensations(ws)]
    common = {"prescriber_id": "9876543213", "prescriber_npi": "9876543213", "prescriber_dea": "BJ6543210",
              "pharmacy_id": "1234567893", "asap_version": "4.2", "file_created": datetime(2024, 1, 5, 23, 15),
              "partial_fill": 0, "fill_date": date(2024, 1, 4), "patient_location": "01", "species": "01",
              "drug_class": "other", "mme_per_day": None}
    assert got == [
        {**common, "dispensation_id": "1234567893|RX100234|0|2024-01-04|0", "record_number": 5,
         "rx_number": "RX100234", "written_date": date(2024, 1, 2), "refills_authorized": 0, "refill_number": 0,
         "ndc_source": "12345067890", "ndc11": "12345067890", "quantity": 60.0, "days_supply": 30,
         "dosage_unit": "01", "rx_origin": "05", "payment_type": "03"},
        {**common, "dispensation_id": "1234567893|RX100235|1|2024-01-04|0", "record_number": 7,
         "rx_number": "RX100235", "written_date": date(2023, 12, 1), "refills_authorized": 2, "refill_number": 1,
         "ndc_source": "12345067891", "ndc11": "12345067891", "quantity": 30.5, "days_supply": 15,
         "dosage_unit": "02", "rx_origin": "01", "payment_type": "01"},
    ]
    identity_ids = {r["identity_id"] for r in dispensations(ws)}
    assert len(identity_ids) == 1 and None not in identity_ids
    assert [(r["record_number"], r["segment"], r["segment_number"], r["line"], r["field"], r["severity"])
            for r in rejects(ws)] == [(5, "DSP", 5, 5, "DSP08", "warning"), (7, "DSP", 7, 7, "DSP08", "warning")]
    assert all("not in the CDC" in r["reason"] for r in rejects(ws))


def test_sample_pharmacy_and_prescriber_rows(ws, tmp_path):
    ingest(ws, put(tmp_path, "sample.txt", SAMPLE))
    (pharmacy,) = rows(ws, "SELECT pharmacy_id, npi, ncpdp, dea, name, city, state, zip, source FROM pharmacies")
    assert pharmacy == {"pharmacy_id": "1234567893", "npi": "1234567893", "ncpdp": "0512345", "dea": "FP1234563",
                        "name": "EXAMPLE PHARMACY", "city": "SPRINGFIELD", "state": "IL", "zip": "62701",
                        "source": "asap"}
    (prescriber,) = rows(ws, "SELECT prescriber_id, npi, dea, last_name, first_name, source FROM prescribers")
    assert prescriber == {"prescriber_id": "9876543213", "npi": "9876543213", "dea": "BJ6543210",
                          "last_name": "SMITH", "first_name": "JOHN", "source": "asap"}


# --- one content, many layouts -----------------------------------------------------------------

VARIANTS = {
    "backslash-terminator": ("s.txt", lambda: SAMPLE.replace("~", "\\")),
    "no-newline": ("s.txt", lambda: SAMPLE.replace("\n", "")),
    "crlf": ("s.txt", lambda: SAMPLE.replace("\n", "\r\n")),
    "cr": ("s.txt", lambda: SAMPLE.replace("\n", "\r")),
    "blank-lines": ("s.txt", lambda: SAMPLE.replace("~\n", "~\n\n")),
    "no-final-newline": ("s.txt", lambda: SAMPLE.rstrip("\n")),
    "byte-order-mark": ("s.txt", lambda: b"\xef\xbb\xbf" + SAMPLE.encode()),
    "gzip": ("s.txt.gz", lambda: gzip.compress(SAMPLE.encode())),
    "writer-trimmed": ("s.txt", lambda: written(SAMPLE_FILE, trim=True)),
    "writer-untrimmed": ("s.txt", lambda: written(SAMPLE_FILE, trim=False)),
    "writer-untrimmed-backslash-crlf": ("s.txt", lambda: written(SAMPLE_FILE, trim=False, term="\\", newline="\r\n")),
    "writer-pipe-caret-one-line": ("s.txt", lambda: written(SAMPLE_FILE, sep="|", term="^", newline="")),
}
VOLATILE = {"ingest_id", "source_file"}


def _content(ws):
    """Everything the file gave, with keyed hashes replaced by what they hash: workspaces differ in key."""
    hasher = Pseudonymiser(ws.key)
    unhash = {hasher.hash(v): f"hash({v})" for v in ("DOE|JANE|Q|1970-01-15|F|62704", "IL|06|D1234567")}
    disp = [{k: unhash.get(v, v) if k == "identity_id" else v for k, v in r.items() if k not in VOLATILE}
            for r in rows(ws, "SELECT * FROM dispensations ORDER BY dispensation_id")]
    ident = [{k: unhash.get(v, v) if k in ("identity_id", "id_hash") else v for k, v in r.items()}
             for r in rows(ws, "SELECT * EXCLUDE (ingest_id) FROM identities ORDER BY identity_id")]
    probs = sorted((r["record_number"], r["field"], r["severity"], r["reason"]) for r in rejects(ws))
    return disp, ident, probs


@pytest.mark.parametrize("variant", VARIANTS)
def test_layout_variants_give_identical_rows(tmp_path, variant):
    name, make = VARIANTS[variant]
    with Workspace(tmp_path / "base") as base:
        ingest(base, put(tmp_path, "sample.txt", SAMPLE))
        expected = _content(base)
    with Workspace(tmp_path / "variant") as ws:
        outcome = ingest(ws, put(tmp_path, name, make()))
        assert outcome.status == "ingested", outcome.message
        assert _content(ws) == expected
    assert len(expected[0]) == 2 and expected[1][0]["identity_id"].startswith("hash(DOE|JANE")


@pytest.mark.parametrize("chunk", [7, 64, 333])
@pytest.mark.parametrize("variant", ["crlf", "no-newline", "writer-untrimmed-backslash-crlf", "gzip"])
def test_reading_in_small_chunks_gives_identical_rows_and_lines(tmp_path, monkeypatch, variant, chunk):
    # Files are streamed in chunks cut at a terminator; the hierarchy, positions and lines carry
    # across every cut (here cuts fall inside and between segments, CR/LF pairs and elements).
    name, make = VARIANTS[variant]
    source = put(tmp_path, name, make())
    with Workspace(tmp_path / "whole") as whole:
        ingest(whole, source)
        expected = _content(whole), [(r["segment_number"], r["line"]) for r in rejects(whole)]
    monkeypatch.setattr(asap_scan, "CHUNK_BYTES", chunk)
    monkeypatch.setattr(asap_scan, "MAX_SEGMENT_BYTES", 200)
    with Workspace(tmp_path / "chunks") as ws:
        assert ingest(ws, source).status == "ingested"
        assert (_content(ws), [(r["segment_number"], r["line"]) for r in rejects(ws)]) == expected


def test_text_without_a_terminator_past_the_limit_fails_the_file_with_a_reason(ws, tmp_path, monkeypatch):
    # A wrong TH09 leaves megabytes without a terminator; the reader stops rather than hold them.
    monkeypatch.setattr(asap_scan, "CHUNK_BYTES", 64)
    monkeypatch.setattr(asap_scan, "MAX_SEGMENT_BYTES", 100)
    records = [seg for k in range(40) for seg in (dsp(f"RX{k}"), PRE)]
    text = wrap([PHA, PAT, *records]) + "PAT*" + "X" * 300 + "~\n"
    assert len(text) > asap_scan.HEADER_PROBE_BYTES  # read in chunks after the header probe
    outcome = ingest(ws, put(tmp_path, "long.txt", text))
    assert outcome.status == "failed"
    assert "no segment terminator" in outcome.message and "bytes from byte" in outcome.message
    assert rows(ws, "SELECT count(*) AS n FROM dispensations") == [{"n": 0}]


# --- several pharmacies, trailer counts ----------------------------------------------------------

PAT = "PAT*IL*06*D1234567****DOE*JANE*Q***12 ELM ST**SPRINGFIELD*IL*62704*2175550199*19700115*F*01*01"
PHA = f"PHA*{NPI_PHARMACY}*0512345*{DEA_PHARMACY}*EXAMPLE PHARMACY*100 MAIN ST**SPRINGFIELD*IL*62701"
PRE = f"PRE*{NPI_PRESCRIBER}*{DEA_PRESCRIBER}**MD12345*SMITH*JOHN"


def dsp(rx="RX1", *, status="00", written="20240102", fill="20240104", refill="0", ndc=OXYCODONE_10MG,
        qty="60", days="30", partial="00", payment="03"):
    return f"DSP*{status}*{rx}*{written}*0*{fill}*{refill}*01*{ndc}*{qty}*{days}*01*05*{partial}***{payment}"


MULTI_PHARMACY = [
    PHA, PAT, dsp("RX1"), PRE, dsp("RX2"), PRE,  # TP*7
    f"PHA**1234563*{DEA_OTHER}*SECOND RX", PAT, dsp("RX3"), PRE,  # NCPDP, no NPI: TP*5
    f"PHA***{DEA_PHARMACY}*THIRD RX", PAT, dsp("RX4"), PRE,  # DEA only: TP*5
]


def test_records_checked_in_slices_of_one_give_what_one_pass_gives(tmp_path, monkeypatch):
    """A batch larger than the memory allows is checked a slice of DSP rows at a time: each slice
    must find its own PAT, PRE and PHA. Slices of a single record, with a reject in the middle and
    a record under a second patient, give the same dispensations and rejects as one pass."""
    body = [*MULTI_PHARMACY[:4], dsp("RX2", days=""), PRE, PAT.replace("DOE", "ROE"), dsp("RX5"), PRE,
            *MULTI_PHARMACY[6:]]
    path = put(tmp_path, "sliced.txt", wrap(body))
    results = []
    for slice_rows in (asap.MIN_SLICE_ROWS, 1):
        monkeypatch.setattr(asap, "MIN_SLICE_ROWS", slice_rows)
        monkeypatch.setattr(asap, "DSP_ROWS_PER_GB", 0)
        with Workspace(tmp_path / f"ws{slice_rows}") as w:  # each workspace has its own key:
            outcome = ingest(w, path)                        # patients compared by name
            patient = {r["identity_id"]: r["last_name"] for r in rows(w, "SELECT * FROM identities")}
            results.append(([{**d, "ingest_id": None, "identity_id": patient[d["identity_id"]]} for d in dispensations(w)],
                             [{**r, "ingest_id": None} for r in rejects(w)], (outcome.records, outcome.rejected)))
    assert results[0] == results[1]
    assert [(d["rx_number"], d["identity_id"]) for d in results[1][0]] == [
        ("RX1", "DOE"), ("RX5", "ROE"), ("RX3", "DOE"), ("RX4", "DOE")]
    assert [(r["field"], r["record_number"]) for r in results[1][1]] == [("DSP10", 7)]
    assert results[1][2] == (5, 1)


def test_several_pharmacies_with_right_counts(ws, tmp_path):
    text = wrap(MULTI_PHARMACY)
    assert "TP*7~\nPHA**" in text and text.count("TP*5~") == 2 and "TT*TCN1*20~" in text  # the hand count
    outcome = ingest(ws, put(tmp_path, "multi.txt", text))
    assert (outcome.records, outcome.rejected, outcome.warnings) == (4, 0, 0)
    assert [(r["rx_number"], r["pharmacy_id"]) for r in dispensations(ws)] == [
        ("RX1", NPI_PHARMACY), ("RX2", NPI_PHARMACY), ("RX3", "1234563"), ("RX4", DEA_PHARMACY)]
    assert rejects(ws) == []


@pytest.mark.parametrize("old,new,field,segment_number", [
    ("TP*7~", "TP*9~", "TP01", 9),
    ("TP*5~\nTT", "TP*6~\nTT", "TP01", 19),
    ("TT*TCN1*20~", "TT*TCN1*21~", "TT02", 20),
    ("TT*TCN1*20~", "TT*OTHER*20~", "TT01", 20),
])
def test_wrong_trailer_count_is_a_warning_and_records_are_kept(ws, tmp_path, old, new, field, segment_number):
    text = wrap(MULTI_PHARMACY)
    assert old in text
    outcome = ingest(ws, put(tmp_path, "multi.txt", text.replace(old, new)))
    assert (outcome.status, outcome.records, outcome.rejected, outcome.warnings) == ("ingested", 4, 0, 1)
    assert len(dispensations(ws)) == 4
    (problem,) = rejects(ws)
    assert (problem["field"], problem["severity"], problem["segment_number"], problem["line"]) == (
        field, "warning", segment_number, segment_number)


# --- zero reports -------------------------------------------------------------------------------

ZERO_REPORT_1_6 = """\
TH*4.2*123456*01**20150108*223000*P**\\\\
IS*7705555555*PHARMACY NAME*#20150101#-#20150107#\\
PHA***ZZ1234567\\
PAT*******REPORT*ZERO************\\
DSP*****20150108******\\
PRE*\\
CDI*\\
AIR*\\
TP*7\\
TT*123456*10\\
"""


@pytest.mark.parametrize("source", ["formats.md §1.6", "zero_report()"])
def test_zero_report(ws, tmp_path, source):
    if source == "zero_report()":
        text = written(zero_report("4.2", "ZR1", datetime(2024, 1, 8, 22, 30), "7705555555", "PHARMACY NAME",
                                   {"PHA01": NPI_PHARMACY}, (date(2024, 1, 1), date(2024, 1, 7))))
    else:
        text = ZERO_REPORT_1_6
    outcome = ingest(ws, put(tmp_path, "zero.txt", text))
    assert (outcome.status, outcome.records, outcome.rejected, outcome.warnings) == ("ingested", 0, 0, 0)
    assert "zero report" in outcome.message
    assert rows(ws, "SELECT count(*) AS n FROM dispensations_records") == [{"n": 0}]
    assert rows(ws, "SELECT count(*) AS n FROM identities") == [{"n": 0}]
    assert rejects(ws) == []


# --- versions -----------------------------------------------------------------------------------

@pytest.mark.parametrize("version,dsp13,partial", [
    ("4.1", "01", 1), ("4.1", "02", 0), ("4.1", "", 0),
    ("4.2", "00", 0), ("4.2", "01", 1), ("4.2", "02", 2), ("4.2", "", 0),
    ("4.2A", "03", 3), ("5.0", "00", 0),
])
def test_partial_fill_indicator_by_version(ws, tmp_path, version, dsp13, partial):
    ingest(ws, put(tmp_path, "v.txt", wrap([PHA, PAT, dsp(partial=dsp13), PRE], version=version)))
    assert [(r["asap_version"], r["partial_fill"]) for r in dispensations(ws)] == [(version, partial)]
    assert rejects(ws) == []


def test_legacy_partial_code_other_than_01_02_is_rejected(ws, tmp_path):
    outcome = ingest(ws, put(tmp_path, "v.txt", wrap([PHA, PAT, dsp("RX1", partial="03"), PRE, dsp("RX2"), PRE],
                                                     version="4.1")))
    assert outcome.rejected == 1
    assert [(r["record_number"], r["field"], r["severity"]) for r in rejects(ws)] == [(5, "DSP13", "rejected")]
    assert [r["rx_number"] for r in dispensations(ws)] == ["RX2"]


def test_partial_fills_of_one_rx_are_separate_dispensations(ws, tmp_path):
    body = [PHA, PAT, dsp("RX9", qty="20", partial="01"), PRE, dsp("RX9", qty="40", partial="02"), PRE]
    ingest(ws, put(tmp_path, "p.txt", wrap(body)))
    got = [(r["dispensation_id"], r["quantity"]) for r in dispensations(ws)]
    assert got == [(f"{NPI_PHARMACY}|RX9|0|2024-01-04|1", 20.0), (f"{NPI_PHARMACY}|RX9|0|2024-01-04|2", 40.0)]


def test_asap_5_0_hyphenated_zip_and_utc_creation_time(ws, tmp_path):
    pat = "PAT*WV*06*D7654321****ROE*RICHARD*PAUL*****CHARLESTON*WV*25301-1234**19800202*M*01*01"
    body = [PHA, pat, dsp("RX5") + "*" * 11 + "023000Z", PRE]  # DSP27 time filled (5.0)
    outcome = ingest(ws, put(tmp_path, "v5.txt", wrap(body, version="5.0", created="20240105*231500Z")))
    assert (outcome.records, outcome.rejected, outcome.warnings) == (1, 0, 0)
    (d,) = dispensations(ws)
    assert (d["asap_version"], d["file_created"]) == ("5.0", datetime(2024, 1, 5, 23, 15, 0))
    (identity,) = rows(ws, "SELECT identity_id, zip, state, sex, birth_date FROM identities")
    assert identity["zip"] == "25301" and identity["state"] == "WV"
    assert identity["identity_id"] == Pseudonymiser(ws.key).hash("ROE|RICHARD|P|1980-02-02|M|25301") == d["identity_id"]


@pytest.mark.parametrize("created,expected", [
    ("20240105*231500", datetime(2024, 1, 5, 23, 15, 0)),
    ("20240105*2315", datetime(2024, 1, 5, 23, 15, 0)),  # HHMM, allowed up to 4.2B
    ("20240105*231559Z", datetime(2024, 1, 5, 23, 15, 59)),
])
def test_creation_time_forms(ws, tmp_path, created, expected):
    ingest(ws, put(tmp_path, "t.txt", wrap([PHA, PAT, dsp(), PRE], created=created)))
    assert [r["file_created"] for r in dispensations(ws)] == [expected]


@pytest.mark.parametrize("encoding", ["utf-8", "latin-1"])
def test_accented_names_in_either_encoding(ws, tmp_path, encoding):
    pat = "PAT*IL*06*D1234567****MUÑOZ*JOSÉ*Q***12 ELM ST**SPRINGFIELD*IL*62704**19700115*M*01*01"
    ingest(ws, put(tmp_path, "n.txt", wrap([PHA, pat, dsp(), PRE]).encode(encoding)))
    (identity,) = rows(ws, "SELECT identity_id, last_name, first_name FROM identities")
    assert identity == {"identity_id": Pseudonymiser(ws.key).hash("MUÑOZ|JOSÉ|Q|1970-01-15|M|62704"),
                        "last_name": "MUÑOZ", "first_name": "JOSÉ"}


def test_elements_padded_with_spaces_read_as_their_values(ws, tmp_path):
    """Some pharmacy systems pad elements; the padding is not part of the value."""
    pat = "PAT*IL*06*D1234567****DOE *JANE *Q***12 ELM ST**SPRINGFIELD*IL* 62704 **19700115 * F *01*01"
    padded = "DSP* 00 * RX1 * 20240102 * 0 * 20240104 * 0 * 01 * 00228298311 * 60 * 30 * 01 * 05 * 00 *** 03 "
    outcome = ingest(ws, put(tmp_path, "pad.txt", wrap([PHA, pat, padded, PRE])))
    assert (outcome.rejected, outcome.warnings) == (0, 0)
    (d,) = dispensations(ws)
    assert (d["rx_number"], d["fill_date"], d["quantity"], d["days_supply"], d["payment_type"], d["mme_per_day"]) == (
        "RX1", date(2024, 1, 4), 60.0, 30, "03", pytest.approx(30.0))
    assert d["identity_id"] == Pseudonymiser(ws.key).hash("DOE|JANE|Q|1970-01-15|F|62704")


# --- revisions and voids ------------------------------------------------------------------------

ORIGINAL = wrap([PHA, PAT, dsp("RX1", qty="60"), PRE, dsp("RX2"), PRE], tcn="A", created="20240105*231500")
REVISE = wrap([PHA, PAT, dsp("RX1", status="01", qty="90"), PRE], tcn="B", created="20240110*080000")
# A void carries only the elements of the fill key: Rx number, fill date, refill and partial.
VOID = wrap([PHA, PAT, "DSP*02*RX1***20240104*0", "PRE*"], tcn="C", created="20240115*080000")
KEY = f"{NPI_PHARMACY}|RX1|0|2024-01-04|0"


@pytest.mark.parametrize("order", [("original", "revise"), ("revise", "original")])
def test_revise_in_later_file_replaces_quantity_whatever_the_ingest_order(ws, tmp_path, order):
    files = {"original": ORIGINAL, "revise": REVISE}
    for name in order:
        outcome = ingest(ws, put(tmp_path, f"{name}.txt", files[name]))
        assert (outcome.status, outcome.rejected, outcome.warnings) == ("ingested", 0, 0)
    assert [(r["dispensation_id"], r["quantity"], r["source_file"]) for r in dispensations(ws)
            if r["rx_number"] == "RX1"] == [(KEY, 90.0, "revise.txt")]
    assert len(dispensations(ws)) == 2
    assert sorted(r["q"] for r in rows(ws, f"SELECT quantity AS q FROM dispensations_records "
                                           f"WHERE dispensation_id = '{KEY}'")) == [60.0, 90.0]


def test_void_removes_the_fill_but_keeps_its_records(ws, tmp_path):
    ingest(ws, put(tmp_path, "original.txt", ORIGINAL))
    outcome = ingest(ws, put(tmp_path, "void.txt", VOID))
    assert (outcome.status, outcome.records, outcome.rejected, outcome.warnings) == ("ingested", 1, 0, 0)
    assert [r["rx_number"] for r in dispensations(ws)] == ["RX2"]
    assert rows(ws, f"SELECT reporting_status AS s, quantity AS q FROM dispensations_records "
                    f"WHERE dispensation_id = '{KEY}' ORDER BY ingest_id") == [{"s": "00", "q": 60.0},
                                                                               {"s": "02", "q": None}]


def test_void_before_the_original_is_ingested_still_wins(ws, tmp_path):
    ingest(ws, put(tmp_path, "void.txt", VOID))
    ingest(ws, put(tmp_path, "original.txt", ORIGINAL))
    assert [r["rx_number"] for r in dispensations(ws)] == ["RX2"]


def test_later_record_in_the_same_file_revises_an_earlier_one(ws, tmp_path):
    body = [PHA, PAT, dsp("RX1", qty="60"), PRE, dsp("RX1", status="01", qty="90"), PRE]
    ingest(ws, put(tmp_path, "r.txt", wrap(body)))
    assert [(r["rx_number"], r["quantity"]) for r in dispensations(ws)] == [("RX1", 90.0)]


def test_unreadable_creation_date_does_not_outrank_later_files(ws, tmp_path):
    """A file whose TH05 cannot be read has no known creation time: it must not beat a revision
    made later (the view orders unknown times last)."""
    undated = wrap([PHA, PAT, dsp("RX1", qty="60"), PRE, dsp("RX2"), PRE], tcn="A", created="2024O105*231500")
    ingest(ws, put(tmp_path, "undated.txt", undated))
    ingest(ws, put(tmp_path, "revise.txt", REVISE))
    assert [(r["rx_number"], r["quantity"], r["source_file"]) for r in dispensations(ws)] == [
        ("RX1", 90.0, "revise.txt"), ("RX2", 60.0, "undated.txt")]
    assert rows(ws, "SELECT DISTINCT file_created FROM dispensations_records WHERE source_file = 'undated.txt'") == [
        {"file_created": None}]


# --- record rules: one bad record among good ones ---------------------------------------------
# Each case: the body (PHA..PRE), the Rx number of the bad record, every (field, severity) it
# gets, and the segment of its first problem. record_number is the bad DSP's segment number.

def around(*bad):
    """Good record RX1, the bad segments, good record RX3 (under a fresh PAT)."""
    return [PHA, PAT, dsp("RX1"), PRE, *bad, PAT, dsp("RX3"), PRE]


PAT_NO_FIRST_NAME = "PAT*IL*06*D1234567****DOE**Q***12 ELM ST**SPRINGFIELD*IL*62704*2175550199*19700115*F*01*01"
PAT_BAD_BIRTH = "PAT*IL*06*D1234567****DOE*JANE*Q***12 ELM ST**SPRINGFIELD*IL*62704*2175550199*19701315*F*01*01"
PAT_BAD_SEX = "PAT*IL*06*D1234567****DOE*JANE*Q***12 ELM ST**SPRINGFIELD*IL*62704*2175550199*19700115*X*01*01"

RULES = {
    "prescriber NPI check digit": (around(dsp("RX2"), f"PRE*9876543210*{DEA_PRESCRIBER}"), "RX2",
                                   {("PRE01", "rejected")}, "PRE"),
    "days supply missing": (around(dsp("RX2", days=""), PRE), "RX2", {("DSP10", "rejected")}, "DSP"),
    "days supply 0": (around(dsp("RX2", days="0"), PRE), "RX2", {("DSP10", "rejected")}, "DSP"),
    "days supply 400": (around(dsp("RX2", days="400"), PRE), "RX2", {("DSP10", "rejected")}, "DSP"),
    "days supply 7.5": (around(dsp("RX2", days="7.5"), PRE), "RX2", {("DSP10", "rejected")}, "DSP"),
    "quantity 0": (around(dsp("RX2", qty="0"), PRE), "RX2", {("DSP09", "rejected")}, "DSP"),
    "quantity abc": (around(dsp("RX2", qty="abc"), PRE), "RX2", {("DSP09", "rejected")}, "DSP"),
    "quantity missing": (around(dsp("RX2", qty=""), PRE), "RX2", {("DSP09", "rejected")}, "DSP"),
    "fill date 20230230": (around(dsp("RX2", written="20230201", fill="20230230"), PRE), "RX2",
                           {("DSP05", "rejected")}, "DSP"),
    "fill date missing": (around(dsp("RX2", fill=""), PRE), "RX2", {("DSP05", "rejected")}, "DSP"),
    "rx number missing": (around(dsp(""), PRE), "", {("DSP02", "rejected")}, "DSP"),
    "refill number not a number": (around(dsp("RX2", refill="A"), PRE), "RX2", {("DSP06", "rejected")}, "DSP"),
    "reporting status 05": (around(dsp("RX2", status="05"), PRE), "RX2", {("DSP01", "rejected")}, "DSP"),
    "partial fill indicator X": (around(dsp("RX2", partial="X"), PRE), "RX2", {("DSP13", "rejected")}, "DSP"),
    "product id not an NDC": (around(dsp("RX2", ndc="OXY10"), PRE), "RX2", {("DSP08", "rejected")}, "DSP"),
    "PRE missing": (around(dsp("RX2")), "RX2", {("PRE", "rejected")}, "PRE"),
    "no NPI and invalid DEA": (around(dsp("RX2"), "PRE**BJ6543211"), "RX2", {("PRE02", "rejected")}, "PRE"),
    "patient first name missing": (around(PAT_NO_FIRST_NAME, dsp("RX2"), PRE), "RX2",
                                   {("PAT07", "rejected")}, "PAT"),
    "DSP before any PAT": ([PHA, dsp("RX2"), PRE, PAT, dsp("RX1"), PRE, dsp("RX3"), PRE], "RX2",
                           {("PAT", "rejected")}, "PAT"),
    "DSP before any PHA": ([dsp("RX2"), PRE, PHA, PAT, dsp("RX1"), PRE, dsp("RX3"), PRE], "RX2",
                           {("PHA", "rejected"), ("PAT", "rejected")}, "PHA"),
    "pharmacy without a valid id": ([PHA, PAT, dsp("RX1"), PRE, "PHA***ZZ1234567*NO ID RX", PAT, dsp("RX2"), PRE,
                                     PHA, PAT, dsp("RX3"), PRE], "RX2", {("PHA01", "rejected")}, "PHA"),
    # warnings: the record is kept
    "unknown NDC": (around(dsp("RX2", ndc="12345067890"), PRE), "RX2", {("DSP08", "warning")}, "DSP"),
    "ambiguous 10-digit NDC": (around(dsp("RX2", ndc=AMBIGUOUS_NDC10), PRE), "RX2", {("DSP08", "warning")}, "DSP"),
    "10-digit NDC with one known reading": (around(dsp("RX2", ndc="0228298311"), PRE), "RX2",
                                            {("DSP08", "warning")}, "DSP"),
    "valid NPI, invalid DEA": (around(dsp("RX2"), f"PRE*{NPI_PRESCRIBER}*BJ6543211"), "RX2",
                               {("PRE02", "warning")}, "PRE"),
    "date written after date filled": (around(dsp("RX2", written="20240105"), PRE), "RX2",
                                       {("DSP03", "warning")}, "DSP"),
    "date written invalid": (around(dsp("RX2", written="20241301"), PRE), "RX2", {("DSP03", "warning")}, "DSP"),
    "filled after the file was created": (around(dsp("RX2", written="20240106", fill="20240107"), PRE), "RX2",
                                          {("DSP05", "warning")}, "DSP"),
    "birth date invalid": (around(PAT_BAD_BIRTH, dsp("RX2"), PRE), "RX2", {("PAT18", "warning")}, "PAT"),
    "gender code X": (around(PAT_BAD_SEX, dsp("RX2"), PRE), "RX2", {("PAT19", "warning")}, "PAT"),
}


@pytest.mark.parametrize("case", RULES)
def test_record_rule(ws, tmp_path, case):
    body, bad_rx, expected, segment = RULES[case]
    text = wrap(body)
    bad_dsp = next(s for s in body if s.startswith("DSP*") and s.split("*")[2] == bad_rx)
    bad = text.splitlines().index(bad_dsp + "~") + 1  # its segment number, TH = 1
    outcome = ingest(ws, put(tmp_path, "rules.txt", text))
    rejected = any(severity == "rejected" for _, severity in expected)
    assert outcome.status == "ingested"
    assert (outcome.records, outcome.rejected, outcome.warnings) == (3, int(rejected), 0 if rejected else len(expected))
    problems = rejects(ws)
    assert {(p["record_number"], p["field"], p["severity"]) for p in problems} == {(bad, f, s) for f, s in expected}
    first = problems[0]
    assert first["segment"] == segment and first["source_file"] == "rules.txt"
    assert first["line"] == first["segment_number"]  # one segment per line
    # every other record is kept; the bad one too when it only has warnings
    kept = sorted(r["rx_number"] for r in dispensations(ws))
    assert kept == sorted(s.split("*")[2] for s in body if s.startswith("DSP*") and (s != bad_dsp or not rejected))
    if rejected:
        assert all(bad_dsp in p["raw"] for p in problems if p["severity"] == "rejected")
    else:
        assert all(p["raw"] is None for p in problems)


@pytest.mark.parametrize("bad,field,segment,segment_number,record_number", [
    pytest.param([dsp("RX2", days=""), PRE], "DSP10", "DSP", 7, 7, id="DSP10"),
    pytest.param([dsp("RX2"), f"PRE*9876543210*{DEA_PRESCRIBER}"], "PRE01", "PRE", 8, 7, id="PRE01"),
    pytest.param([PAT_NO_FIRST_NAME, dsp("RX2"), PRE], "PAT07", "PAT", 7, 8, id="PAT07"),
])
def test_reject_points_at_the_segment_at_fault(ws, tmp_path, bad, field, segment, segment_number, record_number):
    """segment_number is the number of the segment named in ``segment`` (where the bad element
    is); in a one-segment-per-line file, line is the same number."""
    text = wrap(around(*bad))
    lines = text.splitlines()
    assert lines[segment_number - 1].startswith(segment + "*") and lines[record_number - 1].startswith("DSP*00*RX2*")
    ingest(ws, put(tmp_path, "rules.txt", text))
    (problem,) = rejects(ws)
    assert (problem["record_number"], problem["field"], problem["segment"], problem["segment_number"],
            problem["line"]) == (record_number, field, segment, segment_number, segment_number)


def test_crlf_file_reports_lines(ws, tmp_path):
    """CRLF (Windows) line ends still put one segment on each line."""
    ingest(ws, put(tmp_path, "rules.txt", wrap(around(dsp("RX2", days="0"), PRE), newline="\r\n")))
    (problem,) = rejects(ws)
    assert (problem["record_number"], problem["segment_number"], problem["line"]) == (7, 7, 7)


def test_no_newlines_puts_every_reject_on_line_1(ws, tmp_path):
    ingest(ws, put(tmp_path, "rules.txt", wrap(around(dsp("RX2", days="0"), PRE), newline="")))
    (problem,) = rejects(ws)
    assert (problem["record_number"], problem["segment_number"], problem["line"]) == (7, 7, 1)


def test_unknown_ndc_is_kept_as_other_without_mme(ws, tmp_path):
    ingest(ws, put(tmp_path, "u.txt", wrap([PHA, PAT, dsp("RX1", ndc="12345067890"), PRE])))
    (d,) = dispensations(ws)
    assert (d["ndc11"], d["drug"], d["drug_class"], d["mme_per_day"]) == ("12345067890", None, "other", None)


def test_ambiguous_ndc_is_kept_without_ndc11(ws, tmp_path):
    ingest(ws, put(tmp_path, "a.txt", wrap([PHA, PAT, dsp("RX1", ndc=AMBIGUOUS_NDC10), PRE])))
    (d,) = dispensations(ws)
    assert (d["ndc_source"], d["ndc11"], d["drug_class"], d["mme_per_day"]) == (AMBIGUOUS_NDC10, None, "other", None)


@pytest.mark.parametrize("reported", ["0228-2983-11", "0228298311", " 00228298311 "])
def test_other_ndc_forms_normalise_and_get_mme(ws, tmp_path, reported):
    ingest(ws, put(tmp_path, "h.txt", wrap([PHA, PAT, dsp("RX1", ndc=reported, qty="60", days="30"), PRE])))
    (d,) = dispensations(ws)
    assert (d["ndc11"], d["drug"]) == (OXYCODONE_10MG, "oxycodone")
    assert d["mme_per_day"] == pytest.approx(30.0)


def test_prescriber_without_npi_is_identified_by_dea(ws, tmp_path):
    outcome = ingest(ws, put(tmp_path, "d.txt", wrap([PHA, PAT, dsp("RX1"), PRE, dsp("RX2"), f"PRE**{DEA_OTHER}"])))
    assert (outcome.rejected, outcome.warnings) == (0, 0)
    got = [(r["rx_number"], r["prescriber_id"], r["prescriber_npi"], r["prescriber_dea"]) for r in dispensations(ws)]
    assert got == [
        ("RX1", NPI_PRESCRIBER, NPI_PRESCRIBER, DEA_PRESCRIBER), ("RX2", DEA_OTHER, None, DEA_OTHER)]


# --- SSNs never reach the rejects ----------------------------------------------------------------

SSN_PATS = {
    "PAT02 07, hyphenated": "PAT*US*07*123-45-6789****DOE*JANE*Q******IL*62704**19700115*F*01*01",
    "PAT02 07, digits": "PAT*US*07*123456789****DOE*JANE*Q******IL*62704**19700115*F*01*01",
    "PAT02 07, last element": "PAT*US*07*123456789",
    "PAT05 07 (additional ID)": "PAT*IL*06*D1234567*US*07*123456789*DOE*JANE*Q******IL*62704**19700115*F*01*01",
}


@pytest.mark.parametrize("case", SSN_PATS)
def test_ssn_never_appears_in_rejects(ws, tmp_path, case):
    # RX3, under a patient of its own, is kept: a file none of whose records fit fails whole.
    ingest(ws, put(tmp_path, "ssn.txt", wrap([PHA, SSN_PATS[case], dsp("RX1", qty="0"), PRE, dsp("RX2"), PRE,
                                              PAT, dsp("RX3"), PRE])))
    problems = [p for p in rejects(ws) if p["severity"] == "rejected"]
    assert any(p["record_number"] == 5 and dsp("RX1", qty="0") in p["raw"] and "PAT*" in p["raw"] for p in problems)
    for p in problems:
        assert "6789" not in p["raw"], p["raw"]


def test_ssn_is_hashed_as_its_nine_digits(ws, tmp_path):
    ingest(ws, put(tmp_path, "ssn.txt", wrap([PHA, SSN_PATS["PAT02 07, hyphenated"], dsp("RX1"), PRE])))
    (identity,) = rows(ws, "SELECT id_qualifier, id_hash FROM identities")
    assert identity == {"id_qualifier": "07", "id_hash": Pseudonymiser(ws.key).hash("123456789")}


# --- MME worked examples (formats.md §3.3) ------------------------------------------------------

@pytest.mark.parametrize("ndc,qty,days,table,drug,drug_class,long_acting,strength,factor,mme", [
    (OXYCODONE_10MG, "60", "30", "cdc2017_datafile", "oxycodone", "opioid", False, 10.0, 1.5, 30.0),
    (OXYCODONE_10MG, "60", "30", "cdc2022", "oxycodone", "opioid", False, 10.0, 1.5, 30.0),
    (OXYCODONE_ER_10MG, "60", "30", "cdc2017_datafile", "oxycodone", "opioid", True, 10.0, 1.5, 30.0),
    (HYDROCODONE_5MG, "120", "30", "cdc2017_datafile", "hydrocodone", "opioid", False, 5.0, 1.0, 20.0),
    (HYDROCODONE_5MG, "120", "30", "cdc2022", "hydrocodone", "opioid", False, 5.0, 1.0, 20.0),
    # A 25 mcg/hr patch: the 2017 file's 7.2 per mcg/hr per patch-day over 3 days per patch is
    # the 2022 guideline's 2.4 MME per mcg/hr worn.
    (FENTANYL_25MCGHR, "10", "30", "cdc2017_datafile", "fentanyl", "opioid", True, 25.0, 7.2, 60.0),
    (FENTANYL_25MCGHR, "10", "30", "cdc2022", "fentanyl", "opioid", True, 25.0, 7.2, 60.0),
    (TRAMADOL_50MG, "90", "30", "cdc2017_datafile", "tramadol", "opioid", False, 50.0, 0.1, 15.0),
    (TRAMADOL_50MG, "90", "30", "cdc2022", "tramadol", "opioid", False, 50.0, 0.2, 30.0),
    (BUPRENORPHINE_2MG, "30", "30", "cdc2017_datafile", "buprenorphine", "moud", True, 2.0, None, None),
    (BUPRENORPHINE_2MG, "30", "30", "cdc2022", "buprenorphine", "moud", True, 2.0, None, None),
    (ALPRAZOLAM_025MG, "60", "30", "cdc2017_datafile", "alprazolam", "benzodiazepine", None, 0.25, None, None),
])
def test_mme_worked_examples(ws, tmp_path, ndc, qty, days, table, drug, drug_class, long_acting, strength, factor,
                             mme):
    outcome = ingest(ws, put(tmp_path, "mme.txt", wrap([PHA, PAT, dsp("RX1", ndc=ndc, qty=qty, days=days), PRE])),
                     mme_table=table)
    assert (outcome.rejected, outcome.warnings) == (0, 0)
    (d,) = dispensations(ws, mme_table=table)
    assert (d["drug"], d["drug_class"], d["long_acting"], d["strength_per_unit"]) == (
        drug, drug_class, long_acting, strength)
    assert d["mme_factor"] == (None if factor is None else pytest.approx(factor))
    assert d["mme_per_day"] == (None if mme is None else pytest.approx(mme))


@pytest.mark.parametrize("ndc,drug,form_group,strength,unit,drug_class", [
    (OXYCODONE_10MG, "oxycodone", "oral", 10.0, "MG", "opioid"),
    (OXYCODONE_ER_10MG, "oxycodone", "oral", 10.0, "MG", "opioid"),
    (HYDROCODONE_5MG, "hydrocodone", "oral", 5.0, "MG", "opioid"),
    (FENTANYL_25MCGHR, "fentanyl", "transdermal", 25.0, "MCG/HR", "opioid"),
    (TRAMADOL_50MG, "tramadol", "oral", 50.0, "MG", "opioid"),
    (BUPRENORPHINE_2MG, "buprenorphine", "buccal_sublingual", 2.0, "MG", "moud"),
    (ALPRAZOLAM_025MG, "alprazolam", "oral", 0.25, "MG", "benzodiazepine"),
])
def test_reference_products_are_what_these_tests_assume(ndc, drug, form_group, strength, unit, drug_class):
    products = ndc_products()
    (p,) = products.filter(pc.equal(products["ndc11"], ndc)).to_pylist()
    assert (p["drug"], p["form_group"], p["strength_per_unit"], p["strength_unit"], p["drug_class"]) == (
        drug, form_group, strength, unit, drug_class)


# --- pseudonymisation ---------------------------------------------------------------------------

def test_identity_id_is_the_keyed_hash_of_the_identity_key(ws, tmp_path):
    ingest(ws, put(tmp_path, "sample.txt", SAMPLE))
    (identity,) = rows(ws, "SELECT * FROM identities")
    hasher = Pseudonymiser(ws.key)
    assert identity["identity_id"] == hasher.hash("DOE|JANE|Q|1970-01-15|F|62704")
    assert identity["id_hash"] == hasher.hash("IL|06|D1234567")
    assert {r["identity_id"] for r in dispensations(ws)} == {identity["identity_id"]}
    assert (identity["last_name"], identity["first_name"], identity["birth_date"], identity["zip"]) == (
        "DOE", "JANE", date(1970, 1, 15), "62704")
    assert "D1234567" not in {v for v in identity.values() if isinstance(v, str)}


def test_identity_key_keeps_an_empty_middle_initial(ws, tmp_path):
    pat = "PAT*IL*06*D1234567****Doe*John****12 ELM ST**SPRINGFIELD*IL*62704**19700115*m*01*01"
    ingest(ws, put(tmp_path, "nomiddle.txt", wrap([PHA, pat, dsp("RX1"), PRE])))
    (identity,) = rows(ws, "SELECT identity_id, sex FROM identities")
    assert identity == {"identity_id": Pseudonymiser(ws.key).hash("DOE|JOHN||1970-01-15|M|62704"), "sex": "M"}


def test_dispensations_hold_no_identifying_columns(ws, tmp_path):
    ingest(ws, put(tmp_path, "sample.txt", SAMPLE))
    (d,) = dispensations(ws)[:1]
    identified = {c.name for c in IDENTITIES.columns if c.identified}
    assert identified & set(d) == set()
    text_values = {v for r in dispensations(ws) for v in r.values() if isinstance(v, str)}
    assert text_values & {"DOE", "JANE", "19700115", "D1234567", "2175550199", "12 ELM ST"} == set()


# --- re-ingest ------------------------------------------------------------------------------------

def test_same_file_twice_is_already_ingested(ws, tmp_path):
    path = put(tmp_path, "sample.txt", SAMPLE)
    first = ingest(ws, path)
    again = ingest(ws, path)
    copy = ingest(ws, put(tmp_path, "copy-of-sample.txt", SAMPLE))
    assert (first.status, again.status, copy.status) == ("ingested", "already-ingested", "already-ingested")
    assert again.ingest_id == copy.ingest_id == first.ingest_id and copy.same_as == "sample.txt"
    assert [m["status"] for m in ws.manifest()] == ["committed"]
    assert rows(ws, "SELECT count(*) AS n FROM dispensations_records") == [{"n": 2}]
    assert rows(ws, "SELECT count(*) AS n FROM identities_records") == [{"n": 1}]
    assert len(rejects(ws)) == 2


def test_same_records_in_another_file_do_not_duplicate(ws, tmp_path):
    ingest(ws, put(tmp_path, "sample.txt", SAMPLE))
    resent = SAMPLE.replace("TCN000123", "TCN000124")
    outcome = ingest(ws, put(tmp_path, "resent.txt", resent))
    assert outcome.status == "ingested"
    assert rows(ws, "SELECT count(*) AS n FROM dispensations_records") == [{"n": 4}]
    assert sorted(r["dispensation_id"] for r in dispensations(ws)) == [
        "1234567893|RX100234|0|2024-01-04|0", "1234567893|RX100235|1|2024-01-04|0"]
    assert rows(ws, "SELECT count(*) AS n FROM identities") == [{"n": 1}]


# --- damaged files -----------------------------------------------------------------------------

JOSE = "PAT*IL*06*D7777777****MUÑOZ*JOSÉ*Q***12 ELM ST**SPRINGFIELD*IL*62704**19700115*M*01*01"


@pytest.mark.parametrize("cut", ["after a whole segment", "inside a segment", "inside a UTF-8 character"])
def test_truncated_file_keeps_its_complete_records(ws, tmp_path, cut):
    data = wrap([PHA, PAT, dsp("RX1"), PRE, JOSE, dsp("RX2"), PRE]).encode("utf-8")
    end = {"after a whole segment": data.index(b"PAT*IL*06*D7777777"),
           "inside a segment": data.index(b"D7777777"),
           "inside a UTF-8 character": data.index("É".encode()) + 1}[cut]
    outcome = ingest(ws, put(tmp_path, "cut.txt", data[:end]))
    assert (outcome.status, outcome.records, outcome.rejected) == ("ingested", 1, 0), outcome.message
    assert [r["rx_number"] for r in dispensations(ws)] == ["RX1"]
    assert ("TT", "warning") in {(p["field"], p["severity"]) for p in rejects(ws)}


def test_segment_without_an_id_is_a_warning_with_a_reason(ws, tmp_path):
    text = wrap([PHA, PAT, dsp("RX1"), PRE, "*X*Y"])
    outcome = ingest(ws, put(tmp_path, "noid.txt", text))
    assert (outcome.status, outcome.records, outcome.rejected) == ("ingested", 1, 0)
    (problem,) = [p for p in rejects(ws) if p["field"] == "segment"]
    assert problem["severity"] == "warning" and problem["segment_number"] == 7
    assert problem["reason"] and "unknown id" in problem["reason"]


# --- not ASAP ---------------------------------------------------------------------------------------

NOT_ASAP = {
    "empty": ("empty.txt", b"", "TH", "not an ASAP file"),
    "csv": ("deaths.csv", b"death_id,last_name,first_name\nD1,DOE,JANE\n", "TH", "not an ASAP file"),
    "binary": ("blob.bin", bytes(range(256)) * 4, "TH", "not an ASAP file"),
    "unsupported version": ("v3.txt", wrap([PHA, PAT, dsp(), PRE], version="3.0").encode(), "TH01", "3.0"),
    "terminator not doubled": ("single.txt", SAMPLE.replace("**~~", "**~", 1).encode(), "TH09", "TH09"),
    "TH truncated": ("short.txt", b"TH*4.2*TCN1*01", "TH", "TH"),
    "not really gzip": ("plain.txt.gz", SAMPLE.encode(), None, "not a gzip file"),
    # A Latin-1 byte as separator would split UTF-8 characters in half.
    "non-ASCII separator": ("latin.txt", SAMPLE.replace("*", "\u00a6").encode("latin-1"), "TH", "separator"),
    "non-ASCII terminator": ("latin.txt", SAMPLE.replace("~", "\u00f7").encode("latin-1"), "TH09", "TH09"),
}


@pytest.mark.parametrize("case", NOT_ASAP)
def test_not_asap_fails_cleanly(ws, tmp_path, case):
    name, data, field, words = NOT_ASAP[case]
    outcome = ingest(ws, put(tmp_path, name, data))
    assert outcome.status == "failed"
    assert outcome.message.startswith(name) and words in outcome.message
    assert rows(ws, "SELECT count(*) AS n FROM dispensations_records") == [{"n": 0}]
    assert ws.live_files()["dispensations"] == []
    (problem,) = rejects(ws)
    assert (problem["source_file"], problem["severity"], problem["field"]) == (name, "rejected", field)
    assert words in problem["reason"]
    assert [m["status"] for m in ws.manifest()] == ["failed"]


def test_failed_file_leaves_earlier_data_alone(ws, tmp_path):
    ingest(ws, put(tmp_path, "sample.txt", SAMPLE))
    outcome = ingest(ws, put(tmp_path, "blob.bin", bytes(range(256))))
    assert outcome.status == "failed"
    assert len(dispensations(ws)) == 2


@pytest.mark.parametrize("share", [8, 1 << 40], ids=["held in memory", "moved into the engine"])
def test_a_bad_file_in_a_batch_leaves_nothing_and_the_others_go_in_whole(tmp_path, monkeypatch, share):
    # One batch: two good files around one with an unterminated segment after 40 good records, found in
    # a later chunk, when those records are already scanned. Rows move into the engine's tables
    # once past a share of the memory limit; the bad file's rows stay in neither case.
    monkeypatch.setattr(asap.Batch, "HELD_SHARE", share)
    monkeypatch.setattr(asap_scan, "CHUNK_BYTES", 64)
    monkeypatch.setattr(asap_scan, "MAX_SEGMENT_BYTES", 200)
    folder = tmp_path / "batch"
    folder.mkdir()
    put(folder, "a.txt", wrap([PHA, PAT, dsp("RXA1"), PRE, dsp("RXA2"), PRE]))
    bad = wrap([PHA, PAT, *(seg for k in range(40) for seg in (dsp(f"RXB{k}"), PRE))]) + "PAT*" + "X" * 400 + "~\n"
    assert bad.index("X" * 400) > asap_scan.HEADER_PROBE_BYTES + 64
    put(folder, "b.txt", bad)
    put(folder, "c.txt", wrap([PHA, PAT, dsp("RXC1"), PRE], tcn="TCN3"))
    with Workspace(tmp_path / "ws") as ws:
        outcomes = ingest_files(ws, "asap", [folder], load_settings(workspace=ws.root))
        assert [o.status for o in outcomes] == ["ingested", "failed", "ingested"]
        assert "no segment terminator" in outcomes[1].message
        assert sorted(r["rx_number"] for r in dispensations(ws)) == ["RXA1", "RXA2", "RXC1"]
        assert [o.records for o in outcomes] == [2, 0, 1]


def test_dsp_after_an_unreadable_patient_segment_is_rejected_not_given_to_the_previous_patient(ws, tmp_path):
    body = [PHA, PAT, dsp("RX1"), PRE, "PAX*IL*06*D9999999****ROE*RICHARD", dsp("RX2"), PRE]
    outcome = ingest(ws, put(tmp_path, "pax.txt", wrap(body)))
    assert (outcome.status, outcome.records, outcome.rejected) == ("ingested", 2, 1)
    assert [d["rx_number"] for d in dispensations(ws)] == ["RX1"]
    problems = {(r["field"], r["severity"], r["segment_number"]) for r in ws.rejects().to_pylist()}
    # TH=1, IS=2, PHA=3, PAT=4, DSP=5, PRE=6, PAX=7, DSP=8
    assert ("segment", "warning", 7) in problems
    assert ("PAT", "rejected", 4) in problems
