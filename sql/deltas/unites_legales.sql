-- Base view `unites_legales` = the latest version of each siren over the snapshot and the daily deltas.
-- Filled in by mirror.deltas.merged_view_sql: {snapshot} = the snapshot's SELECT, {deltas} = glob of the
-- delta files, {since} = first delta day not superseded by the snapshot.
-- Among delta rows the greatest dateDernierTraitementUniteLegale wins, then the latest fetch (_delta_seq; one
-- row per siren and day). `winner` (narrow: key + sequence) picks the kept delta row of each key; a siren
-- present in the deltas replaces its snapshot row by an anti-join on that small key set,
-- so filters (e.g. partition pruning on departement) and projections still reach the snapshot scan, and
-- the semi-join back to the delta files lets them reach the delta scan too. (The anti-join reads the key
-- set on its own and no CTE is MATERIALIZED: either would make DuckDB read every snapshot column.)
WITH winner AS NOT MATERIALIZED (
    SELECT siren, arg_max(_delta_seq, (coalesce(dateDernierTraitementUniteLegale, TIMESTAMP '0001-01-01'), _delta_seq)) AS _delta_seq
    FROM read_parquet('{deltas}')
    WHERE _delta_day >= DATE '{since}'
    GROUP BY siren
)
SELECT s.* FROM {snapshot} AS s
ANTI JOIN (SELECT DISTINCT siren FROM read_parquet('{deltas}') WHERE _delta_day >= DATE '{since}') AS k
    ON s.siren = k.siren
UNION ALL BY NAME
SELECT d.* EXCLUDE (_delta_day, _delta_seq)
FROM read_parquet('{deltas}') AS d
SEMI JOIN winner AS w ON d.siren = w.siren AND d._delta_seq = w._delta_seq
