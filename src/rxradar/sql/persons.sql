-- Persons, deterministic stage: identities with the same normalised last and first name, birth
-- date and sex are one person. Names are compared on their letters only (upper case; spaces,
-- hyphens, apostrophes and accents' base letters dropped), so "O'Brien" and "OBRIEN" agree. An
-- identity missing any of the four fields cannot be matched and is a person of its own.
-- person_id is a keyed hash (keyed_hash(): HMAC-SHA256 under the workspace key, registered by
-- rxradar.analytics.patients) of the match key: stable across runs and never a raw identifier. Probabilistic resolution replaces this stage, not its outputs.
CREATE OR REPLACE TEMP TABLE identity_persons AS
WITH keyed AS (
    SELECT identity_id, ingest_id, birth_date, sex, zip,
        regexp_replace(upper(strip_accents(coalesce(last_name, ''))), '[^A-Z]', '', 'g') AS last_key,
        regexp_replace(upper(strip_accents(coalesce(first_name, ''))), '[^A-Z]', '', 'g') AS first_key
    FROM identities
)
SELECT identity_id,
    CASE WHEN last_key <> '' AND first_key <> '' AND birth_date IS NOT NULL AND sex IN ('F', 'M')
         THEN 'person|' || last_key || '|' || first_key || '|' || strftime(birth_date, '%Y-%m-%d') || '|' || sex
         ELSE 'identity|' || identity_id END AS match_key,
    keyed_hash(match_key) AS person_id,
    CASE WHEN match_key LIKE 'person|%' THEN 'deterministic' ELSE 'unmatched' END AS method,
    ingest_id, birth_date, sex, zip
FROM keyed;

-- Where a ZIP is: the crosswalk's county with most of its residential addresses, else the
-- county registries put that ZIP in most often (prescriber and pharmacy addresses).
CREATE OR REPLACE TEMP TABLE zip_county AS
WITH crosswalk AS (
    SELECT zip, arg_max(county_fips, (res_ratio, county_fips)) AS county_fips
    FROM zip_counties GROUP BY zip
), registry AS (
    SELECT zip, arg_max(county_fips, (n, county_fips)) AS county_fips
    FROM (SELECT zip, county_fips, count(*) AS n
          FROM (SELECT zip, county_fips FROM prescribers UNION ALL SELECT zip, county_fips FROM pharmacies)
          WHERE zip IS NOT NULL AND county_fips IS NOT NULL GROUP BY ALL)
    GROUP BY zip
)
SELECT zip, coalesce(c.county_fips, r.county_fips) AS county_fips
FROM crosswalk AS c FULL JOIN registry AS r USING (zip);

-- One row per person: the ZIP most recently reported (people move), and its county. `pid` is a
-- dense integer for this run only: the row-level stages carry it instead of the 32-character
-- person_id, which at 100M fills is the difference between fitting in memory and spilling.
CREATE OR REPLACE TEMP TABLE persons AS
SELECT row_number() OVER (ORDER BY p.person_id)::INTEGER AS pid, p.person_id, p.method, p.identities, p.birth_date, year(p.birth_date) AS birth_year, p.sex, p.zip,
    z.county_fips
FROM (
    -- Birth date and sex are part of the match key (an identity without them is a person of its
    -- own), so every identity of a person has the same ones; only the ZIP needs choosing.
    SELECT person_id, any_value(method) AS method, count(*) AS identities,
        min(birth_date) AS birth_date, min(sex) AS sex,
        arg_max(zip, (zip IS NOT NULL, ingest_id, identity_id)) AS zip
    FROM identity_persons GROUP BY person_id
) AS p
LEFT JOIN zip_county AS z USING (zip);

CREATE OR REPLACE TEMP TABLE identity_persons AS
SELECT ip.*, p.pid FROM identity_persons AS ip JOIN persons AS p USING (person_id);
