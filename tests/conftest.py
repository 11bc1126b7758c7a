"""Fixtures shared by the suites that drive the ``rxradar`` command."""

from __future__ import annotations

import logging

import pytest

from rxradar import cli
from rxradar.settings import describe


@pytest.fixture(scope="module")
def hermetic_cli():
    """Rich tables wrap at 80 columns off a terminal, and RXRADAR_* variables must not leak in;
    every invocation sets the rxradar logger's level from its -v flags, so the next starts clean."""
    with pytest.MonkeyPatch.context() as mp:
        for name, _, _ in describe():
            mp.delenv(f"RXRADAR_{name.upper()}", raising=False)
        mp.setattr(cli.console, "_width", 240)
        mp.setattr(cli.err, "_width", 240)
        yield
    logging.getLogger("rxradar").setLevel(logging.NOTSET)
