-- The day's établissements with the snapshot's geolocation carried over (mirror.update.run, when the
-- snapshot was loaded with the geolocation file; the rule: mirror.core.schema.GEOCODED_ADDRESS_COLUMNS).
-- A changed établissement whose geocoded address is still the snapshot's keeps the snapshot's qualiteXY,
-- iris, qpv and point (when the snapshot has one); otherwise they are NULL and the point is the API's.
-- The snapshot side is restricted to the day's sirets first (as sql/deltas/count_day.sql).
--   ${day}: the day's typed établissements (sql/catalog/typed_etablissements.sql), a table on the connection
--   ${snapshot}: the snapshot's SELECT of base view etablissements
--   ${address}: the geocoded address columns, quoted, comma-separated
--   ${same_address}: `s.<column> IS NOT DISTINCT FROM d.<column>` for each of them, joined by AND
SELECT d.* REPLACE (
           CASE WHEN s.siret IS NOT NULL AND s.latitude IS NOT NULL AND s.longitude IS NOT NULL
                THEN s.latitude ELSE d.latitude END AS latitude,
           CASE WHEN s.siret IS NOT NULL AND s.latitude IS NOT NULL AND s.longitude IS NOT NULL
                THEN s.longitude ELSE d.longitude END AS longitude
       ),
       s.qualiteXY, s.iris, s.qpv
FROM ${day} AS d
LEFT JOIN (
    SELECT s.siret, s.latitude, s.longitude, s.qualiteXY, s.iris, s.qpv, ${address}
    FROM ${snapshot} AS s
    SEMI JOIN ${day} AS k ON s.siret = k.siret
    WHERE s.qualiteXY IS NOT NULL OR s.iris IS NOT NULL OR s.qpv IS NOT NULL
) AS s ON s.siret = d.siret AND ${same_address}
