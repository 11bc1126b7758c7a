"""Benchmark ``rxradar analyze`` beside the floor (one scan-and-aggregate) and day expansion.

    .venv/bin/python bench/analyze.py --workspace /tmp/large/workspace   # a state made earlier
    .venv/bin/python bench/analyze.py --scale medium                     # build one first (temporary)

Make the large state with ``rxradar synth --scale large --format parquet --out DIR`` (10M
persons, ~100M dispensations; about 10-15 minutes) and pass ``DIR/workspace``.

Each measurement runs in a process of its own (peak memory is that process's ru_maxrss), with
the workspace's settings (memory_limit 6GB by default):

  analyze      the whole ``rxradar analyze`` (persons, indicators, prescribers, pharmacies, saving),
               with its heaviest engine steps (bench/engine_steps.py)
  scan         the floor for any full pass: one group-by over every stored dispensation record
  view         the same group-by over the canonical ``dispensations`` (revisions and voids
               resolved, drug and MME derived): what any analysis pays to read the fills once
  daily_mme    daily MME per person by interval arithmetic (sql/rx_segments.sql: events and
               running sums) and its per-person summary (days on opioids, days >= 90, maximum)
  day_rows     the same summary by day expansion (one row per person-day, as the HHS-OIG toolkit
               does), for comparison only: rxradar never does this

daily_mme and day_rows read the same fills, staged once per task in the same buckets of persons
as ``rxradar analyze`` (one bucket at a time is what lets day expansion fit in memory at all), and
report ``staging_s`` and ``method_s`` (the per-bucket work of the method itself) apart. Their
summaries must agree to the day.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUNNER = r"""
import json, sys, time
from pathlib import Path
from rxradar import settings as settings_mod
from rxradar.analytics.analyze import analyze, data_period
from rxradar.catalog import open_engine
from rxradar.workspace import Workspace

task, root = sys.argv[1], Path(sys.argv[2])
sys.path.insert(0, sys.argv[3])
from engine_steps import EngineSteps
s = settings_mod.load(workspace=root)
ws = Workspace(root, create=False)
t0 = time.perf_counter()
detail = {}
SUMMARY = ("SELECT count(*) AS persons, sum(opioid_days)::BIGINT AS opioid_days, sum(days_ge_90)::BIGINT AS days_ge_90, "
           "max(max_mme) AS max_mme FROM ({per_person})")
if task == "analyze":
    marks = []
    with EngineSteps() as log:
        r = analyze(ws, s, step=lambda name: marks.append((name, time.perf_counter())))
    detail = {"patients": r.patients, "prescribers": r.prescribers, "pharmacies": r.pharmacies,
              "steps": {a[0]: round(b[1] - a[1], 1) for a, b in zip(marks, marks[1:] + [("end", time.perf_counter())])},
              "engine_steps": log.heaviest(), "engine_s": log.total()}
else:
    with open_engine(ws, s) as engine:
        if task in ("scan", "view"):
            source = "dispensations_records" if task == "scan" else "dispensations"
            row = engine.query("SELECT count(*) AS prescribers, sum(n) AS fills FROM (SELECT prescriber_id, count(*) AS n, "
                               f"sum(quantity) AS q, sum(days_supply) AS d FROM {source} GROUP BY 1)")
        else:  # daily_mme or day_rows: the same staged buckets of fills, one method per task
            import shutil, tempfile
            from rxradar.analytics.patients import buckets_for, each_bucket, stage_fills
            from rxradar.engine import sql_text
            period = data_period(engine)
            engine.materialize("identity_persons", "SELECT identity_id, row_number() OVER ()::INTEGER AS pid FROM identities")
            stage = Path(tempfile.mkdtemp(dir=root / "tmp"))
            buckets = buckets_for(engine)
            stage_fills(engine, period, early_refill="overlap", lookback_days=0, stage_dir=stage, buckets=buckets)
            detail["staging_s"] = round(time.perf_counter() - t0, 1)
            if task == "daily_mme":  # interval arithmetic: rxradar's step function
                per_person = ("SELECT pid, sum(days) FILTER (WHERE n_opioid > 0) AS opioid_days, "
                              "sum(days) FILTER (WHERE mme >= 90) AS days_ge_90, max(mme) FILTER (WHERE n_opioid > 0) "
                              "AS max_mme, count(*) AS rows FROM (" + sql_text("rx_segments") + ") GROUP BY pid "
                              "HAVING sum(days) FILTER (WHERE n_opioid > 0) > 0")
            else:  # one row per person-day of opioid supply, summed per person and day
                per_day = ("SELECT pid, day, sum(mme) AS mme FROM (SELECT pid, "
                           "unnest(range(fill_day, fill_day + days_supply)) AS day, "
                           "coalesce(mme_per_day, 0)::DECIMAL(18, 6) AS mme FROM rx_bucket WHERE drug_class = 'opioid') "
                           "WHERE day BETWEEN getvariable('period_start') - DATE '1970-01-01' "
                           "AND getvariable('period_end') - DATE '1970-01-01' GROUP BY pid, day")
                per_person = ("SELECT pid, count(*) AS opioid_days, count(*) FILTER (WHERE mme >= 90) AS days_ge_90, "
                              f"max(mme) AS max_mme, count(*) AS rows FROM ({per_day}) GROUP BY pid")
            method_start = time.perf_counter()
            paths = []
            for k in each_bucket(engine, stage, buckets):
                paths.append(stage / f"per-person-{k}.parquet")
                engine.copy_to_parquet(per_person, paths[-1])
            engine.view_over("per_person", paths)
            detail["method_s"] = round(time.perf_counter() - method_start, 1)
            detail["buckets"] = buckets
            detail["segments" if task == "daily_mme" else "person_days"] = int(engine.scalar("SELECT sum(rows) FROM per_person"))
            row = engine.query(SUMMARY.format(per_person="SELECT * FROM per_person"))
            shutil.rmtree(stage)
        detail.update({k: (float(v) if v is not None and not isinstance(v, int) else v)
                       for k, v in row.to_pylist()[0].items()})
