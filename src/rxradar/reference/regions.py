"""HHS regions (the ten regional offices of the US Department of Health and Human Services,
https://www.hhs.gov/about/agencies/iea/regional-offices/index.html), a middle peer scope between
one state and the nation."""

from __future__ import annotations

HHS_REGIONS: dict[int, tuple[str, ...]] = {
    1: ("CT", "ME", "MA", "NH", "RI", "VT"),
    2: ("NJ", "NY", "PR", "VI"),
    3: ("DE", "DC", "MD", "PA", "VA", "WV"),
    4: ("AL", "FL", "GA", "KY", "MS", "NC", "SC", "TN"),
    5: ("IL", "IN", "MI", "MN", "OH", "WI"),
    6: ("AR", "LA", "NM", "OK", "TX"),
    7: ("IA", "KS", "MO", "NE"),
    8: ("CO", "MT", "ND", "SD", "UT", "WY"),
    9: ("AZ", "CA", "HI", "NV", "AS", "GU", "MP"),
    10: ("AK", "ID", "OR", "WA"),
}
_BY_STATE = {state: region for region, states in HHS_REGIONS.items() for state in states}


def hhs_region(state: str | None) -> str:
    """``'HHS region 3'`` for ``'WV'``; ``'unknown region'`` when the state is missing or not a US one."""
    region = _BY_STATE.get((state or "").upper())
    return f"HHS region {region}" if region else "unknown region"
