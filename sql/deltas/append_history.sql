-- Incremental compaction, step 2 for a history table: the previous recent periods of the units the new
-- days did not win, plus the periods fetched with each winning new row (same key, same `_delta_seq`).
-- Filled in by mirror.deltas._append_table: ${new}: list of the new days' history files; ${recent}: the
-- previous recent periods (a relation); ${wins}: the winning rows of the base table (temp table);
-- ${key}: siren or siret.
SELECT r.* FROM ${recent} AS r
ANTI JOIN ${wins} AS w ON r.${key} = w.${key}
UNION ALL BY NAME
SELECT h.* FROM read_parquet(${new}, union_by_name = true) AS h
SEMI JOIN ${wins} AS w ON h.${key} = w.${key} AND h._delta_seq = w._delta_seq
