-- The liens de succession a new monthly snapshot adds or drops that no delta day carried
-- (mirror.load.stock_changes): links (predecessor, successor, dateLienSuccession) of its file (${new}) not in
-- the current catalog's view (${old}: the previous stock with its days), and the reverse. Each link gives a
-- `succession` row to both établissements, naming the other: field siretEtablissementSuccesseur on the
-- predecessor, siretEtablissementPredecesseur on the successor; new_value is the other SIRET for an added
-- link, old_value for a dropped one; effective_date the link's date (as sql/changes/successions.sql).
-- One parameter: the day of these changes (the new snapshot's coverage).
WITH added AS (
    SELECT siretEtablissementPredecesseur, siretEtablissementSuccesseur, dateLienSuccession FROM ${new}
    EXCEPT
    SELECT siretEtablissementPredecesseur, siretEtablissementSuccesseur, dateLienSuccession FROM ${old}
),
dropped AS (
    SELECT siretEtablissementPredecesseur, siretEtablissementSuccesseur, dateLienSuccession FROM ${old}
    EXCEPT
    SELECT siretEtablissementPredecesseur, siretEtablissementSuccesseur, dateLienSuccession FROM ${new}
),
links AS (
    SELECT l.*, n.processed
    FROM (SELECT *, true AS added FROM added UNION ALL SELECT *, false AS added FROM dropped) AS l
    LEFT JOIN (
        SELECT siretEtablissementPredecesseur, siretEtablissementSuccesseur, dateLienSuccession,
               max(dateDernierTraitementLienSuccession) AS processed
        FROM ${new} GROUP BY ALL
    ) AS n USING (siretEtablissementPredecesseur, siretEtablissementSuccesseur, dateLienSuccession)
),
sides AS (
    SELECT siretEtablissementPredecesseur AS identifier, 'siretEtablissementSuccesseur' AS field,
           siretEtablissementSuccesseur AS other, dateLienSuccession, added, processed
    FROM links
    UNION ALL
    SELECT siretEtablissementSuccesseur, 'siretEtablissementPredecesseur', siretEtablissementPredecesseur,
           dateLienSuccession, added, processed
    FROM links
)
SELECT identifier, 'etablissement' AS level, 'succession' AS kind, field,
       CASE WHEN added THEN NULL ELSE other END AS old_value,
       CASE WHEN added THEN other END AS new_value,
       dateLienSuccession AS effective_date, processed AS processing_date, 'stock' AS source,
       CAST(? AS DATE) AS day
FROM sides
