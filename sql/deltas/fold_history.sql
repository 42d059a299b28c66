-- Folding a history table's recent file into its base (see fold_latest.sql): the base periods of the
-- units absent from the recent file of the base table (the others were replaced as a whole), plus the
-- recent periods, sorted. Filled in by mirror.deltas._fold_table: ${base}, ${recent}: the previous
-- version's history files; ${base_recent}: its recent file of the base table; ${key}; ${order}.
SELECT b.* FROM read_parquet('${base}') AS b
ANTI JOIN (SELECT ${key} FROM read_parquet('${base_recent}')) AS r ON b.${key} = r.${key}
UNION ALL BY NAME
SELECT * FROM read_parquet('${recent}')
ORDER BY ${order}
