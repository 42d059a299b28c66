-- Incremental compaction, step 2 for a base table: the new recent file = the previous recent rows whose
-- key the new days did not win, plus the winning new rows (append_wins.sql, in the temp table ${wins}).
-- A key the new days did not win keeps its row where it is (recent or base). Left unsorted: the recent
-- file is small. Filled in by mirror.deltas._append_table: ${recent}: the previous recent rows (a
-- relation); ${wins}; ${join_rw}: NULL-safe key equality (r/w).
SELECT r.* FROM ${recent} AS r
ANTI JOIN ${wins} AS w ON ${join_rw}
UNION ALL BY NAME
SELECT * FROM ${wins}
