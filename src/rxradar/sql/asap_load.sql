-- Load one ASAP file's segments (one per line, TH already read) into a temporary table.
-- The reader runs in parallel; with insertion order preserved, rowid is the segment's position
-- in the file, which is what the hierarchy (PHA > PAT > DSP > PRE) is built from.
-- Elements are read up to c25 (DSP25, the last one rxradar uses); later ones are ignored and
-- short (trimmed) segments are padded with NULL. Rejects quote the segment from the file itself.
CREATE OR REPLACE TEMP TABLE asap_seg AS
SELECT * FROM read_csv(
    $path, delim = $sep, quote = '', escape = '', header = false,
    null_padding = true, strict_mode = false, auto_detect = false, encoding = 'utf-8',
    max_line_size = 1048576, all_varchar = true,
    columns = {
        'c0': 'VARCHAR', 'c1': 'VARCHAR', 'c2': 'VARCHAR', 'c3': 'VARCHAR', 'c4': 'VARCHAR',
        'c5': 'VARCHAR', 'c6': 'VARCHAR', 'c7': 'VARCHAR', 'c8': 'VARCHAR', 'c9': 'VARCHAR',
        'c10': 'VARCHAR', 'c11': 'VARCHAR', 'c12': 'VARCHAR', 'c13': 'VARCHAR', 'c14': 'VARCHAR',
        'c15': 'VARCHAR', 'c16': 'VARCHAR', 'c17': 'VARCHAR', 'c18': 'VARCHAR', 'c19': 'VARCHAR',
        'c20': 'VARCHAR', 'c21': 'VARCHAR', 'c22': 'VARCHAR', 'c23': 'VARCHAR', 'c24': 'VARCHAR',
        'c25': 'VARCHAR'
    }
);
