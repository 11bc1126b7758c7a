-- The patients of the loaded ASAP files, one row per PAT segment, pseudonymised: the identity
-- key (name, birth date, sex, ZIP) and the patient ID are kept only as keyed hashes, by
-- keyed_hash(), HMAC-SHA256 under the workspace key (rxradar.privacy.keyed_hashes, registered
-- by rxradar.ingest.asap for the load).
-- Inputs: segment table asap_pat (rxradar.ingest.asap_scan); macros from asap_macros.sql;
-- variable asap_max_age_years (a birth date further back, or in the future, is not kept).
CREATE OR REPLACE TEMP TABLE asap_patients AS
SELECT * EXCLUDE (identity_key, id_key), keyed_hash(identity_key) AS identity_id, keyed_hash(id_key) AS id_hash
FROM (
    SELECT * EXCLUDE (pat03),
           -- The identity key: every part keeps its slot when empty, so fields never shift.
           concat_ws('|', coalesce(upper(pat07), ''), coalesce(upper(pat08), ''),
                     coalesce(upper(left(pat09, 1)), ''), coalesce(strftime(birth_date, '%Y-%m-%d'), ''),
                     sex, coalesce(zip5, '')) AS identity_key,
           -- An SSN (PAT02 = 07) is hashed as its nine digits alone, as death records' SSNs
           -- are, so the two link deterministically; other IDs keep issuer and qualifier.
           CASE WHEN pat03 IS NULL THEN NULL
                WHEN pat02 = '07' THEN issued_ssn(regexp_replace(pat03, '[^0-9]', '', 'g'))
                ELSE concat_ws('|', coalesce(pat01, ''), coalesce(pat02, ''), pat03) END AS id_key,
           (upper(pat07) = 'REPORT' AND upper(pat08) = 'ZERO') IS TRUE AS zero_report
    FROM (
        SELECT row AS pat_row, pos AS pat_pos, line AS pat_line, nul AS pat_nul, pat01, pat02, pat03, pat07, pat08,
               pat09, pat11, pat12, pat13, pat14, pat15, pat17,
               ccyymmdd(pat18) AS birth_parsed,
               CASE WHEN ccyymmdd(pat18) BETWEEN current_date - to_years(getvariable('asap_max_age_years')::INTEGER)
                                             AND current_date
                    THEN ccyymmdd(pat18) END AS birth_date,
               upper(pat19) AS pat19,
               CASE WHEN upper(pat19) IN ('F', 'M', 'U') THEN upper(pat19) ELSE 'U' END AS sex,
               pat20, pat21,
               left(replace(pat16, '-', ''), 5) AS zip5
        FROM asap_pat
    )
);
