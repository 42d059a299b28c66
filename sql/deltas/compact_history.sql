-- Compaction of a history table's delta days (mirror.deltas.compact): the periods of the kept version of
-- each unit, i.e. the history rows fetched with the kept row of the base table (same key, same
-- `_delta_seq`). Filled in by mirror.deltas._compact_table:
--   ${files}: list of the history day files; ${in_days}: the condition on _delta_day selecting the days
--   ${base}: nothing (an empty relation) for the base file; the version's base history file for the
--           recent file (a recent winner may be a base row, whose periods are there)
--   ${winners}: the merged file of the base table just written (base or recent); ${key}: siren or siret;
--   ${order_by}: the base file's ORDER BY (none for the recent file)
SELECT h.* FROM (
    SELECT * FROM read_parquet(${files}, union_by_name = true) WHERE ${in_days}
    UNION ALL BY NAME
    SELECT * FROM ${base}
) AS h
SEMI JOIN (SELECT ${key}, _delta_seq FROM read_parquet(${winners})) AS w
    ON h.${key} = w.${key} AND h._delta_seq = w._delta_seq
${order_by}
