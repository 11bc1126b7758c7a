"""The dashboard's pages: overview, counties, ranked leads, profiles, indicators, the API index."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup

from rxradar.serve import charts
from rxradar.serve.params import one_of
from rxradar.serve.rendering import fmt_value
from rxradar.analytics.leads import ENTITIES
from rxradar.disclosure import UNSTABLE_EVENTS
from rxradar.serve.results import PAGE_SIZE, PROVIDER_COLUMNS, RATES, NoAnalysis, Results

if TYPE_CHECKING:
    from rxradar.serve.app import Gate

OVERVIEW_LEADS = {"prescribers": 10, "pharmacies": 5}
# What the county map can show: column, title, how to print it.
MAP_MEASURES = {
    "at_risk_per_1000": ("Patients meeting a risk indicator per 1,000 residents", lambda v: f"{v:,.2f}"),
    "patients_per_1000": ("Opioid patients per 1,000 residents", lambda v: f"{v:,.1f}"),
    "flagged_prescribers": ("Flagged prescribers", lambda v: f"{v:,.0f}"),
    "flagged_pharmacies": ("Flagged pharmacies", lambda v: f"{v:,.0f}"),
}
LEAD_COLUMNS = {
    "prescribers": [("specialty", "Specialty"), ("peer_group", "Peer group"), ("patients", "Patients"),
                    ("opioid_rx", "Opioid Rx"), ("mme_per_patient", "MME / patient"),
                    ("mean_patient_age", "Mean age")],
    "pharmacies": [("peer_group", "Peer group"), ("opioid_rx", "Opioid Rx"), ("patients", "Patients"),
                   ("cash_share", "Cash"), ("early_refill_share", "Early refills")],
}


def add_routes(app: FastAPI, results: Results, gate: Gate, page: Callable[..., HTMLResponse]) -> None:
    def entity_or_404(entity: str) -> str:
        if entity not in ENTITIES:
            raise HTTPException(404, f"no such page: /{entity}")
        return entity

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def overview(request: Request):
        user = gate.require(request, "places")
        leads = None
        if user.can("leads"):
            gate.viewed(user, request)  # the strongest leads are on this page
            leads = {e: results.leads(e, limit=n).rows for e, n in OVERVIEW_LEADS.items()}
        return page(request, "overview.html", user=user, summary=results.summary(),
                    map=county_map(results, "at_risk_per_1000"), leads=leads, columns=LEAD_COLUMNS)

    @app.get("/counties", response_class=HTMLResponse, include_in_schema=False)
    def counties_page(request: Request, measure: str = "at_risk_per_1000"):
        user = gate.require(request, "places")
        providers = user.can("leads")
        shown = {k: v for k, v in MAP_MEASURES.items() if providers or k not in PROVIDER_COLUMNS}
        one_of("measure", measure, shown, "a county measure this role may map")
        if providers:
            gate.viewed(user, request)
        return page(request, "counties.html", user=user, measure=measure, measures=shown, providers=providers,
                    map=county_map(results, measure, providers=providers),
                    counties=results.counties(providers=providers), small_cell=results.small_cell)

    @app.get("/indicators", response_class=HTMLResponse, include_in_schema=False)
    def indicators_page(request: Request):
        return page(request, "indicators.html", user=gate.require(request, "places"), indicators=results.indicators())

    @app.get("/api", response_class=HTMLResponse, include_in_schema=False)
    def api_page(request: Request):
        return page(request, "api.html", user=gate.require(request, "places"), paths=app.openapi()["paths"])

    @app.get("/{entity}", response_class=HTMLResponse, include_in_schema=False)
    def leads_page(request: Request, entity: str, peer_group: str = "", flagged: bool = False,
                   page_number: Annotated[int, Query(alias="page", ge=1)] = 1):
        entity = entity_or_404(entity)
        user = gate.require(request, "leads")
        if peer_group:
            one_of("peer_group", peer_group, results.peer_groups(entity), f"a peer group of {entity}")
        found = results.leads(entity, peer_group=peer_group or None, flagged=flagged, limit=PAGE_SIZE,
                              offset=(page_number - 1) * PAGE_SIZE)
        return page(request, "leads.html", user=user, entity=entity, id_column=ENTITIES[entity].id_column, found=found,
                    peer_groups=results.peer_groups(entity), peer_group=peer_group, flagged=flagged,
                    page=page_number, pages=max(1, -(-found.total // PAGE_SIZE)), columns=LEAD_COLUMNS[entity])

    @app.get("/{entity}/{entity_id:path}", response_class=HTMLResponse, include_in_schema=False)
    def profile_page(request: Request, entity: str, entity_id: str):
        entity = entity_or_404(entity)
        user = gate.require(request, "leads")
        profile = results.profile(entity, entity_id)
        if profile is None:
            raise HTTPException(404, f"no {ENTITIES[entity].singular} {entity_id} in the last analysis")
        return page(request, "profile.html", user=user, entity=entity, p=with_charts(profile))


def with_charts(profile: dict) -> dict:
    """A profile with its charts: each measure's strip against the peer deciles, and (for a
    prescriber) the months."""
    for m in profile["measures"]:
        m["strip"] = charts.decile_strip(m["deciles"], m["compared"], lambda v, kind=m["kind"]: fmt_value(kind, v))
    if "months" in profile:
        profile["months_chart"] = charts.monthly_bars(profile["months"], lambda v: fmt_value(None, v))
    return profile


def county_map(results: Results, measure: str, *, providers: bool = False) -> Markup | None:
    """The choropleth of one county measure over the states where patients live, drawn once per
    analysis; None when there are no county figures (or none with a boundary)."""
    try:
        return results.once(("map", measure, providers), lambda: _draw_map(results, measure, providers))
    except NoAnalysis:  # an analysis from before county figures existed: the rest still shows
        return None


def _draw_map(results: Results, measure: str, providers: bool) -> Markup | None:
    states = set(results.map_states())
    rows = [r for r in results.counties(providers=providers) if r["state"] in states]
    title, fmt = MAP_MEASURES[measure]
    values = {r["county_fips"]: r[measure] for r in rows}
    labels = {r["county_fips"]: f"{r['county']}, {r['state']}: " + _shown(r, measure, fmt) for r in rows}
    try:
        return charts.choropleth(values, labels, fmt, title)
    except ValueError:  # no outline for any of these counties
        return None


def _shown(row: dict, measure: str, fmt: Callable[[float], str]) -> str:
    value = row[measure]
    if value is not None:
        return fmt(value) + (f" (unstable: fewer than {UNSTABLE_EVENTS} patients)" if measure in row["unstable"] else "")
    if measure in row["suppressed"]:
        small = any(RATES.get(c) == measure or c == measure for c in row["small"])
        return "withheld (small numbers)" if small else "withheld (would reveal a small number)"
    return "no residents"
