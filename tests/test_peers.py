"""Peer comparison (rxradar.analytics.peers): every expected value here is worked by hand or computed
independently in the test (plain-Python method of moments, scipy's Beta survival function, a seeded
Monte Carlo, numpy percentiles), never read back from the code under test."""

from __future__ import annotations

import re
from datetime import date

import numpy as np
import pyarrow as pa
import pytest
from scipy import stats

from rxradar.analytics.peers import (
    MAD_PER_SD,
    Measure,
    PeerRules,
    beta_binomial_prior,
    compare,
    group_members,
    peer_groups,
    percentile_rank,
    prob_rate_exceeds,
    robust_z,
    shrink_mean,
    shrink_share,
    top_decile_runs,
)


def mom_prior(k: list[float], n: list[float]) -> tuple[float, float]:
    """Independent oracle: beta-binomial method of moments with binomial noise removed, in plain Python."""
    pairs = [(ki, ni) for ki, ni in zip(k, n) if ni > 0]
    total = sum(ni for _, ni in pairs)
    mu = sum(ki for ki, _ in pairs) / total
    weighted_var = sum(ni * (ki / ni - mu) ** 2 for ki, ni in pairs) / total
    between = weighted_var - mu * (1 - mu) * (len(pairs) - 1) / total  # E[weighted var] under one shared rate
    strength = mu * (1 - mu) / between - 1
    return mu * strength, (1 - mu) * strength


# --- beta_binomial_prior ---------------------------------------------------------------------------


def test_prior_matches_plain_python_method_of_moments():
    k = [2, 5, 9, 0, 14, 3, 0]
    n = [20, 25, 30, 10, 40, 12, 0]  # the last entity has no events and must be ignored (G = 6)
    alpha, beta = beta_binomial_prior(np.array(k, float), np.array(n, float))
    want_a, want_b = mom_prior(k, n)
    assert want_a > 0 and want_b > 0  # the dataset is over-dispersed, so the oracle is well defined
    assert alpha == pytest.approx(want_a, rel=1e-12)
    assert beta == pytest.approx(want_b, rel=1e-12)
    assert alpha / (alpha + beta) == pytest.approx(33 / 137)  # the prior mean is the pooled rate


def test_prior_is_strong_when_rates_vary_no_more_than_binomial_noise():
    # n = 100, rates 0.48 / 0.52: weighted variance 0.0004, below the 0.00225 = mu (1 - mu) (G - 1) / N
    # that binomial noise alone gives ten entities sharing one rate.
    k = np.array([48, 52] * 5, float)
    n = np.full(10, 100.0)
    alpha, beta = beta_binomial_prior(k, n)
    assert alpha / (alpha + beta) == pytest.approx(0.5)
    assert alpha + beta > 1e6
    np.testing.assert_allclose(shrink_share(k, n, alpha, beta), 0.5, atol=1e-4)
    # identical rates: no between-entity variance at all
    a2, b2 = beta_binomial_prior(np.array([3.0, 6.0, 9.0]), np.array([10.0, 20.0, 30.0]))
    assert a2 / (a2 + b2) == pytest.approx(0.3) and a2 + b2 > 1e6


def test_prior_degenerate_inputs():
    # no events anywhere: a weak prior (strength 2) at 0.5 / (N + 1), N = 60
    alpha, beta = beta_binomial_prior(np.zeros(3), np.array([10.0, 20.0, 30.0]))
    assert alpha == pytest.approx(2 * 0.5 / 61)
    assert beta == pytest.approx(2 * (1 - 0.5 / 61))
    # no denominators at all: the uniform prior
    assert beta_binomial_prior(np.zeros(3), np.zeros(3)) == (1.0, 1.0)


# --- shrink_share / prob_rate_exceeds --------------------------------------------------------------


def test_shrink_share_small_denominator_shrinks_far_large_stays():
    out = shrink_share(np.array([3.0, 3000.0]), np.array([3.0, 3000.0]), 2.0, 18.0)
    assert out[0] == pytest.approx(5 / 23)  # 0.2174: all 3 at risk, pulled most of the way to 0.1
    assert out[1] == pytest.approx(3002 / 3020)  # 0.9940: 3000 of 3000 barely moves
    assert out[0] < 0.22 and out[1] > 0.99


