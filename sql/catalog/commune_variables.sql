-- The département lists of sql/catalog/commune_geo.sql as session variables of a connection that types
-- rows (read with getvariable(...)[key + 1]); _mirror_departement_lists is registered on it.
SET VARIABLE mirror_departement_code = (SELECT code FROM _mirror_departement_lists);
SET VARIABLE mirror_departement_region = (SELECT region FROM _mirror_departement_lists);
