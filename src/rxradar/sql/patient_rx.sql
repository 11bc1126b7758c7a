-- What every patient indicator is computed from, for one analysis period [period_start, period_end]:
--   rx          controlled-substance fills (opioid, benzodiazepine, MOUD) of resolved persons, from
--               lookback_start so supplies running into the period and opioid-naive checks see them
--   opioid_rx   the period's opioid fills (buprenorphine is MOUD, not here), day numbers for windows
--   segments    each person's daily MME as a step function: maximal runs of days with the same
--               MME and the same counts of active opioid and benzodiazepine prescriptions, clipped
--               to the period. Built from events (+MME on the first day of supply, -MME the day
--               after it ends) and running sums, so no prescription is ever expanded into days.
-- MME per day is rounded to a millionth and summed as DECIMAL, so thresholds are exact.
CREATE OR REPLACE TEMP TABLE rx AS
SELECT ip.person_id, d.dispensation_id, d.prescriber_id, d.pharmacy_id, d.fill_date,
    d.fill_date - DATE '1970-01-01' AS fill_day, d.days_supply, d.quantity, d.drug, d.drug_class,
    coalesce(d.long_acting, false) AS long_acting, d.dea_schedule, d.payment_type,
    round(d.mme_per_day, 6)::DECIMAL(18, 6) AS mme_per_day
FROM dispensations AS d
JOIN identity_persons AS ip USING (identity_id)
WHERE d.drug_class IN ('opioid', 'benzodiazepine', 'moud') AND d.days_supply > 0
  AND d.fill_date BETWEEN getvariable('lookback_start') AND getvariable('period_end');

CREATE OR REPLACE TEMP TABLE opioid_rx AS
SELECT * FROM rx
WHERE drug_class = 'opioid' AND fill_date BETWEEN getvariable('period_start') AND getvariable('period_end');

-- Days of supply. With early_refill = 'overlap' a refill counts from its fill date, so an early
-- refill overlaps the supply still on hand (CDC/PBSS daily dose). With 'shift', a fill of the
-- same drug before the last supply ran out starts the day after it ends: start_i =
-- max(fill_i, stop_(i-1)), which in closed form is S_i + max_(j<=i)(fill_j - S_j + days_j) - days_i
-- with S_i the running sum of days supply, a pair of window functions instead of a loop.
CREATE OR REPLACE TEMP TABLE rx_intervals AS
WITH o AS (
    SELECT person_id, drug_class, coalesce(drug, '') AS drug, fill_day, days_supply, dispensation_id,
        coalesce(mme_per_day, 0)::DECIMAL(18, 6) AS mme
    FROM rx WHERE drug_class IN ('opioid', 'benzodiazepine')
), running AS (
    SELECT *, sum(days_supply) OVER w AS s_incl
    FROM o WHERE getvariable('early_refill') = 'shift'
    WINDOW w AS (PARTITION BY person_id, drug_class, drug ORDER BY fill_day, dispensation_id ROWS UNBOUNDED PRECEDING)
), shifted AS (
    SELECT person_id, drug_class, mme, days_supply,
        s_incl + max(fill_day - s_incl + days_supply) OVER w AS stop_day
    FROM running
    WINDOW w AS (PARTITION BY person_id, drug_class, drug ORDER BY fill_day, dispensation_id ROWS UNBOUNDED PRECEDING)
)
SELECT person_id, drug_class, mme, fill_day AS start_day, fill_day + days_supply AS stop_day
FROM o WHERE getvariable('early_refill') = 'overlap'
UNION ALL
SELECT person_id, drug_class, mme, stop_day - days_supply, stop_day FROM shifted;

CREATE OR REPLACE TEMP TABLE segments AS
WITH events AS (
    SELECT person_id, start_day AS day, mme AS d_mme, (drug_class = 'opioid')::INTEGER AS d_opioid,
        (drug_class = 'benzodiazepine')::INTEGER AS d_benzo
    FROM rx_intervals
    UNION ALL
    SELECT person_id, stop_day, -mme, -(drug_class = 'opioid')::INTEGER, -(drug_class = 'benzodiazepine')::INTEGER
    FROM rx_intervals
), net AS (
    SELECT person_id, day, sum(d_mme) AS d_mme, sum(d_opioid) AS d_opioid, sum(d_benzo) AS d_benzo
    FROM events GROUP BY person_id, day
), levels AS (
    SELECT person_id, day AS seg_start, lead(day) OVER (PARTITION BY person_id ORDER BY day) AS seg_stop,
        sum(d_mme) OVER w AS mme, sum(d_opioid) OVER w AS n_opioid, sum(d_benzo) OVER w AS n_benzo
    FROM net
    WINDOW w AS (PARTITION BY person_id ORDER BY day ROWS UNBOUNDED PRECEDING)
), clipped AS (
    SELECT person_id,
        greatest(seg_start, getvariable('period_start') - DATE '1970-01-01') AS seg_start,
        least(seg_stop, getvariable('period_end') - DATE '1970-01-01' + 1) AS seg_stop,
        mme, n_opioid, n_benzo
    FROM levels
    WHERE seg_stop IS NOT NULL AND (n_opioid > 0 OR n_benzo > 0)
)
SELECT person_id, seg_start::INTEGER AS seg_start, seg_stop::INTEGER AS seg_stop, (seg_stop - seg_start)::INTEGER AS days,
    mme::DECIMAL(18, 6) AS mme, n_opioid::INTEGER AS n_opioid, n_benzo::INTEGER AS n_benzo
