-- The rows of INSEE's geolocation file (GeolocalisationEtablissement_Sirene_pour_etudes_statistiques) that
-- the établissements are joined with at load time (filled by mirror.core.typed.geolocation_select_sql): one
-- row per siret (a repeated siret keeps one of its rows), WGS84 coordinates, geocoding quality, IRIS, QPV.
--   ${source}: a table, view or parenthesised query with the file's column names (all VARCHAR for the CSV)
--   ${latitude} / ${longitude}: y_latitude / x_longitude as DOUBLE ("[ND]" and junk -> NULL)
--   ${projected}: STRUCT(lat, lon) from x, y and their per-row EPSG (mirror_wgs84), used when the file has
--     no (or an unreadable) WGS84 value
--   ${qualite}, ${iris_local}, ${commune}, ${qpv}: the text of qualite_xy, plg_iris, plg_code_commune and the
--     QPV column (plg_qp24, else plg_qp of older files), NULL when absent
SELECT siret,
       coalesce(latitude, struct_extract(projected, 'lat')) AS latitude,
       coalesce(longitude, struct_extract(projected, 'lon')) AS longitude,
       qualiteXY, iris, qpv
FROM (
    SELECT siret, any_value(latitude) AS latitude, any_value(longitude) AS longitude,
           any_value(projected) AS projected, any_value(qualiteXY) AS qualiteXY, any_value(iris) AS iris,
           any_value(qpv) AS qpv
    FROM (
        SELECT nullif(trim(CAST(siret AS VARCHAR)), '') AS siret,
               ${latitude} AS latitude, ${longitude} AS longitude,
               CASE WHEN ${latitude} IS NULL OR ${longitude} IS NULL THEN ${projected} END AS projected,
               CASE WHEN ${qualite} IN ('11', '12', '21', '22', '33') THEN ${qualite} END AS qualiteXY,
               CASE WHEN regexp_full_match(${commune}, '[0-9][0-9AB][0-9]{3}')
                         AND regexp_full_match(${iris_local}, '[0-9]{4}')
                    THEN ${commune} || ${iris_local} END AS iris,
               CASE WHEN ${qpv} NOT IN ('HZ', 'CSZ', '[ND]') THEN ${qpv} END AS qpv
        FROM ${source}
    )
    WHERE siret IS NOT NULL
    GROUP BY siret
)
