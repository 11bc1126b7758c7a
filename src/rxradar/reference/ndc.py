"""Controlled-substance products by 11-digit NDC, and the MME conversion-factor tables.

MME/day = strength_per_unit × quantity ÷ days_supply × mme_factor (CDC 2017 conversion file,
Documentation sheet). The factor depends on the product only through ``(drug, form_group)``;
the build script checks that this pair determines the CDC 2017 file's own per-NDC factor.
Buprenorphine and benzodiazepines have no factor: they are excluded from MME sums.
"""

from __future__ import annotations

from functools import cache

import pyarrow as pa
import pyarrow.compute as pc
from pyarrow import csv

from rxradar.reference import data_path
from rxradar.schema import Column, Table

S, B, F64 = pa.string(), pa.bool_(), pa.float64()

NDC_PRODUCTS = Table(
    "ndc_products",
    "one 11-digit NDC of an opioid, benzodiazepine or MOUD product",
    (
        Column("ndc11", S, "11-digit NDC (5-4-2, no hyphens)"),
        Column("product_name", S, "product name as listed by the source"),
        Column("generic_name", S, "generic name, all ingredients"),
        Column("drug", S, "controlled active ingredient, lower case (CDC 'Drug' without ' SA'/' LA')"),
        Column("form_group", S, "route group that, with drug, selects the MME factor: oral, rectal, "
               "transdermal, buccal_sublingual, film_spray, nasal, implant, injection"),
        Column("dosage_form", S, "CDC Master_Form (null for rows from the Opioid Data Lab MAT list)"),
        Column("drug_class", S, "opioid, benzodiazepine or moud (buprenorphine, naltrexone)"),
        Column("long_acting", B, "CDC LongShortActing = LA; null for benzodiazepines and naltrexone"),
        Column("dea_schedule", S, "federal DEA schedule '2'..'5' (CDC DEAClassCode); null if not controlled"),
        Column("strength_per_unit", F64, "strength of the controlled ingredient per strength_unit"),
        Column("strength_unit", S, "CDC UOM: MG, MG/ML, MCG, MCG/HR, MCG/SPRAY"),
        Column("cdc2017_factor", F64, "the CDC 2017 file's own MME_Conversion_Factor for this NDC"),
        Column("source", S, "cdc2017_opioids, cdc2017_benzodiazepines or opioiddatalab_mat"),
    ),
)
_FILES = (("cdc", "ndc_products.csv"), ("opioiddatalab", "ndc_products_mat.csv"))
_FACTORS = ("cdc", "mme_factors.csv")


def _read(parts: tuple[str, ...], schema: pa.Schema | None = None) -> pa.Table:
    types = dict(zip(schema.names, schema.types)) if schema else None
    return csv.read_csv(
        data_path(*parts),
        convert_options=csv.ConvertOptions(column_types=types, strings_can_be_null=True),
    )


@cache
def ndc_products() -> pa.Table:
    """Every known product NDC (CDC 2017 opioids and benzodiazepines, plus MOUD NDCs), by ndc11."""
    table = pa.concat_tables(_read(parts, NDC_PRODUCTS.schema) for parts in _FILES)
    return table.sort_by("ndc11")


@cache
def _factor_rows() -> pa.Table:
    return _read(_FACTORS, pa.schema({"factor_table": S, "drug": S, "form_group": S, "mme_factor": F64}))


def mme_factor_tables() -> list[str]:
    """Names of the shipped factor tables, e.g. ``['cdc2017_datafile', 'cdc2022']``."""
    return sorted(set(_factor_rows()["factor_table"].to_pylist()))


def mme_factors(table: str) -> pa.Table:
    """``(drug, form_group, mme_factor)`` of one factor table; see data/cdc/mme_factors.csv for
    each row's note and citation (CDC 2017 data file; CDC 2022 guideline, MMWR 71(RR-3) Table)."""
    if table not in mme_factor_tables():
        raise ValueError(f"unknown MME factor table {table!r}; choose one of {mme_factor_tables()}")
    rows = _factor_rows().filter(pc.field("factor_table") == table)
    return rows.select(["drug", "form_group", "mme_factor"])


@cache
def products_with_factors(table: str) -> pa.Table:
    """:func:`ndc_products` with that table's factor as ``mme_factor`` (null where excluded)."""
    joined = ndc_products().join(mme_factors(table), keys=["drug", "form_group"], join_type="left outer")
    return joined.select([*NDC_PRODUCTS.schema.names, "mme_factor"]).sort_by("ndc11")
