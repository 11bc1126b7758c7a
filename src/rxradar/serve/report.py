"""``rxradar report``: the last analysis as one self-contained HTML file (maps, charts and styles
inside it, nothing fetched), to keep with a case file or send where the dashboard cannot reach.

The full report names the strongest prescriber and pharmacy leads with their profiles: it is
written readable by its owner only and its writing is audited. ``public`` leaves the leads out
and keeps the summary, the counties (through disclosure control) and the indicators.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from markupsafe import Markup

from rxradar import __version__
from rxradar.analytics.leads import ENTITIES
from rxradar.disclosure import SMALL_CELL
from rxradar.durable import now, replacing
from rxradar.serve.pages import LEAD_COLUMNS, county_map, with_charts
from rxradar.serve.rendering import environment
from rxradar.serve.results import Results
from rxradar.workspace import Workspace

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
    with results.held():  # one analysis throughout, whatever lands while the report is made
        return _render(results, public=public)


def _render(results: Results, *, public: bool) -> tuple[str, int]:
    leads = profiles = None
    if not public:
        leads = {e: results.leads(e, limit=n).rows for e, n in REPORT_LEADS.items()}
        profiles = {e: [with_charts(results.profile(e, str(r[ENTITIES[e].id_column]))) for r in leads[e][:n]]
                    for e, n in REPORT_PROFILES.items()}
    html = environment().get_template("report.html").render(
        summary=results.summary(), map=county_map(results, "at_risk_per_1000"),
        counties=results.counties(providers=not public), small_cell=results.small_cell, leads=leads,
        profiles=profiles, columns=LEAD_COLUMNS, indicators=results.indicators(), public=public, version=__version__,
        written_at=now(), css=stylesheet(), report=True, level=2)
    return html, sum(len(rows) for rows in leads.values()) if leads else 0


def stylesheet() -> Markup:
    """The dashboard's stylesheet, to go inside the report's ``<style>`` as it is: style text is
    not HTML, so escaping it would turn ``"Segoe UI"`` into ``&#34;Segoe UI&#34;``, which CSS cannot
    read (the whole font declaration would be dropped). Our own file, with no ``</`` that could end
    the element early."""
    css = (HERE / "static" / "rxradar.css").read_text(encoding="utf-8")
    if "</" in css:
        raise ValueError("rxradar.css contains '</', which would end the report's <style> element")
    return Markup(css)


def write_report(ws: Workspace, path: Path, *, public: bool = False, small_cell: int = SMALL_CELL,
                 actor: str | None = None) -> Written:
    """Write the report of the workspace's last analysis to ``path`` (owner-only unless public),
    whole or not at all, and audit who wrote it, where, and how many it names."""
    html, named = render(Results(ws.root, small_cell=small_cell), public=public)
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path, private=not public) as tmp:
        tmp.write_text(html, encoding="utf-8")
    ws.audit(actor or getpass.getuser(), "report", str(path), {"public": public, "named": named})
    return Written(path, public, named)
