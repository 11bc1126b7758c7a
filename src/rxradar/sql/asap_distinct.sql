-- Distinct identifiers and NDCs of the loaded file: checked once each in Python (rxradar.codes).
SELECT DISTINCT kind, el(v) AS v FROM (
    SELECT DISTINCT 'id' AS kind, c1 AS v FROM asap_seg WHERE c0 IN ('PHA', 'PRE')
    UNION SELECT DISTINCT 'id', c2 FROM asap_seg WHERE c0 IN ('PHA', 'PRE')
    UNION SELECT DISTINCT 'id', c3 FROM asap_seg WHERE c0 = 'PHA'
    UNION SELECT DISTINCT 'ndc', c8 FROM asap_seg WHERE c0 = 'DSP'
) WHERE el(v) IS NOT NULL
