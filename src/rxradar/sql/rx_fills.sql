-- The fills every patient indicator starts from (staged to Parquet by analytics/patients.py):
-- opioid and benzodiazepine fills of resolved persons (pid = the run's integer person key,
-- fill_key = hash of the dispensation id), from lookback_start so that supplies running into
-- the period and opioid-naive checks see them. MME per day is rounded to a millionth and kept as
-- DECIMAL, so sums and thresholds are exact. `bucket` (pid modulo the number of buckets)
-- partitions the staged files so each bucket of persons is read alone.
SELECT ip.pid, hash(d.dispensation_id) AS fill_key, d.prescriber_id, d.pharmacy_id, d.fill_date,
    (d.fill_date - DATE '1970-01-01')::INTEGER AS fill_day, d.days_supply, d.quantity, d.drug, d.drug_class,
    coalesce(d.long_acting, false) AS long_acting, d.dea_schedule, d.payment_type,
    round(d.mme_per_day, 6)::DECIMAL(18, 6) AS mme_per_day, ip.pid % getvariable('buckets') AS bucket
FROM dispensations AS d
JOIN identity_persons AS ip USING (identity_id)
WHERE d.drug_class IN ('opioid', 'benzodiazepine') AND d.days_supply > 0
  AND d.fill_date BETWEEN getvariable('lookback_start') AND getvariable('period_end')
  -- MME is DECIMAL(18, 6), under 10^12: a fill past 10^10 MME in all (never plausible, yet
  -- possibly stored before ingest bounded quantities) would overflow the products and sums made
  -- of it (rx_segments.sql, rx_prescriber_patients.sql) and stop the analysis for everyone.
  AND (d.mme_per_day IS NULL OR d.mme_per_day * d.days_supply < 1e10)
