"""How the synthetic pharmacies report: file names and times, patient IDs, and each value as text.

Shared by the ASAP writer (:mod:`rxradar.synth.writers_asap`) and the direct-to-workspace writer
(:mod:`rxradar.synth.writers_workspace`), so both formats say the same thing about every fill.
Per-entity choices (a file's creation time, a patient's licence number, a made-up ZIP+4) come
from a keyed integer hash of the entity's ids and the world's seed, not from a sequence of draws:
any slice of the fills can be processed on its own and gets the same answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rxradar.codes import dea_is_valid, ncpdp_format_ok, npi_is_valid, ssn_is_valid
from rxradar.synth.world import World

# ASAP versions the writers produce (DSP13 is a partial-fill sequence from 4.2 on) and the two
# common terminators; with '~' a newline follows each segment, with '\' none (formats.md §1.2).
VERSIONS = ("4.2", "4.2A", "4.2B", "5.0")
NEWLINE_AFTER = {"~": "\n", "\\": ""}
SEP = "*"
# Characters that would break a segment if they appeared inside a value.
DELIMITERS = r"[*~\\\r\n]"

EPOCH = date(1970, 1, 1)
DAY_SECONDS = 86_400
# Files are created on the Monday after the week they cover, between 01:00:00 and 05:59:59.
CREATED_FROM_S, CREATED_SPAN_S = 3_600, 5 * 3_600
SSN_SHARE_PER_MILLE = 50  # pharmacies sending the SSN (PAT02 07) rather than a driver's licence
DRIVERS_LICENCE, SSN = "06", "07"

# Salts keep the hash streams for different choices independent.
SALT_CREATED, SALT_PATIENT_ID, SALT_ZIP4 = 1, 2, 3

def _splitmix(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser (Steele, Lea & Flood 2014): a cheap, well-mixed 64-bit hash."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def mix(seed: int, salt: int, *parts: np.ndarray | int) -> np.ndarray:
    """A uint64 hash of ``parts`` (element-wise), keyed by the world's seed and a salt."""
    h = _splitmix(np.atleast_1d(np.asarray((seed * 1_000_003 + salt) & 0xFFFFFFFFFFFFFFFF, dtype=np.uint64)))
    for part in parts:
        h = _splitmix(h ^ np.asarray(part, dtype=np.int64).astype(np.uint64))
    return h


