-- Pharmacies and prescribers as the file reports them (source 'asap'); registries take precedence.
-- Each id's first report in the batch supplies the names and address.
WITH first_pha AS (SELECT pharmacy_id, min(pha_pos) AS pos, arg_min(ingest_id, pha_pos) AS ingest_id FROM asap_kept
                   GROUP BY pharmacy_id),
first_pre AS (SELECT prescriber_id, min(pre_pos) AS pos, arg_min(ingest_id, pre_pos) AS ingest_id FROM asap_kept
              WHERE prescriber_id IS NOT NULL GROUP BY prescriber_id)
SELECT 'pharmacy' AS kind, f.pharmacy_id AS id, el(s.c1) AS npi, el(s.c2) AS ncpdp, el(s.c3) AS dea,
       el(s.c4) AS name, NULL AS first_name, el(s.c5) AS address, el(s.c7) AS city, el(s.c8) AS state,
       left(replace(el(s.c9), '-', ''), 5) AS zip, el(s.c12) AS chain_site_id, f.ingest_id
FROM first_pha AS f JOIN asap_seg AS s ON s.rowid = f.pos
UNION ALL
SELECT 'prescriber', f.prescriber_id, el(s.c1), NULL, el(s.c2), el(s.c5), el(s.c6), el(s.c11), el(s.c13), el(s.c14),
       left(replace(el(s.c15), '-', ''), 5), NULL, f.ingest_id
FROM first_pre AS f JOIN asap_seg AS s ON s.rowid = f.pos
