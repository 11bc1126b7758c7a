"""What a reader can work out from a table published through :mod:`rxradar.disclosure`: the least
and greatest value each withheld cell (or the rest of a whole) can take, given the shown cells,
the published group totals, each part at most its whole, and the marks (a cell marked small is 1
to threshold - 1; any other withheld cell is non-zero, so at least threshold). This is the
intruder's linear programme of cell suppression (Hundepool et al. 2012, Statistical Disclosure
Control, Wiley, ch. 4), made cheap enough for every county of the country:

* Totals that are sums of other published totals are left out, as they tell a reader nothing
  more: every grouping covers all the rows, so the grand total is the sum of the state totals.
  The equations left fall apart into independent components (cells of one column sharing a
  group total, joined across columns only where a part and its whole are both withheld: a
  shown whole bounds its part and links nothing). Each component is solved on its own, with
  sparse matrices, and a component that has not changed since a range was found is not solved
  again.
* Before any linear programme, a sufficient test: the true table is one the reader must allow;
  move one cell from its true value while the other withheld cells of exactly the same totals
  make up for it, each within what its own marks and parts allow with everything else at its
  true value (a small cell may take its withheld whole up, or its withheld parts down, with it,
  each made up for in its own column). Every table so reached is consistent with what is
  published, so the range of values reached is part of the reader's range; when it is already
  wide enough, no programme is needed. The other way, bounds from each total taken alone (the
  total less what the other cells in it can hold) lie around the reader's range: when they are
  already too close, the cell is not protected, and no programme is needed either. Only cells
  that fail both are solved for, and then only as far as the tables already reached (the true
  one, each programme's solution, and, once a component has a second cell to solve for, its
  small cells all as low and all as high as they can be together) leave the answer open.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
# scipy is imported where a table is checked, not here: settings import the disclosure rules,
# and scipy.optimize would add a third of a second to every rxradar command.

if TYPE_CHECKING:
    from rxradar.disclosure import Count, Target


class Totals:
    """The published group totals a reader's equations need, smallest group first, and for each
    row the positions of the groups it is in (smallest first). A group repeated in several
    groupings is kept once; a group that is the union of two or more smaller groups of another
    grouping is left out (its total is theirs added up). ``members``: for each grouping, the
    rows of each of its groups; every grouping covers every row."""

    def __init__(self, members: Sequence[list[list[int]]], n_rows: int):
        where = []
        for grouping in members:
            at = np.empty(n_rows, dtype=np.int64)
            for g, idx in enumerate(grouping):
                at[idx] = g
            where.append(at)
        kept, seen = [], set()
        for a, grouping in enumerate(members):
            for idx in grouping:
                key = frozenset(idx)
                if key in seen:
                    continue
                seen.add(key)
                if not any(b != a and _union_of_smaller(idx, members[b], where[b]) for b in range(len(members))):
                    kept.append(idx)
        self.groups: list[list[int]] = sorted(kept, key=len)
        self.of_row: list[list[int]] = [[] for _ in range(n_rows)]
        for g, idx in enumerate(self.groups):
            for i in idx:
                self.of_row[i].append(g)


def _union_of_smaller(idx: list[int], grouping: list[list[int]], at: np.ndarray) -> bool:
    parts = np.unique(at[idx])
    return len(parts) > 1 and sum(len(grouping[g]) for g in parts) == len(idx)


class Reader:
    """The cells withheld so far as a reader's variables (position ``k`` in ``cells``), with
    their bounds, the equations of the published totals, the part <= whole links between
    withheld cells, and the independent components these make. Built again for each round of
    withholding."""

    def __init__(self, rows: Sequence[dict], counts: Sequence[Count], withheld: list[set], small: list[set],
                 threshold: int, totals: Totals):
        self.rows, self.threshold = rows, threshold
        self.cells = [(i, c.column) for i, gone in enumerate(withheld) if gone for c in counts if c.column in gone]
        self.index = {cell: k for k, cell in enumerate(self.cells)}
        n = len(self.cells)
        self.value = np.fromiter((rows[i][col] for i, col in self.cells), float, n)
        marked = [col in small[i] for i, col in self.cells]
        self.marked = np.array(marked, dtype=bool)
        self.low = np.array([1 if m else threshold for m in marked], dtype=float)
        self.high = np.array([threshold - 1 if m else np.inf for m in marked], dtype=float)
        self.links: list[tuple[int, int]] = []  # (part, whole), both withheld
        parts = [c for c in counts if c.part_of]
        for i, gone in enumerate(withheld):
            if not gone:
                continue
            for c in parts:
                part, whole = self.index.get((i, c.column)), self.index.get((i, c.part_of))
                if part is not None and whole is not None:
                    self.links.append((part, whole))
                elif part is not None:
                    self.high[part] = min(self.high[part], rows[i][c.part_of])
                elif whole is not None:
                    self.low[whole] = max(self.low[whole], rows[i][c.column])
        equations: dict[tuple[int, str], list[int]] = defaultdict(list)
        for k, (i, col) in enumerate(self.cells):
            for g in totals.of_row[i]:
                equations[(g, col)].append(k)
        self.totals, self.counts = totals, counts
        self.equation_of = dict(equations)
        self.equations = list(equations.values())
        self.component = self._components(n)
        self.of_component: dict[int, list[int]] = defaultdict(list)
        for k, label in enumerate(self.component):
            self.of_component[label].append(k)
        self._alone_room()
        self._systems: dict[int, tuple] = {}
        self._points: dict[int, list[np.ndarray]] = {}  # tables the reader must allow, by component
        self._extreme: set[int] = set()  # components whose _extremes are among them
        self._keys: dict[int, frozenset] = {}

    def _components(self, n: int) -> np.ndarray:
        from scipy.sparse import coo_array
        from scipy.sparse.csgraph import connected_components
        heads, tails = [], []
        for members in self.equations:
            heads += members[:-1]
            tails += members[1:]
        for part, whole in self.links:
            heads.append(part)
            tails.append(whole)
        graph = coo_array((np.ones(len(heads)), (heads, tails)), shape=(n, n))
        return connected_components(graph, directed=False)[1]

    def component_of(self, target: Target) -> int:
        return self.component[self.index[target[:2]]]

    def near(self, i: int, column: str) -> set[int]:
        """The components whose ranges withholding cell (``i``, ``column``) could widen: those of
        the withheld cells sharing a total or a row with it."""
        ks = [k for g in self.totals.of_row[i] for k in self.equation_of.get((g, column), ())]
        ks += [k for c in self.counts if (k := self.index.get((i, c.column))) is not None]
        return {self.component[k] for k in ks}

    def _alone_room(self) -> None:
        """How far each cell can move with everything else at its true value, and how much the
        cells of each set of totals can give or take together."""
        self.fixed_low, self.fixed_high = self.low.copy(), self.high.copy()
        self.wholes: list[list[int]] = [[] for _ in self.cells]
        self.parts: list[list[int]] = [[] for _ in self.cells]
        for part, whole in self.links:
            self.wholes[part].append(whole)
            self.parts[whole].append(part)
            self.fixed_high[part] = min(self.fixed_high[part], self.value[whole])
            self.fixed_low[whole] = max(self.fixed_low[whole], self.value[part])
        signature: list[list[int]] = [[] for _ in self.cells]
        for e, members in enumerate(self.equations):
            for k in members:
                signature[k].append(e)
        self.signature = [tuple(s) for s in signature]
        self.sums = []  # per total: its value over the withheld cells, their lows, finite highs, infinite highs
        for members in self.equations:
            highs = self.high[members]
            finite = np.isfinite(highs)
            self.sums.append((self.value[members].sum(), self.low[members].sum(), highs[finite].sum(),
                              int((~finite).sum())))
        self.room: dict[tuple, list] = defaultdict(lambda: [0.0, 0.0, 0])  # down, finite up, unbounded ups
        for k, sig in enumerate(self.signature):
            room = self.room[sig]
            room[0] += self.value[k] - self.fixed_low[k]
            if np.isinf(self.fixed_high[k]):
                room[2] += 1
            else:
                room[1] += self.fixed_high[k] - self.value[k]

    def _partners(self, k: int) -> tuple[float, float]:
        """How much the cells sharing exactly the totals of cell ``k`` can give up and take on
        together, each within its own bounds, everything else at its true value."""
        sig = self.signature[k]
        if not sig:  # no published total holds it: nothing to make up
            return np.inf, np.inf
        all_down, finite_up, unbounded = self.room[sig]
        down, up = self.value[k] - self.fixed_low[k], self.fixed_high[k] - self.value[k]
        take = np.inf if unbounded - np.isinf(up) > 0 else finite_up - (0 if np.isinf(up) else up)
        return all_down - down, take

    def moves(self, k: int, follow: bool = False) -> tuple[float, float]:
        """The least and greatest change to cell ``k`` that the cells sharing exactly its totals
        can make up for, everything else at its true value. With ``follow``, its withheld
        whole rises with it, and its withheld parts fall with it, as far as they must and the
        cells sharing their own totals can make up for (a whole rising, or a part falling, only
        loosens the other constraints on it)."""
        value = self.value
        give, take = self._partners(k)
        if not follow:
            return -min(value[k] - self.fixed_low[k], take), min(self.fixed_high[k] - value[k], give)
        up, down = min(self.high[k] - value[k], give), min(value[k] - self.low[k], take)
        for w in self.wholes[k]:
            up = min(up, value[w] - value[k] + min(self.fixed_high[w] - value[w], self._partners(w)[0]))
        for p in self.parts[k]:
            down = min(down, value[k] - value[p] + min(value[p] - self.fixed_low[p], self._partners(p)[1]))
        return -down, up

    def alone(self, target: Target) -> float:
        """The width of a range of values of ``target`` reached by moving one cell (the target's,
        with its withheld whole or parts where they must follow; for a rest, the part or the
        whole alone): part of the reader's range."""
        i, column, whole = target
        low, high = self.moves(self.index[(i, column)], follow=whole is None)
        width = high - low
        if whole is not None and (i, whole) in self.index:
            low, high = self.moves(self.index[(i, whole)])
            width = max(width, high - low)
        return width

    def protects(self, target: Target, known: dict) -> bool:
        """Whether the reader's range of ``target`` is at least as wide as the small-cell range
        (threshold - 2 between its ends); ``known`` keeps answers by target and component, which
        hold while the component's cells stay the same."""
        if self.alone(target) >= self.threshold - 2:
            return True
        component = self.component_of(target)
        if component not in self._keys:
            self._keys[component] = frozenset(self.cells[k] for k in self.of_component[component])
        key = (target, self._keys[component])
        if key not in known:
            known[key] = self._wide_enough(target)
        return known[key]

    def _wide_enough(self, target: Target) -> bool:
        """As :meth:`solve`, solving only what the bounds each total sets alone (:meth:`outer`)
        and the tables already reached in this component (the true one, and each programme's
        solution) leave open."""
        need = self.threshold - 2
        floor, ceiling = self.outer(target)
        if ceiling - floor < need:
            return False
        component = self.component_of(target)
        objective, constant = self._objective(target)
        if component not in self._points:
            self._points[component] = [self.value[self.of_component[component]]]
        elif len(self._points[component]) > 1 and component not in self._extreme:
            self._extreme.add(component)  # a second cell to solve for here: likely many more
            self._points[component] += self._extremes(component)
        points = self._points[component]
        seen = [constant + objective @ p for p in points]
        low, high = min(seen), max(seen)
        if high - low >= need:
            return True
        for sign in (1, -1):
            end, point = self._optimum(target, objective, constant, sign)
            if point is not None:
                points.append(point)
            if sign == 1:
                low = end
                if ceiling - low < need:
                    return False
            else:
                high = end
            if high - low >= need:
                return True
        return False

    def outer(self, target: Target) -> tuple[float, float]:
        """Bounds around the reader's range of ``target`` from its cells' bounds and each of
        their totals taken alone (the total less the least and the most the other cells in it
        can hold): a range narrower than the small-cell range here is narrower in full."""
        i, column, whole = target
        low, high = self._alone_bounds(self.index[(i, column)])
        if whole is None:
            return low, high
        if (i, whole) not in self.index:
            return self.rows[i][whole] - high, self.rows[i][whole] - low
        whole_low, whole_high = self._alone_bounds(self.index[(i, whole)])
        return max(0.0, whole_low - high), whole_high - low

    def _alone_bounds(self, k: int) -> tuple[float, float]:
        low, high = self.low[k], self.high[k]
        for e in self.signature[k]:
            total, lows, finite_highs, unbounded = self.sums[e]
            low = max(low, total - (np.inf if unbounded - np.isinf(self.high[k]) > 0
                                    else finite_highs - (0 if np.isinf(self.high[k]) else self.high[k])))
            high = min(high, total - (lows - self.low[k]))
        return low, high

    def _extremes(self, component: int) -> list[np.ndarray]:
        """Two tables the reader must allow, with the component's small cells all as low, then
        all as high, as they can be together: one programme each, which often shows many of
        their ranges at once."""
        from scipy.optimize import linprog
        marked = self.marked[self.of_component[component]].astype(float)
        out: list[np.ndarray] = []
        if not marked.any():
            return out
        for sign in (1, -1):
            _, a_eq, b_eq, a_ub, b_ub, bounds = self._system(component)
            res = linprog(sign * marked, A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=b_eq, bounds=bounds, method="highs")
            if res.status == 0:
                out.append(res.x)
        return out

    def _objective(self, target: Target) -> tuple[np.ndarray, float]:
        """The target as a linear function of its component's variables: coefficients, constant."""
        i, column, whole = target
        k = self.index[(i, column)]
        local = self._system(self.component[k])[0]
        objective = np.zeros(len(local))
        constant = 0.0
        if whole is None:
            objective[local[k]] = 1
        else:  # the rest: whole - part
            objective[local[k]] -= 1
            if (i, whole) in self.index:
                objective[local[self.index[(i, whole)]]] += 1
            else:
                constant = self.rows[i][whole]
        return objective, constant

    def _optimum(self, target: Target, objective: np.ndarray, constant: float,
                 sign: int) -> tuple[float, np.ndarray | None]:
        """The least (sign 1) or greatest (sign -1) value of the target, and a table reaching it."""
        from scipy.optimize import linprog
        _, a_eq, b_eq, a_ub, b_ub, bounds = self._system(self.component_of(target))
        res = linprog(sign * objective, A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=b_eq, bounds=bounds, method="highs")
        if res.status == 3:  # unbounded: nothing published limits it
            return float("inf") * -sign, None
        if res.status != 0:  # the true table is always a solution, so this is the solver's failure
            raise RuntimeError(f"disclosure check failed: {res.message}")
        return constant + sign * res.fun, res.x

    def _system(self, component: int) -> tuple:
        from scipy.sparse import csr_array
        if not self._systems:  # the first solve of the round: each component's equations and links
            self._equations_of = defaultdict(list)
            for m in self.equations:
                self._equations_of[self.component[m[0]]].append(m)
            self._links_of = defaultdict(list)
            for p, w in self.links:
                self._links_of[self.component[p]].append((p, w))
        if component not in self._systems:
            ks = self.of_component[component]
            local = {k: j for j, k in enumerate(ks)}
            eq = self._equations_of[component]
            a_eq = b_eq = a_ub = b_ub = None
            if eq:
                r = [e for e, m in enumerate(eq) for _ in m]
                a_eq = csr_array((np.ones(len(r)), (r, [local[k] for m in eq for k in m])), shape=(len(eq), len(ks)))
                b_eq = np.array([self.value[m].sum() for m in eq])
            ub = [(local[p], local[w]) for p, w in self._links_of[component]]
            if ub:  # part - whole <= 0
                r = np.repeat(np.arange(len(ub)), 2)
                a_ub = csr_array((np.tile([1.0, -1.0], len(ub)), (r, np.ravel(ub))), shape=(len(ub), len(ks)))
                b_ub = np.zeros(len(ub))
            bounds = np.column_stack([self.low[ks], self.high[ks]])
            self._systems[component] = (local, a_eq, b_eq, a_ub, b_ub, bounds)
        return self._systems[component]

    def solve(self, target: Target) -> tuple[float, float]:
        """The least and greatest value of ``target`` (a cell, or whole - part) by linear
        programming (HiGHS) over its component."""
        objective, constant = self._objective(target)
        return self._optimum(target, objective, constant, 1)[0], self._optimum(target, objective, constant, -1)[0]
