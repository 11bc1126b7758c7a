-- Helpers for reading ASAP elements; variables are set by rxradar.ingest.asap. Elements arrive
-- without terminators (rxradar.ingest.asap.prepare) and an empty element reads as NULL.
CREATE OR REPLACE TEMP MACRO ccyymmdd(x) AS
    CASE WHEN regexp_full_match(x, '[0-9]{8}') THEN try_strptime(x, '%Y%m%d')::DATE END;
CREATE OR REPLACE TEMP MACRO whole(x) AS
    CASE WHEN regexp_full_match(x, '[0-9]{1,9}') THEN x::INTEGER END;
-- HMAC-SHA256 (RFC 2104) with the workspace key's pads; equal to rxradar.privacy.Pseudonymiser.
CREATE OR REPLACE TEMP MACRO keyed_hash(x) AS
    left(sha256(getvariable('hmac_outer') || unhex(sha256(getvariable('hmac_inner') || encode(x)))), 32);
CREATE OR REPLACE TEMP MACRO flag(cond, k) AS
    CASE WHEN cond THEN (1::BIGINT << k) ELSE 0::BIGINT END;

