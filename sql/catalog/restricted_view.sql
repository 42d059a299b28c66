-- A unit-level base view of a restricted catalog (catalog.build.restricted): the rows of the attached
-- catalog's ${name} whose SIREN is one of the units asked for or the unit of an établissement asked for.
CREATE OR REPLACE VIEW ${name} AS
SELECT * FROM ${source}
WHERE siren IN (SELECT siren FROM restricted_units UNION ALL SELECT left(siret, 9) FROM restricted_sirets);
