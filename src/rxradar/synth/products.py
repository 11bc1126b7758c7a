"""The products a synthetic state dispenses: real NDCs from the catalogue, as arrays for drawing."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from rxradar.reference.ndc import products_with_factors
from rxradar.synth import catalog

# The drugs diverted at pill mills: high-strength immediate-release oxycodone and hydromorphone
# (DEA diversion cases; the "Florida pipeline" of 2009-2011 was oxycodone 30 mg).
PILL_MILL_DRUGS = ("oxycodone", "hydromorphone")
SHOPPER_DRUGS = ("oxycodone", "hydrocodone")
REFILLABLE_SCHEDULES = ("3", "4", "5")  # Schedule II prescriptions cannot be refilled (21 CFR 1306.12)


@dataclass(frozen=True)
class Products:
    ndc11: np.ndarray
    drug: np.ndarray
    product_class: np.ndarray  # opioid, moud, benzodiazepine
    long_acting: np.ndarray
    share: np.ndarray
    share_acute: np.ndarray  # opioids: market share among acute courses (long-acting: 0)
    share_chronic: np.ndarray
    units_acute: np.ndarray
    units_chronic: np.ndarray
    mme_per_unit: np.ndarray  # strength x CDC 2017 factor; 0 where there is none
    schedule: np.ndarray

    @staticmethod
    def load() -> Products:
        opioid = catalog.opioid_products()
        parts = [
            _part(opioid, "opioid", opioid["units_per_day_acute"], opioid["units_per_day_chronic"]),
            _part(catalog.treatment_products(), "moud"),
            _part(catalog.benzodiazepine_products(), "benzodiazepine"),
        ]
        table = pa.concat_tables(parts)
        reference = products_with_factors("cdc2017_datafile").select(["ndc11", "mme_factor", "dea_schedule",
                                                                       "strength_per_unit"])
        ref = {r["ndc11"]: r for r in reference.to_pylist()}
        ndcs = table["ndc11"].to_pylist()
        factor = np.array([ref[n]["mme_factor"] or 0.0 for n in ndcs])
        strength = np.array([ref[n]["strength_per_unit"] or 0.0 for n in ndcs])
        arr = lambda name: np.asarray(table[name].to_pylist())  # noqa: E731
        return Products(
            ndc11=arr("ndc11").astype(object), drug=arr("drug").astype(object),
            product_class=arr("product_class").astype(object), long_acting=arr("long_acting").astype(bool),
            share=arr("share").astype(float), share_acute=arr("share_acute").astype(float),
            share_chronic=arr("share_chronic").astype(float), units_acute=arr("units_acute").astype(float),
            units_chronic=arr("units_chronic").astype(float), mme_per_unit=strength * factor,
            schedule=np.array([ref[n]["dea_schedule"] for n in ndcs], dtype=object),
        )

    def pool(self, kind: str) -> np.ndarray:
        opioid = self.product_class == "opioid"
        pools = {
            "acute": opioid & ~self.long_acting,
            "chronic_sa": opioid & ~self.long_acting,
            "chronic_la": opioid & self.long_acting,
            "benzodiazepine": self.product_class == "benzodiazepine",
            "treatment": self.product_class == "moud",
            "pill_mill": opioid & ~self.long_acting & np.isin(self.drug, PILL_MILL_DRUGS)
            & (self.mme_per_unit >= np.quantile(self.mme_per_unit[opioid], 0.6)),
            "shopper": opioid & ~self.long_acting & np.isin(self.drug, SHOPPER_DRUGS),
        }
        return np.flatnonzero(pools[kind])

    def draw(self, kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
        pool = self.pool(kind)
        weights = {"acute": self.share_acute, "chronic_sa": self.share_chronic, "chronic_la": self.share_chronic}
        w = weights.get(kind, self.share)[pool]
        return pool[rng.choice(len(pool), size=n, p=w / w.sum())]

    def units(self, product: np.ndarray, mode: str) -> np.ndarray:
        return (self.units_acute if mode == "acute" else self.units_chronic)[product]

    def refillable(self, product: np.ndarray) -> np.ndarray:
        return np.isin(self.schedule[product], REFILLABLE_SCHEDULES)


def _part(table: pa.Table, product_class: str, acute=None, chronic=None) -> pa.Table:
    units = table["units_per_day"] if "units_per_day" in table.column_names else chronic
    n = table.num_rows
    long_acting = (table["long_acting"] if "long_acting" in table.column_names
                   else pa.array([product_class == "moud"] * n))
    return pa.table({
        "ndc11": table["ndc11"], "drug": table["drug"], "product_class": pa.array([product_class] * n),
        "long_acting": pa.array(long_acting.to_pylist(), pa.bool_()),
        "share": table["share"].cast(pa.float64()),
        "share_acute": (table["share_acute"] if "share_acute" in table.column_names else table["share"]).cast(pa.float64()),
        "share_chronic": (table["share_chronic"] if "share_chronic" in table.column_names else table["share"]).cast(
            pa.float64()),
        "units_acute": (acute if acute is not None else units).cast(pa.float64()),
        "units_chronic": units.cast(pa.float64()),
    })
