-- The distinct valid sirens of an incremental re-index (their old index rows are deleted first).
--   ${sirens}: the quoted name of a table or view with one VARCHAR column `siren`.
SELECT DISTINCT CAST(siren AS BIGINT) AS id FROM ${sirens} WHERE regexp_full_match(siren, '[0-9]{9}')
