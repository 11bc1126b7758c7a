"""Crash-test helper: a child process that runs ``analyze`` on a workspace until it is killed.

``tests/test_analysis_versions.py`` runs this file as a script::

    python tests/crash_analyze.py WORKSPACE START END [--pause-after NAME COUNT MARKER]

The child analyses WORKSPACE for the period START..END. With ``--pause-after`` it stops
(sleeping) right after its COUNT-th rename of a file called NAME (``*.parquet`` for any table)
inside the workspace's ``analytics/`` folder, having touched MARKER, so the parent's SIGKILL lands
at a chosen point of the final save: between two tables, after the last table, after the switch.
"""

from __future__ import annotations

import fnmatch
import os
import sys
import time
from datetime import date
from pathlib import Path


def _pause_after(pattern: str, count: int, marker: Path) -> None:
    real_replace = os.replace
    seen = 0

    def replace(src, dst, *args, **kwargs):
        nonlocal seen
        real_replace(src, dst, *args, **kwargs)
        target = Path(dst)
        if "analytics" in target.parts and fnmatch.fnmatch(target.name, pattern):
            seen += 1
            if seen == count:
                marker.touch()
                time.sleep(60)  # the parent kills us here

    os.replace = replace


def main(argv: list[str]) -> int:
    from rxradar import settings
    from rxradar.analytics.analyze import analyze
    from rxradar.workspace import Workspace

    root, start, end = Path(argv[0]), date.fromisoformat(argv[1]), date.fromisoformat(argv[2])
    if len(argv) > 3 and argv[3] == "--pause-after":
        _pause_after(argv[4], int(argv[5]), Path(argv[6]))
    s = settings.load(workspace=root)
    with Workspace(root) as ws:
        analyze(ws, s, start=start, end=end)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
