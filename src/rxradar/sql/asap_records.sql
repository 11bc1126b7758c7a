-- Two tables from the loaded ASAP file: asap_pat, one row per PAT segment, pseudonymised; and
-- asap_rows, one row per DSP segment with its pharmacy (PHA), patient (PAT) and prescriber
-- (PRE), typed and checked. Problems are bits of problem_bits (rules in asap_rules below); a
-- record breaking a 'rejected' rule is not kept. Patient text stays in asap_pat (written once per
-- patient, not once per fill), so asap_rows holds only what dispensations and checks need.
--
-- Inputs: temp table asap_seg (asap_load.sql), holding one or more files, each opened by a
-- marker segment 'RXRADAR-FILE*<file_no>' in place of its TH; table asap_files(file_no,
-- ingest_id, source_file, asap_version, file_created, legacy_partial, tcn) describing each file;
-- tables id_checks(v, npi_ok, dea_ok, ncpdp_ok) and ndc_checks(v, ndc11, status) computed once
-- per distinct value; variables asap_max_days, hmac_inner, hmac_outer; macros from asap_macros.sql.
-- Positions: rowid is the position in the batch; a segment's number in its file is
-- rowid - file_pos + 1 (the marker stands where the file's TH, segment 1, was).
-- The latest PHA/PAT before each DSP come from a running maximum over positions (a narrow
-- window, much cheaper than an ASOF join of wide rows); PRE is the segment right after DSP.
-- The checks on each ASAP record, as data: bit k of a record's problem_bits is rule k
-- (its condition is the k-th flag() at the end of this file). Severity 'rejected' means the
-- record is not kept; 'warning' means it is kept and the warning is stored with the rejects.
CREATE OR REPLACE TEMP TABLE asap_rules AS
SELECT * FROM (VALUES
    (0, 'PHA', 'rejected', 'DSP is not inside a pharmacy (no PHA before it)'),
    (1, 'PAT', 'rejected', 'DSP has no PAT segment for its patient under this pharmacy'),
    (2, 'PRE', 'rejected', 'DSP is not followed by its PRE (prescriber) segment'),
    (3, 'DSP01', 'rejected', 'reporting status must be 00 (new), 01 (revise) or 02 (void)'),
    (4, 'PHA01', 'rejected', 'pharmacy has no valid NPI, NCPDP or DEA number'),
    (5, 'DSP02', 'rejected', 'prescription number is missing'),
    (6, 'DSP05', 'rejected', 'date filled is missing or not a valid CCYYMMDD date'),
    (7, 'DSP05', 'warning', 'date filled is after the file was created'),
    (8, 'DSP06', 'rejected', 'refill number is missing or not a whole number'),
    (9, 'DSP13', 'rejected', 'partial fill indicator is not valid for the file''s ASAP version'),
    (10, 'PRE01', 'rejected', 'prescriber NPI fails the check digit (Luhn with 80840)'),
    (11, 'PRE02', 'rejected', 'prescriber has no NPI and no valid DEA number'),
    (12, 'PRE02', 'warning', 'prescriber DEA number fails its check digit'),
    (13, 'DSP08', 'rejected', 'product ID is not an NDC (11 digits, or hyphenated 4-4-2, 5-3-2, 5-4-1)'),
    (14, 'DSP08', 'warning', '10-digit NDC without hyphens is ambiguous and matches no single known NDC; kept without ndc11'),
    (15, 'DSP08', 'warning', '10-digit NDC without hyphens resolved to the one reading found in the CDC NDC file'),
    (16, 'DSP08', 'warning', 'NDC is not in the CDC opioid/benzodiazepine/MOUD reference; no MME'),
    (17, 'DSP09', 'rejected', 'quantity dispensed is missing, zero or not a number'),
    (18, 'DSP10', 'rejected', 'days supply is missing'),
    (19, 'DSP10', 'rejected', 'days supply is not a whole number'),
    (20, 'DSP10', 'rejected', 'days supply must be between 1 and ' || getvariable('asap_max_days')),
    (21, 'PAT07', 'rejected', 'patient last or first name is missing'),
    (22, 'DSP03', 'warning', 'date written is not a valid date'),
    (23, 'DSP03', 'warning', 'date written is after date filled'),
    (24, 'PAT18', 'warning', 'patient date of birth is missing or invalid; kept'),
    (25, 'PAT19', 'warning', 'gender code is not F, M or U; set to U'),
    (26, 'PAT', 'rejected', 'an unreadable segment stands between this DSP and its PAT; the patient is uncertain')
) AS r(bit, field, severity, reason);

CREATE OR REPLACE TEMP TABLE asap_pat AS
SELECT * EXCLUDE (pos), pos AS pat_pos,
       -- The identity key: every part keeps its slot when empty, so fields never shift.
       keyed_hash(concat_ws('|', coalesce(upper(pat07), ''), coalesce(upper(pat08), ''),
                            coalesce(upper(left(pat09, 1)), ''), coalesce(strftime(birth_date, '%Y-%m-%d'), ''),
                            sex, coalesce(zip5, ''))) AS identity_id,
       -- An SSN (PAT02 = 07) is hashed as its nine digits alone, as death records' SSNs
       -- are, so the two link deterministically; other IDs keep issuer and qualifier.
       keyed_hash(CASE WHEN pat03 IS NULL THEN NULL
                       WHEN pat02 = '07' THEN issued_ssn(regexp_replace(pat03, '[^0-9]', '', 'g'))
                       ELSE concat_ws('|', coalesce(pat01, ''), coalesce(pat02, ''), pat03) END) AS id_hash,
       (upper(pat07) = 'REPORT' AND upper(pat08) = 'ZERO') IS TRUE AS zero_report
FROM (
    SELECT rowid AS pos, el(c1) AS pat01, el(c2) AS pat02, el(c3) AS pat03, el(c7) AS pat07, el(c8) AS pat08,
           el(c9) AS pat09, el(c11) AS pat11, el(c12) AS pat12, el(c13) AS pat13, el(c14) AS pat14,
           el(c15) AS pat15, el(c17) AS pat17,
           ccyymmdd(el(c18)) AS birth_date,
           upper(el(c19)) AS pat19,
           CASE WHEN upper(el(c19)) IN ('F', 'M', 'U') THEN upper(el(c19)) ELSE 'U' END AS sex,
           el(c20) AS pat20, el(c21) AS pat21,
           left(replace(el(c16), '-', ''), 5) AS zip5
    FROM asap_seg WHERE c0 = 'PAT'
);

CREATE OR REPLACE TEMP TABLE asap_rows AS
WITH hierarchy AS (
    -- For every segment, the latest file marker, PHA and PAT at or before it (narrow rows keep
    -- this cheap); a PHA or PAT from an earlier file in the batch does not count.
    SELECT pos, c0, file_pos,
           CASE WHEN pha_pos > file_pos THEN pha_pos END AS pha_pos,
           CASE WHEN pat_pos > file_pos THEN pat_pos END AS pat_pos,
           CASE WHEN unreadable_pos > file_pos THEN unreadable_pos END AS unreadable_pos
    FROM (
        SELECT rowid AS pos, c0,
               max(CASE WHEN c0 = 'RXRADAR-FILE' THEN rowid END) OVER upto AS file_pos,
               max(CASE WHEN c0 = 'PHA' THEN rowid END) OVER upto AS pha_pos,
               max(CASE WHEN c0 = 'PAT' THEN rowid END) OVER upto AS pat_pos,
               max(CASE WHEN c0 IS NULL OR c0 NOT IN ('RXRADAR-FILE', 'IS', 'PHA', 'PAT', 'DSP', 'PRE', 'CDI', 'AIR',
                                                     'TP', 'TT')
                        THEN rowid END) OVER upto AS unreadable_pos
        FROM asap_seg
        WINDOW upto AS (ORDER BY rowid ROWS UNBOUNDED PRECEDING)
    )
),
files AS (
    SELECT m.file_pos, f.* FROM (SELECT rowid AS file_pos, c1::INTEGER AS file_no FROM asap_seg
                                 WHERE c0 = 'RXRADAR-FILE') AS m
    JOIN asap_files AS f USING (file_no)
),
pha AS (
    SELECT pha_pos, CASE WHEN n.npi_ok THEN pha01 WHEN c.ncpdp_ok THEN pha02 WHEN d.dea_ok THEN pha03 END AS pharmacy_id
    FROM (SELECT rowid AS pha_pos, el(c1) AS pha01, el(c2) AS pha02, el(c3) AS pha03 FROM asap_seg WHERE c0 = 'PHA') AS p
    LEFT JOIN id_checks AS n ON n.v = p.pha01
    LEFT JOIN id_checks AS c ON c.v = p.pha02
    LEFT JOIN id_checks AS d ON d.v = p.pha03
),
pat AS (
    SELECT pat_pos, identity_id, zero_report AS pat_zero_report, pat07 IS NULL OR pat08 IS NULL AS name_missing,
           birth_date IS NULL AS birth_missing, pat19, pat20, pat21
    FROM asap_pat
),
pre AS (
    SELECT rowid AS pre_pos, el(c1) AS pre01, el(c2) AS pre02 FROM asap_seg WHERE c0 = 'PRE'
),
dsp AS (
    SELECT rowid AS pos,
           coalesce(el(c1), '00') AS dsp01,  -- ASAP 4.0 left DSP01 blank for a new record
           el(c2) AS dsp02, el(c3) AS dsp03, el(c4) AS dsp04, el(c5) AS dsp05, el(c6) AS dsp06,
           el(c7) AS dsp07, el(c8) AS dsp08, el(c9) AS dsp09, el(c10) AS dsp10, el(c11) AS dsp11,
           el(c12) AS dsp12, el(c13) AS dsp13, el(c16) AS dsp16, el(c17) AS dsp17, el(c24) AS dsp24,
           el(c25) AS dsp25
    FROM asap_seg WHERE c0 = 'DSP'
),
joined AS (
    -- record_number is the DSP's segment number in the file: unique, in file order, and what
    -- a pharmacy needs to find the record.
    SELECT dsp.*, h.pos - h.file_pos + 1 AS record_number, h.unreadable_pos, h.pha_pos AS pha_pos, pha.pharmacy_id,
           pat.*, pre.*, files.file_pos, files.file_no, files.ingest_id, files.source_file, files.asap_version,
           files.file_created, files.legacy_partial
    FROM hierarchy AS h
    JOIN dsp ON dsp.pos = h.pos
    JOIN files ON files.file_pos = h.file_pos
    LEFT JOIN pha ON pha.pha_pos = h.pha_pos
    LEFT JOIN pat ON pat.pat_pos = h.pat_pos
    LEFT JOIN pre ON pre.pre_pos = h.pos + 1
    WHERE h.c0 = 'DSP'
),
typed AS (
    SELECT j.*,
           coalesce(pat_zero_report, false) AS zero_report,
           dsp01 = '02' AS is_void,
           pat_pos IS NOT NULL AND pat_pos > coalesce(pha_pos, -1) AS has_pat,
           coalesce(c_pre01.npi_ok, false) AS npi_ok,
           coalesce(c_pre02.dea_ok, false) AS dea_ok,
           CASE WHEN c_pre01.npi_ok THEN pre01
                WHEN pre01 IS NULL AND c_pre02.dea_ok THEN pre02 END AS prescriber_id,
           ccyymmdd(dsp05) AS fill_date,
           ccyymmdd(dsp03) AS written_date,
           ccyymmdd(dsp17) AS sold_date,
           whole(dsp04) AS refills_authorized,
           whole(dsp06) AS refill_number,
           CASE WHEN legacy_partial  -- 4.0/4.1: 01 yes, 02 no
                THEN CASE WHEN dsp13 IS NULL OR dsp13 IN ('02', '00') THEN 0 WHEN dsp13 = '01' THEN 1 END
                ELSE CASE WHEN dsp13 IS NULL THEN 0 WHEN regexp_full_match(dsp13, '[0-9]{1,3}') THEN dsp13::INTEGER END
           END AS partial_fill,
           c_ndc.ndc11 AS ndc11,
           coalesce(c_ndc.status, 'missing') AS ndc_status,
           CASE WHEN regexp_full_match(dsp09, '[0-9]*\.?[0-9]+') AND try_cast(dsp09 AS DOUBLE) > 0
                THEN dsp09::DOUBLE END AS quantity,
           whole(dsp10) AS days_supply
    FROM joined AS j
    LEFT JOIN id_checks AS c_pre01 ON c_pre01.v = j.pre01
    LEFT JOIN id_checks AS c_pre02 ON c_pre02.v = j.pre02
    LEFT JOIN ndc_checks AS c_ndc ON c_ndc.v = j.dsp08
)
SELECT *,
    -- One bit per rule of asap_rules above, in the same order. A void needs only the elements
    -- that identify the record it cancels, so the content checks skip voids.
        flag(pha_pos IS NULL, 0) |
        flag(NOT has_pat, 1) |
        flag(pre_pos IS NULL, 2) |
        flag(dsp01 NOT IN ('00', '01', '02'), 3) |
        flag(pha_pos IS NOT NULL AND pharmacy_id IS NULL, 4) |
        flag(dsp02 IS NULL, 5) |
        flag(fill_date IS NULL, 6) |
        flag(fill_date > file_created::DATE, 7) |
        flag(refill_number IS NULL, 8) |
        flag(partial_fill IS NULL, 9) |
        flag(NOT is_void AND pre_pos IS NOT NULL AND pre01 IS NOT NULL AND NOT npi_ok, 10) |
        flag(NOT is_void AND pre_pos IS NOT NULL AND pre01 IS NULL AND NOT dea_ok, 11) |
        flag(NOT is_void AND npi_ok AND pre02 IS NOT NULL AND NOT dea_ok, 12) |
        flag(NOT is_void AND coalesce(dsp07, '01') <> '06' AND ndc_status IN ('missing', 'invalid'), 13) |
        flag(NOT is_void AND ndc_status = 'ambiguous', 14) |
        flag(NOT is_void AND ndc_status = 'resolved', 15) |
        flag(NOT is_void AND ndc_status = 'unknown', 16) |
        flag(NOT is_void AND quantity IS NULL, 17) |
        flag(NOT is_void AND dsp10 IS NULL, 18) |
        flag(NOT is_void AND dsp10 IS NOT NULL AND days_supply IS NULL, 19) |
        flag(NOT is_void AND (days_supply <= 0 OR days_supply > getvariable('asap_max_days')), 20) |
        flag(NOT is_void AND has_pat AND name_missing, 21) |
        flag(NOT is_void AND dsp03 IS NOT NULL AND written_date IS NULL, 22) |
        flag(written_date > fill_date, 23) |
        flag(NOT is_void AND has_pat AND birth_missing, 24) |
        flag(NOT is_void AND has_pat AND (pat19 IS NULL OR pat19 NOT IN ('F', 'M', 'U')), 25) |
        flag(unreadable_pos > pat_pos, 26) AS problem_bits
FROM typed;
