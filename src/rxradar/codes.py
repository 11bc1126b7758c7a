"""Identifier value checks: NPI, DEA, NCPDP, NDC and SSN.

Each check is plain Python: the ASAP reader runs it once per distinct value of a file (a few
thousand NPIs and NDCs, not millions of rows) and joins the result back in the engine. Values
are checked exactly as given: callers trim padding first.

Rules and worked examples: shared/reference/formats.md §4 (NPI §4.1, DEA §4.2, NCPDP §4.3,
NDC §4.4).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Used with re.fullmatch. `[0-9]` rather than `\d`, which in Python also matches non-ASCII digits.
NPI_PATTERN = r"[0-9]{10}"
DEA_PATTERN = r"[A-Z][A-Z9][0-9]{7}"
NCPDP_PATTERN = r"[0-9]{7}"

# Luhn contribution of the implied USA prefix 80840 (CMS NPI check-digit rule): its digits sit at
# positions 15..11 from the right of the 15-digit number, so the 0 and the 4 at even positions are
# doubled: 8 + 0 + 8 + 8 + 0 = 24.
NPI_PREFIX_LUHN_SUM = 24

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


# --- NDC -------------------------------------------------------------------------------------

NDC_OK = "ok"
NDC_AMBIGUOUS = "ambiguous"
NDC_INVALID = "invalid"

# Only surrounding ASCII whitespace is trimmed.
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