def test_prob_rate_exceeds_matches_beta_sf_and_monte_carlo():
    alpha, beta, level = 2.0, 18.0, 0.2
    k = np.array([0.0, 2.0, 5.0, 9.0])
    n = np.array([10.0, 10.0, 20.0, 25.0])
    got = prob_rate_exceeds(k, n, alpha, beta, level)
    want = [stats.beta.sf(level, alpha + ki, beta + ni - ki) for ki, ni in zip(k, n)]
    np.testing.assert_allclose(got, want, rtol=1e-12)
    rng = np.random.default_rng(20240601)
    for ki, ni, p in zip(k, n, got):
        draws = rng.beta(alpha + ki, beta + ni - ki, size=200_000)
        assert abs(np.mean(draws > level) - p) < 0.01


def test_prob_rate_exceeds_is_monotone_in_k_and_zero_at_level_one():
    k = np.arange(0, 21, dtype=float)
    p = prob_rate_exceeds(k, np.full_like(k, 20.0), 2.0, 8.0, 0.3)
    assert np.all(np.diff(p) >= 0) and np.all(np.diff(p[:12]) > 0)
    assert p[0] < 0.05 and p[-1] > 0.999
    assert np.all(prob_rate_exceeds(k, np.full_like(k, 20.0), 2.0, 8.0, 1.0) == 0)


# --- shrink_mean -----------------------------------------------------------------------------------


def test_shrink_mean_equal_n_by_hand():
    # mu = 4, var(x) = (9 + 4 + 1 + 0 + 36) / 5 = 10, s2 = 4, s2/n = 0.4, tau2 = 9.6, B = 0.4 / 10 = 0.04
    x = np.array([1.0, 2.0, 3.0, 4.0, 10.0])
    out = shrink_mean(x, np.full(5, 10.0), np.full(5, 4.0))
    np.testing.assert_allclose(out, 4 + 0.96 * (x - 4), rtol=1e-12)
    np.testing.assert_allclose(out, [1.12, 2.08, 3.04, 4.0, 9.76], rtol=1e-12)


def test_shrink_mean_small_n_shrunk_more_than_large_n():
    x = np.array([9.0, 9.0, 1.0, 3.0, 5.0, 7.0, np.nan])
    n = np.array([2.0, 200.0, 50.0, 50.0, 50.0, 50.0, 50.0])
    var = np.array([100.0, 16.0, 9.0, 25.0, 16.0, 16.0, 16.0])
    out = shrink_mean(x, n, var)
    mu = np.mean(x[:6])
    # Morris (1983) by hand: s2 pooled with n - 1 degrees of freedom, tau2 = var(x) - mean(s2 / n)
    s2 = sum((ni - 1) * vi for ni, vi in zip(n[:6], var[:6])) / sum(ni - 1 for ni in n[:6])
    tau2 = sum((xi - mu) ** 2 for xi in x[:6]) / 6 - sum(s2 / ni for ni in n[:6]) / 6
    want = [mu + (1 - (s2 / ni) / (s2 / ni + tau2)) * (xi - mu) for xi, ni in zip(x[:6], n[:6])]
    np.testing.assert_allclose(out[:6], want, rtol=1e-12)
    assert mu < out[0] < out[1] < 9.0  # both pulled toward the mean, the 2-unit entity much further
    assert 9.0 - out[1] < 0.1 and out[0] - mu < 0.8 * (9.0 - mu)
    assert np.isnan(out[6])


# --- ranks, robust z, peer groups ------------------------------------------------------------------


def test_percentile_rank_ties_half_and_nan():
    np.testing.assert_allclose(percentile_rank(np.array([10.0, 20.0, 20.0, 40.0])), [12.5, 50, 50, 87.5])
    out = percentile_rank(np.array([10.0, np.nan, 20.0, 20.0, 40.0]))
    assert np.isnan(out[1])
    np.testing.assert_allclose(out[[0, 2, 3, 4]], [12.5, 50, 50, 87.5])


def test_robust_z_by_hand():
    # [1, 2, 3, 4, 100]: median 3, absolute deviations [2, 1, 0, 1, 97], MAD 1, scale 1.4826
    out = robust_z(np.array([1.0, 2.0, 3.0, 4.0, 100.0, np.nan]))
    np.testing.assert_allclose(out[:5], np.array([-2, -1, 0, 1, 97]) / MAD_PER_SD, rtol=1e-12)
    assert out[5] == 0.0
    # [1, 2, 4, 8]: median 3, deviations [2, 1, 1, 5], MAD 1.5
    out = robust_z(np.array([1.0, 2.0, 4.0, 8.0]))
    np.testing.assert_allclose(out, (np.array([1, 2, 4, 8]) - 3) / (1.5 * MAD_PER_SD), rtol=1e-12)
    # A floor on the scale: nobody is 100 robust SDs out because the group barely varies.
    np.testing.assert_allclose(robust_z(np.array([1.0, 2.0, 4.0, 8.0]), min_scale=10.0), [-0.2, -0.1, 0.1, 0.5])


