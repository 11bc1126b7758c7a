-- Daily MME as a step function, for one bucket of persons (rx_bucket): maximal runs of days
-- with the same MME and the same counts of opioid and benzodiazepine prescriptions on hand,
-- clipped to the period. Built from events (+MME on the first day of supply, -MME the day after
-- it ends) and running sums, so no prescription is ever expanded into days.
-- Days of supply. With early_refill = 'overlap' a refill counts from its fill date, so an early
-- refill overlaps the supply still on hand (CDC/PBSS daily dose). With 'shift', a fill of the
-- same drug before the last supply ran out starts the day after it ends: start_i =
-- max(fill_i, stop_(i-1)), which in closed form is S_i + max_(j<=i)(fill_j - S_j + days_j) - days_i
-- with S_i the running sum of days supply, a pair of window functions instead of a loop.
WITH o AS (
    SELECT pid, drug_class, coalesce(drug, '') AS drug, fill_day, days_supply, fill_key,
        coalesce(mme_per_day, 0)::DECIMAL(18, 6) AS mme
    FROM rx_bucket
), running AS (
    SELECT *, sum(days_supply) OVER w AS s_incl
    FROM o WHERE getvariable('early_refill') = 'shift'
    WINDOW w AS (PARTITION BY pid, drug_class, drug ORDER BY fill_day, days_supply, mme, fill_key ROWS UNBOUNDED PRECEDING)
), shifted AS (
    SELECT pid, drug_class, mme, days_supply,
        s_incl + max(fill_day - s_incl + days_supply) OVER w AS stop_day
    FROM running
    WINDOW w AS (PARTITION BY pid, drug_class, drug ORDER BY fill_day, days_supply, mme, fill_key ROWS UNBOUNDED PRECEDING)
), rx_intervals AS (SELECT pid, drug_class, mme, fill_day AS start_day, fill_day + days_supply AS stop_day
FROM o WHERE getvariable('early_refill') = 'overlap'
UNION ALL
-- Running sums come back as HUGEINT: cast, so the events sort on two 4-byte keys.
SELECT pid, drug_class, mme, (stop_day - days_supply)::INTEGER, stop_day::INTEGER FROM shifted
), events AS (
    SELECT pid, start_day AS day, mme AS d_mme, (drug_class = 'opioid')::INTEGER AS d_opioid,
        (drug_class = 'benzodiazepine')::INTEGER AS d_benzo
    FROM rx_intervals
    UNION ALL
    SELECT pid, stop_day, -mme, -(drug_class = 'opioid')::INTEGER, -(drug_class = 'benzodiazepine')::INTEGER
    FROM rx_intervals
), levels AS (
    -- One sort of the events by person and day gives both the running sums and the next event's
    -- day. Events of the same day are adjacent: the last of them carries the day's level and
    -- the next day as its stop; the others have seg_stop = seg_start and drop out below (cheaper
    -- than first summing events per person and day).
    SELECT pid, day AS seg_start, lead(day) OVER w AS seg_stop,
        sum(d_mme) OVER w AS mme, sum(d_opioid) OVER w AS n_opioid, sum(d_benzo) OVER w AS n_benzo
    FROM events
    WINDOW w AS (PARTITION BY pid ORDER BY day ROWS UNBOUNDED PRECEDING)
), clipped AS (
    SELECT pid,
        greatest(seg_start, getvariable('period_start') - DATE '1970-01-01') AS seg_start,
        least(seg_stop, getvariable('period_end') - DATE '1970-01-01' + 1) AS seg_stop,
        mme, n_opioid, n_benzo
    FROM levels
    WHERE seg_stop > seg_start AND (n_opioid > 0 OR n_benzo > 0)
)
SELECT pid, seg_start::INTEGER AS seg_start, seg_stop::INTEGER AS seg_stop, (seg_stop - seg_start)::INTEGER AS days,
    mme::DECIMAL(18, 6) AS mme, n_opioid::INTEGER AS n_opioid, n_benzo::INTEGER AS n_benzo
FROM clipped WHERE seg_stop > seg_start
