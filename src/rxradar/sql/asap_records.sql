-- asap_rows (assembled from asap_rows_of_slice below by rxradar.ingest.asap), one row per DSP
-- segment of the loaded ASAP files with its pharmacy (PHA), patient (PAT) and prescriber (PRE),
-- typed and checked. Problems are bits of problem_bits (rules in asap_rules below); a record
-- breaking a 'rejected' rule is not kept. Patient text stays in
-- asap_patients (one row per PAT, pseudonymised: asap_patient_keys.sql), so asap_rows holds only
-- what dispensations and checks need.
--
-- Inputs: the segment tables asap_pha, asap_pat, asap_dsp, asap_pre (rxradar.ingest.asap_scan:
-- one row per segment with its elements, its batch-wide row number, its segment number `pos` in
-- its file, its line, and its parent's row: a PAT's PHA, a DSP's PAT and PHA, a PRE's DSP);
-- asap_patients;
-- table asap_files(file_no, ingest_id, source_file, asap_version, file_created, legacy_partial,
-- tcn, segments) describing each file; tables id_checks(v, npi_ok, dea_ok, ncpdp_ok) and
-- ndc_checks(v, ndc11, status) computed once per distinct value; variables asap_max_days,
-- asap_max_quantity, asap_earliest_date and asap_future_days (plausible bounds, from settings);
-- macros from asap_macros.sql. Reasons name the element and the rule, never a value: they are
-- shown to everyone who may read rejects.
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
    (26, 'PAT', 'rejected', 'an unreadable segment stands between this DSP and its PAT; the patient is uncertain'),
    (27, 'DSP', 'rejected', 'the DSP segment holds a NUL byte and cannot be read'),
    (28, 'PAT', 'rejected', 'the patient''s PAT segment holds a NUL byte and cannot be read'),
    (29, 'PRE', 'rejected', 'the PRE segment holds a NUL byte and cannot be read'),
    (30, 'PHA', 'rejected', 'the pharmacy''s PHA segment holds a NUL byte and cannot be read'),
    (31, 'DSP09', 'rejected', 'quantity dispensed is above the plausible maximum of '
                              || getvariable('asap_max_quantity') || ' (setting max_quantity)'),
    (32, 'DSP05', 'rejected', 'date filled is before ' || getvariable('asap_earliest_date')
                              || ', the earliest plausible date (setting earliest_asap_date)'),
    (33, 'DSP05', 'rejected', 'date filled is more than ' || getvariable('asap_future_days')
                              || ' days after the file was created (setting max_days_after_file)'),
    (34, 'DSP03', 'warning', 'date written is outside the plausible dates; kept without it'),
    (35, 'PAT18', 'warning', 'patient date of birth is outside the plausible dates; kept without it')
) AS r(bit, field, severity, reason);

