-- Active établissements within 5 km of a point (WGS84), nearest first (haversine distance).
-- Change the point and radius below, then:
-- duckdb -readonly data/sirene.duckdb < sql/examples/within_5km.sql
SET VARIABLE lat = 48.8566;      -- Paris, Hôtel de Ville
SET VARIABLE lon = 2.3522;
SET VARIABLE radius_km = 5;

SELECT siret, denominationUniteLegale, enseigne1Etablissement, activitePrincipaleEtablissement,
       libelleCommuneEtablissement, latitude, longitude, round(distance_km, 3) AS distance_km
FROM (
    SELECT e.*, u.denominationUniteLegale,
           2 * 6371.0088 * asin(sqrt(
               pow(sin(radians(e.latitude - getvariable('lat')) / 2), 2)
               + cos(radians(getvariable('lat'))) * cos(radians(e.latitude))
                 * pow(sin(radians(e.longitude - getvariable('lon')) / 2), 2))) AS distance_km
    FROM etablissements_diffusibles e
    JOIN unites_legales_diffusibles u USING (siren)
    WHERE e.etatAdministratifEtablissement = 'A'
      -- bounding box first (cheap), exact distance after
      AND e.latitude BETWEEN getvariable('lat') - getvariable('radius_km') / 110.574
                         AND getvariable('lat') + getvariable('radius_km') / 110.574
      AND e.longitude BETWEEN getvariable('lon') - getvariable('radius_km') / (111.320 * cos(radians(getvariable('lat'))))
                          AND getvariable('lon') + getvariable('radius_km') / (111.320 * cos(radians(getvariable('lat'))))
)
WHERE distance_km <= getvariable('radius_km')
ORDER BY distance_km;
