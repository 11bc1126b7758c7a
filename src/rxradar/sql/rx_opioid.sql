-- The period's opioid fills for one bucket of persons (rx_bucket), each marked `early` when it
-- came for the same person and drug before early_refill_used_share of the previous fill's days
-- supply had passed (payers' "refill too soon" edits; the previous fill may predate the period).
WITH seq AS (
    SELECT *,
        fill_day - lag(fill_day) OVER w < getvariable('early_refill_used_share') * lag(days_supply) OVER w AS early
    FROM rx_bucket WHERE drug_class = 'opioid'
    WINDOW w AS (PARTITION BY pid, drug ORDER BY fill_day, fill_key)
)
SELECT * REPLACE (coalesce(early, false) AS early) FROM seq
WHERE fill_date BETWEEN getvariable('period_start') AND getvariable('period_end')
