-- Helpers for reading ASAP elements; variables are set by rxradar.ingest.asap. Elements arrive
-- split, trimmed of padding, and NULL when empty (rxradar.ingest.asap_scan).
CREATE OR REPLACE TEMP MACRO ccyymmdd(x) AS
    CASE WHEN regexp_full_match(x, '[0-9]{8}') THEN try_strptime(x, '%Y%m%d')::DATE END;
CREATE OR REPLACE TEMP MACRO whole(x) AS
    CASE WHEN regexp_full_match(x, '[0-9]{1,9}') THEN x::INTEGER END;
-- An SSN as SSA issues them: nine digits, area not 000, 666 or 9xx, group not 00, serial not
-- 0000. Placeholders such as 999999999 would otherwise link every patient who has one.
CREATE OR REPLACE TEMP MACRO issued_ssn(d) AS
    CASE WHEN regexp_full_match(d, '[0-9]{9}') AND left(d, 3) NOT IN ('000', '666') AND left(d, 1) <> '9'
              AND substr(d, 4, 2) <> '00' AND right(d, 4) <> '0000' THEN d END;
CREATE OR REPLACE TEMP MACRO flag(cond, k) AS
    CASE WHEN cond THEN (1::BIGINT << k) ELSE 0::BIGINT END;
