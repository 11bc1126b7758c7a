-- The slices asap_rows is checked in (rxradar.ingest.asap): DSP rows in runs of $slice_rows by
-- row number, each with the range of PAT rows its records can belong to (rows are numbered in
-- file order). One scan of asap_dsp for every slice; no rows, no slices.
SELECT min(row) AS dsp_from, max(row) AS dsp_to,
       coalesce(min(pat_row), 0) AS pat_from, coalesce(max(pat_row), -1) AS pat_to
FROM asap_dsp
GROUP BY row // $slice_rows
ORDER BY dsp_from
