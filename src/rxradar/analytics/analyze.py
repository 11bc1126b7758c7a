"""``rxradar analyze``: persons → patient indicators → prescriber and pharmacy metrics, kept in
the workspace and, on request, written as CSV beside the settings that produced them."""

from __future__ import annotations

import dataclasses
import getpass
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rxradar.analytics import store
from rxradar.analytics.leads import count_flagged
from rxradar.analytics.patients import Period, build_patient_indicators, buckets_for, resolve_persons
from rxradar.analytics.peers import (DECILES, PeerRules, compare, decile_row, flag_measures, group_members, percentile_rank,
                                     peer_groups, top_decile_runs)
from rxradar.catalog import open_engine
from rxradar.durable import now, replacing
from rxradar.engine import Engine
from rxradar.indicators import Indicator, indicators, parse_overrides
from rxradar.reference.regions import hhs_region
from rxradar.settings import Settings
from rxradar.workspace import Workspace

STEPS = ("persons", "patient indicators", "prescribers", "pharmacies", "saving")
# What each analysis table is made of, in the order they are saved. pid numbers persons in
# person_id order (persons.sql), so ordering by it gives the same files as ordering by the
# 32-character person_id, for an integer sort.
SAVED = (("persons", "SELECT * EXCLUDE (pid) FROM persons ORDER BY pid"),
         ("identity_persons", "SELECT identity_id, person_id, method FROM identity_persons ORDER BY identity_id"),
         ("patient_indicators", "SELECT * EXCLUDE (pid) FROM patient_indicators ORDER BY pid"),
         ("prescriber_metrics", "SELECT * FROM prescriber_metrics_t ORDER BY rank"),
         ("prescriber_months", "SELECT * FROM prescriber_months_t ORDER BY prescriber_id, month"),
         ("pharmacy_metrics", "SELECT * FROM pharmacy_metrics_t ORDER BY rank"),
         ("deciles", "SELECT * FROM deciles_t"),
         ("county_metrics", "SELECT * FROM county_metrics_t ORDER BY county_fips"))


@dataclass(frozen=True)
class AnalysisResult:
    period: Period
    persons: int
    patients: int
    prescribers: int
    pharmacies: int
    flagged_prescribers: int
    flagged_pharmacies: int
    outputs: list[Path]


def data_period(engine: Engine) -> Period:
    """The span of fill dates in the workspace: the default analysis period. Read from the stored
    records (Parquet statistics answer it at once), not the resolved view."""
    first, last = engine.query("SELECT min(fill_date) AS a, max(fill_date) AS b FROM dispensations_records"
                               ).to_pylist()[0].values()
    if first is None:
        raise ValueError("the workspace has no dispensations yet: ingest ASAP files first")
    return Period(first, last)


