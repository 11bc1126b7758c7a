"""Peer comparison on aggregates: percentile ranks, empirical Bayes shrinkage, flags with reasons,
and a lead score that decomposes into the measures that drive it.

Works on one row per prescriber or pharmacy (thousands of rows), so it is numpy, not SQL.
Measures are declared in ``measures.toml``; every threshold is a :class:`PeerRules` field.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from functools import cache
from importlib.resources import files

import numpy as np
import pyarrow as pa
from scipy import stats

from rxradar.indicators import Indicator

MAD_PER_SD = 1.4826  # standard deviations per median absolute deviation, for normal data
DECILES = tuple(range(10, 100, 10))


@dataclass(frozen=True)
class Measure:
    id: str
    title: str
    kind: str  # value | share | mean | ratio
    numerator: str
    citation: str
    denominator: str | None = None
    variance: str | None = None
    transform: str | None = None
    weight: float = 0.0
    outlier: bool = False
    posterior: bool = False


@dataclass(frozen=True)
class PeerRules:
    """Thresholds of the flags and score (settings override them)."""

    outlier_iqr: float = 3.0  # HHS-OIG extreme outlier: above Q3 + 3 x IQR of peers (OEI-02-09-00600)
    posterior_ratio: float = 2.0  # rate at least twice the peer rate ...
    posterior_probability: float = 0.95  # ... with at least this posterior probability
    min_peers: int = 10  # smaller peer groups fall back to the wider group
    z_cap: float = 15.0  # no single measure can contribute more than this to the lead score
    min_scale_share: float = 0.5  # a peer group's spread counts as at least this share of everyone's
    top_decile_months: int = 3  # OpenPrescribing: worst decile for 3 consecutive months


@cache
def measures(entity: str) -> tuple[Measure, ...]:
    data = tomllib.loads(files("rxradar.analytics").joinpath("measures.toml").read_text())
    return tuple(Measure(**m) for m in data[entity])


def flag_measures(items: Sequence[Indicator]) -> list[Measure]:
    """For each patient flag, the prescriber's patients meeting it: compared with peers
    (percentiles and deciles), not scored (the lead score counts at-risk patients once)."""
    return [Measure(id=f"patients_{i.id}", title=f"Patients: {i.title}", kind="value", numerator=f"patients_{i.id}",
                    citation=i.citation, transform="log") for i in items if i.kind == "flag"]


def measure_values(m: Measure, table: pa.Table) -> tuple[np.ndarray, np.ndarray | None]:
    """(value, denominator) as float arrays; value is NaN where the denominator is 0 or missing."""
    num = _col(table, m.numerator)
    if m.denominator is None:
        return num, None
    den = _col(table, m.denominator)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = np.where(den > 0, num / den, np.nan)
    return value, den


def _col(table: pa.Table, name: str) -> np.ndarray:
    return np.asarray(table[name].to_numpy(zero_copy_only=False), dtype=float)


# --- empirical Bayes ----------------------------------------------------------------------------


def beta_binomial_prior(k: np.ndarray, n: np.ndarray) -> tuple[float, float]:
    """(alpha, beta) of a Beta prior for rates k/n, by the method of moments with binomial noise
    removed (Kleinman, JASA 1973). A group whose rates vary no more than binomial noise gets a
    strong prior at the pooled rate."""
    ok = n > 0
    k, n = k[ok], n[ok]
    if not len(n) or n.sum() == 0:
        return 1.0, 1.0
    mu = k.sum() / n.sum()
    if mu <= 0 or mu >= 1:
        # All or none: a weak prior at the pooled rate, nudged off the boundary.
        mu = min(max(mu, 0.5 / (n.sum() + 1)), 1 - 0.5 / (n.sum() + 1))
        return mu * 2.0, (1 - mu) * 2.0
    p = k / n
    weighted_var = np.sum(n * (p - mu) ** 2) / n.sum()
    noise = mu * (1 - mu) * (len(n) - 1) / n.sum()  # expected weighted variance if all shared one rate
    between = max(weighted_var - noise, 1e-9)
    strength = max(mu * (1 - mu) / between - 1, 1e-3)
    return mu * strength, (1 - mu) * strength


def shrink_share(k: np.ndarray, n: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    """Posterior mean rate (k + alpha) / (n + alpha + beta)."""
    return (k + alpha) / (n + alpha + beta)


def prob_rate_exceeds(k: np.ndarray, n: np.ndarray, alpha: float, beta: float, level: float) -> np.ndarray:
    """P(rate > level | k of n) under the Beta(alpha + k, beta + n - k) posterior."""
    if level >= 1:
        return np.zeros_like(k, dtype=float)
    return stats.beta.sf(level, alpha + k, beta + n - k)


def shrink_mean(x: np.ndarray, n: np.ndarray, variance: np.ndarray) -> np.ndarray:
    """Normal-normal empirical Bayes: x_i averaged over n_i units, shrunk toward the peer mean by
    B_i = (s^2 / n_i) / (s^2 / n_i + tau^2), with s^2 the pooled within-unit variance and tau^2 the
    between-entity variance by the method of moments (Morris, JASA 1983)."""
    ok = np.isfinite(x) & (n > 0)
    out = np.full_like(x, np.nan)
    if not ok.any():
        return out
    xs, ns = x[ok], n[ok]
    v = np.where(np.isfinite(variance[ok]), variance[ok], np.nan)
    dof = np.where(np.isfinite(v), ns - 1, 0)
    s2 = float(np.nansum(v * dof) / dof.sum()) if dof.sum() > 0 else float(np.var(xs))
    mu = float(np.mean(xs))
    tau2 = max(float(np.var(xs)) - float(np.mean(s2 / ns)), 1e-9 * max(s2, 1.0))
    b = (s2 / ns) / (s2 / ns + tau2)
    out[ok] = mu + (1 - b) * (xs - mu)
    return out


# --- ranks and robust scores -------------------------------------------------------------------


def percentile_rank(x: np.ndarray) -> np.ndarray:
    """Percent of the group below each value, ties counting half (0-100); NaN stays NaN."""
    out = np.full_like(x, np.nan, dtype=float)
    ok = np.isfinite(x)
    if ok.any():
        out[ok] = (stats.rankdata(x[ok], method="average") - 0.5) / ok.sum() * 100
    return out


def robust_scale(t: np.ndarray) -> float:
    """1.4826 x the median absolute deviation (the standard deviation, for normal data), else the
    standard deviation when over half the values are equal. The MAD stays put until half a group
    is unusual (the IQR gives way at a quarter): a specialty where many prescribers are pill mills
    still has a typical prescriber to compare with (Rousseeuw & Croux, JASA 1993)."""
    ok = t[np.isfinite(t)]
    if len(ok) < 2:
        return 0.0
    mad = float(np.median(np.abs(ok - np.median(ok)))) * MAD_PER_SD
    return mad if mad > 0 else float(np.std(ok))


def robust_z(t: np.ndarray, min_scale: float = 0.0) -> np.ndarray:
    """(t - median) / scale: how far above a typical peer, in robust standard deviations, with the
    scale never below ``min_scale`` (a group whose members barely differ would otherwise turn a
    small difference into a huge z)."""
    ok = np.isfinite(t)
    out = np.zeros_like(t, dtype=float)
    if ok.sum() < 2:
        return out
    scale = max(robust_scale(t), min_scale)
    if scale <= 0:
        return out
    out[ok] = (t[ok] - np.median(t[ok])) / scale
    return out


def peer_groups(keys: list[str], fallback: list[str], min_peers: int) -> list[str]:
    """Each entity's peer group: its own key, or the fallback key where its own has too few members."""
    counts: dict[str, int] = {}
    for k in keys:
        counts[k] = counts.get(k, 0) + 1
    return [k if counts[k] >= min_peers else f for k, f in zip(keys, fallback)]


