-- The changes of the monthly stocks (mirror.serve.changes): the rows of the snapshots' stock_changes.parquet
-- files (mirror.load.stock_changes) of the days [?, ?], a variable masked ([ND]) in the current views masked
-- in its changes too (what a person who opted out of diffusion was called before is not shown again).
--   ${files}: the files (quoted, comma-separated); ${ids}: the identifier filter (a condition);
--   ${unites_legales}, ${etablissements}: one {field, masked} struct per maskable compared variable of the
--   view; ${unites_legales_fields}, ${etablissements_fields}: the list of those variables.
WITH s AS (
    SELECT * FROM read_parquet([${files}]) WHERE day BETWEEN ? AND ? AND ${ids}
),
current_masks AS (
    SELECT siren AS identifier, unnest([${unites_legales}]) AS c FROM unites_legales
    WHERE siren IN (SELECT identifier FROM s WHERE level = 'unite_legale' AND list_contains(${unites_legales_fields}, field))
    UNION ALL
    SELECT siret, unnest([${etablissements}]) FROM etablissements
    WHERE siret IN (SELECT identifier FROM s WHERE level = 'etablissement' AND list_contains(${etablissements_fields}, field))
),
masked AS (SELECT DISTINCT identifier, c.field AS field FROM current_masks WHERE c.masked)
SELECT s.identifier, s.level, s.kind, s.field,
       CASE WHEN m.field IS NULL THEN s.old_value ELSE '[ND]' END AS old_value,
       CASE WHEN m.field IS NULL THEN s.new_value ELSE '[ND]' END AS new_value,
       s.effective_date, s.processing_date, s.source, s.day
FROM s LEFT JOIN masked AS m ON m.identifier = s.identifier AND m.field = s.field