-- asap_rows_of_slice is asap_rows for the DSP rows numbered asap_dsp_from..asap_dsp_to (and the
-- PAT rows asap_pat_from..asap_pat_to they can belong to): a batch too large for the engine's
-- memory is checked a slice at a time (rxradar.ingest.asap), each slice's hash tables small.
CREATE OR REPLACE TEMP VIEW asap_rows_of_slice AS
WITH pha AS (
    SELECT p.row AS pha_row, p.pos AS pha_pos, p.line AS pha_line, p.nul AS pha_nul,
           CASE WHEN n.npi_ok THEN p.pha01 WHEN c.ncpdp_ok THEN p.pha02 WHEN d.dea_ok THEN p.pha03 END AS pharmacy_id
    FROM asap_pha AS p
    LEFT JOIN id_checks AS n ON n.v = p.pha01
    LEFT JOIN id_checks AS c ON c.v = p.pha02
    LEFT JOIN id_checks AS d ON d.v = p.pha03
),
pat AS (
    SELECT pat_row, pat_pos, pat_line, identity_id, zero_report AS pat_zero_report,
           pat07 IS NULL OR pat08 IS NULL AS name_missing, birth_parsed IS NULL AS birth_missing,
           birth_parsed IS NOT NULL AND birth_date IS NULL AS birth_implausible, pat_nul, pat19, pat20, pat21
    FROM asap_patients
    WHERE pat_row BETWEEN getvariable('asap_pat_from') AND getvariable('asap_pat_to')
),
pre AS (
    SELECT e.row AS pre_row, e.dsp_row, e.pos AS pre_pos, e.line AS pre_line, e.nul AS pre_nul, e.pre01, e.pre02,
           coalesce(n.npi_ok, false) AS npi_ok, coalesce(d.dea_ok, false) AS dea_ok
    FROM asap_pre AS e
    LEFT JOIN id_checks AS n ON n.v = e.pre01
    LEFT JOIN id_checks AS d ON d.v = e.pre02
    WHERE e.dsp_row BETWEEN getvariable('asap_dsp_from') AND getvariable('asap_dsp_to')
),
joined AS (
    -- record_number is the DSP's segment number in the file: unique, in file order, and what
    -- a pharmacy needs to find the record.
    SELECT d.row AS dsp_row, d.pos AS record_number, d.line, d.unreadable, d.nul AS dsp_nul, d.pat_row, d.pha_row,
           coalesce(d.dsp01, '00') AS dsp01,  -- ASAP 4.0 left DSP01 blank for a new record
           d.dsp02, d.dsp03, d.dsp04, d.dsp05, d.dsp06, d.dsp07, d.dsp08, d.dsp09, d.dsp10, d.dsp11, d.dsp12,
           d.dsp13, d.dsp16, d.dsp17, d.dsp24, d.dsp25,
           pha.pha_pos, pha.pha_line, pha.pharmacy_id, pha.pha_nul,
           pat.* EXCLUDE (pat_row), pre.* EXCLUDE (dsp_row),
           f.file_no, f.ingest_id, f.source_file, f.asap_version, f.file_created, f.legacy_partial
    FROM asap_dsp AS d
    JOIN asap_files AS f USING (file_no)
    LEFT JOIN pha ON pha.pha_row = d.pha_row
    LEFT JOIN pat ON pat.pat_row = d.pat_row
    LEFT JOIN pre ON pre.dsp_row = d.row
    WHERE d.row BETWEEN getvariable('asap_dsp_from') AND getvariable('asap_dsp_to')
),
typed AS (
    SELECT j.*,
           coalesce(pat_zero_report, false) AS zero_report,
           dsp01 = '02' AS is_void,
           pat_row IS NOT NULL AS has_pat,
           CASE WHEN npi_ok THEN pre01
                WHEN pre01 IS NULL AND dea_ok THEN pre02 END AS prescriber_id,
           ccyymmdd(dsp05) AS fill_date,
           ccyymmdd(dsp03) AS written_parsed,
           -- No date can come later than the file (or today, if the file's date is later or unknown)
           -- by more than a sender's clock may be off.
           least(coalesce(file_created::DATE, current_date), current_date)
               + getvariable('asap_future_days')::INTEGER AS latest_date,
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
                THEN try_cast(dsp09 AS DOUBLE) END AS quantity,
           whole(dsp10) AS days_supply
    FROM joined AS j
    LEFT JOIN ndc_checks AS c_ndc ON c_ndc.v = j.dsp08
),
bounded AS (
    SELECT * EXCLUDE (written_parsed),
           CASE WHEN written_parsed BETWEEN getvariable('asap_earliest_date')::DATE AND latest_date
                THEN written_parsed END AS written_date,
           written_parsed IS NOT NULL
               AND written_parsed NOT BETWEEN getvariable('asap_earliest_date')::DATE AND latest_date
               AS written_implausible
    FROM typed
),
flagged AS (
    SELECT *,
        -- One bit per rule of asap_rules above, in the same order. A void needs only the elements
        -- that identify the record it cancels, so the content checks skip voids.
            flag(pha_row IS NULL, 0) |
            flag(NOT has_pat, 1) |
            flag(pre_row IS NULL, 2) |
            flag(dsp01 NOT IN ('00', '01', '02'), 3) |
            flag(pha_row IS NOT NULL AND pharmacy_id IS NULL, 4) |
            flag(dsp02 IS NULL, 5) |
            flag(fill_date IS NULL, 6) |
            flag(fill_date > file_created::DATE AND fill_date <= latest_date, 7) |
            flag(refill_number IS NULL, 8) |
            flag(partial_fill IS NULL, 9) |
            flag(NOT is_void AND pre_row IS NOT NULL AND pre01 IS NOT NULL AND NOT npi_ok, 10) |
            flag(NOT is_void AND pre_row IS NOT NULL AND pre01 IS NULL AND NOT dea_ok, 11) |
            flag(NOT is_void AND npi_ok AND pre02 IS NOT NULL AND NOT dea_ok, 12) |
            flag(NOT is_void AND coalesce(dsp07, '01') <> '06' AND ndc_status IN ('missing', 'invalid'), 13) |
            flag(NOT is_void AND ndc_status = 'ambiguous', 14) |
            flag(NOT is_void AND ndc_status = 'resolved', 15) |
            flag(NOT is_void AND ndc_status = 'unknown', 16) |
            flag(NOT is_void AND quantity IS NULL, 17) |
            flag(NOT is_void AND dsp10 IS NULL, 18) |
            flag(NOT is_void AND days_supply IS NULL AND dsp10 IS NOT NULL AND NOT regexp_full_match(dsp10, '[0-9]+'),
                 19) |
            -- digits too many for a number are out of range too, not "not a number"
            flag(NOT is_void AND (days_supply <= 0 OR days_supply > getvariable('asap_max_days')
                                  OR (days_supply IS NULL AND regexp_full_match(dsp10, '[0-9]+'))), 20) |
            flag(NOT is_void AND has_pat AND name_missing, 21) |
            flag(NOT is_void AND dsp03 IS NOT NULL AND written_date IS NULL AND NOT written_implausible, 22) |
            flag(written_date > fill_date AND fill_date BETWEEN getvariable('asap_earliest_date')::DATE AND latest_date,
                 23) |
            flag(NOT is_void AND has_pat AND birth_missing, 24) |
            flag(NOT is_void AND has_pat AND (pat19 IS NULL OR pat19 NOT IN ('F', 'M', 'U')), 25) |
            flag(has_pat AND unreadable, 26) |
            flag(dsp_nul, 27) |
            flag(pat_nul, 28) |
            flag(pre_nul, 29) |
            flag(pha_nul, 30) |
            flag(NOT is_void AND quantity > getvariable('asap_max_quantity'), 31) |
            flag(fill_date < getvariable('asap_earliest_date')::DATE, 32) |
            flag(fill_date > latest_date, 33) |
            flag(NOT is_void AND written_implausible, 34) |
            flag(NOT is_void AND has_pat AND birth_implausible, 35) AS problem_bits
    FROM bounded
)
-- What later statements read (dispensations, identities, providers, rejects, counts): the raw
-- text behind typed values and the inputs of the checks stay behind.
SELECT * EXCLUDE (dsp03, dsp04, dsp05, dsp06, dsp07, dsp09, dsp10, dsp13, dsp17, unreadable, name_missing,
                  birth_missing, birth_implausible, written_implausible, latest_date, dsp_nul, pat_nul, pre_nul,
                  pha_nul, pat19, pat_zero_report, npi_ok, dea_ok, legacy_partial, is_void, has_pat, ndc_status),
       NOT zero_report
       AND problem_bits & (SELECT coalesce(bit_or(1::BIGINT << bit), 0) FROM asap_rules WHERE severity = 'rejected') = 0
       AS kept
FROM flagged;