def test_robust_z_resists_a_group_where_four_in_ten_are_extreme():
    # 6 ordinary prescribers around 0.05 and 4 at 0.5: the median and MAD still describe the
    # ordinary ones, so the extreme four stand out (an IQR scale would not: Q3 is among them).
    shares = np.array([0.04, 0.05, 0.05, 0.06, 0.05, 0.04, 0.5, 0.5, 0.52, 0.48])
    z = robust_z(shares)
    assert z[6:].min() > 4 and abs(z[:6]).max() < 2


def test_peer_groups_fall_back_below_min_peers():
    keys = ["family"] * 10 + ["pain"] * 3 + ["dental"] * 9
    fallback = ["NY"] * 22
    got = peer_groups(keys, fallback, min_peers=10)
    assert got == ["family"] * 10 + ["NY"] * 12  # exactly min_peers stays; 3 and 9 fall back


# --- top_decile_runs -------------------------------------------------------------------------------


def test_top_decile_runs_consecutive_months_only():
    rows = [  # (entity, month, percentile)
        ("A", 1, 95), ("A", 2, 95), ("A", 3, 95),  # run of 3
        ("B", 1, 95), ("B", 2, 95), ("B", 4, 95),  # March missing: runs of 2 and 1
        ("C", 1, 95), ("C", 2, 80), ("C", 3, 95), ("C", 4, 90), ("C", 5, 99),  # broken, restarts: 3
        ("D", 1, 95), ("D", 2, 95), ("D", 3, 89.9), ("D", 4, 95),  # 2, then 1
        ("F", 1, 95), ("F", 2, 95), ("G", 3, 95),  # a run does not carry over to the next entity
    ]
    rows.reverse()  # input order must not matter
    ids = [r[0] for r in rows]
    months = [date(2024, r[1], 1) for r in rows]
    got = top_decile_runs(ids, months, np.array([r[2] for r in rows], float), need=3)
    assert got == {"A": 3, "C": 3}
    # a run crossing the new year is consecutive
    got = top_decile_runs(["E"] * 3, [date(2023, 11, 1), date(2023, 12, 1), date(2024, 1, 1)],
                          np.array([91.0, 92.0, 93.0]), need=3)
    assert got == {"E": 3}


def test_top_decile_runs_takes_arrays_as_the_analysis_passes_them():
    ids = np.array(["A", "A", "A", "B", "B"], dtype=object)
    months = np.array(["2024-01", "2024-02", "2024-03", "2024-01", "2024-03"], dtype="datetime64[M]")
    assert top_decile_runs(ids, months, np.array([95, 91, 90, 99, 99.0]), need=3) == {"A": 3}
    assert top_decile_runs(ids, months, np.array([95, 91, 90, 99, 99.0]), need=1) == {"A": 3, "B": 1}
    assert top_decile_runs(ids[:0], months[:0], np.array([]), need=1) == {}


def test_group_members_one_index_array_per_code_in_code_order():
    got = [idx.tolist() for idx in group_members(np.array([2, 0, 2, 1, 0]))]
    assert got == [[1, 4], [3], [0, 2]]
    assert list(group_members(np.array([], dtype=np.int64))) == []


# --- compare ---------------------------------------------------------------------------------------


def prescriber_table() -> pa.Table:
    """20 prescribers in one peer group; row 0 is planted extreme on high-dose share and volume."""
    rows = []
    for i in range(20):
        patients = 40 + 3 * i
        rows.append({
            "patients": patients, "mme_total": patients * (800.0 + 10 * i),
            "mme_per_patient_variance": 250_000.0, "opioid_rx": 100 + 5 * i,
            "high_dose_rx": 5 + (i * 7) % 11, "long_acting_rx": 10 + i % 4, "cash_rx": 2 + i % 3,
            "patients_at_risk": 3 + i % 4, "patients_seeing_others": 4 + i % 3,
            "median_patient_miles": 5.0 + i % 6, "mean_patient_age": 50.0 + i % 10,
        })
    rows[0].update(patients=150, mme_total=150 * 4000.0, opioid_rx=300, high_dose_rx=240, cash_rx=40,
                   patients_at_risk=60, median_patient_miles=80.0)
    return pa.Table.from_pylist(rows)


