-- One row per patient identity (as spelled) among the file's kept records; restricted table.
-- Where one identity was reported with different addresses, its first report in the file wins.
SELECT identity_id, p.last_name, p.first_name, p.middle_name, p.name_suffix, p.birth_date, p.sex,
       p.address, p.city, p.state, p.zip, p.phone, p.id_qualifier, p.id_hash,
       getvariable('ingest_id')::BIGINT AS ingest_id
FROM (
    SELECT identity_id,
           arg_min({'last_name': pat07, 'first_name': pat08, 'middle_name': pat09, 'name_suffix': pat11,
                    'birth_date': birth_date, 'sex': sex, 'address': nullif(concat_ws(' ', pat12, pat13), ''),
                    'city': pat14, 'state': pat15, 'zip': zip5, 'phone': pat17, 'id_qualifier': pat02,
                    'id_hash': id_hash}, pat_pos) AS p
    FROM asap_kept
    GROUP BY identity_id
)
