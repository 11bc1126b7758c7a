"""Identifier value checks: NPI, DEA, NCPDP, NDC and SSN.

Each check has a plain-Python scalar form, which is the reference, and (where the ASAP reader
needs it on millions of rows) a vectorised form over a pyarrow string array that does no
per-row Python work. Property tests keep the two in agreement. Values are checked exactly as
given: callers trim padding first.

Rules and worked examples: shared/reference/formats.md §4 (NPI §4.1, DEA §4.2, NCPDP §4.3,
NDC §4.4).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# The same patterns run in Python `re` (with fullmatch) and in RE2 via pyarrow (where `$` is
# end of text). `[0-9]` rather than `\d`, which in Python also matches non-ASCII digits.
NPI_PATTERN = r"[0-9]{10}"
DEA_PATTERN = r"[A-Z][A-Z9][0-9]{7}"
NCPDP_PATTERN = r"[0-9]{7}"

# Luhn contribution of the implied USA prefix 80840 (CMS NPI check-digit rule): its digits sit at
# positions 15..11 from the right of the 15-digit number, so the 0 and the 4 at even positions are
# doubled: 8 + 0 + 8 + 8 + 0 = 24.
NPI_PREFIX_LUHN_SUM = 24
# A Luhn-doubled digit: 2d, less 9 when that exceeds 9.
_LUHN_DOUBLED = np.array([0, 2, 4, 6, 8, 1, 3, 5, 7, 9], dtype=np.uint8)


def _as_large_string(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    return values.cast(pa.large_string())


def _matching_bytes(values: pa.Array | pa.ChunkedArray, pattern: str, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Mask of values that fully match ``pattern`` and their bytes as an (n_matched, width) matrix.

    ``pattern`` must only match strings of exactly ``width`` ASCII characters, so the matched
    values lie back to back in the Arrow data buffer and can be viewed as a matrix without copying
    row by row.
    """
    arr = _as_large_string(values)
    mask = pc.fill_null(pc.match_substring_regex(arr, f"^{pattern}$"), False)
    kept = arr.filter(mask)
    mask_np = np.array(mask.to_numpy(zero_copy_only=False), dtype=bool)  # writable copy
    n = len(kept)
    if n == 0:
        return mask_np, np.empty((0, width), dtype=np.uint8)
    _, offsets_buf, data_buf = kept.buffers()
    offsets = np.frombuffer(offsets_buf, dtype=np.int64)[kept.offset : kept.offset + n + 1]
    data = np.frombuffer(data_buf, dtype=np.uint8)[offsets[0] : offsets[-1]]
    return mask_np, data.reshape(n, width)


def _digit_rows(m: np.ndarray) -> np.ndarray:
    """(n, width) ASCII digit bytes → (width, n) digit values, one row per position (so the
    arithmetic below runs over long contiguous-ish vectors in small integer types)."""
    return (m - np.uint8(ord("0"))).T


def _dea_style_check_ok(d: np.ndarray) -> np.ndarray:
    """(d1+d3+d5) + 2(d2+d4+d6) ≡ d7 (mod 10) for each column of a (7, n) digit matrix."""
    total = d[[0, 2, 4]].sum(axis=0, dtype=np.uint16) + 2 * d[[1, 3, 5]].sum(axis=0, dtype=np.uint16)
    return total % 10 == d[6]


# --- NPI -------------------------------------------------------------------------------------


def _npi_luhn_total(first9: str) -> int:
    total = NPI_PREFIX_LUHN_SUM
    for i, ch in enumerate(first9):
        d = int(ch)
        if i % 2 == 0:  # positions 1, 3, 5, 7, 9 from the left = every other from the rightmost
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total


def npi_with_check_digit(first9: str) -> str:
    """The valid NPI that starts with these nine digits (for test data and synthetic states)."""
    if not re.fullmatch(r"[0-9]{9}", first9):
        raise ValueError(f"an NPI starts with nine digits, not {first9!r}")
    return first9 + str((10 - _npi_luhn_total(first9) % 10) % 10)


