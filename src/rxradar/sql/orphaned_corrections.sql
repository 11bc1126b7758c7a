-- Orphaned corrections: revises (DSP01 = 01) and voids (02) among the fills of view
-- `fills_asked` whose fill has no original report (00) among those of view `fills_known`, per
-- ingest and file. They are kept, pending: an original that arrives later is still revised or
-- voided (canonical_views.sql), and then they are orphans no longer. For rxradar rejects both
-- views are the workspace's dispensations_records; at ingest (rxradar.ingest.asap) the asked are
-- the batch's fills and the known those and the workspace's.
SELECT c.ingest_id, c.source_file, count(*) AS corrections
FROM fills_asked AS c
WHERE c.reporting_status IN ('01', '02')
  AND c.dispensation_id NOT IN (SELECT dispensation_id FROM fills_known WHERE reporting_status = '00')
GROUP BY c.ingest_id, c.source_file
ORDER BY c.ingest_id
