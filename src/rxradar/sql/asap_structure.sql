-- File-level checks, as warnings: trailer counts (formats.md §1.3), unknown segments, order,
-- NUL bytes.
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
-- Reasons name elements and rules, never an element's value: an element out of place (a name
-- after a stray terminator, a PAT with the wrong separator) would otherwise be quoted to everyone
-- who may read rejects.
checks AS (
    SELECT t.file_no, t.pos, t.line, 'TP01' AS field,
           'TP01 ' || CASE WHEN t.e1 IS NULL THEN 'is empty' ELSE 'does not count' END || '; the pharmacy has ' ||
           coalesce((t.pos - t.pha_pos + 1)::VARCHAR || ' segments', 'no PHA') AS reason
    FROM asap_marks AS t
    WHERE t.id = 'TP' AND t.e1 IS DISTINCT FROM (t.pos - t.pha_pos + 1)::VARCHAR
    UNION ALL
    SELECT m.file_no, m.pos, m.line, 'TT01',
           'TT01 ' || CASE WHEN m.e1 IS NULL THEN 'is empty' ELSE 'differs from' END || ' TH02 (the control number)'
    FROM asap_marks AS m JOIN asap_files AS f USING (file_no) WHERE m.id = 'TT' AND m.e1 IS DISTINCT FROM f.tcn
    UNION ALL
    SELECT file_no, pos, line, 'TT02',
           'TT02 ' || CASE WHEN e2 IS NULL THEN 'is empty' ELSE 'does not count' END || '; the file has ' || pos
           || ' segments'
    FROM asap_marks WHERE id = 'TT' AND e2 IS DISTINCT FROM pos::VARCHAR
    UNION ALL
    SELECT file_no, min(pos), arg_min(line, pos), 'segment', count(*) || ' segment(s) ' || kind || '; ignored'
    FROM (
        SELECT *, CASE WHEN id IS NULL THEN 'without an id (unknown id)'
                       WHEN regexp_matches(id, '^(TH|IS|PHA|PAT|DSP|PRE|CDI|AIR|TP|TT)[^A-Za-z0-9 ]')
                       THEN 'with an unknown id: ' || regexp_extract(id, '^[A-Z]+') || ' followed by '''
                            || substr(id, length(regexp_extract(id, '^[A-Z]+')) + 1, 1)
                            || ''', not the element separator'
                       ELSE 'with an unknown id (not an ASAP segment id)' END AS kind
        FROM asap_marks
        WHERE id IS NULL OR id NOT IN ('TP', 'TT')
    )
    GROUP BY file_no, kind
    UNION ALL
    SELECT file_no, pos, line, 'TT', n || ' segment(s) after the TT trailer' FROM after_tt_line
    UNION ALL
    SELECT file_no, NULL, NULL, 'TT', 'file has no TT trailer (truncated?); its records were kept'
    FROM first_tt WHERE tt_pos IS NULL
    UNION ALL
    SELECT file_no, NULL, NULL, 'PRE', count(*) || ' PRE segment(s) do not follow a DSP; ignored'
    FROM asap_pre WHERE dsp_row IS NULL GROUP BY file_no
    UNION ALL
    SELECT file_no, NULL, NULL, 'segment', nul_bytes || ' NUL byte(s) in the file; only the records whose '
           || 'segments hold one are rejected'
    FROM asap_files WHERE nul_bytes > 0
)
SELECT c.pos AS segment_number, c.line, c.field, c.reason, f.ingest_id, f.source_file
FROM checks AS c JOIN asap_files AS f USING (file_no)
ORDER BY f.ingest_id, c.pos NULLS LAST, c.field