def analyze(ws: Workspace, settings: Settings, *, start: date | None = None, end: date | None = None,
            out: Path | None = None, identified: bool = False, actor: str | None = None,
            step: Callable[[str], None] | None = None) -> AnalysisResult:
    """Run every analysis for the period [start, end] (default: all the data) and keep the results.

    With ``out``, writes ``prescriber_metrics.csv``, ``pharmacy_metrics.csv``, ``deciles.csv``,
    ``county_metrics.csv``, ``patient_indicators.csv`` (pseudonymised person ids; names and birth
    dates only with ``identified``, which is audited) and ``settings.json``. None of them has been
    through disclosure control (county counts are exact, small cells included), so every one is
    readable by its owner only; what may be published is ``rxradar report --public``.
    """
    say = step or (lambda _s: None)
    items = indicators(parse_overrides(settings.indicator_params))
    rules = PeerRules(outlier_iqr=settings.outlier_iqr, posterior_ratio=settings.posterior_ratio,
                      posterior_probability=settings.posterior_probability, min_peers=settings.min_peers)
    stage_dir = ws.root / "tmp" / "analysis"
    with ws.writer_lock(), open_engine(ws, settings) as engine, _scratch(stage_dir):
        whole = data_period(engine)
        period = Period(start or whole.start, end or whole.end)
        say("persons")
        n_persons = resolve_persons(engine, ws.key)
        say("patient indicators")
        n_patients = build_patient_indicators(engine, period, items, early_refill=settings.early_refill,
                                              lookback_days=settings.max_days_supply + _lookback(items),
                                              stage_dir=stage_dir,
                                              early_refill_used_share=settings.early_refill_used_share,
                                              buckets=buckets_for(engine))
        say("prescribers")
        engine.execute("places")
        engine.set_variables(high_dose_mme=settings.high_dose_mme)
        prescribers, months, p_deciles = _prescribers(engine, items, settings, rules)
        engine.register("prescriber_metrics_t", prescribers)
        engine.materialize("flagged_prescribers",
                           "SELECT prescriber_id FROM prescriber_metrics_t WHERE len(flags) > 0")
        say("pharmacies")
        pharmacies, ph_deciles = _pharmacies(engine, settings, rules)
        deciles = deciles_table(p_deciles + ph_deciles)
        say("saving")
        engine.register("pharmacy_metrics_t", pharmacies)
        engine.register("deciles_t", deciles)
        engine.register("prescriber_months_t", months)
        counties = _counties(engine, items, settings)
        engine.register("county_metrics_t", counties)
        about = {"period": {"start": period.start, "end": period.end}, "finished_at": now(),
                 "settings": {k: str(v) for k, v in dataclasses.asdict(settings).items()},
                 "indicators": {i.id: i.parameters for i in items}, "peer_rules": dataclasses.asdict(rules),
                 "rows": {"persons": n_persons, "patients": n_patients, "prescribers": prescribers.num_rows,
                          "pharmacies": pharmacies.num_rows, "counties": counties.num_rows}}
        # Every table goes into a new version, switched to in one step once all are on disk: a
        # reader sees the previous analysis or this one, never some tables of each.
        with store.new_run(ws.root) as run:
            for name, sql in SAVED:
                run.save_table(engine, name, sql)
            run.save_about(about)
            run.publish()
        outputs = _write_outputs(engine, out, about, identified) if out else []
    if out and identified:
        ws.audit(actor or getpass.getuser(), "export_identified", "patient_indicators",
                 {"path": str(out / "patient_indicators.csv"), "rows": n_patients})
    return AnalysisResult(period, n_persons, n_patients, prescribers.num_rows, pharmacies.num_rows,
                          count_flagged(prescribers), count_flagged(pharmacies), outputs)


