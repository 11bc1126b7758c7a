"""A multi-GB ASAP file ingests within a small engine memory limit (slow: about two minutes).

The file (16,000,000 dispensations, 2 GB) is eight times the 1 GB limit: scanned rows move into
the engine's tables, which spill, and the records are checked in slices (rxradar.ingest.asap),
so the whole process stays within twice the limit and every record is kept."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from crash_ingest import write_big_asap

TESTS = Path(__file__).resolve().parent
MEMORY_LIMIT_GB = 1

CHILD = r"""
import json, sys
from pathlib import Path
from rxradar.ingest.pipeline import ingest_files
from rxradar.settings import load
from rxradar.workspace import Workspace
root, path, limit = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
with Workspace(root) as ws:
    [outcome] = ingest_files(ws, "asap", [path], load(workspace=root, memory_limit=limit, threads=2))
# This process's own peak (VmHWM starts afresh at exec; ru_maxrss would carry the parent's over).
hwm = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmHWM:"))
print(json.dumps({"status": outcome.status, "message": outcome.message, "rows": outcome.rows,
                  "rejected": outcome.rejected, "peak_bytes": int(hwm.split()[1]) * 1024}))
"""


@pytest.mark.slow
def test_a_file_eight_times_the_memory_limit_ingests_whole_within_bounded_memory(tmp_path):
    path = tmp_path / "state-month.asap"
    n = write_big_asap(path, 6400, 1250)
    assert n == 16_000_000 and path.stat().st_size > 2 * 10**9
    child = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "ws"), str(path), f"{MEMORY_LIMIT_GB}GB"],
                           capture_output=True, text=True, cwd=TESTS)
    assert child.returncode == 0, child.stderr[-3000:]
    result = json.loads(child.stdout.strip().splitlines()[-1])
    assert result["status"] == "ingested", result["message"]
    assert (result["rows"]["dispensations"], result["rejected"]) == (n, 0)
    assert result["peak_bytes"] < 2 * MEMORY_LIMIT_GB * 2**30, result