FROM clipped WHERE seg_stop > seg_start;

-- The largest average daily MME over any window of window_days consecutive days inside the
-- period, for persons whose MME ever exceeds `above` (no one else can average more than that).
-- With F(t) the cumulative MME up to day t (piecewise linear), a window [t, t + w) holds
-- F(t + w) - F(t); its maximum is reached where t or t + w is a step, so only those starts are
-- evaluated, each with two as-of joins.
CREATE OR REPLACE MACRO max_window_mme(window_days, above) AS TABLE
WITH s AS (
    SELECT person_id, seg_start, seg_stop, mme,
        sum(mme * days) OVER (PARTITION BY person_id ORDER BY seg_start ROWS UNBOUNDED PRECEDING) - mme * days AS cum_before
    FROM segments
    WHERE n_opioid > 0
      AND person_id IN (SELECT person_id FROM segments GROUP BY person_id HAVING max(mme) > above)
), bounds AS (
    SELECT getvariable('period_start') - DATE '1970-01-01' AS lo,
        getvariable('period_end') - DATE '1970-01-01' + 1 - window_days AS hi
), starts AS (
    SELECT DISTINCT person_id, least(greatest(t, lo), hi) AS t
    FROM (SELECT person_id, seg_start AS t FROM s UNION ALL SELECT person_id, seg_stop - window_days FROM s), bounds
    WHERE hi >= lo
), at_start AS (
    SELECT c.person_id, c.t,
        coalesce(s.cum_before + s.mme * (least(c.t, s.seg_stop) - s.seg_start), 0) AS f_start
    FROM starts AS c ASOF LEFT JOIN s ON c.person_id = s.person_id AND c.t >= s.seg_start
), at_end AS (
    SELECT c.person_id, c.f_start,
        coalesce(s.cum_before + s.mme * (least(c.t + window_days, s.seg_stop) - s.seg_start), 0) AS f_end
    FROM at_start AS c ASOF LEFT JOIN s ON c.person_id = s.person_id AND c.t + window_days >= s.seg_start
)
SELECT person_id, max(f_end - f_start) / window_days AS value FROM at_end GROUP BY person_id;

-- Whether a person had, within some window_days-day span of the period, opioid fills from at
-- least min_prescribers prescribers and min_pharmacies pharmacies. Only persons with that many
-- over the whole period can qualify, so the windowed count runs for them alone.
CREATE OR REPLACE MACRO provider_episodes(window_days, min_prescribers, min_pharmacies) AS TABLE
WITH f AS (
    SELECT person_id, fill_day, prescriber_id, pharmacy_id FROM opioid_rx
    WHERE person_id IN (
        SELECT person_id FROM opioid_rx GROUP BY person_id
        HAVING count(DISTINCT prescriber_id) >= min_prescribers AND count(DISTINCT pharmacy_id) >= min_pharmacies)
), windows AS (
    SELECT e.person_id, e.end_day, count(DISTINCT f.prescriber_id) AS prescribers,
        count(DISTINCT f.pharmacy_id) AS pharmacies
    FROM (SELECT DISTINCT person_id, fill_day AS end_day FROM f) AS e
    JOIN f ON f.person_id = e.person_id AND f.fill_day <= e.end_day AND f.fill_day > e.end_day - window_days
    GROUP BY e.person_id, e.end_day
)
SELECT person_id, count(*) AS value FROM windows
WHERE prescribers >= min_prescribers AND pharmacies >= min_pharmacies
GROUP BY person_id;

-- Long-acting opioid fills in the period by a person with no opioid supply on any of the
-- lookback_days days before (opioid-naive).
CREATE OR REPLACE MACRO naive_long_acting(lookback_days) AS TABLE
SELECT la.person_id, count(*) AS value
FROM opioid_rx AS la
WHERE la.long_acting AND NOT EXISTS (
    SELECT 1 FROM rx AS o
    WHERE o.drug_class = 'opioid' AND o.person_id = la.person_id AND o.fill_day < la.fill_day
      AND o.fill_day + o.days_supply > la.fill_day - lookback_days)
GROUP BY la.person_id;
