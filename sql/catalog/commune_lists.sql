-- The commune lists of sql/catalog/commune_geo.sql (one row), read once per process by
-- mirror.core.typed for its UDFs mirror_commune_departement / _region / _epci.
SELECT departement, region, epci FROM _mirror_commune_lists;
