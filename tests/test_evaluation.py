"""`rxradar evaluate`'s scoring (rxradar.evaluation), on hand-made rankings and a hand-made truth:
precision at k (= recall at k with k the number planted), the volume baseline, flag precision and
recall, and doctor shoppers scored as the true person behind split identities."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rxradar.evaluation import _active, _ranking, _score, _shoppers
from rxradar.privacy import Pseudonymiser
from rxradar.workspace import Workspace


def test_ranking_is_highest_first_with_ties_by_id_and_missing_scores_last():
    assert _ranking(["c", "a", "b", "d"], [2.0, 2.0, 5.0, None]) == ["b", "a", "c", "d"]
    assert _ranking(["x", "y", "z"], [(True, 3), (False, 9), (True, 8)]) == ["z", "x", "y"]


def test_score_by_hand():
    ids = ["p1", "p2", "p3", "p4", "p5", "p6"]
    lead = [9.0, 1.0, 8.0, 7.0, 0.5, 0.2]  # ranks p1 p3 p4 p2 p5 p6
    volume = [1.0, 2.0, 3.0, 9.0, 8.0, 7.0]  # ranks p4 p5 p6 p3 p2 p1
    flagged = [True, False, False, True, False, False]
    s = _score("pill_mill", {"p1", "p3", "p2"}, ids, lead, volume, flagged)
    # k = 3: the top three by lead score are p1, p3, p4; two of them were planted.
    assert (s.planted, s.k) == (3, 3)
    assert s.precision_at_k == s.recall_at_k == pytest.approx(2 / 3)
    assert s.baseline_precision_at_k == 0.0  # p4, p5, p6 by volume
    assert (s.flagged, s.flag_precision, s.flag_recall) == (2, 0.5, pytest.approx(1 / 3))  # p1 right, p4 wrong
    assert s.planted_ranks == [1, 2, 4]


def test_score_with_nothing_planted_or_flagged():
    s = _score("pill_mill", set(), ["a", "b"], [1.0, 2.0], [1.0, 2.0], [False, False])
    assert (s.k, s.precision_at_k, s.baseline_precision_at_k, s.flag_precision, s.flag_recall) == (0, 0.0, 0.0, None, 0.0)


@pytest.mark.parametrize("start,days,active", [("2023-12-20", 30, True), ("2022-12-31", 1, False),
                                               ("2022-12-31", 2, True), ("2024-01-01", 10, False)])
def test_anomaly_with_a_time_span_counts_only_if_it_overlaps_the_period(start, days, active):
    anomaly = {"parameters": f'{{"start": "{start}", "days": {days}}}'}
    assert _active(anomaly, "2023-01-01", "2023-12-31") is active
    assert _active({"parameters": "{}"}, "2023-01-01", "2023-12-31") is True  # a pill mill: always


def test_doctor_shoppers_are_scored_as_the_true_person_behind_split_identities(tmp_path):
    """True person T1 (planted) was resolved into two persons, one of them with the episode: T1
    counts once, at the better rank. T2 (planted) ranks below an unplanted T3 on providers."""
    with Workspace(tmp_path / "ws") as ws:
        key = ws.key
    hasher = Pseudonymiser(key)
    keys = {"T1": ["SMITH|ANN||1970-01-01|F|25301", "SMYTH|ANN||1970-01-01|F|25301"],
            "T2": ["JONES|BOB||1980-02-02|M|25302"], "T3": ["BROWN|CY||1990-03-03|M|25303"],
            "T4": ["GREEN|DI||1960-04-04|F|25304"]}
    truth = tmp_path / "truth"
    truth.mkdir()
    pq.write_table(pa.table({"person_id": [p for p, ks in keys.items() for _ in ks],
                             "identity_key": [k for ks in keys.values() for k in ks]}),
                   truth / "identity_variants.parquet")
    resolved = {"SMITH|ANN||1970-01-01|F|25301": "R1", "SMYTH|ANN||1970-01-01|F|25301": "R2",
                "JONES|BOB||1980-02-02|M|25302": "R3", "BROWN|CY||1990-03-03|M|25303": "R4",
                "GREEN|DI||1960-04-04|F|25304": "R5"}
    pq.write_table(pa.table({"identity_id": [hasher.hash(k) for k in resolved], "person_id": list(resolved.values())}),
                   tmp_path / "identity_persons.parquet")
    # (person, prescribers, pharmacies, fills, mpe_pbss, omp_pqa)
    rows = [("R1", 2, 2, 4, False, False), ("R2", 5, 5, 12, True, True), ("R3", 3, 3, 30, False, False),
            ("R4", 4, 4, 6, False, False), ("R5", 1, 1, 40, False, False)]
    names = ["person_id", "opioid_prescribers", "opioid_pharmacies", "opioid_fills", "mpe_pbss", "omp_pqa"]
    pq.write_table(pa.table({n: [r[i] for r in rows] for i, n in enumerate(names)}),
                   tmp_path / "patient_indicators.parquet")
    tables = {"identity_persons": tmp_path / "identity_persons.parquet",
              "patient_indicators": tmp_path / "patient_indicators.parquet"}
    with Workspace(tmp_path / "ws", create=False) as ws:
        s = _shoppers(ws, tables, truth, {"T1", "T2"})
    # Ranking of true persons: T1 (episode), T3 (8 providers), T2 (6), T4 (2); top 2 = T1, T3.
    assert s.planted_ranks == [1, 3]
    assert s.precision_at_k == 0.5
    # Baseline by fills (best of a true person's resolved persons): T4 40, T2 30, T1 12, T3 6.
    assert s.baseline_precision_at_k == 0.5
    assert (s.flagged, s.flag_precision, s.flag_recall) == (1, 1.0, 0.5)
