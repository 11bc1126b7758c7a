-- File-level checks, as warnings: trailer counts (formats.md §1.3), unknown segments, order.
-- TP01 = segments PHA..TP of that pharmacy; TT01 = TH02; TT02 = all segments TH..TT.
WITH seg AS (SELECT rowid AS pos, c0, el(c1) AS e1, el(c2) AS e2 FROM asap_seg),
pha AS (SELECT pos AS pha_pos FROM seg WHERE c0 = 'PHA'),
first_tt AS (SELECT min(pos) AS tt_pos FROM seg WHERE c0 = 'TT')
SELECT t.pos, 'TP01' AS field,
       'TP01 says ' || coalesce(t.e1, 'nothing') || '; the pharmacy has ' ||
       coalesce((t.pos - p.pha_pos + 1)::VARCHAR, 'no PHA and') || ' segments' AS reason
FROM seg AS t ASOF LEFT JOIN pha AS p ON t.pos > p.pha_pos
WHERE t.c0 = 'TP' AND t.e1 IS DISTINCT FROM (t.pos - p.pha_pos + 1)::VARCHAR
UNION ALL
SELECT pos, 'TT01', 'TT01 ' || coalesce(e1, 'is empty and') || ' differs from TH02 ' || getvariable('asap_tcn')
FROM seg WHERE c0 = 'TT' AND e1 IS DISTINCT FROM getvariable('asap_tcn')
UNION ALL
SELECT pos, 'TT02', 'TT02 says ' || coalesce(e2, 'nothing') || '; the file has ' || (pos + 2) || ' segments'
FROM seg WHERE c0 = 'TT' AND e2 IS DISTINCT FROM (pos + 2)::VARCHAR
UNION ALL
SELECT min(pos), 'segment',
       count(*) || ' segment(s) with unknown id ' || coalesce('''' || c0 || '''', '(none)') || '; ignored'
FROM seg WHERE c0 NOT IN ('IS', 'PHA', 'PAT', 'DSP', 'PRE', 'CDI', 'AIR', 'TP', 'TT') OR c0 IS NULL
GROUP BY c0
UNION ALL
SELECT min(s.pos), 'TT', count(*) || ' segment(s) after the TT trailer'
FROM seg AS s, first_tt WHERE s.pos > first_tt.tt_pos
HAVING count(*) > 0
UNION ALL
SELECT NULL, 'TT', 'file has no TT trailer (truncated?); its records were kept'
FROM first_tt WHERE tt_pos IS NULL
UNION ALL
SELECT NULL, 'PRE', orphans || ' PRE segment(s) do not follow a DSP; ignored'
FROM (SELECT (SELECT count(*) FROM asap_seg WHERE c0 = 'PRE') - (SELECT count(pre_pos) FROM asap_rows) AS orphans)
WHERE orphans > 0
