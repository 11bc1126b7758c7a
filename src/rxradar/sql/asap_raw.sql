-- Segments at the given positions as the file had them (trailing empty elements dropped),
-- except that a patient SSN (PAT02 = 07) is starred out: rejects never hold an SSN.
SELECT rowid AS pos,
       rtrim(concat_ws(getvariable('asap_sep'), coalesce(c0, ''), coalesce(c1, ''), coalesce(c2, ''), CASE WHEN c0 = 'PAT' AND c2 = '07' THEN '*********' ELSE coalesce(c3, '') END, coalesce(c4, ''), coalesce(c5, ''), coalesce(c6, ''), coalesce(c7, ''), coalesce(c8, ''), coalesce(c9, ''), coalesce(c10, ''), coalesce(c11, ''), coalesce(c12, ''), coalesce(c13, ''), coalesce(c14, ''), coalesce(c15, ''), coalesce(c16, ''), coalesce(c17, ''), coalesce(c18, ''), coalesce(c19, ''), coalesce(c20, ''), coalesce(c21, ''), coalesce(c22, ''), coalesce(c23, ''), coalesce(c24, ''), coalesce(c25, ''), coalesce(c26, ''), coalesce(c27, ''), coalesce(c28, ''), coalesce(c29, ''), coalesce(c30, ''), coalesce(c31, ''), coalesce(c32, ''), coalesce(c33, ''), coalesce(c34, ''), coalesce(c35, ''), coalesce(c36, ''), coalesce(c37, ''), coalesce(c38, ''), coalesce(c39, ''), coalesce(c40, '')), getvariable('asap_sep')) AS raw
FROM asap_seg
WHERE rowid IN (SELECT unnest($positions))
