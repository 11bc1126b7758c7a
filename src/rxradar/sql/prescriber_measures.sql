-- Raw measures per prescriber for the period, from the period's opioid fills (opioid_rx), each
-- prescriber's patients (prescriber_patients), patient indicators and places (places.sql). Peer
-- comparison, shrinkage and flags are done on these aggregates (analytics/peers.py).
-- What the measures need of each patient, joined once per person (millions) rather than once per
-- prescriber-patient pair (tens of millions at state scale).
CREATE OR REPLACE TEMP TABLE patient_facts AS
SELECT p.pid, p.birth_date, home.lat, home.lon, coalesce(pi.opioid_prescribers, 0) > 1 AS sees_others
FROM persons AS p
LEFT JOIN patient_indicator_rows AS pi USING (pid)
LEFT JOIN person_places AS home USING (pid);

CREATE OR REPLACE TEMP TABLE prescriber_measures AS
WITH pairs AS (
    SELECT pp.prescriber_id, pp.mme, datesub('year', p.birth_date, pp.first_fill) AS age,
        miles(p.lat, p.lon, office.lat, office.lon) AS distance, p.sees_others
    FROM prescriber_patients AS pp
    JOIN patient_facts AS p USING (pid)
    LEFT JOIN prescriber_places AS office ON office.prescriber_id = pp.prescriber_id
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
SELECT f.prescriber_id, pl.specialty, pl.state, pl.county_fips, b.patients, f.opioid_rx, f.mme_total,
    f.mme_total / b.patients AS mme_per_patient, b.mme_per_patient_variance, f.high_dose_rx, f.long_acting_rx,
    f.cash_rx, b.mean_patient_age, b.median_patient_miles, b.patients_seeing_others
FROM by_fill AS f
JOIN by_patient AS b USING (prescriber_id)
LEFT JOIN prescriber_places AS pl USING (prescriber_id);

-- Per prescriber and calendar month, for decile charts and the three-month top-decile rule.
CREATE OR REPLACE TEMP TABLE prescriber_months AS
SELECT prescriber_id, date_trunc('month', fill_date)::DATE AS month, count(*) AS opioid_rx,
    count(DISTINCT pid) AS patients, coalesce(sum(mme_per_day * days_supply), 0)::DOUBLE AS mme_total
FROM opioid_rx WHERE prescriber_id IS NOT NULL
GROUP BY ALL;
