"""Benchmark ASAP ingest: dispensations per second and peak memory, against a plain Python parser.

    .venv/bin/python bench/ingest.py [--dispensations 1000000] [--repeat N] [--only rxradar|baseline] [--steps]
    .venv/bin/python bench/ingest.py --floor [--repeat N]

Builds (once) a valid ASAP 4.2 file with real NDCs under bench/out/, then runs in separate
processes (so peak memory is each one's own): ``rxradar ingest asap`` into a new workspace,
and the line-by-line parser of bench/baseline_parser.py. Prints one line per method; with
``--steps``, also rxradar's heaviest engine steps (bench/engine_steps.py) in its best run.

``--floor`` measures what any ingest of the file into the canonical tables must do at the least,
on this machine, with nothing checked: start the engine (imports), split the file's segments
(the native scanner), write its canonical ``dispensations`` and ``identities`` rows (computed
beforehand, untimed, and held in the engine's memory) to Parquet, and take the keyed hash of each
patient. Its sum bounds the rate any implementation on this engine can reach.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

RUNNER = r"""
import json, resource, sys, time
from pathlib import Path
sys.path.insert(0, {here!r})
method, path, work = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
start = time.perf_counter()
steps, engine_s = [], 0.0
if method == "rxradar":
    from engine_steps import EngineSteps
    from rxradar.ingest.pipeline import ingest_files
    from rxradar.settings import load
    from rxradar.workspace import Workspace
    with Workspace(work / "ws") as ws, EngineSteps() as log:
        [outcome] = ingest_files(ws, "asap", [path], load(workspace=work / "ws"))
    assert outcome.status == "ingested", outcome.message
    rows, steps, engine_s = outcome.rows["dispensations"], log.heaviest(), log.total()
elif method == "floor":
    from rxradar.engine import Engine
    from rxradar.ingest.asap_scan import BatchScanner
    from rxradar.ingest.pipeline import ingest_files
    from rxradar.privacy import keyed_hashes
    from rxradar.settings import load
    from rxradar.workspace import Workspace
    steps = [["imports", time.perf_counter() - start, 1]]
    t = time.perf_counter()
    scanner = BatchScanner(lambda taken: None, 1 << 40)
    scanner.scan(path, path.name, 0)
    scanner.take()
    steps.append(["split segments (native scanner)", time.perf_counter() - t, 1])
    with Workspace(work / "ws") as ws:  # the canonical rows, made untimed
        [outcome] = ingest_files(ws, "asap", [path], load(workspace=work / "ws"))
        files, key = ws.live_files(), ws.key
    rows = outcome.rows["dispensations"]
    with Engine(temp_directory=work / "tmp") as engine:
        for table in ("dispensations", "identities"):
            engine.materialize(table, "SELECT * FROM read_parquet($files)", {{"files": files[table]}})
            t = time.perf_counter()
            engine.copy_to_parquet(f"SELECT * FROM {{table}}", work / f"{{table}}.parquet")
            steps.append([f"write {{table}}", time.perf_counter() - t, 1])
        keys = engine.query("SELECT concat_ws('|', last_name, first_name, middle_name, birth_date, sex, zip) AS k "
                            "FROM identities")["k"]
    t = time.perf_counter()
    keyed_hashes(key, keys)
    steps.append(["keyed hash of each patient", time.perf_counter() - t, 1])
    print(json.dumps({{"rows": rows, "seconds": sum(s[1] for s in steps), "steps": steps, "engine_s": 0,
                       "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
    sys.exit(0)
else:
    import baseline_parser
    rows = baseline_parser.parse(path, work / "baseline.parquet")
seconds = time.perf_counter() - start
print(json.dumps({{"rows": rows, "seconds": seconds, "steps": steps, "engine_s": engine_s,
                   "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def run(method: str, path: Path) -> dict:
    with tempfile.TemporaryDirectory(prefix="rxradar-bench-") as work:
        out = subprocess.run([sys.executable, "-c", RUNNER.format(here=str(HERE)), method, str(path), work],
                             check=True, capture_output=True, text=True)
        return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dispensations", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=1, help="runs per method; the best is reported")
    parser.add_argument("--only", choices=("baseline", "rxradar"), help="run one method (no ratio is printed)")
    parser.add_argument("--steps", action="store_true", help="also print rxradar's heaviest engine steps")
    parser.add_argument("--floor", action="store_true",
                        help="measure the least any ingest into the canonical tables must do (see above)")
    args = parser.parse_args()
    from asap_file import make_file
    from engine_steps import describe

    path = HERE / "out" / f"bench_{args.dispensations}.asap"
    if not path.exists():
        print(f"building {path.name} ...", flush=True)
        make_file(path, args.dispensations)
    size_mb = path.stat().st_size / 1e6
    print(f"file: {path.name}, {size_mb:.0f} MB, {args.dispensations:,} dispensations")
    results = {}
    if args.floor:
        best = min((run("floor", path) for _ in range(args.repeat)), key=lambda r: r["seconds"])
        for label, seconds, _ in best["steps"]:
            print(f"  {seconds:6.2f} s  {label}")
        print(f"floor    {best['seconds']:7.2f} s  {best['rows'] / best['seconds']:>10,.0f} dispensations/s at most "
              "(nothing checked; see --help)")
        return
    for method in (args.only,) if args.only else ("baseline", "rxradar"):
        best = min((run(method, path) for _ in range(args.repeat)), key=lambda r: r["seconds"])
        results[method] = best
        print(f"{method:9s} {best['seconds']:7.2f} s  {best['rows'] / best['seconds']:>10,.0f} dispensations/s  "
              f"{size_mb / best['seconds']:6.1f} MB/s  peak {best['peak_mb']:,.0f} MB", flush=True)
        if args.steps and best["steps"]:
            print(describe(best["steps"], best["engine_s"], best["seconds"]), flush=True)
    if len(results) == 2:
        speedup = results["baseline"]["seconds"] / results["rxradar"]["seconds"]
        print(f"rxradar is {speedup:.1f}x the line-by-line parser")


if __name__ == "__main__":
    main()
