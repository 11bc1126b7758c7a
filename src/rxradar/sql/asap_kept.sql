-- Records of the loaded file that break no rejecting rule and are not zero reports.
CREATE OR REPLACE TEMP VIEW asap_kept AS
SELECT * FROM asap_rows
WHERE NOT zero_report
  AND problem_bits & (SELECT coalesce(bit_or(1::BIGINT << bit), 0) FROM asap_rules WHERE severity = 'rejected') = 0;
