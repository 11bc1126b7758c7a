"""Identifier checks: worked examples from formats.md §4, and scalar/vectorised agreement."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rxradar.codes import (
    NdcNormalized,
    dea_is_valid,
    ncpdp_checksum_ok,
    ncpdp_format_ok,
    ndc10_candidates,
    normalize_ndc,
    npi_is_valid,
    ssn_is_valid,
)

DIGITS = "0123456789"
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def luhn_ok(number: str) -> bool:
    """Plain Luhn mod 10 over the whole number: the independent oracle for NPI (formats.md §4.1:
    prefix 80840 to the 10 digits and the full Luhn sum is 0 mod 10)."""
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def with_npi_check_digit(first9: str) -> str:
    return next(first9 + d for d in DIGITS if luhn_ok("80840" + first9 + d))


def with_dea_check_digit(prefix: str, six: str) -> str:
    d = [int(c) for c in six]
    return f"{prefix}{six}{(d[0] + d[2] + d[4] + 2 * (d[1] + d[3] + d[5])) % 10}"


# --- worked examples -------------------------------------------------------------------------

VALID_NPIS = ["1234567893", "1558598797", "9876543213", "1114567898", "1234567810"]  # last: check digit 0


@pytest.mark.parametrize("npi", VALID_NPIS)
def test_valid_npi(npi):
    assert luhn_ok("80840" + npi)  # the examples really are valid under the oracle
    assert npi_is_valid(npi)


def test_npi_with_check_digit_zero_is_valid():
    npi = with_npi_check_digit("123456781")
    assert npi == "1234567810"
    assert npi_is_valid(npi)


@pytest.mark.parametrize(
    "npi", ["1234567890", "123456789", "12345678930", "123456789a", " 1234567893", "", "１２３４５６７８９３"]
)
def test_invalid_npi(npi):
    assert not npi_is_valid(npi)


@pytest.mark.parametrize("dea,valid", [
    ("AP5836727", True), ("F91234563", True), ("BJ6543210", True),
    ("ZZ1234567", False),  # zero-report placeholder
    ("A95836727", True),  # 9 in second place: business-address registrant
    ("ap5836727", False), ("1P5836727", False), ("AP5836728", False),
    ("F91234563-001AB", False), ("F9123456", False),
])  # fmt: skip
def test_dea(dea, valid):
    assert dea_is_valid(dea) is valid


def test_ncpdp_format_and_checksum():
    # 1+3+5 + 2(2+4+6) = 33 → check digit 3
    assert ncpdp_format_ok("1234563") and ncpdp_checksum_ok("1234563")
    assert ncpdp_format_ok("1234567") and not ncpdp_checksum_ok("1234567")
    assert not ncpdp_format_ok("123456") and not ncpdp_checksum_ok("123456")


@pytest.mark.parametrize("source,ndc11", [
    ("0574-4072-05", "00574407205"),  # 4-4-2
    ("51655-089-52", "51655008952"),  # 5-3-2
    ("58118-1397-3", "58118139703"),  # 5-4-1
    ("58118-1397-03", "58118139703"),  # 5-4-2 already
    ("58118139703", "58118139703"),
    (" 00574407205 ", "00574407205"),
])  # fmt: skip
def test_ndc_normalised(source, ndc11):
    assert normalize_ndc(source) == NdcNormalized(ndc11, (ndc11,), "ok")


def test_unhyphenated_ten_digit_ndc_is_ambiguous():
    result = normalize_ndc("5165508952")
    assert result.status == "ambiguous" and result.ndc11 is None
    assert result.candidates == ("05165508952", "51655008952", "51655089502")
    assert ndc10_candidates("5165508952") == result.candidates


@pytest.mark.parametrize("source", [
    "", "1234-567-89", "123456-123-12", "12345-1234-123", "1234567890123", "0574-4072-5", "abcde-fghi-jk",
    "5165508952\n1",
])  # fmt: skip
def test_invalid_ndc(source):
    assert normalize_ndc(source) == NdcNormalized(None, (), "invalid")


def test_ndc10_candidates_rejects_other_input():
    with pytest.raises(ValueError):
        ndc10_candidates("0574-4072-05")


@pytest.mark.parametrize("ssn,valid", [
    ("123456789", True), ("078051120", True),
    ("000123456", False), ("666123456", False), ("912345678", False), ("999999999", False),
    ("123006789", False), ("123450000", False), ("12345678", False), ("123-45-6789", False),
])  # fmt: skip
def test_ssn_is_valid(ssn, valid):
    assert ssn_is_valid(ssn) is valid


# --- scalar and vectorised forms agree -------------------------------------------------------

valid_npis = st.text(DIGITS, min_size=9, max_size=9).map(with_npi_check_digit)
valid_deas = st.builds(
    with_dea_check_digit,
    st.tuples(st.sampled_from(LETTERS), st.sampled_from(LETTERS + "9")).map("".join),
    st.text(DIGITS, min_size=6, max_size=6),
)
valid_ncpdps = st.text(DIGITS, min_size=6, max_size=6).map(lambda six: with_dea_check_digit("", six))
near_misses = st.text(DIGITS + LETTERS[:3] + "9- \n", max_size=12)
values = st.one_of(st.text(max_size=12), near_misses, valid_npis, valid_deas, valid_ncpdps)


@given(values)
def test_every_check_answers_yes_or_no_for_any_text(value):
    answers = [check(value) for check in (npi_is_valid, dea_is_valid, ncpdp_format_ok, ncpdp_checksum_ok)]
    assert all(isinstance(a, bool) for a in answers)
    assert answers[3] <= answers[2]  # a checksum only passes on the right format


@given(valid_ncpdps)
def test_constructed_ncpdps_pass_the_checksum(ncpdp):
    assert ncpdp_format_ok(ncpdp) and ncpdp_checksum_ok(ncpdp)


@given(st.lists(valid_npis, min_size=1, max_size=10))
def test_constructed_npis_are_valid(npis):
    assert all(npi_is_valid(n) for n in npis)


@given(st.lists(valid_deas, min_size=1, max_size=10))
def test_constructed_deas_are_valid(deas):
    assert all(dea_is_valid(d) for d in deas)


@given(valid_npis, st.integers(0, 9), st.integers(1, 9))
def test_changing_one_npi_digit_makes_it_invalid(npi, position, delta):
    mutated = npi[:position] + str((int(npi[position]) + delta) % 10) + npi[position + 1 :]
    assert not npi_is_valid(mutated)


@given(valid_deas, st.integers(2, 8), st.integers(1, 9))
def test_changing_one_dea_digit_is_caught_unless_weight_two_shift_five(dea, position, delta):
    # The DEA check is weaker than Luhn: d2, d4, d6 carry weight 2, so changing one of them by 5
    # changes the sum by 10 and goes unnoticed. Every other single-digit change is caught.
    mutated = dea[:position] + str((int(dea[position]) + delta) % 10) + dea[position + 1 :]
    weight_two = position in (3, 5, 7)
    assert dea_is_valid(mutated) is (weight_two and delta == 5)


ndc_like = st.one_of(
    st.text(DIGITS + "- \t", max_size=14),
    st.tuples(*(st.text(DIGITS, min_size=1, max_size=6) for _ in range(3))).map("-".join),
    st.text(max_size=14),
    st.none(),
)


@given(st.lists(ndc_like.filter(lambda v: v is not None), max_size=30))
def test_ndc_normalisation_is_consistent(items):
    for e in map(normalize_ndc, items):
        assert (e.ndc11 is not None) == (e.status == "ok")
        assert e.ndc11 is None or (len(e.ndc11) == 11 and e.ndc11.isdigit())
        assert len(e.candidates) == {"ok": 1, "ambiguous": 3, "invalid": 0}[e.status]
