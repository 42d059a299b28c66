-- Typed établissements joined with the geolocation file at load time (mirror.load.stock, when the file is
-- given): latitude / longitude come from the file when it has them, else from the stock's Lambert columns;
-- qualiteXY, iris and qpv are added (mirror.core.schema.GEOLOCATION_COLUMNS). The établissements are the
-- probe side of the join, so their siret order is kept (the loader checks it and re-sorts a file otherwise).
--   ${typed}: the typed établissements (sql/catalog/typed_etablissements.sql)
--   ${geolocalisation}: the geolocation rows (sql/catalog/typed_geolocalisation.sql), one per siret
SELECT e.* REPLACE (
           CASE WHEN g.latitude IS NOT NULL AND g.longitude IS NOT NULL THEN g.latitude ELSE e.latitude END
               AS latitude,
           CASE WHEN g.latitude IS NOT NULL AND g.longitude IS NOT NULL THEN g.longitude ELSE e.longitude END
               AS longitude
       ),
       g.qualiteXY, g.iris, g.qpv
FROM (${typed}) AS e
LEFT JOIN ${geolocalisation} AS g ON g.siret = e.siret
