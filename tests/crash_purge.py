"""Crash-test helper: a purge that stops at a named point until the parent kills it.

``tests/test_retention.py`` runs this file as a script::

    python tests/crash_purge.py WORKSPACE BEFORE POINT MARKER

The child purges records dated before BEFORE from WORKSPACE, but first wraps one step of
:mod:`rxradar.retention` so that, reaching it, it touches MARKER and sleeps: the parent's SIGKILL
then lands exactly there rather than wherever a timing race puts it. Points, in the purge's order:

* ``staged``: the kept rows are in new, fsynced files under their final names; nothing is switched.
* ``switched``: the data-file list, rejects and audit entry are committed; the old files remain.
* ``deleted``: the old files are gone; the stored analysis's patient-level tables remain.
"""

from __future__ import annotations

import sys
import time
from datetime import date
from pathlib import Path

STEP_BEFORE = {"staged": "_switch", "switched": "_delete_replaced", "deleted": "remove_analysis_tables"}


def main(argv: list[str]) -> int:
    from rxradar import retention, settings
    from rxradar.workspace import Workspace

    root, before, point, marker = Path(argv[0]), date.fromisoformat(argv[1]), argv[2], Path(argv[3])
    step = getattr(retention, STEP_BEFORE[point])

    def paused(*args, **kwargs):
        marker.touch()
        time.sleep(60)  # the parent kills us here
        return step(*args, **kwargs)

    setattr(retention, STEP_BEFORE[point], paused)
    with Workspace(root, create=False) as ws:
        retention.purge(ws, settings.load(workspace=root), before, actor="crash-test")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
