-- History view `unites_legales_historique` over the snapshot and the daily deltas: all periods of a siren
-- present in the deltas are replaced by the periods of its kept delta version (the one `unites_legales`
-- keeps). Placeholders: see unites_legales.sql; ${merged}, ${recent} = the merged history files (periods of
-- the kept versions); ${base_merged}, ${base_recent} = the merged `unites_legales` files, whose sirens are
-- the ones replaced (a kept version may carry no period at all).
SELECT s.* FROM ${snapshot} AS s
ANTI JOIN (
    SELECT siren FROM read_parquet('${base_merged}')
    UNION ALL
    SELECT siren FROM read_parquet('${base_recent}')
) AS k ON s.siren = k.siren
UNION ALL BY NAME
SELECT m.* EXCLUDE (_delta_day, _delta_seq) FROM read_parquet('${merged}') AS m
ANTI JOIN (SELECT siren FROM read_parquet('${base_recent}')) AS r
    ON m.siren = r.siren
UNION ALL BY NAME
SELECT * EXCLUDE (_delta_day, _delta_seq) FROM read_parquet('${recent}')