@contextmanager
def _scratch(folder: Path) -> Iterator[None]:
    """A fresh folder for staged intermediate tables, removed afterwards whatever happens."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    try:
        yield
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _lookback(items: list[Indicator]) -> int:
    return max([int(i.parameters.get("lookback_days", 0)) for i in items] + [0])


# --- prescribers ---------------------------------------------------------------------------------


def _prescribers(engine: Engine, items: list[Indicator], settings: Settings,
                 rules: PeerRules) -> tuple[pa.Table, pa.Table, list[dict]]:
    engine.execute("prescriber_measures")
    flag_ids = [i.id for i in items if i.kind == "flag"]
    at_risk, counts = _patient_counts(items, settings)
    table = engine.query(
        f"SELECT m.*, coalesce(c.patients_at_risk, 0) AS patients_at_risk, "
        f"{', '.join(f'coalesce(c.patients_{f}, 0) AS patients_{f}' for f in flag_ids)} "
        f"FROM prescriber_measures AS m LEFT JOIN ("
        f"  SELECT pp.prescriber_id, count(*) FILTER (WHERE {at_risk}) AS patients_at_risk, {counts} "
        f"  FROM prescriber_patients AS pp JOIN patient_indicator_rows AS pi USING (pid) GROUP BY pp.prescriber_id"
        f") AS c USING (prescriber_id) ORDER BY prescriber_id")
    specialty = [s or "Unknown specialty" for s in table["specialty"].to_pylist()]
    state = [s or "unknown state" for s in table["state"].to_pylist()]
    scope = {"state": state, "region": [hhs_region(s) for s in state], "national": ["national"] * len(state)}
    wide = scope[settings.peer_scope]
    own = [f"{sp} | {w}" for sp, w in zip(specialty, wide)] if settings.peer_scope != "national" else specialty
    groups = peer_groups(own, [f"all specialties | {w}" for w in wide], rules.min_peers)
    result = compare(table, "prescriber", groups, rules, flag_measures(items))
    months = engine.query("SELECT * FROM prescriber_months ORDER BY prescriber_id, month")
    months, month_deciles, runs = _monthly(months, table["prescriber_id"].to_pylist(), groups, rules)
    flags, reasons = result.columns.pop("flags"), result.columns.pop("reasons")
    for j, pid in enumerate(table["prescriber_id"].to_pylist()):
        if pid in runs:
            flags[j].append("top_decile_months")
            reasons[j].append(f"total MME in the top decile of peers ({groups[j]}) for {runs[pid]} consecutive months "
                              f"(rule: {rules.top_decile_months}, OpenPrescribing)")
    out = _assemble(table, groups, result.columns, flags, reasons, id_column="prescriber_id")
    return out, months, result.deciles + month_deciles


def _patient_counts(items: list[Indicator], settings: Settings) -> tuple[str, str]:
    """SQL over ``patient_indicator_rows AS pi``: whether a patient is at risk (any of the
    settings' risk_indicators, each a patient flag: settings.load checks), and the aggregates
    counting patients who meet each flag."""
    risk = [r.strip() for r in settings.risk_indicators.split(",") if r.strip()]
    flags = [i.id for i in items if i.kind == "flag"]
    # Column names come from the indicator declarations (checked identifiers), never from input.
    counts = ", ".join(f"count(*) FILTER (WHERE pi.{f}) AS patients_{f}" for f in flags)
    return " OR ".join(f"pi.{r}" for r in risk) or "false", counts


def _monthly(months: pa.Table, ids: list[str], groups: list[str],
             rules: PeerRules) -> tuple[pa.Table, list[dict], dict[str, int]]:
    """Monthly percentile of total MME among active peers, deciles per peer group and month, and
    the prescribers in the top decile for enough consecutive months. Rows are grouped by integer
    codes: millions of prescriber-months at state scale."""
    # Each row's prescriber by position in ids; len(ids) for one without a metrics row (none in
    # practice), which has no peer group.
    where = pc.index_in(months["prescriber_id"], value_set=pa.array(ids, pa.string()))
    pos = np.asarray(pc.fill_null(where, len(ids)).to_numpy(zero_copy_only=False))
    group_names, group_code = np.unique(np.asarray(groups + [""], dtype=object), return_inverse=True)
    month = np.asarray(months["month"].to_numpy(zero_copy_only=False), dtype="datetime64[M]")
    month_code = month.astype(np.int64)
    month_code -= month_code.min() if len(month) else 0
    mme = np.asarray(months["mme_total"].to_numpy(zero_copy_only=False), dtype=float)
    pct = np.full(months.num_rows, np.nan)
    deciles = []
    months_span = int(month_code.max()) + 1 if len(month) else 1
    for idx in group_members(group_code[pos] * months_span + month_code):
        pct[idx] = percentile_rank(mme[idx])
        deciles.append({"peer_group": group_names[group_code[pos[idx[0]]]], "measure": "mme_total",
                        "month": month[idx[0]].astype("datetime64[D]").item(), **decile_row(mme[idx])})
    runs = top_decile_runs(months["prescriber_id"].to_numpy(zero_copy_only=False), month, pct, rules.top_decile_months)
    peer_group = pa.array(np.asarray(groups + [None], dtype=object)[pos], pa.string())
    months = months.append_column("peer_group", peer_group)
    return months.append_column("mme_total_pctile", pa.array(pct)), deciles, runs


# --- pharmacies ----------------------------------------------------------------------------------


def _pharmacies(engine: Engine, settings: Settings, rules: PeerRules) -> tuple[pa.Table, list[dict]]:
    engine.execute("pharmacy_measures")
    table = engine.query("SELECT * FROM pharmacy_measures ORDER BY pharmacy_id")
    population = table["county_population"].to_pylist()
    chain = table["chain_known"].to_pylist()
    place = ["unknown place" if p is None else "urban" if p >= settings.urban_county_population else "rural"
             for p in population]
    own = [f"{pl} | {'chain' if c else 'independent or unknown'}" for pl, c in zip(place, chain)]
    groups = peer_groups(own, ["all pharmacies"] * len(own), rules.min_peers)
    result = compare(table, "pharmacy", groups, rules)
    flags, reasons = result.columns.pop("flags"), result.columns.pop("reasons")
    return _assemble(table, groups, result.columns, flags, reasons, id_column="pharmacy_id"), result.deciles


# --- counties ------------------------------------------------------------------------------------


def _counties(engine: Engine, items: list[Indicator], settings: Settings) -> pa.Table:
    """Table county_metrics (``sql/county_metrics.sql``): per county of residence (persons' ZIP),
    its patients, those at risk and those meeting each flag, its prescribers and pharmacies."""
    at_risk, counts = _patient_counts(items, settings)
    engine.materialize("county_patients",
                       f"SELECT p.county_fips, count(*) AS patients, count(*) FILTER (WHERE {at_risk}) AS patients_at_risk"
                       f"{', ' + counts if counts else ''} FROM patient_indicator_rows AS pi JOIN persons AS p USING (pid) "
                       "GROUP BY p.county_fips")
    return engine.run("county_metrics")


def _assemble(table: pa.Table, groups: list[str], columns: dict, flags: list[list[str]], reasons: list[list[str]],
              id_column: str) -> pa.Table:
    """The metrics table: raw columns, peer group, per-measure values and percentiles, flags,
    reasons, lead score and rank (1 = strongest lead; ties broken by id so ranks are stable)."""
    score = np.asarray(columns["lead_score"], dtype=float)
    ids = table[id_column].to_pylist()
    order = sorted(range(len(ids)), key=lambda i: (-score[i], ids[i]))
    rank = np.empty(len(ids), dtype=np.int64)
    rank[order] = np.arange(1, len(ids) + 1)
    out = table.append_column("peer_group", pa.array(groups, pa.string()))
    for name, values in columns.items():
        if name in out.column_names:
            continue  # the raw column of a value measure is already there
        out = out.append_column(name, pa.array(values if isinstance(values, list) else np.asarray(values)))
    out = out.append_column("rank", pa.array(rank))
    out = out.append_column("flags", pa.array(flags, pa.list_(pa.string())))
    return out.append_column("reasons", pa.array(reasons, pa.list_(pa.string())))


DECILES_SCHEMA = pa.schema([("peer_group", pa.string()), ("measure", pa.string()), ("month", pa.date32()),
                            ("n", pa.int64()), *((f"p{d}", pa.float64()) for d in DECILES)])


def deciles_table(rows: list[dict]) -> pa.Table:
    """Decile rows as one table: whole-period rows have no month, monthly rows do (declared, so
    the column exists whatever kind of row comes first)."""
    return pa.Table.from_pylist(rows, schema=DECILES_SCHEMA)


# --- outputs ---------------------------------------------------------------------------------------


def _write_outputs(engine: Engine, out: Path, about: dict, identified: bool) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    lists = "array_to_string(flags, '; ') AS flags, array_to_string(reasons, '; ') AS reasons"
    for name, sql in (("prescriber_metrics", f"SELECT * REPLACE ({lists}) FROM prescriber_metrics_t ORDER BY rank"),
                      ("pharmacy_metrics", f"SELECT * REPLACE ({lists}) FROM pharmacy_metrics_t ORDER BY rank"),
                      ("deciles", "SELECT * FROM deciles_t"),
                      ("county_metrics", "SELECT * FROM county_metrics_t ORDER BY county_fips")):
        written.append(_csv(engine, out / f"{name}.csv", sql))
    who = ("i.last_name, i.first_name, p.birth_date, " if identified else "") + "p.birth_year, p.sex, p.county_fips"
    patients = (f"SELECT p.person_id, {who}, pi.* EXCLUDE (pid) FROM patient_indicator_rows AS pi "
                "JOIN persons AS p USING (pid) "
                + ("LEFT JOIN (SELECT ip.person_id, arg_min(i.last_name, i.identity_id) AS last_name, "
                   "arg_min(i.first_name, i.identity_id) AS first_name FROM identity_persons AS ip "
                   "JOIN identities AS i USING (identity_id) GROUP BY ip.person_id) AS i ON i.person_id = p.person_id "
                   if identified else "")
                + "ORDER BY p.pid")
    written.append(_csv(engine, out / "patient_indicators.csv", patients))
    return written + [store.write_json(out / "settings.json", about, private=True)]


def _csv(engine: Engine, path: Path, sql: str) -> Path:
    """Restricted: no file written here has been through disclosure control."""
    with replacing(path, private=True) as tmp:
        engine.copy_to_csv(sql, tmp)
    return path
