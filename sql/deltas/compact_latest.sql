-- Compaction of a base table's delta days (mirror.deltas.compact): the winning row of each key, i.e. the
-- rows the view adds over the snapshot. Filled in by mirror.deltas._compact_table:
--   ${files}: list of the day files; ${in_days}: the condition on _delta_day selecting the days merged here
--   ${base}: nothing (an empty relation) for the base file; for the recent file, the version's base file,
--           whose rows of the keys present in those days compete with them (so the recent row is final)
--   ${keys}: the key columns; ${rank}: ORDER BY picking the winner (the greatest dateDernierTraitement, a
--           NULL one lowest, then the latest fetch `_delta_seq`; one row per key and day, so no tie)
--   ${join_r}, ${join_w}: NULL-safe key equality (b/r, d/w); ${order_by}: the base file's ORDER BY (none for
--   the recent file)
-- `winner` is narrow (keys + sequence): only the kept rows are read in full, by the semi-join.
WITH days AS (
    SELECT * FROM read_parquet(${files}, union_by_name = true) WHERE ${in_days}
    UNION ALL BY NAME
    SELECT b.* FROM ${base} AS b
    SEMI JOIN (SELECT ${keys} FROM read_parquet(${files}, union_by_name = true) WHERE ${in_days}) AS r
        ON ${join_r}
), winner AS (
    SELECT ${keys}, _delta_seq FROM days
    QUALIFY row_number() OVER (PARTITION BY ${keys} ORDER BY ${rank}) = 1
)
SELECT d.* FROM days AS d
SEMI JOIN winner AS w ON ${join_w} AND d._delta_seq = w._delta_seq
${order_by}
