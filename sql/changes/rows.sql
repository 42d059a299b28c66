-- The rows of the changes (mirror.core.changes.COLUMNS) from the relation `compared` of the query this ends
-- (sql/changes/changes.sql: consecutive versions across the delta days; stock.sql: the state before a new
-- monthly snapshot and after it). `compared` has per key and compared variable a struct
-- c {field, old, new, historised, masked}, the flags is_new (a key without an earlier version: one
-- `creation` row) and is_removed (a key that left the register: one `removed` row), and identifier, day,
-- processing_date, period_start (dateDebut), created (the creation date).
--   ${level}: the table's level name; ${first}: the first compared variable (the one struct a creation or a
--   removal keeps); ${kinds}: sql/changes/field_kinds.sql; ${source}: 'daily' or 'stock'.
SELECT identifier, '${level}' AS level,
       CASE WHEN is_new THEN 'creation'
            WHEN is_removed THEN 'removed'
            WHEN k.kind = 'etat' AND c.new IN ('C', 'F') THEN CASE '${level}' WHEN 'unite_legale' THEN 'cessation' ELSE 'fermeture' END
            WHEN k.kind = 'etat' THEN 'reactivation'
            ELSE coalesce(k.kind, 'other') END AS kind,
       CASE WHEN is_new OR is_removed THEN NULL ELSE c.field END AS field,
       CASE WHEN is_new OR is_removed THEN NULL WHEN c.masked THEN '[ND]' ELSE c.old END AS old_value,
       CASE WHEN is_new OR is_removed THEN NULL WHEN c.masked THEN '[ND]' ELSE c.new END AS new_value,
       CASE WHEN is_new THEN created WHEN is_removed THEN NULL WHEN c.historised THEN period_start END AS effective_date,
       processing_date, '${source}' AS source, day
FROM compared
LEFT JOIN (${kinds}) AS k ON k.field = c.field
WHERE (is_new OR is_removed) AND c.field = '${first}'
   OR NOT (is_new OR is_removed) AND c.old IS DISTINCT FROM c.new
