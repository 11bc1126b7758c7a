-- The canonical `dispensations` table: the latest report of each fill, voids removed, with the
-- drug, class and MME from the NDC reference and the selected factor table.
-- "Latest" is explicit: the file's own creation time (TH05/TH06), then ingest order, then
-- position in the file, so the order files are ingested in never decides the result.
-- MME per day = strength per unit x quantity / days supply x factor (CDC 2017 file documentation).
CREATE OR REPLACE VIEW dispensations AS
WITH latest AS (
    SELECT *
    FROM dispensations_records
    QUALIFY row_number() OVER (
        PARTITION BY dispensation_id
        ORDER BY file_created DESC NULLS LAST, ingest_id DESC, record_number DESC
    ) = 1
)
SELECT
    d.* EXCLUDE (reporting_status),
    p.drug,
    coalesce(p.drug_class, 'other') AS drug_class,
    p.long_acting,
    p.dea_schedule,
    p.strength_per_unit,
    p.strength_unit,
    p.mme_factor,
    CASE WHEN p.mme_factor IS NOT NULL AND d.days_supply > 0
         THEN p.strength_per_unit * d.quantity / d.days_supply * p.mme_factor END AS mme_per_day
FROM latest AS d
LEFT JOIN ref_products AS p ON p.ndc11 = d.ndc11
WHERE d.reporting_status <> '02';

-- Registries and ASAP headers both describe prescribers and pharmacies: one row per id, a
-- registry row preferred over what a pharmacy reported, the most recent file winning.
CREATE OR REPLACE VIEW prescribers AS
SELECT * FROM prescribers_records
QUALIFY row_number() OVER (PARTITION BY prescriber_id
                           ORDER BY (source = 'asap'), ingest_id DESC) = 1;

CREATE OR REPLACE VIEW pharmacies AS
SELECT * FROM pharmacies_records
QUALIFY row_number() OVER (PARTITION BY pharmacy_id
                           ORDER BY (source = 'asap'), ingest_id DESC) = 1;

CREATE OR REPLACE VIEW identities AS
SELECT * FROM identities_records
QUALIFY row_number() OVER (PARTITION BY identity_id ORDER BY ingest_id) = 1;

CREATE OR REPLACE VIEW deaths AS
SELECT * FROM deaths_records
QUALIFY row_number() OVER (PARTITION BY death_id ORDER BY ingest_id DESC) = 1;
