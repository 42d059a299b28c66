-- SQLite (DATA_DIR/lookup.sqlite): the établissements of /near_point (mirror.http.recherche): the siège and
-- open établissements (search_etablissements) whose point lies in the bounding box ?1..?4 (lat min, lat max,
-- lon min, lon max; the R*Tree search_geo), at most ?7 km from (?5, ?6) by the haversine formula (the
-- formula and Earth radius of `mirror export --near`, mirror.export.filters); search_geo holds the points of
-- units diffusible 'O' only (recherche-entreprises' geographic search shows only those).
--   ?8..?12: JSON arrays of accepted codes postaux, communes, départements, régions, EPCI (NULL: any);
--   ${units}: '' or sql/http/recherche_near_units.sql (?13: the FTS5 expression of the unit-level filters).
-- Rows: (établissement id = siret as an integer, distance in km).
WITH box AS (
    SELECT e.id, e.code_postal, e.commune, e.departement, e.region, e.epci,
        2 * 6371.0088 * asin(sqrt(pow(sin(radians(e.latitude - ?5) / 2), 2)
            + cos(radians(?5)) * cos(radians(e.latitude)) * pow(sin(radians(e.longitude - ?6) / 2), 2)))
            AS distance
    FROM search_geo AS g
    JOIN search_etablissements AS e ON e.id = g.id
    WHERE g.max_lat >= ?1 AND g.min_lat <= ?2 AND g.max_lon >= ?3 AND g.min_lon <= ?4
)
SELECT b.id, b.distance
FROM box AS b
WHERE b.distance <= ?7
  AND (?8 IS NULL OR b.code_postal IN (SELECT value FROM json_each(?8)))
  AND (?9 IS NULL OR b.commune IN (SELECT value FROM json_each(?9)))
  AND (?10 IS NULL OR b.departement IN (SELECT value FROM json_each(?10)))
  AND (?11 IS NULL OR b.region IN (SELECT value FROM json_each(?11)))
  AND (?12 IS NULL OR b.epci IN (SELECT value FROM json_each(?12)))
  ${units}
