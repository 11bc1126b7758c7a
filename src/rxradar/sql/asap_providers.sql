-- Pharmacies and prescribers as the files report them (source 'asap'); registries take precedence.
-- Each id's first report in the batch supplies the names and address.
WITH first_pha AS (SELECT pharmacy_id, min(pha_row) AS row, arg_min(ingest_id, pha_row) AS ingest_id FROM asap_kept
                   GROUP BY pharmacy_id),
first_pre AS (SELECT prescriber_id, min(pre_row) AS row, arg_min(ingest_id, pre_row) AS ingest_id FROM asap_kept
              WHERE prescriber_id IS NOT NULL GROUP BY prescriber_id)
SELECT 'pharmacy' AS kind, f.pharmacy_id AS id, s.pha01 AS npi, s.pha02 AS ncpdp, s.pha03 AS dea,
       s.pha04 AS name, NULL AS first_name, s.pha05 AS address, s.pha07 AS city, s.pha08 AS state,
       left(replace(s.pha09, '-', ''), 5) AS zip, s.pha12 AS chain_site_id, f.ingest_id
FROM first_pha AS f JOIN asap_pha AS s USING (row)
UNION ALL
SELECT 'prescriber', f.prescriber_id, s.pre01, NULL, s.pre02, s.pre05, s.pre06, s.pre11, s.pre13, s.pre14,
       left(replace(s.pre15, '-', ''), 5), NULL, f.ingest_id
FROM first_pre AS f JOIN asap_pre AS s USING (row)