@dataclass
class Comparison:
    columns: dict[str, np.ndarray | list]
    deciles: list[dict]


def compare(table: pa.Table, entity: str, groups: list[str], rules: PeerRules,
            extra: Sequence[Measure] = ()) -> Comparison:
    """Everything peer-relative for ``table`` (one row per entity; ``groups`` its peer groups).

    For each measure m (the entity's declared measures, then ``extra``): ``m`` (the raw value),
    ``m_eb`` (shrunk, for shares and means) and ``m_pctile``; then ``flags`` (rule names),
    ``reasons`` (one sentence per flag naming the rule, the value and the peer distribution),
    ``lead_score`` and ``lead_components``.
    """
    n = table.num_rows
    _, inverse = np.unique(np.asarray(groups, dtype=object), return_inverse=True)
    # Groups in the order they first appear (a group's rows keep their order, so idx[0] is its first).
    members = {groups[idx[0]]: idx for idx in sorted(group_members(inverse), key=lambda idx: idx[0])}
    cols: dict[str, np.ndarray | list] = {}
    flags = Flags(n)
    components = np.zeros((n, 0))
    names: list[str] = []
    deciles: list[dict] = []
    for m in (*measures(entity), *extra):
        raw, den = measure_values(m, table)
        cols[m.id] = raw
        compared = _shrunk(m, table, raw, den, members, rules, flags)
        if m.kind in ("share", "mean"):
            cols[f"{m.id}_eb"] = compared
        pct = np.full(n, np.nan)
        z = np.zeros(n)
        transformed = np.log1p(np.maximum(compared, 0)) if m.transform == "log" else compared
        floor = rules.min_scale_share * robust_scale(transformed)
        for g, idx in members.items():
            pct[idx] = percentile_rank(compared[idx])
            z[idx] = robust_z(transformed[idx], floor)
            finite = compared[idx][np.isfinite(compared[idx])]
            if len(finite):
                deciles.append({"peer_group": g, "measure": m.id, **decile_row(finite)})
            if m.outlier:
                _outlier_flags(m, compared, idx, finite, g, rules, flags)
        cols[f"{m.id}_pctile"] = pct
        if m.weight > 0:
            names.append(m.id)
            components = np.column_stack([components, m.weight * np.clip(np.nan_to_num(z), 0, rules.z_cap)])
    score = components.sum(axis=1) if names else np.zeros(n)
    cols["lead_score"] = np.round(score, 6)
    cols["lead_components"] = [
        "; ".join(f"{names[c]} {row[c]:.2f}" for c in np.argsort(-row) if row[c] > 0) for row in components]
    cols["flags"] = flags.names
    cols["reasons"] = flags.reasons
    return Comparison(cols, deciles)


