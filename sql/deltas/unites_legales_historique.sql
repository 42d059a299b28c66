-- History view `unites_legales_historique` over the snapshot and the daily deltas: all periods of a siren present in
-- the deltas are replaced by the periods of its kept delta version (the one `unites_legales` keeps).
-- Placeholders: see unites_legales.sql; {base_deltas} = glob of the `unites_legales` delta files.
WITH winner AS NOT MATERIALIZED (
    SELECT siren, arg_max(_delta_seq, (coalesce(dateDernierTraitementUniteLegale, TIMESTAMP '0001-01-01'), _delta_seq)) AS _delta_seq
    FROM read_parquet('{base_deltas}')
    WHERE _delta_day >= DATE '{since}'
    GROUP BY siren
)
SELECT s.* FROM {snapshot} AS s
ANTI JOIN (SELECT DISTINCT siren FROM read_parquet('{base_deltas}') WHERE _delta_day >= DATE '{since}') AS k
    ON s.siren = k.siren
UNION ALL BY NAME
SELECT h.* EXCLUDE (_delta_day, _delta_seq)
FROM read_parquet('{deltas}') AS h
SEMI JOIN winner AS w ON h.siren = w.siren AND h._delta_seq = w._delta_seq
