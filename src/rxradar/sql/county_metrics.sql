-- Per county of residence, the period's opioid patients, those at risk and those meeting each
-- flag (table county_patients, made by analytics/analyze.py from the indicator declarations),
-- beside the county's prescribers and pharmacies, flagged or not (prescriber_metrics_t,
-- pharmacy_metrics_t), and its population (Census Vintage 2019): the regional view. Every county
-- of a state with any of these is listed, zeros included, so maps show where there is nothing.
WITH providers AS (
    SELECT county_fips,
        count(*) FILTER (WHERE kind = 'prescriber') AS prescribers,
        count(*) FILTER (WHERE kind = 'prescriber' AND flagged) AS flagged_prescribers,
        count(*) FILTER (WHERE kind = 'pharmacy') AS pharmacies,
        count(*) FILTER (WHERE kind = 'pharmacy' AND flagged) AS flagged_pharmacies
    FROM (SELECT 'prescriber' AS kind, county_fips, len(flags) > 0 AS flagged FROM prescriber_metrics_t
          UNION ALL
          SELECT 'pharmacy', county_fips, len(flags) > 0 FROM pharmacy_metrics_t)
    GROUP BY county_fips
), present AS (
    SELECT county_fips FROM county_patients UNION SELECT county_fips FROM providers
)
SELECT c.fips AS county_fips, c.state, c.name AS county, c.pop2019 AS population,
    coalesce(COLUMNS(pat.* EXCLUDE (county_fips)), 0),  -- patients, patients_at_risk, patients_<flag>...
    round(1000.0 * coalesce(pat.patients, 0) / nullif(c.pop2019, 0), 6) AS patients_per_1000,
    round(1000.0 * coalesce(pat.patients_at_risk, 0) / nullif(c.pop2019, 0), 6) AS at_risk_per_1000,
    coalesce(COLUMNS(pro.* EXCLUDE (county_fips)), 0)  -- prescribers, flagged_prescribers, pharmacies, ...
FROM ref_counties AS c
LEFT JOIN county_patients AS pat ON pat.county_fips = c.fips
LEFT JOIN providers AS pro ON pro.county_fips = c.fips
WHERE c.state IN (SELECT r.state FROM present JOIN ref_counties AS r ON r.fips = present.county_fips)
ORDER BY c.fips
