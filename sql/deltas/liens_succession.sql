-- View `liens_succession` over the snapshot and the daily deltas: one row per (predecessor, successor,
-- date of the link); the merged delta version (mirror.deltas.compact: greatest
-- dateDernierTraitementLienSuccession, a NULL one lowest, then latest fetch) replaces the snapshot's; a
-- link in the recent file shadows its base row. Placeholders: see unites_legales.sql.
SELECT s.* FROM ${snapshot} AS s
ANTI JOIN (
    SELECT siretEtablissementPredecesseur, siretEtablissementSuccesseur, dateLienSuccession
    FROM read_parquet('${merged}')
    UNION ALL
    SELECT siretEtablissementPredecesseur, siretEtablissementSuccesseur, dateLienSuccession
    FROM read_parquet('${recent}')
) AS k ON s.siretEtablissementPredecesseur = k.siretEtablissementPredecesseur
    AND s.siretEtablissementSuccesseur = k.siretEtablissementSuccesseur
    AND s.dateLienSuccession IS NOT DISTINCT FROM k.dateLienSuccession
UNION ALL BY NAME
SELECT m.* EXCLUDE (_delta_day, _delta_seq) FROM read_parquet('${merged}') AS m
ANTI JOIN (
    SELECT siretEtablissementPredecesseur, siretEtablissementSuccesseur, dateLienSuccession
    FROM read_parquet('${recent}')
) AS r
    ON m.siretEtablissementPredecesseur = r.siretEtablissementPredecesseur
    AND m.siretEtablissementSuccesseur = r.siretEtablissementSuccesseur
    AND m.dateLienSuccession IS NOT DISTINCT FROM r.dateLienSuccession
UNION ALL BY NAME
SELECT * EXCLUDE (_delta_day, _delta_seq) FROM read_parquet('${recent}')
