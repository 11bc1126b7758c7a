"""``rxradar evaluate``: score the detectors against a synthetic state's planted truth.

For each kind of planted anomaly the detector's ranking (lead score; for patients, the number of
opioid prescribers and pharmacies) is compared with a naive baseline (rank by raw opioid volume).
With k the number planted, precision at k equals recall at k: the share of planted entities that
rank in the top k. The flags are scored too (precision and recall of "has any flag").
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from rxradar.analytics import store
from rxradar.analytics.leads import ENTITIES
from rxradar.privacy import Pseudonymiser
from rxradar.workspace import Workspace


@dataclass(frozen=True)
class Score:
    detector: str
    planted: int
    k: int
    precision_at_k: float
    recall_at_k: float
    baseline_precision_at_k: float
    flagged: int
    flag_precision: float | None
    flag_recall: float
    planted_ranks: list[int]


def evaluate(ws: Workspace, truth: Path) -> list[Score]:
    """Scores for pill-mill prescribers, disproportionate pharmacies and doctor shoppers."""
    anomalies = pacsv.read_csv(truth / "anomalies.csv", convert_options=pacsv.ConvertOptions(
        column_types={"entity_id": pa.string()})).to_pylist()
    snap = store.open_current(ws.root)
    if snap is None:
        raise FileNotFoundError(f"no analysis results in {ws.root}: run rxradar analyze first")
    with snap:  # every table from one analysis
        return _evaluate(ws, truth, anomalies, snap)


def _evaluate(ws: Workspace, truth: Path, anomalies: list[dict], snap: store.Snapshot) -> list[Score]:
    period = snap.about.get("period", {})
    planted: dict[str, set[str]] = {}
    for a in anomalies:
        if _active(a, period.get("start"), period.get("end")):
            planted.setdefault(a["kind"], set()).add(a["entity_id"])
    tables = snap.tables()
    missing = {"prescriber_metrics", "pharmacy_metrics", "patient_indicators", "identity_persons"} - set(tables)
    if missing:
        raise FileNotFoundError(f"no analysis results in {ws.root} ({', '.join(sorted(missing))}): run rxradar analyze first")
    scores = []
    for kind, entity, baseline in (("pill_mill", "prescribers", "mme_total"),
                                   ("disproportionate_pharmacy", "pharmacies", "opioid_rx")):
        table, id_column, _ = ENTITIES[entity]
        t = pq.read_table(tables[table])
        ids = [str(x) for x in t[id_column].to_pylist()]
        scores.append(_score(kind, planted.get(kind, set()), ids, t["lead_score"].to_pylist(),
                             t[baseline].to_pylist(), [bool(f) for f in t["flags"].to_pylist()]))
    scores.append(_shoppers(ws, tables, truth, planted.get("doctor_shopper", set())))
    return scores


def _active(anomaly: dict, start: str | None, end: str | None) -> bool:
    """Whether a planted anomaly with a time span (doctor-shopping episodes have ``start`` and
    ``days``) overlaps the analysed period; anomalies without one are always active."""
    params = json.loads(anomaly.get("parameters") or "{}")
    if "start" not in params or "days" not in params or not start or not end:
        return True
    first = date.fromisoformat(params["start"])
    last = first + timedelta(days=int(params["days"]) - 1)
    return first <= date.fromisoformat(end) and last >= date.fromisoformat(start)


def _score(detector: str, positives: set[str], ids: list[str], score: list, baseline: list,
           flagged: list[bool]) -> Score:
    k = len(positives)
    ranked = _ranking(ids, score)
    base = _ranking(ids, baseline)
    hits = len(positives & set(ranked[:k]))
    base_hits = len(positives & set(base[:k]))
    flagged_ids = {i for i, f in zip(ids, flagged) if f}
    true_flags = len(flagged_ids & positives)
    position = {e: r for r, e in enumerate(ranked, start=1)}
    return Score(detector, k, k, hits / k if k else 0.0, hits / k if k else 0.0, base_hits / k if k else 0.0,
                 len(flagged_ids), true_flags / len(flagged_ids) if flagged_ids else None,
                 true_flags / k if k else 0.0, sorted(position.get(p, 0) for p in positives))


def _ranking(ids: list[str], score: list) -> list[str]:
    """Ids from the highest score down (scores may be tuples, compared in order); ties by id."""
    pairs = sorted(zip(ids, score), key=lambda p: p[0])
    return [i for i, _ in sorted(pairs, key=lambda p: float("-inf") if p[1] is None else p[1], reverse=True)]


def _shoppers(ws: Workspace, tables: dict[str, Path], truth: Path, positives: set[str]) -> Score:
    """Persons are scored as the true person behind them (by the majority of their identities):
    a true person split into several resolved persons counts once, at the best of their ranks."""
    variants = pq.read_table(truth / "identity_variants.parquet", columns=["person_id", "identity_key"])
    hasher = Pseudonymiser(ws.key)
    true_of = {hasher.hash(k): str(p) for k, p in zip(variants["identity_key"].to_pylist(),
                                                        variants["person_id"].to_pylist())}
    votes: dict[str, dict[str, int]] = {}
    links = pq.read_table(tables["identity_persons"])
    for identity, person in zip(links["identity_id"].to_pylist(), links["person_id"].to_pylist()):
        if identity in true_of:
            v = votes.setdefault(person, {})
            v[true_of[identity]] = v.get(true_of[identity], 0) + 1
    truth_person = {p: max(v.items(), key=lambda kv: (kv[1], kv[0]))[0] for p, v in votes.items()}
    pi = pq.read_table(tables["patient_indicators"],
                       columns=["person_id", "opioid_prescribers", "opioid_pharmacies", "opioid_fills",
                                "mpe_pbss", "omp_pqa"])
    best: dict[str, tuple[float, float, bool]] = {}
    for row in pi.to_pylist():
        who = truth_person.get(row["person_id"])
        if who is None:
            continue
        # A multiple-provider episode first, then how many prescribers and pharmacies in all.
        s = (bool(row["omp_pqa"]), row["opioid_prescribers"] + row["opioid_pharmacies"])
        old = best.get(who, ((False, -1), -1, False))
        best[who] = (max(old[0], s), max(old[1], row["opioid_fills"]), old[2] or row["mpe_pbss"] or row["omp_pqa"])
    ids = list(best)
    return _score("doctor_shopper", positives, ids, [best[i][0] for i in ids], [best[i][1] for i in ids],
                  [best[i][2] for i in ids])


def scores_json(scores: list[Score]) -> str:
    return json.dumps([s.__dict__ for s in scores], indent=2)
