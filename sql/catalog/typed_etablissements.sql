-- Typed établissements with their derived columns, from a source whose columns carry INSEE's names
-- (template filled by mirror.load.typed_select_sql; needs the macros and variables of commune_geo.sql and
-- the UDF mirror_wgs84 registered by mirror.core.typed.prepare_connection). The commune / département
-- lookups are one of two forms of the same tables (mirror.core.typed.typed_select_sql, keep_order):
--   - list lookups, no join (commune lists through the Arrow UDFs mirror_commune_*, département lists in
--     session variables): the rows keep the source's order (the loader writes sorted partitions in one
--     pass thanks to it);
--   - LEFT JOINs on the lookup tables the lists are built from (key unique in both): the rows in any order,
--     bound in milliseconds (an update day's few thousand rows, sorted by key when written).
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
            WHEN ${commune_departement} IS NOT NULL THEN ${commune_departement}
            WHEN codeCommuneEtablissement LIKE '99%' THEN '99'
            WHEN codeCommuneEtablissement IS NULL
                 AND (codePaysEtrangerEtablissement IS NOT NULL
                      OR libellePaysEtrangerEtablissement IS NOT NULL) THEN '99'
            ELSE ${departement_code}
        END AS departement,
        coalesce(${commune_region}, ${departement_region}) AS region,
        ${commune_epci} AS epci,
        CASE WHEN coordonneeLambertAbscisseEtablissement IS NOT NULL
                  AND coordonneeLambertOrdonneeEtablissement IS NOT NULL
             THEN mirror_wgs84(coordonneeLambertAbscisseEtablissement,
                               coordonneeLambertOrdonneeEtablissement, ${epsg})
        END AS _wgs84
    FROM keyed${lookup_joins}
)
SELECT ${typed_names}, departement, region, epci,
       struct_extract(_wgs84, 'lat') AS latitude, struct_extract(_wgs84, 'lon') AS longitude,
       coordonneesMasquees${extra_names}
FROM located