class Flags:
    """Each entity's flags (rule names) and, beside each, the sentence that explains it."""

    def __init__(self, n: int):
        self.names: list[list[str]] = [[] for _ in range(n)]
        self.reasons: list[list[str]] = [[] for _ in range(n)]

    def add(self, j: int, name: str, reason: str) -> None:
        self.names[j].append(name)
        self.reasons[j].append(reason)


def _shrunk(m: Measure, table: pa.Table, raw: np.ndarray, den: np.ndarray | None, members: dict[str, np.ndarray],
            rules: PeerRules, flags: Flags) -> np.ndarray:
    """The values compared with peers: shares and means shrunk toward their peer group (with the
    posterior flag for shares that declare it), other kinds as they are."""
    if m.kind not in ("share", "mean"):
        return raw
    compared = raw.copy()
    num = _col(table, m.numerator) if m.kind == "share" else None
    variance = _col(table, m.variance) if m.kind == "mean" else None
    for g, idx in members.items():
        if m.kind == "mean":
            compared[idx] = shrink_mean(raw[idx], den[idx], variance[idx])
            continue
        k, trials = num[idx], den[idx]
        alpha, beta = beta_binomial_prior(k, trials)
        compared[idx] = np.where(trials > 0, shrink_share(k, trials, alpha, beta), np.nan)
        if not m.posterior:
            continue
        peer_rate = alpha / (alpha + beta)
        prob = prob_rate_exceeds(k, trials, alpha, beta, rules.posterior_ratio * peer_rate)
        for j, p in zip(idx, prob):
            if p >= rules.posterior_probability and den[j] > 0:
                flags.add(j, f"posterior_{m.id}",
                          f"{m.title}: {raw[j]:.1%} of {int(den[j])}; P(rate > {rules.posterior_ratio:g} x peer "
                          f"rate {peer_rate:.1%}) = {p:.3f} >= {rules.posterior_probability:g} (peers: {g}, "
                          f"n={len(idx)})")
    return compared


