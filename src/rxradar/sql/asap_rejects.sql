-- Every problem of every record: rejects (record not kept) and warnings (record kept), with the
-- position, line and byte span of the DSP and of its PAT, PRE and PHA (a reject points at the
-- segment at fault and quotes the record's segments).
SELECT
    r.record_number::BIGINT AS record_number,
    u.field, u.severity, u.reason,
    r.record_number AS pos, r.line, r.pat_pos, r.pat_line, r.pre_pos, r.pre_line, r.pha_pos, r.pha_line,
    d.off AS dsp_off, d."end" AS dsp_end, p.off AS pat_off, p."end" AS pat_end, e.off AS pre_off, e."end" AS pre_end,
    r.file_no, r.ingest_id, r.source_file
FROM asap_rows AS r
JOIN asap_rules AS u ON (r.problem_bits >> u.bit) & 1 = 1
JOIN asap_dsp AS d ON d.row = r.dsp_row
LEFT JOIN asap_pat AS p ON p.row = r.pat_row
LEFT JOIN asap_pre AS e ON e.row = r.pre_row
WHERE r.problem_bits <> 0 AND NOT r.zero_report
ORDER BY r.dsp_row, u.bit
