-- Raw measures per prescriber for the period, from the period's opioid fills
-- (opioid_rx), resolved persons and patient indicators. Peer comparison, shrinkage and flags are
-- done on these aggregates (analytics/peers.py). Distances are great-circle miles between
-- county internal points (Census Gazetteer) or the pharmacy's own coordinates; a patient's
-- county comes from the ZIP reported for them (persons.sql), a prescriber's from the registry or
-- else the practice ZIP.
CREATE OR REPLACE MACRO miles(lat1, lon1, lat2, lon2) AS
    2 * 3958.8 * asin(sqrt(pow(sin(radians(lat2 - lat1) / 2), 2)
        + cos(radians(lat1)) * cos(radians(lat2)) * pow(sin(radians(lon2 - lon1) / 2), 2)));

CREATE OR REPLACE TEMP TABLE prescriber_measures AS
WITH pairs AS (
    SELECT pp.prescriber_id, pp.mme, datesub('year', p.birth_date, pp.first_fill) AS age,
        miles(pc.lat, pc.lon, rc.lat, rc.lon) AS distance,
        coalesce(pi.opioid_prescribers, 0) > 1 AS sees_others
    FROM prescriber_patients AS pp
    JOIN persons AS p USING (pid)
    LEFT JOIN patient_indicators AS pi USING (pid)
    LEFT JOIN prescribers AS pr ON pr.prescriber_id = pp.prescriber_id
    LEFT JOIN ref_counties AS pc ON pc.fips = p.county_fips
    LEFT JOIN zip_county AS pz ON pz.zip = pr.zip
    LEFT JOIN ref_counties AS rc ON rc.fips = coalesce(pr.county_fips, pz.county_fips)
), by_patient AS (
    SELECT prescriber_id, count(*) AS patients, avg(age) AS mean_patient_age,
        median(distance) AS median_patient_miles, count(*) FILTER (WHERE sees_others) AS patients_seeing_others,
        -- From exact DECIMAL sums: a parallel floating-point var_samp differs in its last digits
        -- from run to run, and every number here must be reproducible.
        ((sum(mme * mme) - sum(mme) * sum(mme) / count(*)) / nullif(count(*) - 1, 0))::DOUBLE AS mme_per_patient_variance
    FROM pairs GROUP BY prescriber_id
), by_fill AS (
    SELECT prescriber_id, count(*) AS opioid_rx, coalesce(sum(mme_per_day * days_supply), 0)::DOUBLE AS mme_total,
        count(*) FILTER (WHERE mme_per_day >= getvariable('high_dose_mme')) AS high_dose_rx,
        count(*) FILTER (WHERE long_acting) AS long_acting_rx,
        count(*) FILTER (WHERE payment_type = '01') AS cash_rx
    FROM opioid_rx WHERE prescriber_id IS NOT NULL GROUP BY prescriber_id
)
SELECT f.prescriber_id, pr.specialty, pr.state, coalesce(pr.county_fips, pz.county_fips) AS county_fips, b.patients, f.opioid_rx, f.mme_total,
    f.mme_total / b.patients AS mme_per_patient, b.mme_per_patient_variance, f.high_dose_rx, f.long_acting_rx,
    f.cash_rx, b.mean_patient_age, b.median_patient_miles, b.patients_seeing_others
FROM by_fill AS f
JOIN by_patient AS b USING (prescriber_id)
LEFT JOIN prescribers AS pr USING (prescriber_id)
LEFT JOIN zip_county AS pz ON pz.zip = pr.zip;

-- Per prescriber and calendar month, for decile charts and the three-month top-decile rule.
CREATE OR REPLACE TEMP TABLE prescriber_months AS
SELECT prescriber_id, date_trunc('month', fill_date)::DATE AS month, count(*) AS opioid_rx,
    count(DISTINCT pid) AS patients, coalesce(sum(mme_per_day * days_supply), 0)::DOUBLE AS mme_total
FROM opioid_rx WHERE prescriber_id IS NOT NULL
GROUP BY ALL;
