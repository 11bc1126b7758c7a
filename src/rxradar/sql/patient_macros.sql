-- Table macros the query indicators call (indicators/definitions.toml), over the staged
-- `segments`, `opioid_rx` and `rx` views.
-- The largest average daily MME over any window of window_days consecutive days inside the
-- period, for persons who could average more than `above`: their MME exceeds it on some day and
-- their total MME exceeds above x window_days (a window holds no more than the whole period).
-- With F(t) the cumulative MME up to day t (piecewise linear), a window [t, t + w) holds
-- F(t + w) - F(t); its maximum is reached where t or t + w is a step, so only those starts are
-- evaluated, each with two as-of joins.
CREATE OR REPLACE MACRO max_window_mme(window_days, above) AS TABLE
WITH s AS (
    SELECT pid, seg_start, seg_stop, mme,
        sum(mme * days) OVER (PARTITION BY pid ORDER BY seg_start ROWS UNBOUNDED PRECEDING) - mme * days AS cum_before
    FROM segments
    WHERE n_opioid > 0
      AND pid IN (SELECT pid FROM segments WHERE n_opioid > 0 GROUP BY pid
                  HAVING max(mme) > above AND sum(mme * days) > above * window_days)
), bounds AS (
    SELECT getvariable('period_start') - DATE '1970-01-01' AS lo,
        getvariable('period_end') - DATE '1970-01-01' + 1 - window_days AS hi
), starts AS (
    SELECT DISTINCT pid, least(greatest(t, lo), hi) AS t
    FROM (SELECT pid, seg_start AS t FROM s UNION ALL SELECT pid, seg_stop - window_days FROM s), bounds
    WHERE hi >= lo
), at_start AS (
    SELECT c.pid, c.t,
        coalesce(s.cum_before + s.mme * (least(c.t, s.seg_stop) - s.seg_start), 0) AS f_start
    FROM starts AS c ASOF LEFT JOIN s ON c.pid = s.pid AND c.t >= s.seg_start
), at_end AS (
    SELECT c.pid, c.f_start,
        coalesce(s.cum_before + s.mme * (least(c.t + window_days, s.seg_stop) - s.seg_start), 0) AS f_end
    FROM at_start AS c ASOF LEFT JOIN s ON c.pid = s.pid AND c.t + window_days >= s.seg_start
)
SELECT pid, max(f_end - f_start) / window_days AS value FROM at_end GROUP BY pid;

-- Whether a person had, within some window_days-day span of the period, opioid fills from at
-- least min_prescribers prescribers and min_pharmacies pharmacies. Only persons with that many
-- over the whole period can qualify, so the windowed count runs for them alone.
CREATE OR REPLACE MACRO provider_episodes(window_days, min_prescribers, min_pharmacies) AS TABLE
WITH f AS (
    SELECT pid, fill_day, prescriber_id, pharmacy_id FROM opioid_rx
    WHERE pid IN (
        SELECT pid FROM opioid_rx GROUP BY pid
        HAVING count(DISTINCT prescriber_id) >= min_prescribers AND count(DISTINCT pharmacy_id) >= min_pharmacies)
), windows AS (
    SELECT e.pid, e.end_day, count(DISTINCT f.prescriber_id) AS prescribers,
        count(DISTINCT f.pharmacy_id) AS pharmacies
    FROM (SELECT DISTINCT pid, fill_day AS end_day FROM f) AS e
    JOIN f ON f.pid = e.pid AND f.fill_day <= e.end_day AND f.fill_day > e.end_day - window_days
    GROUP BY e.pid, e.end_day
)
SELECT pid, count(*) AS value FROM windows
WHERE prescribers >= min_prescribers AND pharmacies >= min_pharmacies
GROUP BY pid;

-- Long-acting opioid fills in the period by a person with no opioid supply on any of the
-- lookback_days days before (opioid-naive).
CREATE OR REPLACE MACRO naive_long_acting(lookback_days) AS TABLE
SELECT la.pid, count(*) AS value
FROM opioid_rx AS la
WHERE la.long_acting AND NOT EXISTS (
    SELECT 1 FROM rx AS o
    WHERE o.drug_class = 'opioid' AND o.pid = la.pid AND o.fill_day < la.fill_day
      AND o.fill_day + o.days_supply > la.fill_day - lookback_days)
GROUP BY la.pid;
