-- Every problem of every record: rejects (record not kept) and warnings (record kept).
SELECT
    r.record_number::BIGINT AS record_number,
    u.field, u.severity, u.reason,
    r.pos AS pos, r.pat_pos AS pat_pos, r.pre_pos AS pre_pos, r.pha_pos AS pha_pos, r.file_pos AS file_pos,
    r.ingest_id AS ingest_id, r.source_file AS source_file
FROM asap_rows AS r
JOIN asap_rules AS u ON (r.problem_bits >> u.bit) & 1 = 1
WHERE r.problem_bits <> 0 AND NOT r.zero_report
ORDER BY r.pos, u.bit
