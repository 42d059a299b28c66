-- Typed établissements with their derived columns, from a source whose columns carry INSEE's names
-- (template filled by mirror.load.typed_select_sql; needs the TEMP tables of commune_geo.sql and the
-- UDF mirror_wgs84 registered by mirror.load.prepare_connection).
--   ${typed_columns}: the typed INSEE columns (current layout; NULL when absent from the source)
--   ${masked_test}: SQL true when the source's Lambert columns held the literal [ND]
--   ${epsg}: EPSG of the commune's projection (mirror.geo table; NULL abroad/unknown)
--   ${source}: a table, view or parenthesised query; ${typed_names}/${extra_names}: output column lists
WITH typed AS (
    SELECT ${typed_columns}, ${masked_test} AS coordonneesMasquees${extra_columns}
    FROM ${source}
), located AS (
    SELECT typed.*,
        CASE
            WHEN g.departement IS NOT NULL THEN g.departement
            WHEN typed.codeCommuneEtablissement LIKE '99%' THEN '99'
            WHEN typed.codeCommuneEtablissement IS NULL
                 AND (typed.codePaysEtrangerEtablissement IS NOT NULL
                      OR typed.libellePaysEtrangerEtablissement IS NOT NULL) THEN '99'
            ELSE d.code
        END AS departement,
        coalesce(g.region, d.region) AS region,
        g.epci AS epci,
        CASE WHEN typed.coordonneeLambertAbscisseEtablissement IS NOT NULL
                  AND typed.coordonneeLambertOrdonneeEtablissement IS NOT NULL
             THEN mirror_wgs84(typed.coordonneeLambertAbscisseEtablissement,
                               typed.coordonneeLambertOrdonneeEtablissement, ${epsg})
        END AS _wgs84
    FROM typed
    LEFT JOIN _mirror_commune_geo g ON g.code = typed.codeCommuneEtablissement
    LEFT JOIN _mirror_departements d
        ON d.code = CASE WHEN left(typed.codeCommuneEtablissement, 2) IN ('97', '98')
                         THEN left(typed.codeCommuneEtablissement, 3)
                         ELSE left(typed.codeCommuneEtablissement, 2) END
)
SELECT ${typed_names}, departement, region, epci,
       struct_extract(_wgs84, 'lat') AS latitude, struct_extract(_wgs84, 'lon') AS longitude,
       coordonneesMasquees${extra_names}
FROM located
