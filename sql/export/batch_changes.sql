-- Per key of a batch, the changes since `mirror batch --changed-since` (columns changes_count,
-- changes_kinds, changes_last_day, changes): a SIREN (level unite-legale) gets its unit's changes and its
-- établissements', a SIRET (level etablissement) its own and its unit's, as `mirror changes --siren` selects
-- them. `changes` is a JSON array of the change rows (mirror.core.changes.COLUMNS) in the order of `mirror
-- changes`; `changes_kinds` the distinct kinds joined by '|'.
--   ${keys}: the batch's keys (a relation with the column _key); ${changes}: the registered changes;
--   ${row}: the struct of one change row (generated from mirror.core.changes.COLUMNS).
WITH keys AS (SELECT DISTINCT _key FROM ${keys} WHERE _key IS NOT NULL),
matched AS (
    SELECT k._key, c.* FROM keys AS k JOIN ${changes} AS c ON left(c.identifier, 9) = k._key
    UNION ALL
    SELECT k._key, c.* FROM keys AS k JOIN ${changes} AS c ON c.identifier = k._key WHERE length(k._key) = 14
    UNION ALL
    SELECT k._key, c.* FROM keys AS k JOIN ${changes} AS c ON c.identifier = left(k._key, 9) WHERE length(k._key) = 14
)
SELECT _key AS _changes_key,
       count(*) AS changes_count,
       string_agg(DISTINCT kind, '|' ORDER BY kind) AS changes_kinds,
       max(day) AS changes_last_day,
       CAST(to_json(list(${row} ORDER BY day, identifier, level DESC, field NULLS FIRST)) AS VARCHAR) AS changes
FROM matched
GROUP BY _key
