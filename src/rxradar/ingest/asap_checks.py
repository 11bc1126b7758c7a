"""Checks on the distinct identifiers and NDCs of an ASAP file.

A file of a million dispensations has a few thousand distinct NPIs and NDCs, so each is checked
once here with :mod:`rxradar.codes` and the result is joined back in the engine
(``asap_records.sql``), where every row-level rule lives.
"""

from __future__ import annotations

from functools import cache

import pyarrow as pa

from rxradar import codes
from rxradar.reference.ndc import ndc_products

ID_CHECKS = pa.schema([("v", pa.string()), ("npi_ok", pa.bool_()), ("dea_ok", pa.bool_()), ("ncpdp_ok", pa.bool_())])
NDC_CHECKS = pa.schema([("v", pa.string()), ("ndc11", pa.string()), ("status", pa.string())])


@cache
def reference_ndcs() -> frozenset[str]:
    return frozenset(ndc_products()["ndc11"].to_pylist())


def ndc_status(value: str) -> tuple[str | None, str]:
    """(ndc11, status) for a reported product ID.

    status: ok (known NDC), unknown (valid form, not in the CDC reference), resolved (an
    unhyphenated 10-digit NDC with exactly one reading in the reference), ambiguous (10 digits,
    no single known reading: formats.md §4.4 says never to pad blindly), invalid.
    """
    norm = codes.normalize_ndc(value)
    if norm.status == "ambiguous":
        known = [c for c in norm.candidates if c in reference_ndcs()]
        return (known[0], "resolved") if len(known) == 1 else (None, "ambiguous")
    if norm.status != "ok" or norm.ndc11 is None:
        return None, "invalid"
    return norm.ndc11, ("ok" if norm.ndc11 in reference_ndcs() else "unknown")


def id_checks(values: list[str]) -> pa.Table:
    return pa.Table.from_pylist(
        [{"v": v, "npi_ok": codes.npi_is_valid(v), "dea_ok": codes.dea_is_valid(v), "ncpdp_ok": codes.ncpdp_format_ok(v)}
         for v in values],
        schema=ID_CHECKS,
    )


def ndc_checks(values: list[str]) -> pa.Table:
    rows = []
    for v in values:
        ndc11, status = ndc_status(v)
        rows.append({"v": v, "ndc11": ndc11, "status": status})
    return pa.Table.from_pylist(rows, schema=NDC_CHECKS)
