"""The dashboard's charts as server-rendered SVG: a county choropleth, a measure against its peer
deciles, and a prescriber's months against the top-decile line. Plain markup, no script, so the
same charts work in the dashboard, in a saved page and in an air-gapped browser.

Every text that comes from data is escaped here; the templates insert the result as is.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from html import escape

from markupsafe import Markup

from rxradar.analytics.peers import DECILES, TOP_DECILE
from rxradar.serve.maps import county_paths
from rxradar.serve.rendering import finite

# ColorBrewer YlOrRd, 5 classes (Brewer, Harrower & Penn State, colorbrewer2.org; Apache-2.0):
# a sequential scheme readable in print and by most colour-blind readers.
SEQUENTIAL = ("#ffffb2", "#fecc5c", "#fd8d3c", "#f03b20", "#bd0026")
NO_DATA = "#e0e0e0"
PEER = "#9ecae1"
HIGHLIGHT = "#bd0026"
# Legend layout, in SVG pixels: colour swatches, and the width of one character of its 11px text.
SWATCH, TEXT_PX, LEGEND_HEIGHT = 14, 7, 28


def class_breaks(values: Sequence[float], classes: int = len(SEQUENTIAL)) -> list[float]:
    """Upper bounds of ``classes`` quantile classes of the values (nearest-rank quantiles, so each
    bound is an observed value); the last is the maximum."""
    v = sorted(x for x in values if x is not None and math.isfinite(x))
    if not v:
        return []
    return [v[min(len(v) - 1, math.ceil(len(v) * (c + 1) / classes) - 1)] for c in range(classes)]


def class_of(value: float, breaks: Sequence[float]) -> int:
    for c, upper in enumerate(breaks):
        if value <= upper:
            return c
    return len(breaks) - 1


def choropleth(values: dict[str, float | None], labels: dict[str, str], fmt: Callable[[float], str],
               title: str, width: int = 640) -> Markup:
    """Counties shaded by quantile class of ``values`` (None: withheld or no data, grey), each
    with its label as a tooltip, and a legend of the classes below."""
    paths, projection = county_paths(values, width)
    breaks = class_breaks([v for v in values.values() if v is not None])
    height = math.ceil(projection.height)
    out = [f'<svg class="map" viewBox="0 0 {width} {height + LEGEND_HEIGHT}" role="img" '
           f'aria-label="{escape(title)}">']
    for fips, d in paths.items():
        v = values.get(fips)
        fill = NO_DATA if v is None or not breaks else SEQUENTIAL[class_of(v, breaks)]
        out.append(f'<path d="{d}" fill="{fill}" data-fips="{escape(fips)}" fill-rule="evenodd">'
                   f'<title>{escape(labels.get(fips, fips))}</title></path>')
    entries, lower = [], None
    for c, upper in enumerate(breaks):
        if lower is None or upper != lower:  # ties leave a class empty: it has no entry
            entries.append((SEQUENTIAL[c], f"≤ {fmt(upper)}" if lower is None else f"{fmt(lower)}–{fmt(upper)}"))
            lower = upper
    x = SWATCH // 3
    for fill, text in [*entries, (NO_DATA, "withheld or none")]:
        out.append(f'<rect x="{x}" y="{height + 8}" width="{SWATCH}" height="{SWATCH}" fill="{fill}"/>'
                   f'<text x="{x + SWATCH + 4}" y="{height + 20}">{escape(text)}</text>')
        x += 2 * SWATCH + TEXT_PX * len(text)
    return Markup("".join(out) + "</svg>")


def decile_strip(deciles: dict[str, float] | None, value: float | None, fmt: Callable[[float], str],
                 width: int = 360) -> Markup:
    """One measure against its peers: the peer deciles p10..p90 as bands (darker toward the
    middle), the median marked, and this entity's value as a red line."""
    marks = [deciles.get(f"p{d}") for d in DECILES] if deciles else []
    if not marks or not all(finite(v) for v in [*marks, value]):
        return Markup('<span class="muted">no peer comparison</span>')
    lo, hi = min(marks[0], value), max(marks[-1], value)
    span = (hi - lo) or 1.0
    pad = 6

    def x(v: float) -> float:
        return pad + (v - lo) / span * (width - 2 * pad)

    out = [f'<svg class="strip" viewBox="0 0 {width} 34" role="img" '
           f'aria-label="{escape(fmt(value))} against peer deciles">']
    for i in range(8):  # bands p10-p20 ... p80-p90
        depth = 1 - abs(i - 3.5) / 4
        out.append(f'<rect x="{x(marks[i]):.1f}" y="8" width="{max(x(marks[i + 1]) - x(marks[i]), 0.5):.1f}" '
                   f'height="12" fill="{PEER}" fill-opacity="{0.35 + 0.65 * depth:.2f}"/>')
    out.append(f'<line x1="{x(marks[4]):.1f}" x2="{x(marks[4]):.1f}" y1="6" y2="22" stroke="#08519c"/>')
    out.append(f'<line x1="{x(value):.1f}" x2="{x(value):.1f}" y1="2" y2="26" stroke="{HIGHLIGHT}" '
               f'stroke-width="3"><title>{escape(fmt(value))}</title></line>')
    # The 10th and 90th percentiles labelled where they fall, inward so the text stays inside.
    out.append(f'<text x="{x(marks[0]):.1f}" y="33">{escape(fmt(marks[0]))}</text>'
               f'<text x="{x(marks[-1]):.1f}" y="33" text-anchor="end">{escape(fmt(marks[-1]))}</text></svg>')
    return Markup("".join(out))


def monthly_bars(months: Sequence[dict], fmt: Callable[[float], str], width: int = 640,
                 height: int = 140) -> Markup:
    """Total MME per month, each bar red when the month was in the top decile of peers, grey
    otherwise: the OpenPrescribing consecutive-month rule, seen."""
    months = [m for m in months if finite(m["mme_total"])]
    if not months:
        return Markup('<span class="muted">no opioid prescriptions in the period</span>')
    peak = max(m["mme_total"] for m in months) or 1.0
    step = (width - 8) / len(months)
    out = [f'<svg class="bars" viewBox="0 0 {width} {height + 16}" role="img" aria-label="MME by month">']
    for i, m in enumerate(months):
        h = m["mme_total"] / peak * height
        high = m["mme_total_pctile"] is not None and m["mme_total_pctile"] >= TOP_DECILE
        out.append(f'<rect x="{4 + i * step:.1f}" y="{height - h:.1f}" width="{max(step - 1, 0.5):.1f}" '
                   f'height="{h:.1f}" fill="{HIGHLIGHT if high else "#969696"}"><title>{escape(str(m["month"])[:7])}: '
                   f'{escape(fmt(m["mme_total"]))} MME</title></rect>')
    out.append(f'<text x="4" y="{height + 14}">{escape(str(months[0]["month"])[:7])}</text>'
               f'<text x="{width - 4}" y="{height + 14}" text-anchor="end">{escape(str(months[-1]["month"])[:7])}'
               f'</text></svg>')
    return Markup("".join(out))