def _outlier_flags(m: Measure, compared: np.ndarray, idx: np.ndarray, finite: np.ndarray, group: str,
                   rules: PeerRules, flags: Flags) -> None:
    """HHS-OIG extreme outliers: above the peer group's Q3 + outlier_iqr x IQR (OEI-02-09-00600)."""
    if len(finite) < 4:
        return
    q1, q3 = np.percentile(finite, [25, 75])
    if q3 <= q1:
        return
    cut = q3 + rules.outlier_iqr * (q3 - q1)
    for j in idx:
        if np.isfinite(compared[j]) and compared[j] > cut:
            flags.add(j, f"oig_outlier_{m.id}", f"{m.title}: {_fmt(compared[j])} > peer Q3 + {rules.outlier_iqr:g} "
                                                f"x IQR = {_fmt(cut)} (peers: {group}, n={len(finite)})")


def decile_row(values: np.ndarray) -> dict:
    """``n`` and the 10th-90th percentiles of ``values``, for decile charts."""
    return {"n": len(values), **{f"p{q}": float(v) for q, v in zip(DECILES, np.percentile(values, DECILES))}}


def _fmt(v: float) -> str:
    return f"{v:.3f}" if abs(v) < 1 else f"{v:,.1f}"


# The top decile of peers: at or above the 90th percentile (percentile_rank's 0-100 scale).
TOP_DECILE = 90.0


def top_decile_runs(entity_ids: Sequence[str] | np.ndarray, months: Sequence[date] | np.ndarray,
                    percentiles: np.ndarray, need: int) -> dict[str, int]:
    """Longest run of consecutive calendar months each entity spent at or above the 90th
    percentile of its peers, for entities whose run reaches ``need``. Vectorised: millions of
    entity-months at state scale."""
    if len(entity_ids) == 0:
        return {}
    names, entity = np.unique(np.asarray(entity_ids, dtype=object), return_inverse=True)
    month = np.asarray(months, dtype="datetime64[M]").astype(np.int64)
    order = np.lexsort((month, entity))
    entity, month = entity[order], month[order]
    top = np.asarray(percentiles, dtype=float)[order] >= TOP_DECILE
    follows = np.zeros(len(order), dtype=bool)  # this month extends a run from the month before
    follows[1:] = top[1:] & top[:-1] & (entity[1:] == entity[:-1]) & (month[1:] - month[:-1] == 1)
    starts = top & ~follows
    run_id = np.cumsum(starts) - 1  # the run each top month belongs to
    length = np.bincount(run_id[top], minlength=int(starts.sum()))
    first = np.flatnonzero(starts)
    best: dict[str, int] = {}
    for j in np.flatnonzero(length >= need):
        eid = names[entity[first[j]]]
        best[eid] = max(best.get(eid, 0), int(length[j]))
    return best


def group_members(codes: np.ndarray) -> Iterator[np.ndarray]:
    """Row indexes of each group of equal ``codes`` (integers), groups in code order, rows in
    their original order within a group: one sort instead of a mask per group."""
    order = np.argsort(codes, kind="stable")
    if len(order):
        yield from np.split(order, np.flatnonzero(np.diff(codes[order])) + 1)
