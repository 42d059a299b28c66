-- Point in time (mirror.serve.documents.point_in_time): the rows of ${source} as they stood on the day held
-- by the TEMP table as_of_day, for a private cursor's TEMP view that shadows the base view of that name.
--
-- The historised variables (the columns of the historique file, ${replace}) come from the period valid on
-- that day: dateDebut on or before it (NULL: since ever) and dateFin on or after it (NULL: still open).
-- The other variables (address, effectif, catégorie d'entreprise, identity of a natural person, dates of
-- treatment...) are not historised by INSEE: they keep their current value. A row created after the day,
-- or whose periods all start after it, is absent, as the INSEE API's `date=` answers 404; a row without any
-- period keeps its current values.
WITH valid AS (
    SELECT p.* FROM ${historique} p, as_of_day d
    WHERE (p.dateDebut IS NULL OR p.dateDebut <= d.day) AND (p.dateFin IS NULL OR p.dateFin >= d.day)
    QUALIFY row_number() OVER (PARTITION BY p.${key} ORDER BY p.dateDebut DESC NULLS LAST) = 1
)
SELECT c.* REPLACE (${replace})
FROM ${source} c
LEFT JOIN valid v ON v.${key} = c.${key}
CROSS JOIN as_of_day d
WHERE (c.${created} IS NULL OR c.${created} <= d.day)
  AND (v.${key} IS NOT NULL OR NOT EXISTS (SELECT 1 FROM ${historique} p WHERE p.${key} = c.${key}));
