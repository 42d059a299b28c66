-- The stock's coverage: its latest dateDernierTraitementEtablissement, ignoring dates more than two days in
-- the future (junk in a row must not move the watermark past what INSEE has published).
--   ${files}: the written établissements Parquet files (a read_parquet argument).
SELECT max(dateDernierTraitementEtablissement)
FROM read_parquet(${files})
WHERE dateDernierTraitementEtablissement <= now()::TIMESTAMP + INTERVAL 2 DAY
