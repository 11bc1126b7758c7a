"""Regenerate ``reference/data/taxonomy/taxonomy_specialties.csv`` from the originals in ../shared/data.

This is the only code that reads ../shared; the product reads the derived file shipped as package data.

How a taxonomy code gets its specialty (peer-group) label, first match wins:

1. ``specialty_overrides.csv``: the longest matching taxonomy-code prefix (hand-written, with a reason each).
2. The CMS Medicare crosswalk, after ``crosswalk_corrections.csv``. A code listed under several Medicare
   specialties takes the most specific one: the specialty that lists the fewest taxonomy codes (so
   207RC0000X is 06 Cardiology, not 11 Internal Medicine, which lists 26 codes); ties go to the lower
   Medicare code. The label is that row's provider-type description without "Physician/" and footnotes.
   Medicare specialties are what the Part D Prescriber public use files group by, so rxradar's peer
   groups line up with CMS's published prescriber benchmarks.
3. The NUCC classification (e.g. "Registered Nurse") for codes CMS does not list.

Labels from 2 and 3 then pass through ``specialty_labels.csv`` (renames such as Family Practice ->
Family Medicine, Hematology -> Hematology/Oncology).

Usage: python scripts/build_taxonomy.py [--shared ../shared/data]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import re
import sys
from collections import defaultdict
from pathlib import Path

from rxradar.reference.taxonomy import COLUMNS

REPO = Path(__file__).resolve().parents[1]
OUT_DIR = REPO / "src" / "rxradar" / "reference" / "data" / "taxonomy"
DEFAULT_SHARED = REPO.parent / "shared" / "data"

NUCC = Path("nucc-taxonomy") / "nucc_taxonomy_251.csv"
CROSSWALK = Path("cms-medicare-taxonomy-crosswalk") / "medicare_provider_supplier_taxonomy_crosswalk_october_2025.csv"
# The sha256 recorded in each SOURCE.md: a changed original needs a new review of the overrides.
EXPECTED_SHA256 = {
    NUCC: "26996d14d14e6021bc9ddd0429a7f9426dba333bfbc749f6e02f7c29d9fa5b51",
    CROSSWALK: "d1c88c35f731b6aa8057b56f3b2c19504ee5181caeae62e4038fcabe232f5954",
}

OUTPUT_COLUMNS = COLUMNS

_FOOTNOTE = re.compile(r"\[\d+\]")


def _clean(text: str) -> str:
    return " ".join(_FOOTNOTE.sub("", text).split())


def _medicare_label(description: str) -> str:
    label = _clean(description).removeprefix("Physician/")
    return re.sub(r"/\s+", "/", label)


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def _check_sources(shared: Path, force: bool) -> None:
    for rel, expected in EXPECTED_SHA256.items():
        digest = hashlib.sha256((shared / rel).read_bytes()).hexdigest()
        if digest != expected:
            message = f"{rel}: sha256 {digest} differs from the reviewed {expected}"
            if not force:
                sys.exit(message + "; review the override tables, update EXPECTED_SHA256, or pass --force")
            print("warning:", message, file=sys.stderr)


def load_crosswalk(path: Path, corrections: list[dict[str, str]]) -> dict[str, list[tuple[str, str]]]:
    """taxonomy code -> [(medicare code, cleaned description)], with the corrections applied."""
    fixes = {(c["medicare_specialty_code"], c["taxonomy_code"]): c["corrected_medicare_specialty_code"] for c in corrections}
    used: set[tuple[str, str]] = set()
    by_code: dict[str, list[tuple[str, str]]] = defaultdict(list)
    descriptions: dict[str, str] = {}
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        next(reader)
        rows = [(_clean(r[0]), _medicare_label(r[1]), "".join(r[2].split()).upper()) for r in reader]
    for medicare, label, taxonomy in rows:
        descriptions.setdefault(medicare, label)
    for medicare, label, taxonomy in rows:
        if not taxonomy:
            continue
        key = (medicare, taxonomy)
        if key in fixes:
            used.add(key)
            medicare = fixes[key]
            if not medicare:
                continue
            label = descriptions[medicare]
        if (medicare, label) not in by_code[taxonomy]:
            by_code[taxonomy].append((medicare, label))
    unused = set(fixes) - used
    if unused:
        sys.exit(f"crosswalk_corrections.csv names rows not in the crosswalk: {sorted(unused)}")
    return by_code


def most_specific(choices: list[tuple[str, str]], size: dict[str, int]) -> tuple[str, str]:
    return min(choices, key=lambda c: (size[c[0]], c[0]))


def build(shared: Path) -> list[dict[str, str]]:
    overrides = _read_csv(OUT_DIR / "specialty_overrides.csv")
    labels = {r["source_label"]: r["specialty"] for r in _read_csv(OUT_DIR / "specialty_labels.csv")}
    crosswalk = load_crosswalk(shared / CROSSWALK, _read_csv(OUT_DIR / "crosswalk_corrections.csv"))
    size: dict[str, int] = defaultdict(int)
    for choices in crosswalk.values():
        for medicare in {m for m, _ in choices}:
            size[medicare] += 1

    nucc = {r["Code"].strip(): r for r in _read_csv(shared / NUCC)}
    matched_prefixes: set[str] = set()
    out = []
    for code in sorted(set(nucc) | set(crosswalk)):
        row = nucc.get(code, {})
        medicare, medicare_label = most_specific(crosswalk[code], size) if code in crosswalk else ("", "")
        prefixes = [o for o in overrides if code.startswith(o["taxonomy_code_prefix"])]
        if prefixes:
            best = max(prefixes, key=lambda o: len(o["taxonomy_code_prefix"]))
            matched_prefixes.add(best["taxonomy_code_prefix"])
            specialty, basis = best["specialty"], "override"
        elif medicare:
            specialty, basis = labels.get(medicare_label, medicare_label), "medicare"
        else:
            classification = _clean(row.get("Classification", ""))
            specialty, basis = labels.get(classification, classification), "nucc"
        if not specialty:
            sys.exit(f"{code}: no specialty could be derived")
        out.append(
            {
                "taxonomy_code": code,
                "specialty": specialty,
                "nucc_classification": _clean(row.get("Classification", "")),
                "nucc_specialization": _clean(row.get("Specialization", "")),
                "medicare_specialty_code": medicare,
                "medicare_specialty_description": medicare_label,
                "nucc_section": row.get("Section", "").strip(),
                "specialty_basis": basis,
            }
        )
    unused = {o["taxonomy_code_prefix"] for o in overrides} - matched_prefixes
    if unused:
        sys.exit(f"specialty_overrides.csv prefixes that match no code: {sorted(unused)}")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED, help="the shared/data directory")
    parser.add_argument("--force", action="store_true", help="build even if an original's sha256 changed")
    args = parser.parse_args(argv)
    _check_sources(args.shared, args.force)
    rows = build(args.shared)
    target = OUT_DIR / "taxonomy_specialties.csv"
    with target.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=OUTPUT_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {len(rows)} taxonomy codes, {len({r['specialty'] for r in rows})} specialties to {target}")


if __name__ == "__main__":
    main()
