-- Folding the recent file into the base (mirror.deltas.compact, when the recent files outgrow
-- RECENT_RATIO of the base): a recent row is its key's final winner, so the new base is the base rows
-- of the other keys plus the recent rows, sorted like every base file. No ranking needed. Filled in by
-- mirror.deltas._fold_table: ${base}, ${recent}: the previous version's files; ${keys}; ${join_br}: NULL-safe
-- key equality (b/r); ${order}: sort order of the merged file.
SELECT b.* FROM read_parquet('${base}') AS b
ANTI JOIN (SELECT ${keys} FROM read_parquet('${recent}')) AS r ON ${join_br}
UNION ALL BY NAME
SELECT * FROM read_parquet('${recent}')
ORDER BY ${order}
