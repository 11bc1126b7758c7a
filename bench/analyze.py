"""Benchmark ``rxradar analyze`` beside the floor (one scan-and-aggregate) and day expansion.

    .venv/bin/python bench/analyze.py --workspace /tmp/large/workspace   # a state made earlier
    .venv/bin/python bench/analyze.py --scale medium                     # build one first (temporary)

Make the large state with ``rxradar synth --scale large --format parquet --out DIR`` (10M
persons, ~100M dispensations; about 10-15 minutes) and pass ``DIR/workspace``.

Each measurement runs in a process of its own (peak memory is that process's ru_maxrss), with
the workspace's settings (memory_limit 6GB by default):

  analyze      the whole ``rxradar analyze`` (persons, indicators, prescribers, pharmacies, saving)
  scan         the floor for any full pass: one group-by over every stored dispensation record
  view         the same group-by over the canonical ``dispensations`` (revisions and voids
               resolved, drug and MME derived): what any analysis pays to read the fills once
  daily_mme    daily MME per person by interval arithmetic (sql/rx_segments.sql: events and
               running sums) and its per-person summary (days on opioids, maximum, days >= 90)
  day_rows     the same summary by day expansion (one row per person-day, as the HHS-OIG toolkit
               does), for comparison only: rxradar never does this
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
from datetime import date
from pathlib import Path
from rxradar import settings as settings_mod
from rxradar.analytics.analyze import analyze, data_period
from rxradar.catalog import open_engine
from rxradar.workspace import Workspace

task, root = sys.argv[1], Path(sys.argv[2])
s = settings_mod.load(workspace=root)
ws = Workspace(root, create=False)
t0 = time.perf_counter()
detail = {}
SUMMARY = ("SELECT count(*) AS persons, sum(opioid_days) AS opioid_days, sum(days_ge_90) AS days_ge_90, "
           "max(max_mme) AS max_mme FROM ({per_person})")
if task == "analyze":
    marks = []
    r = analyze(ws, s, step=lambda name: marks.append((name, time.perf_counter())))
    detail = {"patients": r.patients, "prescribers": r.prescribers, "pharmacies": r.pharmacies,
              "steps": {a[0]: round(b[1] - a[1], 1) for a, b in zip(marks, marks[1:] + [("end", time.perf_counter())])}}
else:
    with open_engine(ws, s) as engine:
        if task in ("daily_mme", "day_rows"):
            period = data_period(engine)
        if task in ("scan", "view"):
            source = "dispensations_records" if task == "scan" else "dispensations"
            row = engine.query("SELECT count(*) AS prescribers, sum(n) AS fills FROM (SELECT prescriber_id, count(*) AS n, "
                               f"sum(quantity) AS q, sum(days_supply) AS d FROM {source} GROUP BY 1)")
        elif task == "daily_mme":
            import shutil, tempfile
            from rxradar.analytics.patients import buckets_for, each_bucket, stage_fills
            engine.materialize("identity_persons", "SELECT identity_id, row_number() OVER ()::INTEGER AS pid FROM identities")
            stage = Path(tempfile.mkdtemp(dir=root / "tmp"))
            buckets = buckets_for(engine)
            stage_fills(engine, period, early_refill="overlap", lookback_days=0, stage_dir=stage, buckets=buckets)
            paths = []
            for k in each_bucket(engine, stage, buckets):
                paths.append(stage / f"segments-{k}.parquet")
                engine.copy_sql_to_parquet("rx_segments", paths[-1])
            engine.view_over("segments", paths)
            per_person = ("SELECT pid, sum(days) FILTER (WHERE n_opioid > 0) AS opioid_days, "
                          "sum(days) FILTER (WHERE mme >= 90) AS days_ge_90, max(mme) AS max_mme "
                          "FROM segments GROUP BY pid HAVING sum(days) FILTER (WHERE n_opioid > 0) > 0")
            row = engine.query(SUMMARY.format(per_person=per_person))
            detail["segments"] = int(engine.scalar("SELECT count(*) FROM segments"))
            shutil.rmtree(stage)
        elif task == "day_rows":
            engine.set_variables(first_day=(period.start - date(1970, 1, 1)).days, last_day=(period.end - date(1970, 1, 1)).days)
            per_day = ("SELECT identity_id, day, sum(mme) AS mme FROM (SELECT identity_id, "
                       "unnest(range(fill_date - DATE '1970-01-01', fill_date - DATE '1970-01-01' + days_supply)) AS day, "
                       "round(coalesce(mme_per_day, 0), 6)::DECIMAL(18, 6) AS mme FROM dispensations "
                       "WHERE drug_class = 'opioid' AND days_supply > 0) "
                       "WHERE day BETWEEN getvariable('first_day') AND getvariable('last_day') GROUP BY identity_id, day")
            per_person = (f"SELECT identity_id, count(*) AS opioid_days, count(*) FILTER (WHERE mme >= 90) AS days_ge_90, "
                          f"max(mme) AS max_mme FROM ({per_day}) GROUP BY identity_id")
            row = engine.query(SUMMARY.format(per_person=per_person))
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
        child = subprocess.Popen([sys.executable, "-c", RUNNER, task, str(workspace)], stdout=out, stderr=err, text=True)
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
        for task in tasks:
            r = measure(task, workspace)
            if "error" in r:
                print(f"{task:10s} failed after {r['wall_s']:.1f} s (peak {r['peak_gb']:.2f} GB): {r['error'][:300]}")
                continue
            print(f"{task:10s} {r['wall_s']:8.1f} s  peak {r['peak_gb']:5.2f} GB  {json.dumps(r['detail'])}", flush=True)


def _manifest_rows(workspace: Path) -> list[str]:
    import sqlite3

    with sqlite3.connect(workspace / "meta.sqlite") as con:
        return [r[0] for r in con.execute("SELECT rows_written FROM manifest WHERE status = 'committed' "
                                          "AND rows_written LIKE '%dispensations%'")]


if __name__ == "__main__":
    main()
