-- Per file of the batch: fills read (zero reports aside), zero-report records, fills kept.
SELECT f.ingest_id,
       count(r.pos) FILTER (WHERE NOT r.zero_report) AS records,
       count(r.pos) FILTER (WHERE r.zero_report) AS zero_reports,
       count(k.pos) AS kept
FROM asap_files AS f
LEFT JOIN asap_rows AS r ON r.ingest_id = f.ingest_id
LEFT JOIN asap_kept AS k ON k.pos = r.pos
GROUP BY f.ingest_id
