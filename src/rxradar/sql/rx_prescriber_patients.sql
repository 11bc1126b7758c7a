-- Each prescriber's opioid patients in one bucket of persons: first fill in the period, fills and
-- MME (DECIMAL, exact, so the per-patient variance is the same on every run).
SELECT prescriber_id, pid, min(fill_date) AS first_fill, count(*) AS fills,
    coalesce(sum(mme_per_day * days_supply), 0)::DECIMAL(38, 6) AS mme
FROM rx_bucket
WHERE drug_class = 'opioid' AND prescriber_id IS NOT NULL
  AND fill_date BETWEEN getvariable('period_start') AND getvariable('period_end')
GROUP BY prescriber_id, pid
