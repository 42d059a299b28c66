-- Incremental compaction, step 1 (mirror.deltas.compact when the only change since the previous merged
-- version is new days): the rows of the new days that win their key, i.e. that rank first among the
-- key's rows in the new days, the previous recent file and the base file (greatest
-- dateDernierTraitement, a NULL one lowest, then the latest fetch `_delta_seq`). The older files are
-- read narrow (keys and rank columns) and only for the new days' keys: only the new days are read in
-- full. Filled in by mirror.deltas._append_table:
--   ${new}: list of the new days' files; ${recent}: the previous recent rows (a relation);
--   ${base}: the version's base file; ${keys}: the key columns; ${rank}: ORDER BY picking a key's winner;
--   ${join_k}, ${join_w}: NULL-safe key equalities (o/k, n/w)
WITH new AS (
    SELECT * FROM read_parquet(${new}, union_by_name = true)
), ranked AS (
    SELECT ${keys}, ${ddt}, _delta_seq FROM new
    UNION ALL
    SELECT ${keys}, ${ddt}, _delta_seq FROM (
        SELECT ${keys}, ${ddt}, _delta_seq FROM ${recent}
        UNION ALL
        SELECT ${keys}, ${ddt}, _delta_seq FROM read_parquet('${base}')
    ) AS o
    SEMI JOIN (SELECT ${keys} FROM new) AS k ON ${join_k}
), winner AS (
    SELECT ${keys}, _delta_seq FROM ranked
    QUALIFY row_number() OVER (PARTITION BY ${keys} ORDER BY ${rank}) = 1
)
SELECT n.* FROM new AS n
SEMI JOIN winner AS w ON ${join_w} AND n._delta_seq = w._delta_seq
