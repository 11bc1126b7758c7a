"""Data faults planted in synthetic ASAP submissions, and the truth table that records them.

Each fault is declared once (what it does, the element rxradar's reader should blame, the
severity it should record). Which fills and files get one is drawn with
``numpy.random.Generator(seed)``, so the same world and seed give the same faults.

The rates are assumptions, not measurements: no public source gives fault rates for PDMP
submissions. The defaults are small enough to look like routine data-quality noise (a few per
thousand fills, one file in a hundred resent) and can be set per scenario.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import pyarrow as pa

from rxradar.ingest.rejects import REJECTED, WARNING

NONE_SEVERITY = "none"


@dataclass(frozen=True)
class Fault:
    name: str
    field: str  # the ASAP element rxradar should blame, or the kind of correction
    severity: str  # rejected, warning, or none (must produce no reject at all)
    description: str


FAULTS: tuple[Fault, ...] = (
    Fault("invalid_npi", "PRE01", REJECTED,
          "the prescriber NPI's check digit is wrong (last digit + 1 mod 10); the record is rejected"),
    Fault("missing_days_supply", "DSP10", REJECTED, "DSP10 (days supply) is empty; the record is rejected"),
    Fault("unknown_ndc", "DSP08", WARNING,
          "DSP08 is a well-formed 11-digit NDC that is not in the CDC reference (the product's package "
          "code changed); kept with a warning, no MME"),
    Fault("duplicate_file", "resend", NONE_SEVERITY,
          "a whole file sent again a day or two later under the name ..._resend.asap, with a new control "
          "number and creation time; its records replace identical ones"),
    Fault("revision", "revise", NONE_SEVERITY,
          "the file reports the quantity keyed with an extra zero (x10); a correction file a few days later "
          "revises it (DSP01 01) to the true quantity"),
    Fault("void", "void", NONE_SEVERITY,
          "the file also reports the fill a second time under a new Rx number (entered twice); a correction "
          "file a few days later voids that copy (DSP01 02)"),
)
BY_NAME = {f.name: f for f in FAULTS}
# Fill-level faults, in the order their probabilities are stacked (code = position + 1).
FILL_FAULTS = ("invalid_npi", "missing_days_supply", "unknown_ndc", "revision", "void")
CODE = {name: i + 1 for i, name in enumerate(FILL_FAULTS)}

FAULT_TRUTH = pa.schema([
    ("file", pa.string()), ("record_number", pa.int64()), ("rx_number", pa.string()), ("fill_key", pa.int64()),
    ("fault", pa.string()), ("field", pa.string()), ("severity", pa.string()),
    ("related_file", pa.string()), ("detail", pa.string()),
])


@dataclass(frozen=True)
class FaultRates:
    """Share of fills (of files, for ``duplicate_file``) given each fault; see :data:`FAULTS`.

    A fill gets at most one fault. All defaults are assumptions (see the module docstring).
    """

    invalid_npi: float = 0.002  # prescriber NPI check digit broken → rejected on PRE01
    missing_days_supply: float = 0.002  # DSP10 empty → rejected on DSP10
    unknown_ndc: float = 0.001  # valid-form NDC not in the CDC reference → warning on DSP08
    duplicate_file: float = 0.01  # whole file resent as ..._resend.asap → no reject
    revision: float = 0.003  # quantity x10, revised by a later correction file → no reject
    void: float = 0.002  # fill keyed twice, the copy voided by a later correction file → no reject

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not 0 <= value <= 1:
                raise ValueError(f"fault rate {f.name} must be between 0 and 1, not {value}")
        if sum(getattr(self, name) for name in FILL_FAULTS) > 1:
            raise ValueError("fill fault rates add up to more than 1")

    @classmethod
    def none(cls) -> FaultRates:
        """Clean files: no faults at all."""
        return cls(**{f.name: 0.0 for f in fields(cls)})


def choose_fill_faults(n: int, rates: FaultRates, rng: np.random.Generator) -> np.ndarray:
    """One code per fill (0 = none, else :data:`CODE`), at most one fault per fill."""
    edges = np.cumsum([getattr(rates, name) for name in FILL_FAULTS])
    u = rng.random(n)
    codes = np.searchsorted(edges, u, side="right") + 1
    codes[u >= edges[-1]] = 0
    return codes.astype(np.int8)
