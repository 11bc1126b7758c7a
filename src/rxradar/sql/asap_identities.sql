-- One row per patient identity (as spelled) among the files' kept records; restricted table.
-- Where one identity was reported with different addresses, its first report in the batch wins.
SELECT p.identity_id, p.pat07 AS last_name, p.pat08 AS first_name, p.pat09 AS middle_name,
       p.pat11 AS name_suffix, p.birth_date, p.sex, nullif(concat_ws(' ', p.pat12, p.pat13), '') AS address,
       p.pat14 AS city, p.pat15 AS state, p.zip5 AS zip, p.pat17 AS phone, p.pat02 AS id_qualifier, p.id_hash,
       first_report.ingest_id
FROM (SELECT min(pat_row) AS pat_row, arg_min(ingest_id, pat_row) AS ingest_id FROM asap_kept GROUP BY identity_id)
     AS first_report
JOIN asap_patients AS p USING (pat_row)
