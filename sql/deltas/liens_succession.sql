-- View `liens_succession` over the snapshot and the daily deltas: one row per (predecessor, successor,
-- date of the link); a delta version (greatest dateDernierTraitementLienSuccession, then latest fetch)
-- replaces the snapshot's. Placeholders: see unites_legales.sql.
WITH delta AS NOT MATERIALIZED (
    SELECT * EXCLUDE (_delta_day, _delta_seq)
    FROM read_parquet('{deltas}')
    WHERE _delta_day >= DATE '{since}'
    QUALIFY row_number() OVER (
        PARTITION BY siretEtablissementPredecesseur, siretEtablissementSuccesseur, dateLienSuccession
        ORDER BY dateDernierTraitementLienSuccession DESC NULLS LAST, _delta_seq DESC
    ) = 1
)
SELECT s.* FROM {snapshot} AS s
ANTI JOIN (
    SELECT DISTINCT siretEtablissementPredecesseur, siretEtablissementSuccesseur, dateLienSuccession
    FROM read_parquet('{deltas}') WHERE _delta_day >= DATE '{since}'
) AS d ON s.siretEtablissementPredecesseur = d.siretEtablissementPredecesseur
    AND s.siretEtablissementSuccesseur = d.siretEtablissementSuccesseur
    AND s.dateLienSuccession IS NOT DISTINCT FROM d.dateLienSuccession
UNION ALL BY NAME
SELECT * FROM delta
