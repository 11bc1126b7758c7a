"""Every knob of a synthetic state, with its default and why. Scale presets set the size.

Rates are per person-year unless named otherwise. They are assumptions chosen so a West
Virginia-like state looks like its public statistics at the height of the epidemic: West Virginia
dispensed over 130 opioid prescriptions per 100 residents a year in 2012 (CDC dispensing rates,
shipped with rxradar's reference data); with benzodiazepines and buprenorphine the defaults give
about 2 fills per resident a year, the density the scale presets promise (small: 20,000 persons,
200,000 dispensations over 2019-2023), and an overdose death rate in the tens per 100,000 a year
(CDC WONDER). The planted anomalies are deliberately strong enough to find and
weak enough that naive volume ranking does not find them all.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date

SCALES = {
    # name: (persons, expected dispensations) — the promise tests check.
    "small": (20_000, 200_000),
    "medium": (500_000, 5_000_000),
    "large": (10_000_000, 100_000_000),
}


@dataclass(frozen=True)
class Behaviour:
    """How people use prescribed opioids, benzodiazepines and buprenorphine."""

    acute_episodes_per_year: float = 0.9  # short courses (dental, injury, surgery, ED)
    acute_refill_probability: float = 0.25
    chronic_share: float = 0.15  # long-term opioid therapy: ~8-12% of adults in the highest-use states
    chronic_months_mean: float = 40.0
    long_acting_share_chronic: float = 0.25
    benzo_share: float = 0.14  # adults with recurring benzodiazepine fills
    benzo_months_mean: float = 36.0
    benzo_share_among_chronic: float = 0.30  # co-prescribing, the risk PBSS tracks
    oud_share: float = 0.025  # on buprenorphine treatment at some point (WV has the highest OUD rates)
    oud_months_mean: float = 24.0
    same_pharmacy_probability: float = 0.85
    care_in_own_county: float = 0.72
    care_in_neighbour_county: float = 0.23  # the rest anywhere in the state
    noisy_report_probability: float = 0.03  # a pharmacy reports a misspelled or changed identity


@dataclass(frozen=True)
class Mortality:
    """Overdose hazard and what raises it (relative risks from the literature, rounded)."""

    # Among adults with any opioid fill; with the risks below, opioid overdose deaths come to about
    # 60 per 100,000 residents a year, the order of West Virginia's rates in 2019-2023.
    overdose_base_per_year: float = 0.00035
    overdose_population_per_year: float = 0.00025  # illicit-only deaths among everyone else
    rr_mme_50: float = 2.0  # 50-89 MME/day (Bohnert 2011; Dunn 2010)
    rr_mme_90: float = 4.0  # >= 90 MME/day
    rr_benzo_overlap: float = 3.0  # concurrent benzodiazepine (Park 2015)
    rr_multiple_providers: float = 3.0  # >= 4 prescribers within 180 days (Gwira Baumblatt 2014)
    rr_pill_mill_patient: float = 2.5
    rr_oud: float = 4.0
    rr_cluster_county: float = 2.5
    rr_desert_county: float = 2.0
    within_60_days_of_fill: float = 0.55  # share of rx-related overdose deaths soon after a fill
    background_scale: float = 1.3  # WV's age-adjusted all-cause death rate is ~1.3 x the US life table's


@dataclass(frozen=True)
class Anomalies:
    """Planted truth: how many of each kind, and how strong."""

    pill_mill_per_prescribers: int = 40  # one pill mill per this many prescribers
    pill_mill_min: int = 4
    pill_mill_patient_factor: float = 3.0  # patients compared with a peer's panel
    pill_mill_cash_share: float = 0.5
    pill_mill_daily_mme: float = 180.0
    pill_mill_far_patients: float = 0.6  # patients from outside the prescriber's region
    disproportionate_per_pharmacies: int = 30
    disproportionate_min: int = 2
    disproportionate_share_of_mill_fills: float = 0.7
    shoppers_per_persons: int = 500  # one doctor shopper per this many persons
    shopper_ring_size: tuple[int, int] = (3, 8)
    shopper_prescribers: tuple[int, int] = (5, 10)  # distinct prescribers per shopper
    shopper_pharmacies: tuple[int, int] = (5, 9)
    shopper_noisy_reports: float = 0.5
    cluster_size: int = 4  # adjacent counties with raised overdose risk


@dataclass(frozen=True)
class SynthConfig:
    state: str = "WV"
    persons: int = 20_000
    start: date = date(2019, 1, 1)
    end: date = date(2023, 12, 31)
    seed: int = 7
    persons_per_prescriber: int = 220
    persons_per_pharmacy: int = 700
    behaviour: Behaviour = field(default_factory=Behaviour)
    mortality: Mortality = field(default_factory=Mortality)
    anomalies: Anomalies = field(default_factory=Anomalies)

    @property
    def years(self) -> float:
        return ((self.end - self.start).days + 1) / 365.25


def for_scale(scale: str, **overrides: object) -> SynthConfig:
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; choose one of {', '.join(SCALES)}")
    return replace(SynthConfig(persons=SCALES[scale][0]), **overrides)
