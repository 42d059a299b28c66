-- Base view `unites_legales` = the latest version of each siren over the snapshot and the daily deltas.
-- Filled in by mirror.deltas.merged_view_sql: ${snapshot} = the snapshot's SELECT; ${merged}, ${recent} = the
-- base and recent files of the merged version of the delta days (mirror.deltas.compact: at most one row
-- per siren in each, the winning delta version, sorted by siren; a siren in the recent file is final and
-- shadows its base row). A siren present in either replaces its snapshot row by an anti-join on the
-- (small) merged key sets, so filters and projections still reach the snapshot scan, and reach the merged
-- scans too (row-group statistics). Nothing is computed per key at query time. (The anti-join reads the
-- key set on its own and no CTE is MATERIALIZED: either would make DuckDB read every snapshot column.)
SELECT s.* FROM ${snapshot} AS s
ANTI JOIN (
    SELECT siren FROM read_parquet('${merged}')
    UNION ALL
    SELECT siren FROM read_parquet('${recent}')
) AS k ON s.siren = k.siren
UNION ALL BY NAME
SELECT m.* EXCLUDE (_delta_day, _delta_seq) FROM read_parquet('${merged}') AS m
ANTI JOIN (SELECT siren FROM read_parquet('${recent}')) AS r
    ON m.siren = r.siren
UNION ALL BY NAME
SELECT * EXCLUDE (_delta_day, _delta_seq) FROM read_parquet('${recent}')
