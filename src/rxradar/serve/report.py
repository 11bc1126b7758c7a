"""``rxradar report``: the last analysis as one self-contained HTML file (maps, charts and styles
inside it, nothing fetched), to keep with a case file or send where the dashboard cannot reach.

The full report names the strongest prescriber and pharmacy leads with their profiles: it is
written readable by its owner only and its writing is audited. ``public`` leaves the leads out
and keeps the summary, the counties (through disclosure control) and the indicators.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape

from rxradar import __version__
from rxradar.durable import now, replacing
from rxradar.indicators import indicators
from rxradar.serve.pages import LEAD_COLUMNS, county_map, with_charts
from rxradar.serve.results import ENTITIES, Results, fmt_share, fmt_value

HERE = files("rxradar.serve")
# How many of the strongest leads the full report lists, and how many of those it profiles.
REPORT_LEADS = {"prescribers": 25, "pharmacies": 10}
REPORT_PROFILES = {"prescribers": 5, "pharmacies": 3}


@dataclass(frozen=True)
class Written:
    path: Path
    public: bool
    leads: int


def render(results: Results, *, public: bool) -> tuple[str, int]:
    """The report's HTML, and how many prescribers and pharmacies it names."""
    env = Environment(loader=FileSystemLoader(str(HERE / "templates")), autoescape=select_autoescape(default=True))
    env.globals.update(fmt=fmt_value, fmt_share=fmt_share)
    leads = profiles = None
    if not public:
        leads = {e: results.leads(e, limit=n).rows for e, n in REPORT_LEADS.items()}
        profiles = {e: [with_charts(results.profile(e, str(r[ENTITIES[e][1]]))) for r in leads[e][:n]]
                    for e, n in REPORT_PROFILES.items()}
    html = env.get_template("report.html").render(
        summary=results.summary(), map=county_map(results, "at_risk_per_1000"), counties=results.counties(providers=not public),
        small_cell=results.small_cell, leads=leads, profiles=profiles, columns=LEAD_COLUMNS,
        indicators=indicators(), public=public, version=__version__, written_at=now(),
        css=(HERE / "static" / "rxradar.css").read_text(), report=True, level=2)
    return html, sum(len(rows) for rows in leads.values()) if leads else 0


def write_report(results: Results, path: Path, *, public: bool = False) -> Written:
    """Write the report to ``path`` (owner-only unless public), whole or not at all."""
    html, named = render(results, public=public)
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path, private=not public) as tmp:
        tmp.write_text(html, encoding="utf-8")
    return Written(path, public, named)
