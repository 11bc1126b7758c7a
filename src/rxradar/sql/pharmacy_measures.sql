-- Raw measures per pharmacy for the period, from the period's opioid fills (opioid_rx, with early
-- refills marked by rx_opioid.sql), places (places.sql) and flagged_prescribers, the
-- prescribers the peer comparison flagged.
CREATE OR REPLACE TEMP TABLE pharmacy_measures AS
WITH pairs AS MATERIALIZED (  -- each pharmacy's patients, found once for the count and the travel
    SELECT pharmacy_id, pid FROM opioid_rx GROUP BY pharmacy_id, pid
), by_fill AS (
    SELECT pharmacy_id, count(*) AS opioid_rx, count(DISTINCT prescriber_id) AS prescribers,
        count(*) FILTER (WHERE dea_schedule = '2') AS schedule_ii_rx,
        count(*) FILTER (WHERE payment_type = '01') AS cash_rx, count(*) FILTER (WHERE early) AS early_refill_rx,
        count(*) FILTER (WHERE prescriber_id IN (SELECT prescriber_id FROM flagged_prescribers)) AS flagged_prescriber_rx,
        coalesce(sum(quantity), 0)::DOUBLE AS opioid_units
    FROM opioid_rx GROUP BY pharmacy_id
), travel AS (
    SELECT pairs.pharmacy_id, count(*) AS patients,
        median(miles(home.lat, home.lon, shop.lat, shop.lon)) AS median_patient_miles
    FROM pairs
    LEFT JOIN person_places AS home USING (pid)
    LEFT JOIN pharmacy_places AS shop USING (pharmacy_id)
    GROUP BY pairs.pharmacy_id
)
SELECT f.pharmacy_id, pl.county_fips, coalesce(pl.chain_known, false) AS chain_known, pl.county_population,
    f.opioid_rx, t.patients, f.prescribers, f.schedule_ii_rx, f.cash_rx, f.early_refill_rx, f.flagged_prescriber_rx,
    f.opioid_units, t.median_patient_miles
FROM by_fill AS f
LEFT JOIN pharmacy_places AS pl USING (pharmacy_id)
LEFT JOIN travel AS t USING (pharmacy_id);
