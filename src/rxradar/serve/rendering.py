"""How the dashboard and the report print things: numbers and shares, and the one template
environment both render with (the same globals and filters, autoescaped)."""

from __future__ import annotations

import math
from functools import cache
from importlib.resources import files
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, select_autoescape

from rxradar.disclosure import UNSTABLE_EVENTS

TEMPLATES = files("rxradar.serve") / "templates"


def finite(value: Any) -> bool:
    """A number that can be drawn or printed (not None, NaN or infinite)."""
    return isinstance(value, (int, float)) and math.isfinite(value)


def fmt_share(value: Any) -> str:
    return f"{100 * value:.1f}%" if finite(value) else "–"


def fmt_value(kind: str | None, value: Any) -> str:
    """A value as the dashboard prints it: a measure of kind 'share' as a percentage, the rest as
    numbers (whole above 100, else up to two decimals)."""
    if kind == "share":
        return fmt_share(value)
    if not finite(value):
        return "–"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}".rstrip("0").rstrip(".")


@cache
def environment() -> Environment:
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(default=True))
    env.globals.update(fmt=fmt_value, fmt_share=fmt_share, unstable_events=UNSTABLE_EVENTS)
    env.filters["quote_id"] = lambda v: quote(str(v), safe="")  # an id as one path segment, '/' included
    return env
