-- The canonical `dispensations` table: the latest report of each fill, voids removed, with the
-- drug, class and MME from the NDC reference and the selected factor table.
-- "Latest" is explicit: the file's own creation time (TH05/TH06), then ingest order, then
-- position in the file, so the order files are ingested in never decides the result.
-- MME per day = strength per unit x quantity / days supply x factor (CDC 2017 file documentation).
-- Almost every fill is reported once, so the ordering runs only over keys seen more than once
-- (found among the sorted 64-bit hashes of the keys, then compared exactly): a window over every
-- record would carry all their columns through a sort, minutes at 100M records. Sorting the
-- hashes takes about 10 s at 96.6M records where a group-by with as many groups takes 16 s.
CREATE OR REPLACE VIEW dispensations AS
WITH repeated AS (
    SELECT DISTINCT h FROM (SELECT hash(dispensation_id) AS h FROM dispensations_records)
    QUALIFY h = lag(h) OVER (ORDER BY h)
), latest AS (
    SELECT * FROM dispensations_records WHERE hash(dispensation_id) NOT IN (SELECT h FROM repeated)
    UNION ALL
    SELECT * FROM (
        SELECT * FROM dispensations_records WHERE hash(dispensation_id) IN (SELECT h FROM repeated)
        QUALIFY row_number() OVER (
            PARTITION BY dispensation_id
            ORDER BY file_created DESC NULLS LAST, ingest_id DESC, record_number DESC
        ) = 1
    )
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

-- Registries and ASAP headers both describe prescribers and pharmacies: one row per id, each
-- field taken from the best source that has it (a registry before what a pharmacy reported,
-- then the most recently ingested), so a state CSV's DEA and county and NPPES's taxonomy meet.
CREATE OR REPLACE VIEW prescribers AS
SELECT prescriber_id,
    arg_max(npi, rank) FILTER (WHERE npi IS NOT NULL) AS npi,
    arg_max(dea, rank) FILTER (WHERE dea IS NOT NULL) AS dea,
    arg_max(last_name, rank) FILTER (WHERE last_name IS NOT NULL) AS last_name,
    arg_max(first_name, rank) FILTER (WHERE first_name IS NOT NULL) AS first_name,
    arg_max(credential, rank) FILTER (WHERE credential IS NOT NULL) AS credential,
    arg_max(taxonomy_code, rank) FILTER (WHERE taxonomy_code IS NOT NULL) AS taxonomy_code,
    arg_max(specialty, rank) FILTER (WHERE specialty IS NOT NULL) AS specialty,
    arg_max(address, rank) FILTER (WHERE address IS NOT NULL) AS address,
    arg_max(city, rank) FILTER (WHERE city IS NOT NULL) AS city,
    arg_max(state, rank) FILTER (WHERE state IS NOT NULL) AS state,
    arg_max(zip, rank) FILTER (WHERE zip IS NOT NULL) AS zip,
    arg_max(county_fips, rank) FILTER (WHERE county_fips IS NOT NULL) AS county_fips,
    arg_max(source, rank) FILTER (WHERE source IS NOT NULL) AS source,
    arg_max(ingest_id, rank) FILTER (WHERE ingest_id IS NOT NULL) AS ingest_id
FROM (SELECT *, ((source <> 'asap')::INTEGER, ingest_id) AS rank FROM prescribers_records)
GROUP BY prescriber_id;

CREATE OR REPLACE VIEW pharmacies AS
SELECT pharmacy_id,
    arg_max(npi, rank) FILTER (WHERE npi IS NOT NULL) AS npi,
    arg_max(ncpdp, rank) FILTER (WHERE ncpdp IS NOT NULL) AS ncpdp,
    arg_max(dea, rank) FILTER (WHERE dea IS NOT NULL) AS dea,
    arg_max(name, rank) FILTER (WHERE name IS NOT NULL) AS name,
    arg_max(address, rank) FILTER (WHERE address IS NOT NULL) AS address,
    arg_max(city, rank) FILTER (WHERE city IS NOT NULL) AS city,
    arg_max(state, rank) FILTER (WHERE state IS NOT NULL) AS state,
    arg_max(zip, rank) FILTER (WHERE zip IS NOT NULL) AS zip,
    arg_max(county_fips, rank) FILTER (WHERE county_fips IS NOT NULL) AS county_fips,
    arg_max(lat, rank) FILTER (WHERE lat IS NOT NULL) AS lat,
    arg_max(lon, rank) FILTER (WHERE lon IS NOT NULL) AS lon,
    arg_max(chain_site_id, rank) FILTER (WHERE chain_site_id IS NOT NULL) AS chain_site_id,
    arg_max(source, rank) FILTER (WHERE source IS NOT NULL) AS source,
    arg_max(ingest_id, rank) FILTER (WHERE ingest_id IS NOT NULL) AS ingest_id
FROM (SELECT *, ((source <> 'asap')::INTEGER, ingest_id) AS rank FROM pharmacies_records)
GROUP BY pharmacy_id;

CREATE OR REPLACE VIEW identities AS
SELECT * FROM identities_records
QUALIFY row_number() OVER (PARTITION BY identity_id ORDER BY ingest_id) = 1;

CREATE OR REPLACE VIEW deaths AS
SELECT * FROM deaths_records
QUALIFY row_number() OVER (PARTITION BY death_id ORDER BY ingest_id DESC) = 1;

CREATE OR REPLACE VIEW zip_counties AS
SELECT * FROM zip_counties_records
QUALIFY row_number() OVER (PARTITION BY zip_county ORDER BY ingest_id DESC) = 1;
