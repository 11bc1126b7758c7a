"""Turn a synthetic :class:`~rxradar.synth.world.World` into files, or straight into a workspace.

Layout of ``rxradar synth --out DIR``::

    DIR/asap/                  write_asap: one ASAP file per pharmacy per ISO week, resends, corrections
    DIR/deaths.csv, deaths.ije write_deaths: the same deaths as a CSV extract and as NCHS IJE records
    DIR/prescribers_nppes.csv  write_registries: prescribers in the NPPES dissemination layout
    DIR/pharmacies.csv         write_registries: the pharmacy registry
    DIR/truth/                 write_truth: who is who, what was planted (README.md inside)

``--format parquet`` skips the text and calls :func:`write_workspace` instead.
"""

from rxradar.synth.faults import FAULTS, FaultRates
from rxradar.synth.writers_asap import write_asap
from rxradar.synth.writers_other import write_deaths, write_registries, write_truth
from rxradar.synth.writers_workspace import write_workspace

__all__ = ["FAULTS", "FaultRates", "write_asap", "write_deaths", "write_registries", "write_truth", "write_workspace"]
