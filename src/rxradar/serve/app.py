"""``rxradar serve``: the dashboard (server-rendered pages) and its JSON API (OpenAPI at
``/openapi.json``), over the last analysis of one workspace.

Everything the browser needs comes from this app: no CDN, no web fonts, no script (PDMP
environments are often air-gapped). FastAPI's own documentation pages load Swagger UI from a
CDN, so they are off; ``/api`` lists the endpoints from the OpenAPI description instead.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException

from rxradar import __version__
from rxradar.analytics.peers import measures
from rxradar.indicators import indicators
from rxradar.serve import charts
from rxradar.serve.results import ENTITIES, NoAnalysis, Results, fmt_value

HERE = files("rxradar.serve")
PAGE_SIZE = 50
# What the county map can show: column, title, how to print it.
MAP_MEASURES = {
    "at_risk_per_1000": ("Patients meeting a risk indicator per 1,000 residents", lambda v: f"{v:,.2f}"),
    "patients_per_1000": ("Opioid patients per 1,000 residents", lambda v: f"{v:,.1f}"),
    "flagged_prescribers": ("Flagged prescribers", lambda v: f"{v:,.0f}"),
    "flagged_pharmacies": ("Flagged pharmacies", lambda v: f"{v:,.0f}"),
}


class Summary(BaseModel):
    period: dict[str, str]
    finished_at: str | None
    rows: dict[str, int]
    flagged: dict[str, int]
    settings: dict[str, str]


class LeadPage(BaseModel):
    """Ranked rows of prescriber_metrics or pharmacy_metrics (every column of the table)."""
    total: int
    offset: int
    rows: list[dict[str, Any]]


class Profile(BaseModel):
    model_config = ConfigDict(extra="allow")
    entity: str
    id: str
    row: dict[str, Any]
    measures: list[dict[str, Any]]
    components: list[dict[str, Any]]
    flags: list[dict[str, str]]


class Indicator(BaseModel):
    id: str
    title: str
    description: str
    unit: str
    kind: str
    parameters: dict[str, Any]
    citation: str


def create_app(workspace: Path, *, small_cell: int = 11) -> FastAPI:
    results = Results(workspace, small_cell=small_cell)
    app = FastAPI(title="rxradar", version=__version__, docs_url=None, redoc_url=None,
                  description="Opioid prescribing surveillance: the last analysis of one rxradar workspace. "
                              "Prescribers, pharmacies and counties only; nothing patient-level. County counts "
                              f"of people from 1 to {small_cell - 1} are suppressed.")
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.globals.update(fmt=fmt_value, fmt_share=lambda v: "–" if v is None else f"{100 * v:.1f}%",
                                 workspace=str(workspace))
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    def page(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        return templates.TemplateResponse(request, name, context, status_code=status)

    @app.exception_handler(NoAnalysis)
    async def no_analysis(request: Request, exc: NoAnalysis):
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": str(exc)}, status_code=404)
        return page(request, "message.html", 404, title="No analysis yet", message=str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def not_found(request: Request, exc: StarletteHTTPException):
        if request.url.path.startswith("/api/"):
            return await http_exception_handler(request, exc)
        return page(request, "message.html", exc.status_code, title="Not found" if exc.status_code == 404
                    else f"Error {exc.status_code}", message=str(exc.detail))

    def entity_or_404(entity: str) -> str:
        if entity not in ENTITIES:
            raise HTTPException(404, f"no such list: {entity}")
        return entity

    # -- API ---------------------------------------------------------------------------------------
    @app.get("/api/summary", response_model=Summary, tags=["overview"])
    def api_summary():
        """The analysed period, row counts and how many prescribers and pharmacies are flagged."""
        return results.summary()

    @app.get("/api/indicators", response_model=list[Indicator], tags=["overview"])
    def api_indicators():
        """Every patient indicator with its parameters and citation."""
        return [{"id": i.id, "title": i.title, "description": i.description, "unit": i.unit, "kind": i.kind,
                 "parameters": i.parameters, "citation": i.citation} for i in indicators()]

    @app.get("/api/counties", tags=["places"])
    def api_counties() -> list[dict[str, Any]]:
        """Per county of residence: opioid patients, patients at risk and per indicator, per 1,000
        residents, prescribers and pharmacies (flagged or not). Counts of people below the
        small-cell threshold are null, and named in ``suppressed``."""
        return results.counties()

    @app.get("/api/deciles", tags=["peers"])
    def api_deciles(peer_group: str | None = None, measure: str | None = None) -> list[dict[str, Any]]:
        """Peer deciles (p10..p90) per peer group and measure; monthly rows carry ``month``."""
        return results.deciles(peer_group, measure)

    for entity in ENTITIES:  # before the pages: /{entity}/{entity_id} would take /api/summary
        _entity_api(app, results, entity)

    # -- pages -------------------------------------------------------------------------------------
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def overview(request: Request):
        summary = results.summary()
        return page(request, "overview.html", summary=summary, map=_county_map(results, "at_risk_per_1000"),
                    prescribers=results.leads("prescribers", limit=10).rows,
                    pharmacies=results.leads("pharmacies", limit=5).rows)

    @app.get("/counties", response_class=HTMLResponse, include_in_schema=False)
    def counties_page(request: Request, measure: str = "at_risk_per_1000"):
        if measure not in MAP_MEASURES:
            raise HTTPException(404, f"no map of {measure}")
        return page(request, "counties.html", measure=measure, measures=MAP_MEASURES,
                    map=_county_map(results, measure), counties=results.counties(), small_cell=results.small_cell)

    @app.get("/indicators", response_class=HTMLResponse, include_in_schema=False)
    def indicators_page(request: Request):
        return page(request, "indicators.html", indicators=indicators())

    @app.get("/api", response_class=HTMLResponse, include_in_schema=False)
    def api_page(request: Request):
        return page(request, "api.html", paths=app.openapi()["paths"])

    @app.get("/{entity}", response_class=HTMLResponse, include_in_schema=False)
    def leads_page(request: Request, entity: str, peer_group: str = "", flagged: bool = False,
                   page_number: Annotated[int, Query(alias="page", ge=1)] = 1):
        entity = entity_or_404(entity)
        found = results.leads(entity, peer_group=peer_group or None, flagged=flagged, limit=PAGE_SIZE,
                              offset=(page_number - 1) * PAGE_SIZE)
        return page(request, "leads.html", entity=entity, id_column=ENTITIES[entity][1], found=found,
                    peer_groups=results.peer_groups(entity), peer_group=peer_group, flagged=flagged,
                    page=page_number, pages=max(1, -(-found.total // PAGE_SIZE)),
                    columns=_lead_columns(entity))

    @app.get("/{entity}/{entity_id}", response_class=HTMLResponse, include_in_schema=False)
    def profile_page(request: Request, entity: str, entity_id: str):
        profile = results.profile(entity_or_404(entity), entity_id)
        if profile is None:
            return page(request, "message.html", 404, title="Not found",
                        message=f"no {ENTITIES[entity][2]} {entity_id} in the last analysis")
        for m in profile["measures"]:
            declared = next((d for d in measures(profile["entity"]) if d.id == m["id"]), None)
            m["strip"] = charts.decile_strip(m["deciles"], m["compared"], lambda v, d=declared: fmt_value(d, v))
        months = charts.monthly_bars(profile["months"], lambda v: fmt_value(None, v)) if "months" in profile else None
        return page(request, "profile.html", entity=entity, p=profile, months=months)
    return app


def _entity_api(app: FastAPI, results: Results, entity: str) -> None:
    singular = ENTITIES[entity][2]

    @app.get(f"/api/{entity}", response_model=LeadPage, tags=[entity], name=f"{entity}_leads",
             summary=f"Ranked {entity}")
    def leads(peer_group: str | None = None, flagged: bool = False,
              limit: Annotated[int, Query(ge=1, le=1000)] = PAGE_SIZE, offset: Annotated[int, Query(ge=0)] = 0):
        found = results.leads(entity, peer_group=peer_group, flagged=flagged, limit=limit, offset=offset)
        return {"total": found.total, "offset": offset, "rows": found.rows}

    @app.get(f"/api/{entity}/{{entity_id}}", response_model=Profile, tags=[entity], name=f"{singular}_profile",
             summary=f"One {singular} against its peers")
    def profile(entity_id: str):
        found = results.profile(entity, entity_id)
        if found is None:
            raise HTTPException(404, f"no {singular} {entity_id} in the last analysis")
        return found


def _lead_columns(entity: str) -> list[tuple[str, str]]:
    common = [("peer_group", "Peer group")]
    if entity == "prescribers":
        return [("specialty", "Specialty"), *common, ("patients", "Patients"), ("opioid_rx", "Opioid Rx"),
                ("mme_per_patient", "MME / patient"), ("mean_patient_age", "Mean age")]
    return [*common, ("opioid_rx", "Opioid Rx"), ("patients", "Patients"), ("cash_share", "Cash"),
            ("early_refill_share", "Early refills")]


def _county_map(results: Results, measure: str):
    try:
        rows = [r for r in results.counties() if r["state"] in results.map_states()]
    except NoAnalysis:  # an analysis from before county figures existed: the rest still shows
        return None
    if not rows:
        return None
    title, fmt = MAP_MEASURES[measure]
    values = {r["county_fips"]: r[measure] for r in rows}
    labels = {r["county_fips"]: f"{r['county']}, {r['state']}: "
                                + ("suppressed" if r[measure] is None else fmt(r[measure])) for r in rows}
    return charts.choropleth(values, labels, fmt, title)
