"""Query parameters are checked, not guessed at: a parameter a route does not take, one given
twice, or a value that names nothing in the analysis (a peer group, a measure) is answered 422
with what is allowed. Left unchecked, ``/api/prescribers?county_fips=54039`` would answer every
prescriber of the state as if filtered, and ``?peer_group=Famly Medicine`` an empty list as if
that group had no leads.

The answers have the shape of FastAPI's own 422 (``{"detail": [{"loc", "msg", "type", ...}]}``),
which the OpenAPI description already declares for every route.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel

# Values listed in full in a 422 up to this many; beyond, the first ones and where to find the rest.
LISTED = 40


class Problem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str
    input: Any = None
    ctx: dict[str, Any] | None = None


class Refused(BaseModel):
    """What a 422 carries: each parameter that was not understood, and why."""
    detail: list[Problem]


RESPONSES = {422: {"model": Refused, "description": "a query parameter the route does not take, one given twice, "
                                                     "or a value the route or the last analysis does not have"}}


def known_parameters(request: Request) -> None:
    """A dependency of every route: refuse query parameters the route does not declare, and
    declared ones given more than once."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    declared = {p.alias for p in route.dependant.query_params}
    errors = []
    for name in dict.fromkeys(request.query_params.keys()):
        if name not in declared:
            allowed = ", ".join(sorted(declared)) if declared else "none"
            errors.append({"type": "unknown_parameter", "loc": ("query", name), "input": request.query_params[name],
                           "msg": f"{route.path} takes no parameter {name!r} (it takes: {allowed})"})
        elif len(request.query_params.getlist(name)) > 1:
            errors.append({"type": "repeated_parameter", "loc": ("query", name),
                           "input": request.query_params.getlist(name),
                           "msg": f"{name!r} given more than once: give one value"})
    if errors:
        raise RequestValidationError(errors)


def one_of(name: str, value: str, allowed: Iterable[str], what: str) -> str:
    """``value`` if it is among ``allowed``; else 422 naming the allowed values (``what`` they are)."""
    allowed = list(allowed)
    if value in allowed:
        return value
    shown = ", ".join(repr(a) for a in allowed[:LISTED])
    more = f" and {len(allowed) - LISTED} more" if len(allowed) > LISTED else ""
    raise RequestValidationError([{"type": "enum", "loc": ("query", name), "input": value,
                                   "msg": f"{value!r} is not {what}: use one of {shown}{more}",
                                   "ctx": {"expected": allowed}}])
