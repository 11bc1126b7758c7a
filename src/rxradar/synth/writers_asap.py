"""Synthetic ASAP submissions: one file per pharmacy per ISO week, built in bulk.

Segment text is assembled column-wise with Arrow (one join per segment type over all the
records of a chunk of files), so a file is its header, one slice of a shared byte buffer and
its trailers; no Python runs per fill. The bytes are those :mod:`rxradar.ingest.asap_writer`
writes for the same content (tested), with TP01/TT02 counted the same way (formats.md §1.3).

Records in a file are grouped under one PAT per identity variant, in variant order, each
patient's fills in date order. Weeks in the world's date range in which a pharmacy filled
nothing get a zero report (formats.md §1.6).
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rxradar.codes import npi_is_valid
from rxradar.ingest.asap_checks import reference_ndcs
from rxradar.synth.asap_text import Envelope, TextBuffer, segment_column, trimmed_segment, write_parts
from rxradar.synth.faults import BY_NAME, CODE, FAULT_TRUTH, FaultRates, choose_fill_faults
from rxradar.synth.submissions import (
    DAY_SECONDS, EPOCH, Reporting, clean_text, created_seconds, epoch_days, file_stem, format_dates, mix, patient_fields,
    pharmacy_reporting, positions, quantity_text, week_start,
)
from rxradar.synth.world import World

CHUNK_RECORDS = 1_000_000  # records built at once (files are never split across chunks)
SALT_RESEND, SALT_CORRECTION = 11, 12
NEW, REVISE, VOID = "00", "01", "02"
PRODUCT_NDC, EACH, ELECTRONIC = "01", "01", "05"  # DSP07, DSP11, DSP12
HUMAN, HOME = "01", "01"  # PAT20 species, PAT21 patient location


def write_asap(world: World, out: Path, *, seed: int, faults: FaultRates = FaultRates()) -> pa.Table:
    """Write ``world``'s fills as ASAP files in ``out``; return the planted faults (see
    :data:`rxradar.synth.faults.FAULT_TRUTH`): one row per faulty record, resent file or correction.

    Files: ``{ncpdp}_{YYYY}w{WW}.asap`` per pharmacy and ISO week (created the Monday after, early
    morning), ``..._resend.asap`` for resent files and ``..._correction.asap`` for revisions and
    voids. Layout per pharmacy: ``asap_version`` and ``terminator`` ('~' with a newline after each
    segment, '\\' with none).
    """
    out.mkdir(parents=True, exist_ok=True)
    plan = _Plan(world, seed, faults)
    folder = str(out)
    truth: list[dict] = []
    for lo, hi in plan.chunks():
        base = plan.starts[lo]
        body = TextBuffer(plan.record_text(plan.order[base:plan.ends[hi - 1]], plan.new_pat[base:plan.ends[hi - 1]]))
        for f in range(lo, hi):
            records = body.slice(plan.starts[f] - base, plan.ends[f] - base)
            plan.write_file(folder, f, plan.names[f], int(plan.created[f]), records, int(plan.tp01[f]))
            if plan.resend[f]:
                name = _resend_name(plan.names[f])
                when = int(plan.created[f] + plan.resent_after[f])
                plan.write_file(folder, f, name, when, records, int(plan.tp01[f]))
                truth.append(_truth(name, None, None, None, "duplicate_file", plan.names[f],
                                    f"resend of {plan.names[f]} with a new control number"))
    truth.extend(plan.fault_rows())
    _write_corrections(plan, folder)
    _write_zero_reports(plan, folder)
    return pa.Table.from_pylist(truth, schema=FAULT_TRUTH)


def _record_order(ph: np.ndarray, monday: np.ndarray, var: np.ndarray, days: np.ndarray, fill_key: np.ndarray,
                  phantom: np.ndarray) -> np.ndarray:
    """Order of the records: by pharmacy, week, variant, then fill date, fill key, copy last.

    Two stable sorts of packed 64-bit keys, much faster than a six-key lexsort; the lexsort is
    kept for key ranges too wide to pack.
    """
    if not len(ph):
        return np.zeros(0, np.int64)
    week = (monday - monday.min()) // 7
    key = fill_key - fill_key.min()
    day = days - days.min()
    if ph.max() < 2**16 and week.max() < 2**12 and var.max() < 2**35 and day.max() < 2**21 and key.max() < 2**41:
        minor = (day.astype(np.int64) << 42) | (key << 1) | phantom
        first = np.argsort(minor, kind="stable")
        major = (ph.astype(np.int64) << 47) | (week.astype(np.int64) << 35) | var
        return first[np.argsort(major[first], kind="stable")]
    return np.lexsort((phantom, fill_key, days, var, monday, ph))


def _resend_name(name: str) -> str:
    return name.removesuffix(".asap") + "_resend.asap"


def _correction_name(name: str) -> str:
    return name.removesuffix(".asap") + "_correction.asap"


def _later(seed: int, salt: int, ph: np.ndarray, monday: np.ndarray, min_days: int, span_days: int) -> np.ndarray:
    """Seconds after each file's creation at which its resend or correction is created:
    ``min_days`` to ``min_days + span_days`` days, give or take an hour."""
    h = mix(seed, salt, ph, monday)
    return ((np.uint64(min_days) + h % np.uint64(span_days)) * np.uint64(DAY_SECONDS)
            + (h >> np.uint64(16)) % np.uint64(3_600)).astype(np.int64)


def _truth(file: str, record: int | None, rx: str | None, fill_key: int | None, fault: str,
           related: str | None, detail: str) -> dict:
    f = BY_NAME[fault]
    return {"file": file, "record_number": record, "rx_number": rx, "fill_key": fill_key, "fault": fault,
            "field": f.field, "severity": f.severity, "related_file": related, "detail": detail}


class _Plan:
    """Every record to write (fills, plus the copies that voids cancel), sorted into files."""

    def __init__(self, world: World, seed: int, rates: FaultRates):
        self.world, self.seed, self.rates = world, seed, rates
        fills, pharmacies = world.fills, world.pharmacies
        self.rep: Reporting = pharmacy_reporting(pharmacies)
        self.pharmacy_key = np.asarray(pharmacies["pharmacy_key"].to_numpy(zero_copy_only=False), dtype=np.int64)
        n = fills.num_rows
        for column in ("fill_date", "rx_number", "ndc11", "quantity", "refill_number", "partial_fill"):
            if fills[column].null_count:
                raise ValueError(f"fills.{column} has {fills[column].null_count} empty values")
        self.ph_of_fill = positions(fills["pharmacy_key"], pharmacies["pharmacy_key"], "pharmacy")
        self.pr_of_fill = positions(fills["prescriber_key"], world.prescribers["prescriber_key"], "prescriber")
        self.var_of_fill = positions(fills["variant_id"], world.identity_variants["variant_id"], "identity variant")
        self.fill_days = epoch_days(fills["fill_date"])
        self.fill_key = np.asarray(fills["fill_key"].to_numpy(zero_copy_only=False), dtype=np.int64)
        self.quantity = np.asarray(fills["quantity"].to_numpy(zero_copy_only=False), dtype=np.float64)

        rng = np.random.default_rng(seed)
        self.codes = choose_fill_faults(n, rates, rng)
        npi_ok = np.array([npi_is_valid(v or "") for v in world.prescribers["npi"].to_pylist()], dtype=bool)
        self.codes[(self.codes == CODE["invalid_npi"]) & ~npi_ok[self.pr_of_fill]] = 0
        voided = np.flatnonzero(self.codes == CODE["void"])
        self.src = np.concatenate([np.arange(n), voided])  # report row → fill row
        self.phantom = np.concatenate([np.zeros(n, bool), np.ones(len(voided), bool)])
        rx_width = int(pc.max(pc.utf8_length(fills["rx_number"])).as_py() or 0) if n else 0
        # A copy keyed twice gets a number longer than any real one, so it never collides.
        self.phantom_rx = {int(r): "9" + str(self.fill_key[r]).zfill(rx_width) for r in voided}
        self.unknown_ndc = _unknown_ndcs(fills["ndc11"], np.flatnonzero(self.codes == CODE["unknown_ndc"]))

        ph, monday, var = self.ph_of_fill[self.src], week_start(self.fill_days)[self.src], self.var_of_fill[self.src]
        self.order = _record_order(ph, monday, var, self.fill_days[self.src], self.fill_key[self.src], self.phantom)
        s_ph, s_monday, s_var = ph[self.order], monday[self.order], var[self.order]
        new_file = np.ones(len(self.order), bool)
        new_file[1:] = (s_ph[1:] != s_ph[:-1]) | (s_monday[1:] != s_monday[:-1])
        self.new_pat = new_file.copy()
        self.new_pat[1:] |= s_var[1:] != s_var[:-1]
        self.starts = np.flatnonzero(new_file)
        self.ends = np.append(self.starts[1:], len(self.order)).astype(np.int64)
        self.file_of = np.cumsum(new_file) - 1
        pats = np.add.reduceat(self.new_pat, self.starts) if len(self.starts) else np.zeros(0, np.int64)
        self.tp01 = 1 + pats + 2 * (self.ends - self.starts) + 1  # PHA, PATs, DSP+PRE each, TP
        pats_so_far = np.cumsum(self.new_pat)
        before = (pats_so_far[self.starts] - 1)[self.file_of] if len(self.order) else pats_so_far
        # DSP segment number: TH, IS, PHA, the PATs up to its own, two per earlier record, itself.
        self.record_number = 3 + (pats_so_far - before) + 2 * (np.arange(len(self.order)) - self.starts[self.file_of]) + 1

        self.file_ph = s_ph[self.starts]
        self.monday = s_monday[self.starts]
        self.created = created_seconds(world.seed, self.pharmacy_key[self.file_ph], self.monday)
        self.names = [file_stem(self.rep.prefix[p], int(m)) + ".asap" for p, m in zip(self.file_ph, self.monday)]
        self.resend = rng.random(len(self.starts)) < rates.duplicate_file
        # Resends go out a day or two after the file; corrections 3 to 9 days after, so later still.
        self.resent_after = _later(seed, SALT_RESEND, self.file_ph, self.monday, 1, 2)
        self.corrected_after = _later(seed, SALT_CORRECTION, self.file_ph, self.monday, 3, 7)
        self._texts()

    # -- per-entity text ------------------------------------------------------------------------
    def _texts(self) -> None:
        world, rep = self.world, self.rep
        p = _cleaned(world.pharmacies, ("npi", "ncpdp", "dea", "name", "address", "city", "state", "zip", "software"),
                     "pharmacy").to_pylist()
        site = world.pharmacies["chain_site_id"].to_pylist()
        self.pha = [trimmed_segment("PHA", [x["npi"], x["ncpdp"], x["dea"], x["name"], x["address"], None, x["city"],
                                            x["state"], (x["zip"] or "")[:5], None, None, site[i]])
                    for i, x in enumerate(p)]
        self.sender = [(x["npi"] or rep.pharmacy_id[i], x["software"] or x["name"] or rep.pharmacy_id[i])
                       for i, x in enumerate(p)]
        self.is50 = np.array([v.startswith("5") for v in rep.version])
        self.term_nl = pa.array([t + n for t, n in zip(rep.term, rep.newline)], pa.string())

        pf = patient_fields(world)
        zip50 = pc.binary_join_element_wise(pf["zip5"], pf["zip4"], "-")  # null when zip5 is
        styles = []
        for zip_text in (pf["zip5"], zip50):
            styles.append(segment_column("PAT", [
                pf["pat01"], pf["pat02"], pf["pat03"], "", "", "", pf["last_name"], pf["first_name"],
                pf["middle_name"], "", "", pf["address"], "", pf["city"], pf["state"], zip_text, "",
                format_dates(pf["birth_date"], "%Y%m%d"), pf["sex"], HUMAN, HOME]))
        # Row 2v is variant v with a five-digit ZIP (4.2, 4.2A), 2v+1 with ZIP+4 (5.0).
        self.pat = pa.concat_arrays(styles).take(pa.array(np.arange(2 * len(styles[0])).reshape(2, -1).T.ravel()))

        pr = _cleaned(world.prescribers, ("npi", "dea", "last_name", "first_name", "middle_name"), "prescriber")
        npi = pr["npi"]
        broken = pa.array([None if not v else v[:9] + str((int(v[9]) + 1) % 10) if len(v) == 10 and v.isdigit()
                           else v for v in npi.to_pylist()], pa.string())
        rows = []
        for npi_col in (npi, broken):
            rows.append(segment_column("PRE", [npi_col, pr["dea"], "", "", pr["last_name"], pr["first_name"],
                                               pr["middle_name"]]))
        # Row 2p is prescriber p as is, 2p+1 with the NPI check digit broken (invalid_npi).
        self.pre = pa.concat_arrays(rows).take(pa.array(np.arange(2 * len(rows[0])).reshape(2, -1).T.ravel()))

    # -- chunks and records ---------------------------------------------------------------------
    def chunks(self) -> list[tuple[int, int]]:
        """Runs of whole files holding about CHUNK_RECORDS records each."""
        out, lo = [], 0
        for f in range(len(self.starts)):
            if self.ends[f] - self.starts[lo] >= CHUNK_RECORDS or f == len(self.starts) - 1:
                out.append((lo, f + 1))
                lo = f + 1
        return out

    def record_text(self, rows: np.ndarray, new_pat: np.ndarray, dsp01: str | pa.Array = NEW,
                    corrected: bool = False) -> pa.Array:
        """PAT (where ``new_pat``), DSP and PRE of each report row, with terminators.

        Rows are indexes into the report (fills, then the copies voids cancel). ``corrected``:
        write revised quantities as they truly are (correction files)."""
        fills = self.world.fills
        src, phantom = self.src[rows], self.phantom[rows]
        take = pa.array(src)
        codes = np.where(phantom, 0, self.codes[src])
        col = lambda name: fills[name].take(take).combine_chunks()  # noqa: E731

        rx = col("rx_number")
        if phantom.any():
            rx = pc.replace_with_mask(rx, pa.array(phantom), pa.array([self.phantom_rx[int(r)] for r in src[phantom]]))
        ndc = col("ndc11")
        unknown = codes == CODE["unknown_ndc"]
        if unknown.any():
            ndc = pc.replace_with_mask(ndc, pa.array(unknown), pa.array([self.unknown_ndc[int(r)] for r in src[unknown]]))
        quantity = self.quantity[src]
        if not corrected:
            quantity = np.where(codes == CODE["revision"], quantity * 10, quantity)
        days = pc.cast(col("days_supply"), pa.string())
        missing = codes == CODE["missing_days_supply"]
        if missing.any():
            days = pc.if_else(pa.array(missing), pa.scalar(None, pa.string()), days)
        dsp = segment_column("DSP", [
            dsp01, rx, format_dates(col("written_date"), "%Y%m%d"), pc.cast(col("refills_authorized"), pa.string()),
            format_dates(col("fill_date"), "%Y%m%d"), pc.cast(col("refill_number"), pa.string()), PRODUCT_NDC, ndc,
            quantity_text(quantity), days, EACH, ELECTRONIC, pc.utf8_lpad(pc.cast(col("partial_fill"), pa.string()), 2, "0"),
            "", "", col("payment_type")])

        ph = self.ph_of_fill[src]
        term = self.term_nl.take(pa.array(ph))
        pre = self.pre.take(pa.array(self.pr_of_fill[src] * 2 + (codes == CODE["invalid_npi"])))
        first = np.flatnonzero(new_pat)
        pat = pc.binary_join_element_wise(
            self.pat.take(pa.array(self.var_of_fill[src[first]] * 2 + self.is50[ph[first]])), term.take(pa.array(first)), "")
        at = np.full(len(rows), len(first), dtype=np.int64)
        at[first] = np.arange(len(first))
        pat = pa.concat_arrays([pat, pa.array([""], pa.string())]).take(pa.array(at))
        return pc.binary_join_element_wise(pat, dsp, term, pre, term, "")

    # -- files ------------------------------------------------------------------------------------
    def envelope(self, ph: int, created_s: int) -> Envelope:
        sender_id, sender_name = self.sender[ph]
        return Envelope(self.rep.version[ph], self.rep.prefix[ph], created_s, self.rep.term[ph],
                        self.rep.newline[ph], sender_id, sender_name, self.pha[ph])

    def write_file(self, folder: str, f: int, name: str, created_s: int, records: memoryview, tp01: int) -> None:
        e = self.envelope(int(self.file_ph[f]), created_s)
        write_parts(os.path.join(folder, name), e.head().encode(), records, e.tail(tp01).encode())

    def fault_rows(self) -> list[dict]:
        """Truth rows for the faulty records of the weekly files (corrections are added later)."""
        rows = []
        faulty = np.flatnonzero(np.where(self.phantom[self.order], CODE["void"],
                                         np.where(self.codes[self.src[self.order]] == CODE["void"], 0,
                                                  self.codes[self.src[self.order]])))
        names = {c: n for n, c in CODE.items()}
        rx = self.world.fills["rx_number"]
        for i in faulty:
            r = int(self.src[self.order[i]])
            fault = "void" if self.phantom[self.order[i]] else names[int(self.codes[r])]
            f = int(self.file_of[i])
            correction = _correction_name(self.names[f])
            detail = {
                "invalid_npi": "prescriber NPI check digit broken",
                "missing_days_supply": "days supply left empty",
                "unknown_ndc": f"NDC {self.world.fills['ndc11'][r].as_py()} reported as {self.unknown_ndc.get(r)}",
                "revision": f"quantity {self.quantity[r]:g} reported as {self.quantity[r] * 10:g}; revised later",
                "void": f"fill entered a second time under Rx {self.phantom_rx.get(r)}; the copy is voided later",
            }[fault]
            # A resent file repeats its records, and so its faults, under its own name.
            for name in [self.names[f]] + ([_resend_name(self.names[f])] if self.resend[f] else []):
                rows.append(_truth(name, int(self.record_number[i]),
                                   self.phantom_rx[r] if fault == "void" else rx[r].as_py(), int(self.fill_key[r]),
                                   fault, correction if fault in ("revision", "void") else None, detail))
        return rows


def _cleaned(table: pa.Table, columns: tuple[str, ...], what: str) -> pa.Table:
    return pa.table({c: clean_text(table[c], f"{what} {c}") for c in columns})


def _unknown_ndcs(ndc11: pa.ChunkedArray, rows: np.ndarray) -> dict[int, str]:
    """For each fill row, an NDC of the same product with a package code the CDC file does not list."""
    known = reference_ndcs()
    out = {}
    for r in rows.tolist():
        ndc = ndc11[r].as_py()
        for step in range(1, 100):
            candidate = ndc[:9] + f"{(int(ndc[9:]) + step) % 100:02d}"
            if candidate not in known:
                out[r] = candidate
                break
    return out


def _write_corrections(plan: _Plan, folder: str) -> None:
    """One correction file per weekly file with a revision or a void, a few days after it."""
    s_codes, s_phantom = plan.codes[plan.src[plan.order]], plan.phantom[plan.order]
    revise = (s_codes == CODE["revision"]) & ~s_phantom
    at = np.flatnonzero(revise | s_phantom)  # the revised records and the copies to void
    if not len(at):
        return
    files, var = plan.file_of[at], plan.var_of_fill[plan.src[plan.order[at]]]
    new_file = np.ones(len(at), bool)
    new_file[1:] = files[1:] != files[:-1]
    new_pat = new_file.copy()
    new_pat[1:] |= var[1:] != var[:-1]
    dsp01 = pa.array(np.where(revise[at], REVISE, VOID).astype(object), pa.string())
    body = TextBuffer(plan.record_text(plan.order[at], new_pat, dsp01, corrected=True))
    starts = np.flatnonzero(new_file)
    for s, e in zip(starts.tolist(), np.append(starts[1:], len(at)).tolist()):
        f = int(files[s])
        when = int(plan.created[f] + plan.corrected_after[f])
        tp01 = 1 + int(new_pat[s:e].sum()) + 2 * (e - s) + 1
        plan.write_file(folder, f, _correction_name(plan.names[f]), when, body.slice(s, e), tp01)


def _write_zero_reports(plan: _Plan, folder: str) -> None:
    """A zero report for every pharmacy-week in the world's date range with nothing to report."""
    first, last = _date_range(plan)
    if first is None:
        return
    mondays = np.arange(week_start(np.array([first]))[0], week_start(np.array([last]))[0] + 1, 7, dtype=np.int64)
    ph = np.repeat(np.arange(len(plan.rep.prefix)), len(mondays))
    monday = np.tile(mondays, len(plan.rep.prefix))
    reported = set(zip(plan.file_ph.tolist(), plan.monday.tolist()))
    empty = np.array([(p, m) not in reported for p, m in zip(ph.tolist(), monday.tolist())], dtype=bool)
    ph, monday = ph[empty], monday[empty]
    created = created_seconds(plan.world.seed, plan.pharmacy_key[ph], monday)
    for p, m, c in zip(ph.tolist(), monday.tolist(), created.tolist()):
        text = plan.envelope(p, c).zero_report(m)
        write_parts(os.path.join(folder, file_stem(plan.rep.prefix[p], m) + ".asap"), text.encode())


def _date_range(plan: _Plan) -> tuple[int | None, int | None]:
    """The world's date range (notes 'start' and 'end'), else the first and last fill dates."""
    notes = plan.world.notes or {}
    ends = []
    for key in ("start", "end"):
        value = notes.get(key)
        if isinstance(value, str):
            value = date.fromisoformat(value)
        ends.append(None if value is None else (value - EPOCH).days)
    if None in ends and len(plan.fill_days):
        ends = [ends[0] if ends[0] is not None else int(plan.fill_days.min()),
                ends[1] if ends[1] is not None else int(plan.fill_days.max())]
    return (ends[0], ends[1]) if None not in ends else (None, None)
