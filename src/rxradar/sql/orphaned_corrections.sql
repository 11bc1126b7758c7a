-- Orphaned corrections: revises (DSP01 = 01) and voids (02) whose fill has no original report
-- (00) among the fills of view `fills_known`, per ingest and file. They are kept, pending: an
-- original that arrives later is still revised or voided (canonical_views.sql), and then they
-- are orphans no longer. `fills_known` is the workspace's dispensations_records (rxradar
-- rejects), or those and a batch being ingested (rxradar.ingest.asap).
SELECT c.ingest_id, c.source_file, count(*) AS corrections
FROM fills_known AS c
WHERE c.reporting_status IN ('01', '02')
  AND c.dispensation_id NOT IN (SELECT dispensation_id FROM fills_known WHERE reporting_status = '00')
GROUP BY c.ingest_id, c.source_file
ORDER BY c.ingest_id
