"""Disclosure control, in one place: every count of people rxradar shows or publishes by place
passes through :func:`suppress`.

* Small cells: counts from 1 to ``threshold - 1`` people are withheld (CMS cell size
  suppression policy: no cell under 11), with the rates made from them.
* Complementary suppression, so a withheld cell cannot be worked out from what is shown: a part
  whose whole is shown is withheld when the rest (whole - part) is a small cell, and the
  non-zero parts of a withheld whole go with it (they would bound it); in each group of rows
  whose total may be known (the counties of a state; all rows, as totals are published) where a
  column has exactly one withheld cell, another non-zero cell is withheld too (below). All
  of this repeats until nothing changes.
* Then the table is attacked as a reader would (:class:`rxradar.intruder.Reader`): from the shown cells,
  the group totals, each part at most its whole, and what the marks say (a cell marked small is
  1 to ``threshold - 1``; any other withheld cell is non-zero, so at least ``threshold``), linear
  programming gives the least and greatest value each small cell, and each small rest of a
  whole, can take. It is protected when that range is at least as wide as the small-cell range
  (``threshold - 2`` between its ends: 1 to 10 for 11), so a small cell is known no better than
  its "<11" mark says (the protection interval of cell suppression, Hundepool et al. 2012,
  Statistical Disclosure Control, Wiley, ch. 4 "Magnitude tabular data" and ch. 5 "Frequency
  tables"; sdcTable's ``attack()`` makes the same check; :mod:`rxradar.intruder` makes it
  cheap enough for every county of the country). While some value is not, one more cell is
  withheld: the whole of a small rest, else a cell of its column in its smallest group with a
  total of its own (a cell of another state is tied to it only through the grand total, the
  sum of the state totals, and would widen nothing). Cells tied to that one wait for the next
  round's check. A column whose cells in a group are all small or zero cannot be protected
  this way while its group total is published.
  Second and further cells are the smallest shown ones large enough to give a small cell that
  range alone (at least 2 x threshold - 2), else the largest: "the smallest other non-zero
  cell" is not enough: with cells 1, 11 and 500 and their total known, withholding 1 and 11
  gives them back (they sum to 12, the 1 is marked small and the 11 is not).
* Rates on fewer than ``UNSTABLE_EVENTS`` events are marked unstable (NCHS: rates based on fewer
  than 20 events do not meet standards of reliability).

Zero is not a small cell: "nobody" discloses nothing about anyone.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from rxradar.intruder import Reader, Totals

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
    totals = Totals(members, len(out))
    known: dict = {}
    changed = True
    while changed:
        changed = _stable(out, counts, withheld, threshold, members)
        changed |= _protect(out, counts, withheld, small, threshold, totals, known)
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


def _stable(rows: list[dict], counts: Sequence[Count], withheld: list[set], threshold: int,
            members: list[list[list[int]]]) -> bool:
    """The complement and second-cell rules, repeated until nothing changes; whether any did."""
    any_change, changed = False, True
    while changed:
        changed = _complements(rows, counts, withheld, threshold)
        for idx in members:
            changed |= _secondary(rows, counts, withheld, idx, threshold)
        any_change |= changed
    return any_change


def _protect(rows: list[dict], counts: Sequence[Count], withheld: list[set], small: list[set], threshold: int,
             totals: Totals, known: dict) -> bool:
    """Withhold one more cell for each sensitive cell whose feasible range does not cover the
    small-cell range: the whole of a small rest, else a cell of its column in its smallest group
    with one to give. Once a cell is withheld, the cells it could widen the range of (those
    sharing a total or a row with it) wait for the next round's check, as each would otherwise
    be given its own backup where one often covers them all; whether any was withheld."""
    reader = Reader(rows, counts, withheld, small, threshold, totals)
    waiting: set[int] = set()  # components
    changed = False
    for target in sensitive(rows, counts, withheld, small, threshold):
        if reader.component_of(target) in waiting or reader.protects(target, known):
            continue
        more = _more(rows, withheld, threshold, totals, target)
        if more:
            withheld[more[0]].add(more[1])
            waiting |= reader.near(*more) | {reader.component_of(target)}
            changed = True
    return changed


def _more(rows: list[dict], withheld: list[set], threshold: int, totals: Totals,
          target: Target) -> tuple[int, str] | None:
    """The cell to withhold for an unprotected target, if any is left."""
    i, column, whole = target
    if whole is not None and whole not in withheld[i]:
        return i, whole  # a small rest of a shown whole: the whole opens it up
    for g in totals.of_row[i]:
        shown = [j for j in totals.groups[g] if column not in withheld[j] and rows[j][column]]
        if shown:
            return _backup(rows, column, shown, threshold), column
    return None


Target = tuple[int, str, str | None]  # row, column, and the whole when the rest (whole - column) is meant


def sensitive(rows: Sequence[dict], counts: Sequence[Count], withheld: list[set], small: list[set],
              threshold: int) -> list[Target]:
    """What must not be worked out: every small cell, and every small rest (whole - part) of a
    part withheld for it."""
    out: list[Target] = []
    for i, r in enumerate(rows):
        for c in counts:
            if c.column in small[i]:
                out.append((i, c.column, None))
            elif c.part_of and c.column in withheld[i] and _small(r[c.part_of] - r[c.column], threshold):
                out.append((i, c.column, c.part_of))
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


def _secondary(rows: list[dict], counts: Sequence[Count], withheld: list[set], groups: list[list[int]],
               threshold: int) -> bool:
    changed = False
    for idx in groups:
        for c in counts:
            if sum(c.column in withheld[i] for i in idx) != 1:
                continue
            shown = [i for i in idx if c.column not in withheld[i] and rows[i][c.column]]
            if shown:
                withheld[_backup(rows, c.column, shown, threshold)].add(c.column)
                changed = True
    return changed


def _backup(rows: Sequence[dict], column: str, shown: list[int], threshold: int) -> int:
    """The cell to withhold beside a small one: the smallest shown cell that alone gives it the
    whole small-cell range (at least 2 x threshold - 2: it can make up for the small cell being
    anywhere from 1 to threshold - 1 and still be at least threshold), else the largest."""
    enough = [j for j in shown if rows[j][column] >= 2 * threshold - 2]
    if enough:
        return min(enough, key=lambda j: (rows[j][column], j))
    return max(shown, key=lambda j: (rows[j][column], -j))
