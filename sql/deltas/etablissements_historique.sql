-- History view `etablissements_historique` over the snapshot and the daily deltas: all periods of a siret present in
-- the deltas are replaced by the periods of its kept delta version (the one `etablissements` keeps).
-- Placeholders: see etablissements.sql; {base_deltas} = glob of the `etablissements` delta files.
WITH winner AS NOT MATERIALIZED (
    SELECT siret, arg_max(_delta_seq, (coalesce(dateDernierTraitementEtablissement, TIMESTAMP '0001-01-01'), _delta_seq)) AS _delta_seq
    FROM read_parquet('{base_deltas}')
    WHERE _delta_day >= DATE '{since}'
    GROUP BY siret
)
SELECT s.* FROM {snapshot} AS s
ANTI JOIN (SELECT DISTINCT siret FROM read_parquet('{base_deltas}') WHERE _delta_day >= DATE '{since}') AS k
    ON s.siret = k.siret
UNION ALL BY NAME
SELECT h.* EXCLUDE (_delta_day, _delta_seq)
FROM read_parquet('{deltas}') AS h
SEMI JOIN winner AS w ON h.siret = w.siret AND h._delta_seq = w._delta_seq
