"""The last analysis of a workspace, as the dashboard and API read it: leads, profiles against
peer deciles, county figures with small cells suppressed. Tables are read once from the
current version of the workspace's analysis results (:mod:`rxradar.analytics.store`) and read
again when a new version becomes current; a request inside :meth:`Results.held` reads every
table from one version.

Nothing here is patient-level: the dashboard shows prescribers, pharmacies and counties.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from rxradar.analytics import store
from rxradar.analytics.leads import ENTITIES, count_flagged, ranked
from rxradar.analytics.peers import flag_measures, measures
from rxradar.disclosure import SMALL_CELL, Count, suppress
from rxradar.indicators import Indicator, indicators
from rxradar.reference.counties import counties
from rxradar.serve.rendering import fmt_value

PAGE_SIZE = 50  # leads per page, on the dashboard and from the API
# A state is mapped when at least this share of the patients live in it (the PDMP's own state,
# not every neighbouring state a few patients come from).
MAP_STATE_SHARE = 0.05
# The county rates and the counts of people they are made from.
RATES = {"patients": "patients_per_1000", "patients_at_risk": "at_risk_per_1000"}
# County columns about prescribers and pharmacies: for those who may see leads.
PROVIDER_COLUMNS = ("prescribers", "flagged_prescribers", "pharmacies", "flagged_pharmacies")


class NoAnalysis(LookupError):
    """The workspace has no analysis results yet."""


@dataclass(frozen=True)
class Page:
    total: int
    rows: list[dict]


def clean(value: Any) -> Any:
    """A value as JSON can carry it: NaN and infinities become None, dates ISO strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clean(v) for v in value]
    return value


@dataclass
class _Version:
    """One analysis as Results holds it: its snapshot (which keeps the version from being removed
    while anything still refers to it), its analysis.json, and what has been read or worked out
    from it so far."""
    stamp: tuple | None
    snapshot: store.Snapshot | None
    kept: dict[Any, Any]

    @property
    def about(self) -> dict | None:
        return self.snapshot.about if self.snapshot else None


# The version a request holds: set (empty) when the request begins, filled by the first read,
# so every read of that request comes from the same analysis even if another lands meanwhile.
_held: ContextVar[dict[int, _Version] | None] = ContextVar("rxradar_results_held", default=None)


