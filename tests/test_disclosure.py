"""Disclosure control by hand: small cells, complements within a row, a second cell per group,
unstable rates."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linprog

from rxradar.disclosure import SMALL_CELL, UNSTABLE_EVENTS, Count, _members, sensitive, suppress
from rxradar.intruder import Reader, Totals
from rxradar.reference.counties import counties

COUNTS = [Count("people", rate="rate"), Count("sick", part_of="people")]


def row(place: str, group: str, people: int, sick: int) -> dict:
    return {"place": place, "group": group, "people": people, "sick": sick, "rate": people / 10}


def shown(rows: list[dict]) -> dict:
    return {r["place"]: (r["people"], r["sick"], r["rate"]) for r in rows}


def test_small_cells_are_withheld_with_their_rates_and_zero_is_not_small():
    out = suppress([row("a", "g", 10, 0), row("b", "h", 11, 0), row("c", "i", 0, 0)], COUNTS, groups=("group",))
    assert shown(out) == {"a": (None, 0, None), "b": (11, 0, 1.1), "c": (0, 0, 0.0)}
    assert out[0]["suppressed"] == ["people", "rate"] and out[1]["suppressed"] == []


def test_a_part_is_withheld_when_the_rest_of_its_whole_is_small():
    # 30 people, 25 sick: the 5 who are not would follow, so the 25 are withheld; 30 and 15 stay.
    # (No group totals here: with one, a lone row's withheld cells would follow from it.)
    out = suppress([row("a", "g", 30, 25), row("b", "h", 30, 15)], COUNTS, groups=())
    assert shown(out) == {"a": (30, None, 3.0), "b": (30, 15, 3.0)}


def test_one_withheld_cell_in_a_group_takes_one_large_enough_to_hide_it():
    rows = [row("a", "g", 500, 40), row("b", "g", 120, 3), row("c", "g", 60, 0), row("d", "g", 90, 12),
            row("e", "h", 70, 20)]
    out = suppress(rows, COUNTS, groups=("group",))
    # b's 3 sick is small. d's 12 would not hide it: 3 + 12 = 15 with 12 marked not small (>= 11)
    # leaves b 1 to 4. a's 40 does (2 x 11 - 2 = 20 or more): b + a = 43, a >= 11, so b may be
    # anything from 1 to 10. c's 0 stays (zero tells nothing). Group h is untouched.
    assert shown(out) == {"a": (500, None, 50.0), "b": (120, None, 12.0), "c": (60, 0, 6.0), "d": (90, 12, 9.0),
                          "e": (70, 20, 7.0)}


def test_without_groups_the_rows_are_one_group_and_rounds_repeat_until_stable():
    # Round 1: a's 4 people (small) and, as a's whole is gone, nothing else of a; b's sick 14 of
    # 20 leaves 6 (small), so 14 goes. Round 2: 'people' has one withheld cell (a): the smallest
    # other non-zero, b's 20, goes. 'sick' has one (b): the smallest other non-zero, c's 50.
    out = suppress([row("a", "-", 4, 0), row("b", "-", 20, 14), row("c", "-", 100, 50)], COUNTS)
    assert shown(out) == {"a": (None, 0, None), "b": (None, None, None), "c": (100, None, 10.0)}


def test_a_published_total_makes_all_rows_one_more_group():
    # Ohio's 5 is the only withheld cell; Ohio has nothing else to withhold. With the grand total
    # published, the smallest non-zero cell anywhere (Cabell's 962) goes too, and then Kanawha's,
    # as Cabell alone withheld in West Virginia would follow from that state's total.
    rows = [row("54039", "WV", 1848, 0), row("54011", "WV", 962, 0), row("39053", "OH", 5, 0),
            row("39001", "OH", 0, 0)]
    by_state = shown(suppress(rows, COUNTS, groups=("group",)))
    assert by_state["54011"][0] == 962  # within states alone, 5 = total - 1848 - 962 - 0
    everything = shown(suppress(rows, COUNTS, groups=("group", None)))
    assert [everything[f][0] for f in ("54039", "54011", "39053", "39001")] == [None, None, None, 0]


def test_the_parts_of_a_withheld_whole_go_with_it():
    # B's 1848 people are withheld only as the second cell; its 1848 sick would still show that
    # B has at least 1848, and with the total, A's 1. They go too; A's 0 sick stays.
    out = suppress([row("a", "g", 1, 0), row("b", "g", 1848, 1848), row("c", "g", 0, 0)], COUNTS)
    assert shown(out) == {"a": (None, 0, None), "b": (None, None, None), "c": (0, 0, 0.0)}
    assert [r["small"] for r in out] == [["people"], [], []]


def test_rates_on_few_events_are_unstable():
    out = suppress([row("a", "g", UNSTABLE_EVENTS - 1, 0), row("b", "g", UNSTABLE_EVENTS, 0)], COUNTS,
                   groups=("group",))
    assert [r["unstable"] for r in out] == [["rate"], []]


def test_the_threshold_is_a_parameter():
    assert shown(suppress([row("a", "g", 5, 0)], COUNTS, threshold=5, groups=("group",))) == {"a": (5, 0, 0.5)}


# --- solving for the withheld cells, as a reader of the published table would --------------------
# Protection (disclosure.py, after Hundepool et al. 2012, ch. 4-5): the range a reader can work
# out for each small cell, and for each small rest (whole - part), must be at least as wide as
# the small-cell range 1..threshold-1 (threshold - 2 between its ends): a small cell is known no
# better than its "<11" mark says. The reader
# here is written independently of disclosure.py: one variable per cell, shown cells fixed.

PARTS = [Count("patients", rate="patients_rate"), Count("at_risk", rate="at_risk_rate", part_of="patients"),
         Count("shopping", part_of="patients")]


def attack(rows: list[dict], published: list[dict], groups: tuple, threshold: int,
           counts: list[Count] = PARTS) -> list[tuple]:
    """(row, what, true value, least, greatest) for every small cell and small rest."""
    cols = [c.column for c in counts]
    parts = [(c.column, c.part_of) for c in counts if c.part_of]
    var = {(i, c): k for k, (i, c) in enumerate((i, c) for i in range(len(rows)) for c in cols)}
    bounds = []
    for i, c in var:
        if published[i][c] is not None:
            bounds.append((published[i][c], published[i][c]))
        elif c in published[i]["small"]:
            bounds.append((1, threshold - 1))  # marked "<11"
        else:
            bounds.append((threshold, None))  # withheld, not small, and zero is never withheld
    a_eq, b_eq = [], []
    for group in groups:  # every column's total over each group of rows is published
        keys = sorted({r[group] if group else None for r in rows}, key=str)
        for key in keys:
            idx = [i for i, r in enumerate(rows) if (r[group] if group else None) == key]
            for c in cols:
                line = np.zeros(len(var))
                line[[var[(i, c)] for i in idx]] = 1
                a_eq.append(line)
                b_eq.append(sum(rows[i][c] for i in idx))
    a_ub, b_ub = [], []
    for i in range(len(rows)):
        for part, whole in parts:
            line = np.zeros(len(var))
            line[var[(i, part)]], line[var[(i, whole)]] = 1, -1
            a_ub.append(line)
            b_ub.append(0)
    found = []
    for i, r in enumerate(rows):
        targets = [(c, {var[(i, c)]: 1}, r[c]) for c in cols if 0 < r[c] < threshold]
        targets += [(f"{whole}-{p}", {var[(i, whole)]: 1, var[(i, p)]: -1}, r[whole] - r[p])
                    for p, whole in parts if published[i][p] is None and 0 < r[whole] - r[p] < threshold]
        for what, coefficients, true in targets:
            objective = np.zeros(len(var))
            for k, v in coefficients.items():
                objective[k] = v
            ends = []
            for sign in (1, -1):
                res = linprog(sign * objective, A_ub=np.array(a_ub), b_ub=b_ub, A_eq=np.array(a_eq), b_eq=b_eq,
                              bounds=bounds, method="highs")
                assert res.status in (0, 3), res.message
                ends.append(float("inf") * -sign if res.status == 3 else sign * res.fun)
            found.append((r["place"], what, true, *ends))
    return found


def county_rows(rng: np.random.Generator, n: int) -> list[dict]:
    out = []
    for k in range(n):
        patients = int(rng.choice([0, rng.integers(1, 11), rng.integers(11, 40), rng.integers(40, 2000)]))
        at_risk = int(rng.integers(0, patients + 1)) if patients else 0
        if rng.random() < 0.3 and patients:
            at_risk = max(0, patients - int(rng.integers(1, 11)))  # a small rest
        # Mostly small, but not all: a column of nothing but small cells and zeros is given back
        # by its published total whatever is withheld (disclosure.py says so).
        shopping = int(rng.integers(0, min(patients, 12 if rng.random() < 0.6 else 60) + 1)) if patients else 0
        out.append({"place": f"c{k}", "state": "AB"[k % 2], "patients": patients, "at_risk": at_risk,
                    "shopping": shopping, "patients_rate": patients / 7, "at_risk_rate": at_risk / 7})
    return out


def test_the_smallest_other_cell_as_backup_is_given_back_by_the_total():
    # 1, 11 and 500 with their total: withholding 1 and 11 leaves 1 + 11 = 12 with the 11 marked
    # not small (>= 11), which pins the 1. The backup is now the 500, and 11 is shown.
    rows = [{"place": p, "state": "X", "patients": n, "at_risk": 0, "shopping": 0, "patients_rate": n / 7,
             "at_risk_rate": 0.0} for p, n in (("a", 1), ("b", 11), ("c", 500))]
    out = suppress(rows, PARTS, groups=(None,))
    assert [r["patients"] for r in out] == [None, 11, None]
    [(_, what, true, low, high)] = attack(rows, out, (None,), SMALL_CELL)
    assert (what, true, low, high) == ("patients", 1, 1, 10)


@pytest.mark.parametrize("seed", range(12))
def test_no_withheld_value_can_be_worked_out_from_what_is_published(seed):
    rng = np.random.default_rng(seed)
    rows = county_rows(rng, int(rng.integers(6, 30)))
    groups = ("state", None)
    published = suppress(rows, PARTS, groups=groups)
    for place, what, true, low, high in attack(rows, published, groups, SMALL_CELL):
        assert low < high, f"{place} {what} = {true} is pinned"
        assert high - low >= SMALL_CELL - 2, f"{place} {what} = {true}: a reader finds {low}..{high}"
    for r, p in zip(rows, published):  # a rate never sits beside a withheld count
        assert (p["patients_rate"] is None) == (p["patients"] is None)
        assert (p["at_risk_rate"] is None) == (p["at_risk"] is None)


def test_a_column_that_cannot_be_hidden_in_its_state_takes_no_cells_of_other_states():
    # X's 3 and 4 people are all X has: its total (7) tells a reader each is 1 to 6 whatever
    # else is withheld. Y's cells are tied to X's only through the grand total, which is X's
    # total plus Y's: withholding them would widen nothing, so they stay shown (they used to
    # go one by one, 30, then 40 as 30's second cell, then 500).
    rows = [{"place": p, "state": s, "patients": n, "at_risk": 0, "shopping": 0, "patients_rate": n / 7,
             "at_risk_rate": 0.0} for p, s, n in (("a", "X", 3), ("b", "X", 4), ("c", "Y", 500), ("d", "Y", 40),
                                                  ("e", "Y", 30))]
    out = suppress(rows, PARTS, groups=("state", None))
    assert [r["patients"] for r in out] == [None, None, 500, 40, 30]
    assert [(what, true, low, high) for _, what, true, low, high in attack(rows, out, ("state", None), SMALL_CELL)] \
        == [("patients", 3, 1, 6), ("patients", 4, 1, 6)]


def test_totals_that_add_up_other_totals_are_left_out():
    rows = [{"state": s, "county": c} for s, c in (("X", "a"), ("X", "b"), ("Y", "c"), ("Z", "d"))]
    members = [_members(rows, g) for g in ("state", None, "county", "state")]
    # The grand total is X + Y + Z; X is a + b; Y and Z are the counties c and d (kept once);
    # the states repeated are one grouping.
    assert Totals(members, len(rows)).groups == [[2], [3], [0], [1]]
    assert Totals([_members(rows, "state")], len(rows)).groups == [[2], [3], [0, 1]]
    assert Totals([_members(rows, None)], len(rows)).groups == [[0, 1, 2, 3]]


@pytest.mark.parametrize("seed", range(12))
def test_the_check_s_shortcuts_agree_with_the_reader(seed):
    # The check (rxradar.intruder) decides most cells without linear programming: a range
    # reached by moving a cell against the cells sharing its totals is part of the reader's
    # range, and bounds from each total alone are around it. The independent reader above
    # must agree with both, and with the check's own programme over the cell's component.
    rng = np.random.default_rng(seed)
    rows = county_rows(rng, int(rng.integers(6, 30)))
    groups = ("state", None)
    published = suppress(rows, PARTS, groups=groups)
    withheld = [set(p["suppressed"]) - {"patients_rate", "at_risk_rate"} for p in published]
    small = [set(p["small"]) for p in published]
    reader = Reader(rows, PARTS, withheld, small, SMALL_CELL, Totals([_members(rows, g) for g in groups], len(rows)))
    ranges = {(place, what): (low, high) for place, what, _, low, high in attack(rows, published, groups, SMALL_CELL)}
    for target in sensitive(rows, PARTS, withheld, small, SMALL_CELL):
        i, column, whole = target
        name = (rows[i]["place"], f"{whole}-{column}" if whole else column)
        low, high = ranges[name]
        floor, ceiling = reader.outer(target)
        assert floor - 1e-9 <= low and high <= ceiling + 1e-9, name
        assert reader.alone(target) <= high - low + 1e-9, name
        assert reader.solve(target) == pytest.approx((low, high)), name


FLAGS = [f"flag{k}" for k in range(8)]
STATE_COUNTS = [Count("patients", rate="patients_rate"), Count("at_risk", rate="at_risk_rate", part_of="patients"),
                *(Count(f, part_of="patients") for f in FLAGS)]


def state_rows(states: tuple[str, ...], rng: np.random.Generator) -> list[dict]:
    """The counties of real states, as bench/suppress.py draws them from their 2019 populations:
    2% of people are patients, 10% of those at risk, and each of eight flags on 30% of those."""
    out = []
    for c in counties().to_pylist():
        if c["state"] in states:
            pop = c["pop2019"] or 1000
            patients = int(rng.poisson(pop * 0.02))
            at_risk = int(rng.binomial(patients, 0.1))
            out.append({"place": c["fips"], "state": c["state"], "patients": patients, "at_risk": at_risk,
                        "patients_rate": patients / pop * 1000, "at_risk_rate": at_risk / pop * 1000,
                        **{f: int(rng.binomial(at_risk, 0.3)) for f in FLAGS}})
    return out


@pytest.mark.parametrize("seed", range(2))
def test_nothing_can_be_worked_out_from_counties_of_several_states(seed):
    rows = state_rows(("DE", "NH", "VT", "WV"), np.random.default_rng(seed))
    groups = ("state", None)
    published = suppress(rows, STATE_COUNTS, groups=groups)
    found = attack(rows, published, groups, SMALL_CELL, STATE_COUNTS)
    assert len(found) > 150  # every small flag and small rest of West Virginia's rural counties
    for place, what, true, low, high in found:
        assert high - low >= SMALL_CELL - 2, f"{place} {what} = {true}: a reader finds {low}..{high}"
