-- File-level checks, as warnings: trailer counts (formats.md §1.3), unknown segments, order.
-- TP01 = segments PHA..TP of that pharmacy; TT01 = TH02; TT02 = all segments TH..TT.
-- Each file of the batch is checked on its own (positions are counted from its marker).
WITH seg AS (
    SELECT rowid AS pos, c0, el(c1) AS e1, el(c2) AS e2,
           max(CASE WHEN c0 = 'RXRADAR-FILE' THEN rowid END) OVER (ORDER BY rowid ROWS UNBOUNDED PRECEDING) AS file_pos
    FROM asap_seg
),
files AS (
    SELECT m.file_pos, f.ingest_id, f.source_file, f.tcn
    FROM (SELECT rowid AS file_pos, c1::INTEGER AS file_no FROM asap_seg WHERE c0 = 'RXRADAR-FILE') AS m
    JOIN asap_files AS f USING (file_no)
),
pha AS (SELECT pos AS pha_pos, file_pos FROM seg WHERE c0 = 'PHA'),
first_tt AS (SELECT f.file_pos, min(s.pos) AS tt_pos FROM files AS f LEFT JOIN seg AS s
             ON s.file_pos = f.file_pos AND s.c0 = 'TT' GROUP BY f.file_pos),
pre AS (SELECT file_pos, count(*) AS n FROM seg WHERE c0 = 'PRE' GROUP BY file_pos),
pre_used AS (SELECT file_pos, count(pre_pos) AS n FROM asap_rows GROUP BY file_pos),
checks AS (
    SELECT t.file_pos, t.pos, 'TP01' AS field,
           'TP01 says ' || coalesce(t.e1, 'nothing') || '; the pharmacy has ' ||
           coalesce((t.pos - p.pha_pos + 1)::VARCHAR, 'no PHA and') || ' segments' AS reason
    FROM seg AS t ASOF LEFT JOIN pha AS p ON t.file_pos = p.file_pos AND t.pos > p.pha_pos
    WHERE t.c0 = 'TP' AND t.e1 IS DISTINCT FROM (t.pos - p.pha_pos + 1)::VARCHAR
    UNION ALL
    SELECT s.file_pos, s.pos, 'TT01', 'TT01 ' || coalesce(s.e1, 'is empty and') || ' differs from TH02 ' || f.tcn
    FROM seg AS s JOIN files AS f USING (file_pos) WHERE s.c0 = 'TT' AND s.e1 IS DISTINCT FROM f.tcn
    UNION ALL
    SELECT file_pos, pos, 'TT02',
           'TT02 says ' || coalesce(e2, 'nothing') || '; the file has ' || (pos - file_pos + 1) || ' segments'
    FROM seg WHERE c0 = 'TT' AND e2 IS DISTINCT FROM (pos - file_pos + 1)::VARCHAR
    UNION ALL
    SELECT file_pos, min(pos), 'segment',
           count(*) || ' segment(s) with unknown id ' || coalesce('''' || c0 || '''', '(none)') || '; ignored'
    FROM seg
    WHERE c0 IS NULL OR c0 NOT IN ('RXRADAR-FILE', 'IS', 'PHA', 'PAT', 'DSP', 'PRE', 'CDI', 'AIR', 'TP', 'TT')
    GROUP BY file_pos, c0
    UNION ALL
    SELECT s.file_pos, min(s.pos), 'TT', count(*) || ' segment(s) after the TT trailer'
    FROM seg AS s JOIN first_tt AS t ON s.file_pos = t.file_pos AND s.pos > t.tt_pos
    GROUP BY s.file_pos
    UNION ALL
    SELECT file_pos, NULL, 'TT', 'file has no TT trailer (truncated?); its records were kept'
    FROM first_tt WHERE tt_pos IS NULL
    UNION ALL
    SELECT pre.file_pos, NULL, 'PRE', (pre.n - coalesce(pre_used.n, 0)) || ' PRE segment(s) do not follow a DSP; ignored'
    FROM pre LEFT JOIN pre_used USING (file_pos)
    WHERE pre.n > coalesce(pre_used.n, 0)
)
SELECT c.pos, c.pos - c.file_pos + 1 AS segment_number, c.field, c.reason, f.ingest_id, f.source_file, c.file_pos
FROM checks AS c JOIN files AS f USING (file_pos)
