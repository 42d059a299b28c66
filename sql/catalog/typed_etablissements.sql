-- Typed établissements with their derived columns, from a source whose columns carry INSEE's names
-- (template filled by mirror.load.typed_select_sql; needs the macros and variables of commune_geo.sql and
-- the UDF mirror_wgs84 registered by mirror.load.prepare_connection). No join: the rows keep the source's
-- order (the loader writes sorted partitions in one pass thanks to it).
--   ${typed_columns}: the typed INSEE columns (current layout; NULL when absent from the source)
--   ${masked_test}: SQL true when the source's Lambert columns held the literal [ND]
--   ${epsg}: EPSG of the commune's projection (mirror.geo table; NULL abroad/unknown)
--   ${source}: a table, view or parenthesised query; ${typed_names}/${extra_names}: output column lists
WITH typed AS (
    SELECT ${typed_columns}, ${masked_test} AS coordonneesMasquees${extra_columns}
    FROM ${source}
), keyed AS (
    SELECT typed.*, mirror_commune_key(typed.codeCommuneEtablissement) + 1 AS _ck,
           mirror_departement_key(typed.codeCommuneEtablissement) + 1 AS _dk
    FROM typed
), located AS (
    SELECT keyed.* EXCLUDE (_ck, _dk),
        CASE
            WHEN getvariable('mirror_commune_departement')[_ck] IS NOT NULL
                THEN getvariable('mirror_commune_departement')[_ck]
            WHEN codeCommuneEtablissement LIKE '99%' THEN '99'
            WHEN codeCommuneEtablissement IS NULL
                 AND (codePaysEtrangerEtablissement IS NOT NULL
                      OR libellePaysEtrangerEtablissement IS NOT NULL) THEN '99'
            ELSE getvariable('mirror_departement_code')[_dk]
        END AS departement,
        coalesce(getvariable('mirror_commune_region')[_ck], getvariable('mirror_departement_region')[_dk]) AS region,
        getvariable('mirror_commune_epci')[_ck] AS epci,
        CASE WHEN coordonneeLambertAbscisseEtablissement IS NOT NULL
                  AND coordonneeLambertOrdonneeEtablissement IS NOT NULL
             THEN mirror_wgs84(coordonneeLambertAbscisseEtablissement,
                               coordonneeLambertOrdonneeEtablissement, ${epsg})
        END AS _wgs84
    FROM keyed
)
SELECT ${typed_names}, departement, region, epci,
       struct_extract(_wgs84, 'lat') AS latitude, struct_extract(_wgs84, 'lon') AS longitude,
       coordonneesMasquees${extra_names}
FROM located
