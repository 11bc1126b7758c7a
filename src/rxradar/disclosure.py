"""Disclosure control, in one place: every count of people rxradar shows or publishes by place
passes through :func:`suppress`.

* Small cells: counts from 1 to ``threshold - 1`` people are withheld (CMS cell size
  suppression policy: no cell under 11), with the rates made from them.
* Complementary suppression, so a withheld cell cannot be worked out from what is shown: a part
  whose whole is shown is withheld when the rest (whole - part) is a small cell, and the
  non-zero parts of a withheld whole go with it (they would bound it); in each group of rows
  whose total may be known (the counties of a state; all rows, as totals are published) where a
  column has exactly one withheld cell, the smallest other non-zero cell is withheld too. All
  of this repeats until nothing changes.
* Rates on fewer than ``UNSTABLE_EVENTS`` events are marked unstable (NCHS: rates based on fewer
  than 20 events do not meet standards of reliability).

Zero is not a small cell: "nobody" discloses nothing about anyone.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

SMALL_CELL = 11  # CMS cell size suppression policy; the small_cell setting's default
UNSTABLE_EVENTS = 20  # NCHS Data Presentation Standards / CDC WONDER "unreliable" below 20


@dataclass(frozen=True)
class Count:
    """A column counting people, the rate column made from it, and the count it is part of."""
    column: str
    rate: str | None = None
    part_of: str | None = None


def suppress(rows: Sequence[dict], counts: Sequence[Count], *, threshold: int = SMALL_CELL,
             groups: Sequence[str | None] = (None,)) -> list[dict]:
    """Copies of ``rows`` with withheld counts (and their rates) set to None. Each row gains
    ``small`` (its counts withheld as small cells), ``suppressed`` (every column withheld, for
    whatever reason, rates included) and ``unstable`` (rates shown on fewer than UNSTABLE_EVENTS
    events). ``groups`` are the columns whose groups of rows may have known totals; None stands
    for all the rows together."""
    out = [dict(r) for r in rows]
    small = [{c.column for c in counts if _small(r[c.column], threshold)} for r in out]
    withheld = [set(s) for s in small]
    members = [_members(out, group) for group in groups]
    changed = True
    while changed:
        changed = _complements(out, counts, withheld, threshold)
        for idx in members:
            changed |= _secondary(out, counts, withheld, idx)
    for r, gone, tiny in zip(out, withheld, small):
        for c in counts:
            if c.column in gone:
                r[c.column] = None
                if c.rate:
                    r[c.rate] = None
        r["suppressed"] = [name for c in counts if c.column in gone for name in (c.column, c.rate) if name]
        r["small"] = [c.column for c in counts if c.column in tiny]
        r["unstable"] = [c.rate for c in counts if c.rate and r[c.column] is not None and r[c.rate] is not None
                         and r[c.column] < UNSTABLE_EVENTS]
    return out


def _small(value: int | None, threshold: int) -> bool:
    return value is not None and 0 < value < threshold


def _complements(rows: list[dict], counts: Sequence[Count], withheld: list[set], threshold: int) -> bool:
    changed = False
    for r, gone in zip(rows, withheld):
        for c in counts:
            if not c.part_of or c.column in gone:
                continue
            whole_gone = c.part_of in gone
            if (whole_gone and r[c.column]) or (not whole_gone and _small(r[c.part_of] - r[c.column], threshold)):
                gone.add(c.column)
                changed = True
    return changed


def _members(rows: list[dict], group: str | None) -> list[list[int]]:
    """The rows of each group (of ``group``'s values; all rows for None), by position."""
    members: dict[object, list[int]] = defaultdict(list)
    for i, r in enumerate(rows):
        members[r[group] if group else None].append(i)
    return list(members.values())


def _secondary(rows: list[dict], counts: Sequence[Count], withheld: list[set], groups: list[list[int]]) -> bool:
    changed = False
    for idx in groups:
        for c in counts:
            if sum(c.column in withheld[i] for i in idx) != 1:
                continue
            shown = [i for i in idx if c.column not in withheld[i] and rows[i][c.column]]
            if shown:
                withheld[min(shown, key=lambda i: (rows[i][c.column], i))].add(c.column)
                changed = True
    return changed