print(json.dumps({"seconds": round(time.perf_counter() - t0, 1), "detail": detail}, default=str))
"""

TASKS = ("scan", "view", "daily_mme", "day_rows", "analyze")


def measure(task: str, workspace: Path) -> dict:
    """Run one task in a child process; wall time, peak RSS and what it reported. The child's
    output goes to files, not pipes: a chatty child would block on a full pipe while we wait."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        child = subprocess.Popen([sys.executable, "-c", RUNNER, task, str(workspace), str(Path(__file__).resolve().parent)],
                                 stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - start
        out.seek(0), err.seek(0)
        stdout, stderr = out.read(), err.read()
    if status != 0:
        errors = [line for line in stderr.splitlines() if "Error" in line] or stderr.strip().splitlines()[-1:]
        return {"task": task, "wall_s": round(wall, 1), "peak_gb": round(usage.ru_maxrss / 1024 / 1024, 2),
                "error": errors[-1] if errors else f"exit {status}"}
    result = json.loads(stdout.strip().splitlines()[-1])
    return {"task": task, "wall_s": round(wall, 1), "peak_gb": round(usage.ru_maxrss / 1024 / 1024, 2), **result}


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from engine_steps import describe

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workspace", type=Path, help="an existing workspace (e.g. DIR/workspace of a synthetic state)")
    parser.add_argument("--scale", default="small", help="build a synthetic state of this scale when no --workspace")
    parser.add_argument("--tasks", default=",".join(TASKS), help=f"comma-separated, from {', '.join(TASKS)}")
    args = parser.parse_args()
    tasks = [t for t in args.tasks.split(",") if t]
    with tempfile.TemporaryDirectory(prefix="rxradar-bench-") as tmp:
        workspace = args.workspace
        if workspace is None:
            subprocess.run([str(Path(sys.executable).parent / "rxradar"), "synth", "--scale", args.scale, "--format", "parquet",
                            "--out", tmp], check=True, capture_output=True)
            workspace = Path(tmp) / "workspace"
        rows = sum(int(json.loads(m)["dispensations"]) for m in _manifest_rows(workspace))
        print(f"workspace {workspace}: {rows:,} dispensation records; {os.cpu_count()} cores")
        done = {}
        for task in tasks:
            r = measure(task, workspace)
            if "error" in r:
                print(f"{task:10s} failed after {r['wall_s']:.1f} s (peak {r['peak_gb']:.2f} GB): {r['error'][:300]}")
                continue
            done[task] = r
            steps, engine_s = r["detail"].pop("engine_steps", None), r["detail"].pop("engine_s", None)
            print(f"{task:10s} {r['wall_s']:8.1f} s  peak {r['peak_gb']:5.2f} GB  {json.dumps(r['detail'])}", flush=True)
            if steps:
                print(describe(steps, engine_s, r["seconds"]), flush=True)
        if "daily_mme" in done and "day_rows" in done:
            print(_compare(done["daily_mme"], done["day_rows"]))


def _compare(intervals: dict, days: dict) -> str:
    """Intervals against day expansion: speed, whole task and method alone, and whether the two
    summaries agree."""
    a, b = intervals["detail"], days["detail"]
    same = all(a[k] == b[k] for k in ("persons", "opioid_days", "days_ge_90", "max_mme"))
    return (f"daily MME by intervals: {b['method_s'] / a['method_s']:.1f}x faster than day expansion "
            f"({a['method_s']:.1f} s against {b['method_s']:.1f} s; with staging {days['wall_s'] / intervals['wall_s']:.1f}x); "
            f"{a['segments']:,} segments against {b['person_days']:,} person-days; "
            f"summaries {'agree' if same else 'DIFFER'}")


def _manifest_rows(workspace: Path) -> list[str]:
    import sqlite3

    with sqlite3.connect(workspace / "meta.sqlite") as con:
        return [r[0] for r in con.execute("SELECT rows_written FROM manifest WHERE status = 'committed' "
                                          "AND rows_written LIKE '%dispensations%'")]


if __name__ == "__main__":
    main()
