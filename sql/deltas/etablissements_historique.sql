-- History view `etablissements_historique` over the snapshot and the daily deltas: all periods of a siret
-- present in the deltas are replaced by the periods of its kept delta version (the one `etablissements`
-- keeps). Placeholders: see etablissements.sql; ${merged}, ${recent} = the merged history files (periods of
-- the kept versions); ${base_merged}, ${base_recent} = the merged `etablissements` files, whose sirets are
-- the ones replaced (a kept version may carry no period at all).
SELECT s.* FROM ${snapshot} AS s
ANTI JOIN (
    SELECT siret FROM read_parquet('${base_merged}')
    UNION ALL
    SELECT siret FROM read_parquet('${base_recent}')
) AS k ON s.siret = k.siret
UNION ALL BY NAME
SELECT m.* EXCLUDE (_delta_day, _delta_seq) FROM read_parquet('${merged}') AS m
ANTI JOIN (SELECT siret FROM read_parquet('${base_recent}')) AS r
    ON m.siret = r.siret
UNION ALL BY NAME
SELECT * EXCLUDE (_delta_day, _delta_seq) FROM read_parquet('${recent}')
