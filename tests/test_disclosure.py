"""Disclosure control by hand: small cells, complements within a row, a second cell per group,
unstable rates."""

from __future__ import annotations

from rxradar.disclosure import UNSTABLE_EVENTS, Count, suppress

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
    out = suppress([row("a", "g", 30, 25), row("b", "h", 30, 15)], COUNTS, groups=("group",))
    assert shown(out) == {"a": (30, None, 3.0), "b": (30, 15, 3.0)}


def test_one_withheld_cell_in_a_group_takes_the_smallest_other_with_it():
    rows = [row("a", "g", 500, 40), row("b", "g", 120, 3), row("c", "g", 60, 0), row("d", "g", 90, 12),
            row("e", "h", 70, 20)]
    out = suppress(rows, COUNTS, groups=("group",))
    # b's 3 sick is small; of g's other non-zero counts (40, 12) the smallest, d's 12, goes too.
    # c's 0 stays (zero is never the second cell: it tells nothing). Group h is untouched.
    assert shown(out) == {"a": (500, 40, 50.0), "b": (120, None, 12.0), "c": (60, 0, 6.0), "d": (90, None, 9.0),
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
