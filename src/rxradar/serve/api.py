"""The JSON API: what the dashboard shows, for scripts (HTTP Basic as a dashboard user)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.security import HTTPBasic
from pydantic import BaseModel, ConfigDict

from rxradar.analytics.leads import ENTITIES
from rxradar.serve.params import one_of
from rxradar.serve.results import PAGE_SIZE, Results

if TYPE_CHECKING:
    from rxradar.serve.app import Gate

MAX_PAGE = 1000
PEER_GROUP = "one of the peer groups of the last analysis, exactly (a 422 lists them)"
# Declares HTTP Basic in the OpenAPI description; the Gate does the checking.
BASIC = [Depends(HTTPBasic(auto_error=False))]


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


def add_routes(app: FastAPI, results: Results, gate: Gate) -> None:
    @app.get("/api/summary", response_model=Summary, tags=["overview"], dependencies=BASIC)
    def summary(request: Request):
        """The analysed period, row counts and how many prescribers and pharmacies are flagged."""
        gate.require(request, "places")
        return results.summary()

    @app.get("/api/indicators", response_model=list[Indicator], tags=["overview"], dependencies=BASIC)
    def indicator_list(request: Request):
        """Every patient indicator with its parameters and citation."""
        gate.require(request, "places")
        return [{"id": i.id, "title": i.title, "description": i.description, "unit": i.unit, "kind": i.kind,
                 "parameters": i.parameters, "citation": i.citation} for i in results.indicators()]

    @app.get("/api/counties", tags=["places"], dependencies=BASIC)
    def counties(request: Request) -> list[dict[str, Any]]:
        """Per county of residence: opioid patients, patients at risk and per indicator, per 1,000
        residents; for investigators also its prescribers and pharmacies, flagged or not. Counts
        of people withheld by disclosure control are null and named in ``suppressed`` (``small``:
        those that were small cells); ``unstable`` names rates on fewer than 20 patients."""
        user = gate.require(request, "places")
        return results.counties(providers=user.can("leads"))

    @app.get("/api/deciles", tags=["peers"], dependencies=BASIC)
    def deciles(request: Request, peer_group: Annotated[str | None, Query(description=PEER_GROUP)] = None,
                measure: Annotated[str | None, Query(description="a measure of the last analysis's deciles "
                                                                 "(a 422 lists them)")] = None) -> list[dict[str, Any]]:
        """Peer deciles (p10..p90) per peer group and measure; monthly rows carry ``month``
        (investigators: with few peers, deciles give away each one's value)."""
        gate.require(request, "leads")
        if peer_group is not None:
            one_of("peer_group", peer_group, results.distinct("deciles", "peer_group"), "a peer group of the deciles")
        if measure is not None:
            one_of("measure", measure, results.distinct("deciles", "measure"), "a measure of the deciles")
        return results.deciles(peer_group, measure)

    for entity in ENTITIES:
        _entity_routes(app, results, gate, entity)


def _entity_routes(app: FastAPI, results: Results, gate: Gate, entity: str) -> None:
    singular = ENTITIES[entity].singular

    @app.get(f"/api/{entity}", response_model=LeadPage, tags=[entity], name=f"{entity}_leads",
             summary=f"Ranked {entity} (investigators)", dependencies=BASIC)
    def leads(request: Request, peer_group: Annotated[str | None, Query(description=PEER_GROUP)] = None,
              flagged: bool = False,
              limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = PAGE_SIZE, offset: Annotated[int, Query(ge=0)] = 0):
        gate.require(request, "leads")
        if peer_group is not None:
            one_of("peer_group", peer_group, results.peer_groups(entity), f"a peer group of {entity}")
        found = results.leads(entity, peer_group=peer_group, flagged=flagged, limit=limit, offset=offset)
        return {"total": found.total, "offset": offset, "rows": found.rows}

    @app.get(f"/api/{entity}/{{entity_id:path}}", response_model=Profile, tags=[entity],
             name=f"{singular}_profile", summary=f"One {singular} against its peers (investigators)",
             dependencies=BASIC)
    def profile(request: Request, entity_id: str):
        gate.require(request, "leads")
        found = results.profile(entity, entity_id)
        if found is None:
            raise HTTPException(404, f"no {singular} {entity_id} in the last analysis")
        return found
