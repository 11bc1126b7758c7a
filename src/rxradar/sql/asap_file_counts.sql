-- Per file of the batch: fills read (zero reports aside), zero-report records, fills kept, and
-- segments that are not ASAP (unknown ids; a file of nothing else is no ASAP file).
SELECT f.ingest_id,
       count(r.dsp_row) FILTER (WHERE NOT r.zero_report) AS records,
       count(r.dsp_row) FILTER (WHERE r.zero_report) AS zero_reports,
       count(r.dsp_row) FILTER (WHERE r.kept) AS kept,
       (SELECT count(*) FROM asap_marks AS m
        WHERE m.file_no = f.file_no AND (m.id IS NULL OR m.id NOT IN ('TP', 'TT'))) AS unknown_segments
FROM asap_files AS f
LEFT JOIN asap_rows AS r USING (file_no)
GROUP BY f.ingest_id, f.file_no
