"""Benchmark ``rxradar synth``: time to build and write each scale preset, dispensations/s, peak memory.

    .venv/bin/python bench/synth.py                 # small (asap) and medium (parquet)
    .venv/bin/python bench/synth.py --large         # ... then large (parquet), last
    .venv/bin/python bench/synth.py --presets large # large only

Each preset runs in a process of its own (peak memory is that process's ru_maxrss, from
wait4) and writes into a temporary directory, removed afterwards unless --keep. Prints one line
per preset with the wall time spent generating, writing the workspace or ASAP files, and writing
truth (from synthesize's progress messages; when a state has several chunks of people, each is
made while the one before is written, so "generate" is only the time spent waiting for it).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
FORMAT = {"small": "asap", "medium": "parquet", "large": "parquet"}  # large is parquet only (issue 3)
# Progress messages of synthesize, by their first words, grouped into the phases reported.
PHASES = (("generating", "generate"), ("writing ASAP", "asap"), ("writing death", "asap"),
          ("writing canonical", "workspace"), ("writing truth", "truth"))

RUNNER = r"""
import json, sys, time
from pathlib import Path
from rxradar.synth.build import synthesize
from rxradar.synth.config import for_scale
preset, fmt, out, progress = sys.argv[1], sys.argv[2], Path(sys.argv[3]), sys.argv[4] == "1"
marks = []
def step(msg):
    marks.append((time.perf_counter(), msg))
    if progress:
        print(f"  {marks[-1][0] - start:7.1f} s  {msg}", file=sys.stderr, flush=True)
start = time.perf_counter()
summary = synthesize(for_scale(preset), out, fmt, step=step)
end = time.perf_counter()
print(json.dumps({"seconds": end - start, "persons": summary.persons, "dispensations": summary.dispensations,
                  "deaths": summary.deaths, "marks": [(t - start, m) for t, m in marks] + [(end - start, "end")]}))
"""


def run(preset: str, fmt: str, work: Path, progress: bool = False) -> dict:
    """One preset in a child process; returns its summary, phase times and peak memory."""
    proc = subprocess.Popen([sys.executable, "-c", RUNNER, preset, fmt, str(work / preset), str(int(progress))],
                            stdout=subprocess.PIPE, text=True)
    stdout = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{preset}: synthesize failed with exit code {proc.returncode}")
    result = json.loads(stdout.strip().splitlines()[-1])
    result["peak_mb"] = usage.ru_maxrss / 1024  # kilobytes on Linux
    result["phases"] = phases(result.pop("marks"))
    result["disk_mb"] = sum(p.stat().st_size for p in (work / preset).rglob("*") if p.is_file()) / 1e6
    return result


def phases(marks: list[tuple[float, str]]) -> dict[str, float]:
    """Seconds per phase: each progress message starts a phase that lasts until the next."""
    out: dict[str, float] = {}
    for (t, msg), (t_next, _) in zip(marks, marks[1:]):
        name = next((p for prefix, p in PHASES if msg.startswith(prefix)), "other")
        out[name] = out.get(name, 0.0) + t_next - t
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="small,medium",
                        help="comma-separated presets to run, in this order (small, medium, large)")
    parser.add_argument("--large", action="store_true", help="also run the large preset, after the others")
    parser.add_argument("--keep", action="store_true", help="keep the written states (printed at the end)")
    parser.add_argument("--progress", action="store_true", help="print each step of synthesize as it starts")
    args = parser.parse_args()
    presets = [p for p in args.presets.split(",") if p]
    if args.large and "large" not in presets:
        presets.append("large")
    unknown = [p for p in presets if p not in FORMAT]
    if unknown:
        parser.error(f"unknown preset(s) {', '.join(unknown)}; choose from {', '.join(FORMAT)}")
    work = Path(tempfile.mkdtemp(prefix="rxradar-bench-synth-"))
    print(f"synth benchmark, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d %H:%M')}", flush=True)
    try:
        for preset in presets:
            r = run(preset, FORMAT[preset], work, args.progress)
            split = "  ".join(f"{name} {s:.0f}s" for name, s in r["phases"].items())
            rate = r["dispensations"] / r["seconds"]
            print(f"{preset:6s} {FORMAT[preset]:7s} {r['persons']:>10,} persons {r['dispensations']:>11,} "
                  f"dispensations {r['seconds']:7.1f} s  {rate:>9,.0f} dispensations/s  peak {r['peak_mb']:,.0f} MB  "
                  f"disk {r['disk_mb']:,.0f} MB  ({split})", flush=True)
    finally:
        if args.keep:
            print(f"states kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
