"""NUCC provider taxonomy code -> specialty label used for prescriber peer groups.

The labels come from ``data/taxonomy/taxonomy_specialties.csv``, built by ``scripts/build_taxonomy.py``
from the CMS Medicare specialty crosswalk and the NUCC code set (see ``data/taxonomy/SOURCE.md`` for
the rules, the hand-written overrides and the NUCC licence terms).
"""

from __future__ import annotations

import csv
from functools import cache

import pyarrow as pa
import pyarrow.csv as pacsv

from rxradar.reference import data_path

COLUMNS = [  # of taxonomy_specialties.csv, in order (scripts/build_taxonomy.py writes them)
    "taxonomy_code",
    "specialty",
    "nucc_classification",
    "nucc_specialization",
    "medicare_specialty_code",
    "medicare_specialty_description",
    "nucc_section",
    "specialty_basis",
]


@cache
def taxonomy_specialties() -> pa.Table:
    """One row per taxonomy code: its specialty label, NUCC classification/specialization and Medicare
    specialty code, plus ``specialty_basis`` (override, medicare or nucc: which rule gave the label)."""
    return pacsv.read_csv(
        data_path("taxonomy", "taxonomy_specialties.csv"),
        convert_options=pacsv.ConvertOptions(
            column_types={c: pa.string() for c in COLUMNS}, include_columns=COLUMNS, strings_can_be_null=True
        ),
    )


@cache
def _by_code() -> dict[str, str]:
    t = taxonomy_specialties()
    return dict(zip(t["taxonomy_code"].to_pylist(), t["specialty"].to_pylist()))


def specialty_for(code: str) -> str | None:
    """Specialty label of a taxonomy code (case and padding ignored); None if the code is unknown."""
    return _by_code().get(code.strip().upper()) if code else None


def _fold(label: str) -> str:
    return " ".join(label.split()).casefold()


@cache
def _canonical_labels() -> dict[str, str]:
    labels = {_fold(s): s for s in set(_by_code().values())}
    with open(data_path("taxonomy", "specialty_labels.csv"), encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            labels.setdefault(_fold(row["source_label"]), row["specialty"])
    return labels


def canonical_specialty(label: str) -> str:
    """The vocabulary's spelling of a specialty named in a registry file.

    Matches ignore case and spacing, and the source names in ``specialty_labels.csv`` map to their
    labels ("FAMILY PRACTICE" -> "Family Medicine"), so a state's own list joins the same peer groups
    as NPPES taxonomies. A label outside the vocabulary is returned trimmed, unchanged.
    """
    return _canonical_labels().get(_fold(label), " ".join(label.split()))
