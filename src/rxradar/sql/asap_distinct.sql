-- Distinct identifiers and NDCs of the loaded files: checked once each in Python (rxradar.codes).
SELECT DISTINCT kind, v FROM (
    SELECT 'id' AS kind, unnest([pha01, pha02, pha03]) AS v FROM asap_pha
    UNION ALL SELECT 'id', unnest([pre01, pre02]) FROM asap_pre
    UNION ALL SELECT 'ndc', dsp08 FROM asap_dsp
) WHERE v IS NOT NULL
