"""Drug-overdose and opioid-involved death definitions (ICD-10 mortality), and the classifier.

The definitions are the CDC/NCHS ones: Hedegaard H, Miniño AM, Spencer MR, Warner M. Drug
Overdose Deaths in the United States, 1999–2020. NCHS Data Brief no. 428 (and earlier briefs in
the series); see shared/reference/formats.md §2.1. Codes are written without the dot, as in
NCHS multiple-cause files.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

UNINTENTIONAL = "unintentional"
SUICIDE = "suicide"
HOMICIDE = "homicide"
UNDETERMINED = "undetermined"

# Underlying cause (3-character category) → intent, for drug-overdose deaths
# (Hedegaard et al., NCHS; formats.md §2.1).
OVERDOSE_UNDERLYING_CAUSES: dict[str, str] = {
    "X40": UNINTENTIONAL, "X41": UNINTENTIONAL, "X42": UNINTENTIONAL, "X43": UNINTENTIONAL, "X44": UNINTENTIONAL,
    "X60": SUICIDE, "X61": SUICIDE, "X62": SUICIDE, "X63": SUICIDE, "X64": SUICIDE,
    "X85": HOMICIDE,
    "Y10": UNDETERMINED, "Y11": UNDETERMINED, "Y12": UNDETERMINED, "Y13": UNDETERMINED, "Y14": UNDETERMINED,
}  # fmt: skip

# Multiple-cause (record-axis) T-codes that make an overdose opioid-involved, in code order
# (Hedegaard et al., NCHS; formats.md §2.1). T40.5 (cocaine) and T40.7 (cannabis) are not opioids.
OPIOID_T_CODES: dict[str, str] = {
    "T400": "opium",
    "T401": "heroin",
    "T402": "natural_semisynthetic",  # morphine, codeine, oxycodone, hydrocodone, ...
    "T403": "methadone",
    "T404": "synthetic",  # fentanyl and analogues, tramadol, meperidine, tapentadol
    "T406": "unspecified",
}

# WHO ICD-10 as used on death certificates: a letter, two digits, an optional fourth digit.
ICD10_PATTERN = re.compile(r"[A-Z][0-9]{2}[0-9]?")
_CAUSE_SEPARATORS = re.compile(r"[\s;,]+")


def normalize_icd10(code: str) -> str:
    """Upper-case ``code`` and drop dots and whitespace: ``'T40.2'`` → ``'T402'``, ``'x42'`` → ``'X42'``."""
    return re.sub(r"[.\s]", "", code).upper()


def is_icd10_code(code: str) -> bool:
    """True if a normalised ``code`` has the shape of a WHO ICD-10 code (``X42``, ``T402``)."""
    return ICD10_PATTERN.fullmatch(code) is not None


def split_icd10_codes(text: str) -> list[str]:
    """Split a list of codes separated by spaces, semicolons or commas, and normalise each."""
    return [normalize_icd10(c) for c in _CAUSE_SEPARATORS.split(text) if c]


@dataclass(frozen=True)
class DeathClass:
    """How a death counts under the CDC/NCHS definitions."""

    is_overdose: bool
    intent: str | None  # set for overdoses only
    is_opioid_overdose: bool
    opioid_classes: list[str] = field(default_factory=list)  # set for opioid overdoses only


def classify_death(underlying: str | None, causes: Iterable[str]) -> DeathClass:
    """Classify a death from its underlying cause and its multiple (record-axis) causes.

    Overdose: underlying cause in X40–X44, X60–X64, X85, Y10–Y14; intent from the block.
    Opioid overdose: an overdose with any of T40.0–T40.4, T40.6 among the multiple causes
    (Hedegaard et al., NCHS Data Brief 428; formats.md §2.1). ``opioid_classes`` lists the
    opioids involved in T-code order, only for opioid overdoses, so counting them never
    includes deaths that are not overdoses.
    """
    ucod = normalize_icd10(underlying) if underlying else ""
    intent = OVERDOSE_UNDERLYING_CAUSES.get(ucod[:3])
    if intent is None:
        return DeathClass(False, None, False, [])
    present = {normalize_icd10(c)[:4] for c in causes}
    classes = [name for code, name in OPIOID_T_CODES.items() if code in present]
    return DeathClass(True, intent, bool(classes), classes)
