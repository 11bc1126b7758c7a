"""ZIP, state and county FIPS codes as source files give them: one rule for each, shared by every
reader (registries, death records, the ZIP-county crosswalk).

A rule returns ``(value, problem)``. A problem with a value is a repair worth a warning (a ZIP
that lost its leading zero in a spreadsheet); a problem without one says why the field is empty.
Reasons never quote the value: death records' ZIPs and counties are quasi-identifiers.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Protocol

_STATE = re.compile(r"[A-Z]{2}")

Rule = Callable[[str], tuple[str | None, str | None]]


class Warnings(Protocol):
    def warn(self, field: str, reason: str) -> None: ...


def zip5(value: str) -> tuple[str | None, str | None]:
    """Five-digit ZIP from a 5-digit, ZIP+4 or 9-digit value. 4- and 8-digit values lost a
    leading zero in a spreadsheet (New England ZIPs start with 0), so they are padded back, with a
    warning."""
    digits = value.replace("-", "").replace(" ", "")
    if not digits:
        return None, None
    if not digits.isdigit() or len(digits) not in (4, 5, 8, 9):
        return None, "ZIP is not 5 or 9 digits"
    if len(digits) in (4, 8):
        return digits.zfill(len(digits) + 1)[:5], "ZIP had 4 or 8 digits; restored a lost leading zero"
    return digits[:5], None


def county_fips(value: str) -> tuple[str | None, str | None]:
    """Five-digit county FIPS; a 4-digit value lost the leading zero of a state code below 10
    (Alabama to Connecticut)."""
    digits = value.strip()
    if not digits:
        return None, None
    if digits.isdigit() and len(digits) in (4, 5):
        return digits.zfill(5), None
    return None, "county_fips is not a 5-digit FIPS code"


def state_code(value: str) -> tuple[str | None, str | None]:
    """Two-letter state (or territory) code, upper-cased."""
    state = value.strip().upper()
    if not state:
        return None, None
    return (state, None) if _STATE.fullmatch(state) else (None, "state is not a 2-letter code")


def field_value(rule: Rule, text: str, sink: Warnings, field: str) -> str | None:
    """``text`` by ``rule``, for a record that is kept either way: a repaired value, or one left
    empty, is a warning on ``field``."""
    value, problem = rule(text)
    warn_kept(sink, field, value, problem)
    return value


def warn_kept(sink: Warnings, field: str, value: str | None, problem: str | None) -> None:
    """Warn about a field of a kept record: repaired, or (with no value) left empty."""
    if problem:
        sink.warn(field, problem if value is not None else f"{problem}; left empty")