def npi_is_valid(s: str) -> bool:
    """True if ``s`` is a 10-digit NPI whose check digit is right.

    Luhn over the first nine digits, doubling from the rightmost, plus 24 for the implied 80840
    prefix; check = (10 − sum mod 10) mod 10 (CMS, "Requirements for NPI check digit";
    formats.md §4.1). The final ``mod 10`` keeps check digit 0 valid.
    """
    if not re.fullmatch(NPI_PATTERN, s):
        return False
    return (10 - _npi_luhn_total(s[:9]) % 10) % 10 == int(s[9])


def npi_valid_mask(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Vectorised :func:`npi_is_valid`; null and empty values are False."""
    mask, m = _matching_bytes(values, NPI_PATTERN, 10)
    d = _digit_rows(m)
    doubled = _LUHN_DOUBLED[d[0:9:2]].sum(axis=0, dtype=np.uint16)
    total = doubled + d[1:9:2].sum(axis=0, dtype=np.uint16) + NPI_PREFIX_LUHN_SUM
    mask[mask] = (10 - total % 10) % 10 == d[9]
    return mask


# --- DEA -------------------------------------------------------------------------------------


def dea_is_valid(s: str) -> bool:
    """True if ``s`` is a DEA registration number: ``[A-Z][A-Z9]`` then 7 digits d1..d7 with
    (d1+d3+d5) + 2(d2+d4+d6) ≡ d7 (mod 10) (DEA; formats.md §4.2). A supervised-prescriber
    suffix (``-001AB``) is not part of the number."""
    if not re.fullmatch(DEA_PATTERN, s):
        return False
    d = [int(c) for c in s[2:]]
    return (d[0] + d[2] + d[4] + 2 * (d[1] + d[3] + d[5])) % 10 == d[6]


def dea_with_check_digit(letters: str, first6: str) -> str:
    """The valid DEA number with these two letters and six digits (for test data and synthetic states)."""
    if not re.fullmatch(r"[A-Z][A-Z9]", letters) or not re.fullmatch(r"[0-9]{6}", first6):
        raise ValueError(f"a DEA number is two letters and six digits before its check digit, not {letters}{first6}")
    d = [int(c) for c in first6]
    return letters + first6 + str((d[0] + d[2] + d[4] + 2 * (d[1] + d[3] + d[5])) % 10)


def dea_valid_mask(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Vectorised :func:`dea_is_valid`; null and empty values are False."""
    mask, m = _matching_bytes(values, DEA_PATTERN, 9)
    mask[mask] = _dea_style_check_ok(_digit_rows(m[:, 2:]))
    return mask


# --- NCPDP -----------------------------------------------------------------------------------


def ncpdp_format_ok(s: str) -> bool:
    """True if ``s`` is 7 digits, the NCPDP Provider ID format (formats.md §4.3)."""
    return re.fullmatch(NCPDP_PATTERN, s) is not None


def ncpdp_checksum_ok(s: str) -> bool:
    """True if ``s`` is 7 digits passing the DEA-style check digit.

    The NCPDP algorithm is unconfirmed (formats.md §4.3 [U]): use this to warn, never to reject.
    """
    if not ncpdp_format_ok(s):
        return False
    d = [int(c) for c in s]
    return (d[0] + d[2] + d[4] + 2 * (d[1] + d[3] + d[5])) % 10 == d[6]


def ncpdp_format_mask(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Vectorised :func:`ncpdp_format_ok`; null and empty values are False."""
    return _matching_bytes(values, NCPDP_PATTERN, 7)[0]


def ncpdp_checksum_mask(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Vectorised :func:`ncpdp_checksum_ok`; null and empty values are False."""
    mask, m = _matching_bytes(values, NCPDP_PATTERN, 7)
    mask[mask] = _dea_style_check_ok(_digit_rows(m))
    return mask


# --- NDC -------------------------------------------------------------------------------------

NDC_OK = "ok"
NDC_AMBIGUOUS = "ambiguous"
NDC_INVALID = "invalid"

# Only surrounding ASCII whitespace is trimmed, identically in Python and in Arrow.
_NDC_TRIM = " \t\r\n"
_NDC11 = r"[0-9]{11}"
_NDC10 = r"[0-9]{10}"
# 4-4-2, 5-3-2, 5-4-1 (10 digits) and 5-4-2 (11): the segment widths below, summing to ≥ 10.
_NDC_HYPHENATED = r"(?P<labeler>[0-9]{4,5})-(?P<product>[0-9]{3,4})-(?P<package>[0-9]{1,2})"
_NDC_WIDTHS = (5, 4, 2)


@dataclass(frozen=True)
class NdcNormalized:
    """An NDC in the 11-digit 5-4-2 form, or why it has none.

    ``status`` is ``ok`` (``ndc11`` set), ``ambiguous`` (an unhyphenated 10-digit NDC;
    ``candidates`` are its three possible 11-digit forms) or ``invalid``.
    """

    ndc11: str | None
    candidates: tuple[str, ...]
    status: str


def ndc10_candidates(s: str) -> tuple[str, str, str]:
    """The 11-digit forms an unhyphenated 10-digit NDC could have, in the order 4-4-2, 5-3-2,
    5-4-1 (a zero inserted before the labeler, product or package; formats.md §4.4)."""
    if not re.fullmatch(_NDC10, s):
        raise ValueError(f"not a 10-digit NDC: {s!r}")
    return ("0" + s, s[:5] + "0" + s[5:], s[:9] + "0" + s[9:])


def normalize_ndc(s: str) -> NdcNormalized:
    """Normalise an NDC to 11 digits (5-4-2), the HIPAA billing form ASAP DSP08 expects.

    11 digits are kept; hyphenated 4-4-2, 5-3-2 and 5-4-1 get a zero in the short segment; an
    unhyphenated 10-digit NDC is ambiguous and is not padded blindly (formats.md §4.4, after
    FDA/CMS guidance).
    """
    t = s.strip(_NDC_TRIM)
    if re.fullmatch(_NDC11, t):
        return NdcNormalized(t, (t,), NDC_OK)
    if re.fullmatch(_NDC10, t):
        return NdcNormalized(None, ndc10_candidates(t), NDC_AMBIGUOUS)
    m = re.fullmatch(_NDC_HYPHENATED, t)
    if m and sum(len(g) for g in m.groups()) >= 10:
        ndc11 = "".join(g.rjust(w, "0") for g, w in zip(m.groups(), _NDC_WIDTHS))
        return NdcNormalized(ndc11, (ndc11,), NDC_OK)
    return NdcNormalized(None, (), NDC_INVALID)


def normalize_ndc_array(values: pa.Array | pa.ChunkedArray) -> tuple[pa.Array, pa.Array]:
    """Vectorised :func:`normalize_ndc`: (``ndc11``, ``status``) string arrays.

    Ambiguous and invalid values get a null ``ndc11``; null input is ``invalid``.
    """
    t = pc.utf8_trim(_as_large_string(values), _NDC_TRIM)
    is11 = pc.fill_null(pc.match_substring_regex(t, f"^{_NDC11}$"), False)
    is10 = pc.fill_null(pc.match_substring_regex(t, f"^{_NDC10}$"), False)
    parts = pc.extract_regex(t, f"^{_NDC_HYPHENATED}$")
    segments = [pc.struct_field(parts, [i]) for i in range(3)]
    n_digits = pc.add(pc.add(*(pc.utf8_length(seg) for seg in segments[:2])), pc.utf8_length(segments[2]))
    hyphenated_ok = pc.fill_null(pc.greater_equal(n_digits, 10), False)
    padded = [pc.utf8_lpad(seg, w, "0") for seg, w in zip(segments, _NDC_WIDTHS)]
    joined = pc.binary_join_element_wise(*padded, pa.scalar("", pa.large_string()))
    null = pa.scalar(None, pa.large_string())
    ndc11 = pc.if_else(is11, t, pc.if_else(hyphenated_ok, joined, null))
    ok = pc.or_(is11, hyphenated_ok)
    status = pc.if_else(ok, NDC_OK, pc.if_else(is10, NDC_AMBIGUOUS, NDC_INVALID))
    return ndc11.cast(pa.string()), status.cast(pa.string())


# --- SSN -------------------------------------------------------------------------------------


def ssn_is_valid(digits: str) -> bool:
    """True if ``digits`` is 9 digits that SSA could have issued.

    SSA never assigns area 000, 666 or 900–999, group 00 or serial 0000 (SSA, "Social Security
    Number Randomization", 2011). Records use such values (999999999, 000000000) for "unknown",
    and hashing them would link unrelated people, so they are treated as missing.
    """
    if not re.fullmatch(r"[0-9]{9}", digits):
        return False
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"
