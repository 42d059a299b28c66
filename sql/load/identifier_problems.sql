-- Duplicated keys (rows beyond the first of a key) and malformed keys (not exactly ${digits} digits) of one
-- written table, in one hash aggregate.
--   ${key}: the key column (quoted); ${digits}: 9 (SIREN) or 14 (SIRET); ${files}: its Parquet files.
SELECT count(*) - count(DISTINCT ${key}),
       count(*) FILTER (WHERE NOT regexp_full_match(coalesce(${key}, ''), '[0-9]{${digits}}'))
FROM read_parquet(${files})
