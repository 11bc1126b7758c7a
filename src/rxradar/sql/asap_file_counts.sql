-- Per file of the batch: fills read (zero reports aside), zero-report records, fills kept.
SELECT f.ingest_id,
       count(r.dsp_row) FILTER (WHERE NOT r.zero_report) AS records,
       count(r.dsp_row) FILTER (WHERE r.zero_report) AS zero_reports,
       count(r.dsp_row) FILTER (WHERE r.kept) AS kept
FROM asap_files AS f
LEFT JOIN asap_rows AS r USING (file_no)
GROUP BY f.ingest_id