class Results:
    def __init__(self, root: Path, small_cell: int = SMALL_CELL):
        self.root = Path(root)
        self.small_cell = small_cell
        self._lock = threading.Lock()
        # Replaced whole when a new analysis lands, so a request never mixes two analyses.
        self._state = _Version(None, None, {})

    # -- loading ---------------------------------------------------------------------------------
    @contextmanager
    def held(self) -> Iterator[None]:
        """Within this block (one request, one report), every read comes from the version
        current at the first read."""
        token = _held.set({})
        try:
            yield
        finally:
            _held.reset(token)

    def _version(self) -> _Version:
        held = _held.get()
        if held is not None and id(self) in held:
            return held[id(self)]
        pointer = store.analytics_dir(self.root) / store.POINTER
        with self._lock:
            try:
                st = pointer.stat()
                stamp: tuple | None = (st.st_ino, st.st_mtime_ns, st.st_size)
            except FileNotFoundError:
                # The flat layout of a workspace analysed before versions existed.
                about = store.analytics_dir(self.root) / store.ABOUT
                try:
                    st = about.stat()
                    stamp = ("flat", st.st_ino, st.st_mtime_ns, st.st_size)
                except FileNotFoundError:
                    stamp = None
            if stamp != self._state.stamp:
                snapshot = store.open_current(self.root) if stamp else None
                self._state = _Version(stamp, snapshot, {})
            version = self._state
        if held is not None:
            held[id(self)] = version
        return version

    @property
    def about(self) -> dict | None:
        return self._version().about

    def once(self, key: Any, make: Callable[[], Any]) -> Any:
        """``make()``, worked out once per analysis (tables, and what every request would
        otherwise work out again)."""
        version = self._version()
        if version.about is None:
            raise NoAnalysis(f"no analysis results in {self.root}: run rxradar analyze first")
        if key not in version.kept:
            # What make() reads comes from this version too, whatever lands meanwhile.
            token = _held.set({**(_held.get() or {}), id(self): version})
            try:
                version.kept[key] = make()
            finally:
                _held.reset(token)
        return version.kept[key]

    def table(self, name: str) -> pa.Table:
        def read() -> pa.Table:
            version = self._version()  # the one once() holds
            path = version.snapshot.path(name) if version.snapshot else None
            if path is None:
                raise NoAnalysis(f"the last analysis in {self.root} has no {name} table: run rxradar analyze again")
            return pq.read_table(path)
        return self.once(name, read)

    def indicators(self) -> list[Indicator]:
        """The patient indicators with the parameters the last analysis used (as declared, before
        any analysis)."""
        about = self.about
        if about is None:
            return indicators()
        return self.once("indicators", lambda: indicators(about.get("indicators")))

    # -- prescribers and pharmacies --------------------------------------------------------------
    def peer_groups(self, entity: str) -> list[str]:
        return self.distinct(ENTITIES[entity].table, "peer_group")

    def distinct(self, table: str, column: str) -> list[str]:
        """The values a column of an analysis table takes (what a query parameter may ask for)."""
        return self.once(("distinct", table, column), lambda: sorted(
            v for v in pc.unique(self.table(table)[column]).to_pylist() if v is not None))

    # Rows, as answers carry them, are worked out once per analysis and shared by every request
    # (sorting, filtering and converting the table on each one was most of their work): they are
    # read-only.
    def leads(self, entity: str, *, peer_group: str | None = None, flagged: bool = False, limit: int = PAGE_SIZE,
              offset: int = 0) -> Page:
        """Ranked rows (1 = strongest lead), optionally of one peer group or flagged only."""
        rows = self.once(("ranked", entity, peer_group or None, flagged), lambda: [
            clean(r) for r in ranked(self.table(ENTITIES[entity].table), peer_group=peer_group,
                                     flagged=flagged).to_pylist()])
        return Page(len(rows), rows[offset:offset + limit])

    def _row(self, entity: str, entity_id: str) -> dict | None:
        name, id_column, _ = ENTITIES[entity]
        return self.once(("by id", entity), lambda: {str(r[id_column]): r for r in self.leads(
            entity, limit=self.table(name).num_rows).rows}).get(entity_id)

    def profile(self, entity: str, entity_id: str) -> dict | None:
        """One prescriber or pharmacy: its metrics row, each measure beside its peers' deciles,
        its flags with their reasons, and (prescribers) its months."""
        kind = ENTITIES[entity].singular
        row = self._row(entity, entity_id)
        if row is None:
            return None
        group = row["peer_group"]
        deciles = self._deciles(group)
        declared = list(measures(kind))
        if kind == "prescriber":
            declared += [m for m in flag_measures(self.indicators()) if f"{m.id}_pctile" in row]
        out = []
        for m in declared:
            compared = row.get(f"{m.id}_eb", row.get(m.id))
            out.append({"id": m.id, "title": m.title, "kind": m.kind, "value": row.get(m.id),
                        "compared": compared, "percentile": row.get(f"{m.id}_pctile"), "weight": m.weight,
                        "citation": m.citation, "deciles": deciles.get(m.id),
                        "shown": fmt_value(m.kind, row.get(m.id)), "shown_compared": fmt_value(m.kind, compared)})
        titles = {m.id: m.title for m in declared}
        profile = {"entity": kind, "id": entity_id, "row": row, "place": county_label(row.get("county_fips")),
                   "measures": out,
                   "components": [{**c, "title": titles.get(c["measure"], c["measure"])}
                                  for c in _components(row.get("lead_components") or "")],
                   "flags": [{"rule": f, "reason": r} for f, r in zip(row["flags"] or [], row["reasons"] or [])]}
        if kind == "prescriber":
            profile["months"] = self._months(entity_id)
        return profile

    def _months(self, prescriber_id: str) -> list[dict]:
        """One prescriber's months in calendar order, found by slicing the table sorted by
        prescriber (an index worked out once) rather than scanning it per profile."""
        months, spans = self.once("months by prescriber", self._month_spans)
        start, length = spans.get(prescriber_id, (0, 0))
        return months.slice(start, length).to_pylist()

    def _month_spans(self) -> tuple[pa.Table, dict[str, tuple[int, int]]]:
        """The months sorted by prescriber, already as :func:`clean` makes values (dates as ISO
        text, NaN as null), and where each prescriber's run starts and how long it is."""
        months = self.table("prescriber_months").sort_by([("prescriber_id", "ascending"), ("month", "ascending")])
        columns = {"month": pc.cast(months["month"], pa.string())}
        for name in ("opioid_rx", "patients", "mme_total", "mme_total_pctile"):
            column = months[name]
            columns[name] = pc.if_else(pc.is_nan(column), None, column) if pa.types.is_floating(column.type) else column
        spans: dict[str, tuple[int, int]] = {}
        for i, pid in enumerate(months["prescriber_id"].to_pylist()):
            start, length = spans.get(pid, (i, 0))
            spans[pid] = (start, length + 1)
        return pa.table(columns), spans

    def _deciles(self, peer_group: str | None) -> dict[str, dict]:
        """The whole period's deciles of each measure in this peer group (the monthly ones are for
        the months chart)."""
        def whole_period() -> dict[str, dict]:
            t = self.table("deciles")
            mask = pc.and_(pc.equal(t["peer_group"], peer_group or ""), pc.is_null(t["month"]))
            return {r["measure"]: clean(r) for r in t.filter(mask).to_pylist()}
        return self.once(("deciles", peer_group or ""), whole_period)

    def deciles(self, peer_group: str | None = None, measure: str | None = None) -> list[dict]:
        """Decile rows, optionally of one peer group and measure (worked out once per analysis)."""
        def rows() -> list[dict]:
            t = self.table("deciles")
            for column, value in (("peer_group", peer_group), ("measure", measure)):
                if value:
                    t = t.filter(pc.equal(t[column], value))
            return [clean(r) for r in t.to_pylist()]
        return self.once(("deciles rows", peer_group or None, measure or None), rows)

    # -- counties --------------------------------------------------------------------------------
    def counties(self, *, providers: bool = False) -> list[dict]:
        """Each county's figures through disclosure control (:mod:`rxradar.disclosure`; the
        counties of a state, and all of them, have published totals): small counts of people,
        and those they could be worked out from, are None and named in ``suppressed``; rates on
        few events are named in ``unstable``. The counts of prescribers and pharmacies, flagged
        or not, come only with ``providers``: in a county with one prescriber they name them."""
        if providers:
            return self.once("counties", self._counties)
        return self.once("counties without providers", lambda: [
            {k: v for k, v in r.items() if k not in PROVIDER_COLUMNS} for r in self.once("counties", self._counties)])

    def _counties(self) -> list[dict]:
        """Disclosure control over counts of people only: the provider columns are not among them."""
        t = self.table("county_metrics")
        counts = [Count("patients", rate=RATES["patients"]),
                  Count("patients_at_risk", rate=RATES["patients_at_risk"], part_of="patients"),
                  *(Count(c, part_of="patients") for c in t.column_names
                    if c.startswith("patients_") and c not in ("patients_at_risk", "patients_per_1000"))]
        return suppress([clean(r) for r in t.to_pylist()], counts, threshold=self.small_cell, groups=("state", None))

    def map_states(self, share: float = MAP_STATE_SHARE) -> list[str]:
        """The states a map should show: those where at least ``share`` of the patients live."""
        t = self.table("county_metrics")
        totals: dict[str, int] = {}
        for state, n in zip(t["state"].to_pylist(), t["patients"].to_pylist()):
            totals[state] = totals.get(state, 0) + n
        everyone = sum(totals.values())
        return sorted(s for s, n in totals.items() if everyone and n >= share * everyone)

    # -- overview --------------------------------------------------------------------------------
    def summary(self) -> dict:
        flagged = self.once("flagged", lambda: {entity: count_flagged(self.table(e.table))  # or NoAnalysis
                                                for entity, e in ENTITIES.items()})
        about = self.about
        # The workspace's location is the server's business, not the reader's.
        settings = {k: v for k, v in about.get("settings", {}).items() if k != "workspace"}
        return {"period": about["period"], "finished_at": about.get("finished_at"), "rows": about.get("rows", {}),
                "flagged": flagged, "settings": settings}


class HoldVersion:
    """ASGI middleware: each HTTP request reads one version of the analysis results
    (:meth:`Results.held`), whatever analysis lands while it runs."""

    def __init__(self, app: Any, results: Results):
        self.app, self.results = app, results

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        with self.results.held():
            await self.app(scope, receive, send)


@cache
def _county_labels() -> dict[str, str]:
    t = counties()
    return {f: f"{name}, {state}" for f, name, state in zip(t["fips"].to_pylist(), t["name"].to_pylist(),
                                                          t["state"].to_pylist())}


def county_label(fips: str | None) -> str | None:
    """'Kanawha County, WV' for '54039'; the code itself when the reference has no such county."""
    return None if fips is None else _county_labels().get(fips, fips)


def _components(text: str) -> list[dict]:
    """``lead_components`` ("mme_total 4.20; cash_share 1.10") as measure and contribution."""
    out = []
    for part in filter(None, (p.strip() for p in text.split(";"))):
        measure, _, value = part.rpartition(" ")
        out.append({"measure": measure, "contribution": float(value)})
    return out