def epoch_days(dates: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """date32 values as int32 days since 1970-01-01 (nulls must have been excluded)."""
    return np.asarray(pc.cast(dates, pa.int32()).to_numpy(zero_copy_only=False), dtype=np.int32)


def week_start(days: np.ndarray) -> np.ndarray:
    """The Monday on or before each day (days since the epoch; 1970-01-01 was a Thursday)."""
    return days - (days + 3) % 7


@lru_cache(maxsize=4096)
def iso_week_label(monday: int) -> str:
    year, week, _ = (EPOCH + timedelta(days=int(monday))).isocalendar()
    return f"{year}w{week:02d}"


def file_stem(prefix: str, monday: int) -> str:
    """``{ncpdp}_{YYYY}w{WW}``: the pharmacy's weekly submission (ISO week)."""
    return f"{prefix}_{iso_week_label(monday)}"


def created_seconds(seed: int, pharmacy_key: np.ndarray | int, monday: np.ndarray | int) -> np.ndarray:
    """Creation time (seconds since the epoch) of a pharmacy's file for the week starting ``monday``."""
    h = mix(seed, SALT_CREATED, pharmacy_key, monday)
    offset = (h % np.uint64(CREATED_SPAN_S)).astype(np.int64)
    return (np.asarray(monday, dtype=np.int64) + 7) * DAY_SECONDS + CREATED_FROM_S + offset


def format_dates(dates: pa.Array | pa.ChunkedArray, fmt: str) -> pa.Array:
    """date32 → ``%Y-%m-%d`` or ``%Y%m%d`` text (nulls stay null), each distinct day formatted once."""
    if fmt not in ("%Y-%m-%d", "%Y%m%d"):
        raise ValueError(f"unsupported date format {fmt!r}")
    if isinstance(dates, pa.ChunkedArray):
        dates = dates.combine_chunks()
    encoded = pc.dictionary_encode(dates)
    text = pc.cast(encoded.dictionary, pa.string())  # Arrow writes dates as YYYY-MM-DD
    if fmt == "%Y%m%d":
        text = pc.replace_substring(text, "-", "")
    return text.take(encoded.indices)


def quantity_text(quantity: np.ndarray) -> pa.Array:
    """DSP09 text: whole quantities without a decimal point, others as the shortest exact
    decimal (so ``float(text) == quantity`` and the two writers agree)."""
    values, inverse = np.unique(quantity, return_inverse=True)
    texts = []
    for q in values.tolist():
        if not (q > 0 and np.isfinite(q)):
            raise ValueError(f"fill quantity must be a positive number, not {q!r}")
        text = str(int(q)) if q.is_integer() else repr(q)
        if "e" in text:
            raise ValueError(f"fill quantity {q!r} has no plain decimal form; round it to 3 decimals")
        texts.append(text)
    return pa.array(texts, pa.string()).take(pa.array(inverse.reshape(-1)))


def _int64(values: pa.Array | pa.ChunkedArray | np.ndarray) -> np.ndarray:
    if isinstance(values, np.ndarray):
        return values.astype(np.int64, copy=False)
    return np.asarray(values.to_numpy(zero_copy_only=False), dtype=np.int64)


class KeyIndex:
    """The row of each key in a column of unique integer keys (sorted once, looked up often)."""

    def __init__(self, values: pa.Array | pa.ChunkedArray | np.ndarray, what: str):
        self.values, self.what = _int64(values), what
        n = len(self.values)
        # Keys 0..n-1 in order (what generators usually make) are their own rows.
        self.dense = bool(n) and self.values[0] == 0 and bool(np.array_equal(self.values, np.arange(n)))
        self.order = None if self.dense else np.argsort(self.values, kind="stable")

    def rows(self, keys: pa.Array | pa.ChunkedArray | np.ndarray) -> np.ndarray:
        k, n = _int64(keys), len(self.values)
        if self.dense:
            idx, ok = k, (k >= 0) & (k < n)
        elif n:
            at = np.clip(np.searchsorted(self.values, k, sorter=self.order), 0, n - 1)
            idx = self.order[at]
            ok = self.values[idx] == k
        else:
            idx, ok = np.zeros(len(k), np.int64), np.zeros(len(k), bool)
        if not ok.all():
            raise ValueError(f"{int((~ok).sum())} rows refer to a {self.what} that is not in the world")
        return idx


def positions(keys: pa.Array | pa.ChunkedArray | np.ndarray, values: pa.Array | pa.ChunkedArray,
              what: str) -> np.ndarray:
    """Row index in ``values`` of each key; every key must be present (``what`` names them)."""
    return KeyIndex(values, what).rows(keys)


def clean_text(values: pa.ChunkedArray | pa.Array, what: str) -> pa.Array:
    """Trimmed text (empty → null); a value holding an ASAP delimiter is an error."""
    values = pc.utf8_trim_whitespace(pc.cast(values, pa.string()))
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    bad = pc.sum(pc.match_substring_regex(values, DELIMITERS)).as_py()
    if bad:
        raise ValueError(f"{bad} {what} value(s) hold an ASAP delimiter (* ~ \\ or a line break)")
    return pc.if_else(pc.equal(values, ""), pa.scalar(None, pa.string()), values)


# --- pharmacies ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reporting:
    """How each pharmacy (row of world.pharmacies) submits: its rxradar id, file prefix, layout."""

    pharmacy_id: list[str]  # NPI if valid, else NCPDP, else DEA: the rule rxradar's ASAP reader applies
    prefix: list[str]  # file-name prefix: the NCPDP id when valid
    version: list[str]
    term: list[str]
    newline: list[str]


def pharmacy_reporting(pharmacies: pa.Table) -> Reporting:
    ids, prefixes, versions, terms = [], [], [], []
    for p in pharmacies.select(["pharmacy_key", "npi", "ncpdp", "dea", "asap_version", "terminator"]).to_pylist():
        npi, ncpdp, dea = (p[k] or "" for k in ("npi", "ncpdp", "dea"))
        pid = npi if npi_is_valid(npi) else ncpdp if ncpdp_format_ok(ncpdp) else dea if dea_is_valid(dea) else None
        if pid is None:
            raise ValueError(f"pharmacy {p['pharmacy_key']} has no valid NPI, NCPDP or DEA")
        if p["asap_version"] not in VERSIONS:
            raise ValueError(f"pharmacy {p['pharmacy_key']}: asap_version {p['asap_version']!r} not one of {VERSIONS}")
        if p["terminator"] not in NEWLINE_AFTER:
            raise ValueError(f"pharmacy {p['pharmacy_key']}: terminator {p['terminator']!r} not '~' or '\\'")
        ids.append(pid)
        prefixes.append(ncpdp if ncpdp_format_ok(ncpdp) else pid)
        versions.append(p["asap_version"])
        terms.append(p["terminator"])
    if len(set(prefixes)) != len(prefixes):
        raise ValueError("two pharmacies share an NCPDP id (file names would collide)")
    return Reporting(ids, prefixes, versions, terms, [NEWLINE_AFTER[t] for t in terms])


# --- patients ------------------------------------------------------------------------------------


def patient_fields(world: World) -> pa.Table:
    """What a pharmacy puts in PAT for each identity variant (rows aligned with
    ``world.identity_variants``), and the identity key rxradar hashes into ``identity_id``.

    PAT01-03: a driver's licence issued by the person's state (one letter and six digits, the
    same for the person everywhere), or for about 5% of people their SSN (PAT01 US, PAT02 07).
    identity_key is ``LAST|FIRST|M|YYYY-MM-DD|SEX|ZIP5`` upper-cased with empty slots kept, as
    ``sql/asap_records.sql`` builds it; id_key is what its ``id_hash`` hashes.
    """
    v = world.identity_variants
    persons = world.persons
    at = positions(v["person_id"], persons["person_id"], "person")
    take = pa.array(at)
    person_state = clean_text(persons["state"], "person state").take(take)
    person_ssn = persons["ssn"].combine_chunks().take(take)
    person_id = np.asarray(v["person_id"].to_numpy(zero_copy_only=False), dtype=np.int64)

    h = mix(world.seed, SALT_PATIENT_ID, person_id)
    ssn_digits = pc.replace_substring_regex(pc.fill_null(person_ssn, ""), "[^0-9]", "")
    use_ssn = (h % np.uint64(1000)) < SSN_SHARE_PER_MILLE
    candidates = np.flatnonzero(use_ssn)  # only these need the (Python) SSN check
    use_ssn[candidates] = [ssn_is_valid(s) for s in ssn_digits.take(pa.array(candidates)).to_pylist()]
    letters = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))[((h >> np.uint64(20)) % np.uint64(26)).astype(np.int64)]
    licence_number = pc.binary_join_element_wise(
        pa.array(letters.astype(object), pa.string()),
        pc.utf8_lpad(pc.cast(pa.array(((h >> np.uint64(32)) % np.uint64(1_000_000)).astype(np.int64)), pa.string()),
                     6, "0"), "")
    mask = pa.array(use_ssn)
    pat01 = pc.if_else(mask, "US", person_state)
    pat02 = pc.if_else(mask, SSN, DRIVERS_LICENCE)
    pat03 = pc.if_else(mask, ssn_digits, licence_number)

    zip_digits = pc.replace_substring_regex(pc.fill_null(pc.cast(v["zip"], pa.string()), ""), "[^0-9]", "")
    zip5 = pc.utf8_slice_codeunits(zip_digits, 0, 5)
    known4 = pc.utf8_slice_codeunits(zip_digits, 5, 9)
    made4 = pc.utf8_lpad(pc.cast(pa.array((mix(world.seed, SALT_ZIP4, person_id, np.asarray(
        pc.cast(pc.if_else(pc.equal(zip5, ""), "0", zip5), pa.int64()))) % np.uint64(10_000)).astype(np.int64)),
        pa.string()), 4, "0")
    zip4 = pc.if_else(pc.equal(pc.utf8_length(known4), 4), known4, made4)
    zip5 = pc.if_else(pc.equal(zip5, ""), pa.scalar(None, pa.string()), zip5)

    sex = pc.utf8_upper(pc.fill_null(pc.cast(v["sex"], pa.string()), "U"))
    sex = pc.if_else(pc.is_in(sex, pa.array(["F", "M", "U"])), sex, "U")
    last, first, middle = (clean_text(v[c], c) for c in ("last_name", "first_name", "middle_name"))
    key = pc.binary_join_element_wise(
        pc.utf8_upper(last), pc.utf8_upper(first), pc.utf8_upper(pc.utf8_slice_codeunits(middle, 0, 1)),
        format_dates(v["birth_date"], "%Y-%m-%d"), sex, zip5, "|",
        null_handling="replace", null_replacement="")
    id_key = pc.if_else(mask, ssn_digits, pc.binary_join_element_wise(pat01, pat02, pat03, "|",
                                                                       null_handling="replace", null_replacement=""))
    return pa.table({
        "variant_id": v["variant_id"], "pat01": pat01, "pat02": pat02, "pat03": pat03,
        "last_name": last, "first_name": first, "middle_name": middle,
        "address": clean_text(v["address"], "address"), "city": clean_text(v["city"], "city"), "state": person_state,
        "zip5": zip5, "zip4": zip4, "birth_date": v["birth_date"], "sex": sex,
        "identity_key": key, "id_key": id_key,
    })
