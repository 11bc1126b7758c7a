"""Benchmark disclosure control (:func:`rxradar.disclosure.suppress`) on county tables as the
dashboard publishes them (state totals and the grand total taken as known), beside a floor and a
baseline:

    PYTHONPATH=src .venv/bin/python bench/suppress.py
    PYTHONPATH=src .venv/bin/python bench/suppress.py --baseline-rev ''      # without the baseline
    PYTHONPATH=src .venv/bin/python bench/suppress.py --verify     # and attack every state's cells

Tables: the counties of West Virginia (55), of West Virginia, Ohio, Kentucky and Pennsylvania
(330), and every county shipped (3,220: the states, DC and the territories), each with ten counts
of people drawn (seeded) from the county's 2019 population: patients (2%), patients at risk (10%
of them) and eight flags (30% of those at risk each), all parts of patients. A last table
("all, few") draws patients as 0.05% of the population, as a workspace of a few months or a
narrow indicator would: many small counties, small patient counts with small parts.

For each table, in one run:

  floor     copying the rows and marking their small cells: what suppress() does before it
            withholds any second cell
  one LP    one linear programme over the whole table's constraints (every withheld cell, every
            state total and the grand total; sparse, HiGHS): what the check cost per solve, twice
            per sensitive cell after each cell withheld, before the check was split into components
  baseline  suppress() at ``--baseline-rev`` (read from git), only for tables of at most
            ``--baseline-rows`` rows: for every county it would run for hours
  current   suppress() in this checkout, with how many linear programmes it solved (LPs)
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy.optimize import linprog
from scipy.sparse import csr_array

import rxradar.intruder as intruder
from rxradar.disclosure import SMALL_CELL, Count, sensitive, suppress
from rxradar.reference.counties import counties

REPO = Path(__file__).resolve().parent.parent
BASELINE_REV = "c8b8c0b"  # suppression made safe, before this work
TABLES = {"WV": (("WV",), 0.02), "WV+OH+KY+PA": (("WV", "OH", "KY", "PA"), 0.02), "all counties": (None, 0.02),
          "all, few": (None, 0.0005)}
FLAGS = [f"patients_f{k}" for k in range(8)]
COUNTS = [Count("patients", rate="patients_per_1000"),
          Count("patients_at_risk", rate="at_risk_per_1000", part_of="patients"),
          *(Count(f, part_of="patients") for f in FLAGS)]
GROUPS = ("state", None)


def table(states: tuple[str, ...] | None, share: float, seed: int = 1) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for c in counties().to_pylist():
        if states and c["state"] not in states:
            continue
        pop = c["pop2019"] or 1000
        patients = int(rng.poisson(pop * share))
        at_risk = int(rng.binomial(patients, 0.1))
        rows.append({"county_fips": c["fips"], "state": c["state"], "patients": patients,
                     "patients_at_risk": at_risk, **{f: int(rng.binomial(at_risk, 0.3)) for f in FLAGS},
                     "patients_per_1000": patients / pop * 1000, "at_risk_per_1000": at_risk / pop * 1000})
    return rows


def floor(rows: list[dict]) -> float:
    start = time.perf_counter()
    out = [dict(r) for r in rows]
    small = [{c.column for c in COUNTS if 0 < r[c.column] < SMALL_CELL} for r in out]
    for r, tiny in zip(out, small):
        r["small"] = [c.column for c in COUNTS if c.column in tiny]
    return time.perf_counter() - start


def one_lp(rows: list[dict], published: list[dict]) -> float:
    """One solve over the whole table: every withheld cell a variable, every total an equation."""
    withheld = [set(p["suppressed"]) for p in published]
    small = [set(p["small"]) for p in published]
    everything = intruder.Totals([], len(rows))
    reader = intruder.Reader(rows, COUNTS, withheld, small, SMALL_CELL, everything)
    start = time.perf_counter()
    by_group = defaultdict(list)
    for k, (i, column) in enumerate(reader.cells):
        by_group[(rows[i]["state"], column)].append(k)
        by_group[(None, column)].append(k)
    equations = list(by_group.values())
    r = [e for e, m in enumerate(equations) for _ in m]
    a_eq = csr_array((np.ones(len(r)), (r, [k for m in equations for k in m])),
                     shape=(len(equations), len(reader.cells)))
    b_eq = np.array([reader.value[m].sum() for m in equations])
    links = np.array(reader.links).reshape(-1, 2)
    a_ub = csr_array((np.tile([1.0, -1.0], len(links)), (np.repeat(np.arange(len(links)), 2), links.ravel())),
                     shape=(len(links), len(reader.cells)))
    objective = np.zeros(len(reader.cells))
    objective[reader.index[sensitive(rows, COUNTS, withheld, small, SMALL_CELL)[0][:2]]] = 1
    linprog(objective, A_ub=a_ub, b_ub=np.zeros(len(links)), A_eq=a_eq, b_eq=b_eq,
            bounds=np.column_stack([reader.low, reader.high]), method="highs")
    return time.perf_counter() - start


def baseline(rev: str):
    source = subprocess.run(["git", "-C", str(REPO), "show", f"{rev}:src/rxradar/disclosure.py"], check=True,
                            capture_output=True, text=True).stdout
    spec = importlib.util.spec_from_loader(f"disclosure_{rev}", loader=None)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks itself up there
    exec(compile(source, f"{rev}:src/rxradar/disclosure.py", "exec"), module.__dict__)
    return module


def timed(run, rows: list[dict]) -> tuple[float, list[dict]]:
    start = time.perf_counter()
    out = run(rows, COUNTS, groups=GROUPS)
    return time.perf_counter() - start, out


def withheld(published: list[dict]) -> int:
    return sum(c.column in r["suppressed"] for r in published for c in COUNTS)


def verify(rows: list[dict], published: list[dict], old) -> tuple[int, int, int]:
    """Every state attacked on its own with the baseline's programme (one dense programme over
    the state's cells, twice per value; the grand total is the sum of the state totals, so a
    state's cells are bound only by its own): how many small values there are, how many a
    reader finds in a range narrower than 1 to 10, and how many of those lie where every
    non-zero cell of their state's column is withheld already (nothing left to withhold)."""
    values = narrow = stuck = 0
    by_state = defaultdict(list)
    for i, r in enumerate(rows):
        by_state[r["state"]].append(i)
    for idx in by_state.values():
        sub, pub = [rows[i] for i in idx], [published[i] for i in idx]
        withheld_ = [set(p["suppressed"]) for p in pub]
        small = [set(p["small"]) for p in pub]
        for target in sensitive(sub, COUNTS, withheld_, small, SMALL_CELL):
            low, high = old.feasible_range(sub, COUNTS, withheld_, small, SMALL_CELL, [[list(range(len(sub)))]],
                                           target)
            values += 1
            if high - low < SMALL_CELL - 2:
                narrow += 1
                stuck += all(p[target[1]] in (None, 0) for p in pub)
    return values, narrow, stuck


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline-rev", default=BASELINE_REV, help="git revision of the baseline ('' for none)")
    parser.add_argument("--baseline-rows", type=int, default=400, help="largest table the baseline is run on")
    parser.add_argument("--verify", action="store_true", help="attack each state of each table with the "
                        "baseline's programme (minutes for the country)")
    args = parser.parse_args()
    old = baseline(args.baseline_rev) if args.baseline_rev else None
    solves = [0]

    def counted(*args, **kwargs):
        solves[0] += 1
        return linprog(*args, **kwargs)

    intruder.linprog = counted
    print(f"load average {os.getloadavg()[0]:.1f}; times in ms; cells: count cells withheld (rates not counted); "
          "same: the baseline published the same table")
    print(f"{'table':<14}{'rows':>6}{'floor':>8}{'one LP':>8}{'baseline':>11}{'cells':>7}{'current':>9}{'cells':>7}"
          f"{'LPs':>5}  same")
    for name, (states, share) in TABLES.items():
        rows = table(states, share)
        solves[0] = 0
        seconds, published = timed(suppress, rows)
        lps = solves[0]
        line = f"{name:<14}{len(rows):>6}{floor(rows) * 1e3:>8.1f}{one_lp(rows, published) * 1e3:>8.1f}"
        if old and len(rows) <= args.baseline_rows:
            was, before = timed(old.suppress, rows)
            line += f"{was * 1e3:>11.0f}{withheld(before):>7}"
            same = "yes" if before == published else "no"
        else:
            line += f"{'skipped' if old else '-':>11}{'-':>7}"
            same = "-"
        print(f"{line}{seconds * 1e3:>9.0f}{withheld(published):>7}{lps:>5}  {same}", flush=True)
        if args.verify and old:
            values, narrow, stuck = verify(rows, published, old)
            print(f"  verified: {values} small values, {narrow} narrower than the small-cell range, "
                  f"{stuck} of them where nothing is left to withhold", flush=True)
    if old:
        print(f"baseline skipped above {args.baseline_rows} rows: for every county it runs for hours")


if __name__ == "__main__":
    sys.exit(main())
