-- Where persons, prescribers and pharmacies are, once each, for the travel measures. Distances
-- are great-circle miles (haversine, mean Earth radius 3958.8 mi) between county internal points
-- (Census Gazetteer), or a pharmacy's own coordinates when the registry has them. A patient's
-- county comes from the ZIP reported for them (persons.sql); a prescriber's or pharmacy's from
-- the registry, else from its ZIP.
CREATE OR REPLACE MACRO miles(lat1, lon1, lat2, lon2) AS
    2 * 3958.8 * asin(sqrt(pow(sin(radians(lat2 - lat1) / 2), 2)
        + cos(radians(lat1)) * cos(radians(lat2)) * pow(sin(radians(lon2 - lon1) / 2), 2)));

CREATE OR REPLACE TEMP TABLE person_places AS
SELECT p.pid, c.lat, c.lon FROM persons AS p JOIN ref_counties AS c ON c.fips = p.county_fips;

CREATE OR REPLACE TEMP TABLE prescriber_places AS
SELECT pr.prescriber_id, pr.specialty, pr.state, coalesce(pr.county_fips, z.county_fips) AS county_fips, c.lat, c.lon
FROM prescribers AS pr
LEFT JOIN zip_county AS z ON z.zip = pr.zip
LEFT JOIN ref_counties AS c ON c.fips = coalesce(pr.county_fips, z.county_fips);

CREATE OR REPLACE TEMP TABLE pharmacy_places AS
SELECT ph.pharmacy_id, coalesce(ph.county_fips, z.county_fips) AS county_fips,
    ph.chain_site_id IS NOT NULL AS chain_known, c.pop2019 AS county_population,
    CASE WHEN ph.lat IS NOT NULL AND ph.lon IS NOT NULL THEN ph.lat ELSE c.lat END AS lat,
    CASE WHEN ph.lat IS NOT NULL AND ph.lon IS NOT NULL THEN ph.lon ELSE c.lon END AS lon
FROM pharmacies AS ph
LEFT JOIN zip_county AS z ON z.zip = ph.zip
LEFT JOIN ref_counties AS c ON c.fips = coalesce(ph.county_fips, z.county_fips);
