-- Raw measures per pharmacy for the period (see prescriber_measures.sql for distances); needs
-- flagged_prescribers, the prescribers the peer comparison flagged.
-- Early refills are marked on opioid_rx (rx_opioid.sql).
CREATE OR REPLACE TEMP TABLE pharmacy_measures AS
WITH f AS (
    SELECT * FROM opioid_rx
), pairs AS (
    SELECT f.pharmacy_id, f.pid,
        any_value(coalesce(miles(pc.lat, pc.lon, ph.lat, ph.lon), miles(pc.lat, pc.lon, hc.lat, hc.lon))) AS distance
    FROM f
    JOIN persons AS p USING (pid)
    LEFT JOIN pharmacies AS ph ON ph.pharmacy_id = f.pharmacy_id
    LEFT JOIN ref_counties AS pc ON pc.fips = p.county_fips
    LEFT JOIN zip_county AS hz ON hz.zip = ph.zip
    LEFT JOIN ref_counties AS hc ON hc.fips = coalesce(ph.county_fips, hz.county_fips)
    GROUP BY f.pharmacy_id, f.pid
)
SELECT f.pharmacy_id, any_value(coalesce(ph.county_fips, hz.county_fips)) AS county_fips, any_value(ph.chain_site_id) IS NOT NULL AS chain_known,
    any_value(c.pop2019) AS county_population, count(*) AS opioid_rx, count(DISTINCT f.pid) AS patients,
    count(DISTINCT f.prescriber_id) AS prescribers, count(*) FILTER (WHERE f.dea_schedule = '2') AS schedule_ii_rx,
    count(*) FILTER (WHERE f.payment_type = '01') AS cash_rx, count(*) FILTER (WHERE f.early) AS early_refill_rx,
    count(*) FILTER (WHERE f.prescriber_id IN (SELECT prescriber_id FROM flagged_prescribers)) AS flagged_prescriber_rx,
    coalesce(sum(f.quantity), 0)::DOUBLE AS opioid_units,
    any_value(d.median_patient_miles) AS median_patient_miles
FROM f
LEFT JOIN pharmacies AS ph USING (pharmacy_id)
LEFT JOIN zip_county AS hz ON hz.zip = ph.zip
LEFT JOIN ref_counties AS c ON c.fips = coalesce(ph.county_fips, hz.county_fips)
LEFT JOIN (SELECT pharmacy_id, median(distance) AS median_patient_miles FROM pairs GROUP BY pharmacy_id) AS d
    USING (pharmacy_id)
GROUP BY f.pharmacy_id;