def test_compare_planted_extreme_is_top_lead_with_oig_reason():
    table = prescriber_table()
    result = compare(table, "prescriber", ["family"] * 20, PeerRules())
    cols = result.columns
    score = np.asarray(cols["lead_score"])
    assert int(np.argmax(score)) == 0 and score[0] > np.sort(score)[-2]
    assert "oig_outlier_high_dose_share" in cols["flags"][0]
    assert not any("oig_outlier_high_dose_share" in f for f in cols["flags"][1:])

    # independent cut-off: plain-Python prior, shrink, numpy percentiles of the shrunk shares
    k = table["high_dose_rx"].to_pylist()
    n = table["opioid_rx"].to_pylist()
    alpha, beta = mom_prior(k, n)
    shrunk = np.array([(ki + alpha) / (ni + alpha + beta) for ki, ni in zip(k, n)])
    np.testing.assert_allclose(cols["high_dose_share_eb"], shrunk, rtol=1e-10)
    q1, q3 = np.percentile(shrunk, [25, 75])
    cut = q3 + 3 * (q3 - q1)
    assert shrunk[0] > cut

    assert "posterior_high_dose_share" in cols["flags"][0]  # 80% of 300 vs a ~14% peer rate
    reason = next(r for r in cols["reasons"][0] if r.startswith("Share of opioid fills at or above 90") and "IQR" in r)
    m = re.fullmatch(r".*: ([\d.]+) > peer Q3 \+ 3 x IQR = ([\d.]+) \(peers: family, n=20\)", reason)
    assert m, reason
    assert float(m.group(1)) == pytest.approx(shrunk[0], abs=5e-4)
    assert float(m.group(2)) == pytest.approx(cut, abs=5e-4)


def test_compare_lead_components_sum_to_lead_score():
    cols = compare(prescriber_table(), "prescriber", ["family"] * 20, PeerRules()).columns
    weighted = {"patients", "mme_total", "mme_per_patient", "high_dose_share", "long_acting_share",
                "cash_share", "at_risk_share", "others_share", "median_patient_miles"}
    for score, text in zip(cols["lead_score"], cols["lead_components"]):
        parts = [p.rsplit(" ", 1) for p in text.split("; ")] if text else []
        assert {name for name, _ in parts} <= weighted  # mean_patient_age has weight 0
        numbers = [float(v) for _, v in parts]
        assert numbers == sorted(numbers, reverse=True)
        assert sum(numbers) == pytest.approx(score, abs=0.005 * len(numbers) + 1e-6)
    assert "high_dose_share" in cols["lead_components"][0]


def plain_percentiles(values: list[float]) -> list[float]:
    """Independent oracle: percent of the group strictly below, plus half of the ties (itself included)."""
    return [100 * (sum(v < x for v in values) + 0.5 * sum(v == x for v in values)) / len(values) for x in values]


def test_compare_ranks_every_measure_among_peers_and_extra_ones_are_not_scored():
    """Opioid prescriptions and each risk indicator's patient count get a percentile and deciles
    like every other measure; an extra measure changes neither the lead score nor the flags."""
    table = prescriber_table()
    plain = compare(table, "prescriber", ["family"] * 20, PeerRules())
    doctor_shopping = [1, 0, 2, 0, 0, 3, 0, 1, 0, 0, 2, 0, 0, 1, 0, 0, 0, 5, 0, 1]
    table = table.append_column("patients_oig_doctor_shopping", pa.array(doctor_shopping))
    extra = [Measure(id="patients_oig_doctor_shopping", title="Patients: apparent doctor shopping", kind="value",
                     numerator="patients_oig_doctor_shopping", citation="HHS-OIG", transform="log")]
    result = compare(table, "prescriber", ["family"] * 20, PeerRules(), extra)
    cols = result.columns
    np.testing.assert_allclose(cols["opioid_rx_pctile"], plain_percentiles(table["opioid_rx"].to_pylist()))
    np.testing.assert_allclose(cols["patients_oig_doctor_shopping_pctile"], plain_percentiles(doctor_shopping))
    assert cols["patients_oig_doctor_shopping_pctile"][17] == 97.5  # 5 patients, the most of 20
    assert cols["patients_oig_doctor_shopping_pctile"][1] == pytest.approx(100 * 6 / 20)  # 12 zeros: 0 below, half of 12
    assert list(cols["lead_score"]) == list(plain.columns["lead_score"])
    assert cols["flags"] == plain.columns["flags"]
    measured = {d["measure"] for d in result.deciles}
    assert {"opioid_rx", "patients_oig_doctor_shopping"} <= measured
