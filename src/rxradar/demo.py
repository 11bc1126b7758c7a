"""``rxradar demo``: a synthetic state built, ingested end to end, and what to look at next."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rxradar.synth.config import SynthConfig, for_scale

DEMO_SCALE = "small"


@dataclass(frozen=True)
class DemoStep:
    kind: str
    paths: list[Path]
    title: str


def demo_config(seed: int = 7) -> SynthConfig:
    return for_scale(DEMO_SCALE, seed=seed)


def demo_steps(state: Path) -> list[DemoStep]:
    """What the demo ingests, in order: registries first, so pharmacy reports meet known ids."""
    return [
        DemoStep("prescribers", [state / "prescribers_nppes.csv"], "prescriber registry (NPPES layout)"),
        DemoStep("pharmacies", [state / "pharmacies.csv"], "pharmacy registry"),
        DemoStep("zip_counties", [state / "zip_county.csv"], "ZIP-to-county crosswalk (HUD layout)"),
        DemoStep("asap", [state / "asap"], "ASAP submissions from every pharmacy, week by week"),
        DemoStep("deaths", [state / "deaths.csv", state / "deaths.ije"], "death records (CSV and NCHS IJE)"),
    ]
