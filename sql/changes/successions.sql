-- The liens de succession the delta days of [?, ?] brought (mirror.serve.changes): a link (predecessor,
-- successor, dateLienSuccession) that neither the snapshot nor an earlier day holds gives two `succession`
-- rows, one per établissement: the predecessor's field siretEtablissementSuccesseur (new value: the
-- successor) and the successor's field siretEtablissementPredecesseur (new value: the predecessor), dated
-- by the link (effective_date) and by its first day's dateDernierTraitementLienSuccession. A link INSEE
-- sends again reports nothing; INSEE does not delete links.
--   ${snapshot}: the base view's SELECT of liens_succession over the snapshot alone; ${days}: the typed
--   rows of every delta day (with _delta_day, _delta_seq); ${ids}: a condition on `identifier`.
WITH first_seen AS (
    SELECT siretEtablissementPredecesseur AS pred, siretEtablissementSuccesseur AS succ,
           dateLienSuccession AS link_date,
           arg_min(dateDernierTraitementLienSuccession, (_delta_day, _delta_seq)) AS processing_date,
           min(_delta_day) AS day
    FROM ${days}
    GROUP BY ALL
),
new_links AS (
    SELECT f.* FROM first_seen AS f
    WHERE f.day BETWEEN ? AND ?
      AND NOT EXISTS (
          SELECT 1 FROM ${snapshot} AS s
          WHERE s.siretEtablissementPredecesseur = f.pred AND s.siretEtablissementSuccesseur = f.succ
            AND s.dateLienSuccession IS NOT DISTINCT FROM f.link_date
      )
),
sides AS (
    SELECT pred AS identifier, 'siretEtablissementSuccesseur' AS field, succ AS new_value, link_date,
           processing_date, day
    FROM new_links
    UNION ALL
    SELECT succ, 'siretEtablissementPredecesseur', pred, link_date, processing_date, day
    FROM new_links
)
SELECT identifier, 'etablissement' AS level, 'succession' AS kind, field, NULL::VARCHAR AS old_value,
       new_value, link_date AS effective_date, processing_date, 'daily' AS source, day
FROM sides
WHERE ${ids}
