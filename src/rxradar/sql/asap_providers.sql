-- Pharmacies and prescribers as the file reports them (source 'asap'); registries take precedence.
SELECT DISTINCT ON (pharmacy_id)
    'pharmacy' AS kind, pharmacy_id AS id, pha01 AS npi, pha02 AS ncpdp, pha03 AS dea, pha04 AS name,
    NULL AS first_name, pha05 AS address, pha07 AS city, pha08 AS state,
    left(replace(pha09, '-', ''), 5) AS zip, pha12 AS chain_site_id
FROM asap_kept WHERE pharmacy_id IS NOT NULL
UNION ALL
SELECT DISTINCT ON (prescriber_id)
    'prescriber', prescriber_id, pre01, NULL, pre02, pre05, pre06, pre11, pre13, pre14,
    left(replace(pre15, '-', ''), 5), NULL
FROM asap_kept WHERE prescriber_id IS NOT NULL
