-- File-level checks, as warnings: trailer counts (formats.md §1.3), unknown segments, order.
-- TP01 = segments PHA..TP of that pharmacy; TT01 = TH02; TT02 = all segments TH..TT.
-- Positions are segment numbers within each file (TH is 1); marks are the TP, TT and
-- unrecognised segments, each with the position of the PHA it follows (rxradar.ingest.asap_scan).
WITH first_tt AS (
    SELECT f.file_no, f.segments, min(m.pos) AS tt_pos
    FROM asap_files AS f LEFT JOIN asap_marks AS m ON m.file_no = f.file_no AND m.id = 'TT'
    GROUP BY f.file_no, f.segments
),
-- The line of the first segment after a file's TT, whatever its kind (looked up only for those).
after_tt AS (
    SELECT t.file_no, t.tt_pos + 1 AS pos, t.segments - t.tt_pos AS n FROM first_tt AS t WHERE t.segments > t.tt_pos
),
after_tt_line AS (
    SELECT a.file_no, a.pos, a.n, s.line
    FROM after_tt AS a
    LEFT JOIN (SELECT file_no, pos, line FROM asap_marks UNION ALL SELECT file_no, pos, line FROM asap_pha
               UNION ALL SELECT file_no, pos, line FROM asap_pat UNION ALL SELECT file_no, pos, line FROM asap_dsp
               UNION ALL SELECT file_no, pos, line FROM asap_pre) AS s
           ON s.file_no = a.file_no AND s.pos = a.pos
),
checks AS (
    SELECT t.file_no, t.pos, t.line, 'TP01' AS field,
           'TP01 says ' || coalesce(t.e1, 'nothing') || '; the pharmacy has ' ||
           coalesce((t.pos - t.pha_pos + 1)::VARCHAR, 'no PHA and') || ' segments' AS reason
    FROM asap_marks AS t
    WHERE t.id = 'TP' AND t.e1 IS DISTINCT FROM (t.pos - t.pha_pos + 1)::VARCHAR
    UNION ALL
    SELECT m.file_no, m.pos, m.line, 'TT01', 'TT01 ' || coalesce(m.e1, 'is empty and') || ' differs from TH02 ' || f.tcn
    FROM asap_marks AS m JOIN asap_files AS f USING (file_no) WHERE m.id = 'TT' AND m.e1 IS DISTINCT FROM f.tcn
    UNION ALL
    SELECT file_no, pos, line, 'TT02', 'TT02 says ' || coalesce(e2, 'nothing') || '; the file has ' || pos || ' segments'
    FROM asap_marks WHERE id = 'TT' AND e2 IS DISTINCT FROM pos::VARCHAR
    UNION ALL
    SELECT file_no, min(pos), arg_min(line, pos), 'segment',
           count(*) || ' segment(s) with unknown id ' || coalesce('''' || id || '''', '(none)') || '; ignored'
    FROM asap_marks
    WHERE id IS NULL OR id NOT IN ('TP', 'TT')
    GROUP BY file_no, id
    UNION ALL
    SELECT file_no, pos, line, 'TT', n || ' segment(s) after the TT trailer' FROM after_tt_line
    UNION ALL
    SELECT file_no, NULL, NULL, 'TT', 'file has no TT trailer (truncated?); its records were kept'
    FROM first_tt WHERE tt_pos IS NULL
    UNION ALL
    SELECT file_no, NULL, NULL, 'PRE', count(*) || ' PRE segment(s) do not follow a DSP; ignored'
    FROM asap_pre WHERE dsp_row IS NULL GROUP BY file_no
)
SELECT c.pos AS segment_number, c.line, c.field, c.reason, f.ingest_id, f.source_file
FROM checks AS c JOIN asap_files AS f USING (file_no)
ORDER BY f.ingest_id, c.pos NULLS LAST, c.field
