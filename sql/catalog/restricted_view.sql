-- A unit-level base table of a restricted catalog (catalog.build.restricted): the rows of the attached
-- catalog's ${name} whose SIREN is one of the units asked for or the unit of an établissement asked for.
-- A table, not a view: every query of the catalog reads these rows, a view would scan the source each time.
CREATE OR REPLACE TABLE ${name} AS
SELECT * FROM ${source}
WHERE siren IN (SELECT siren FROM restricted_units UNION ALL SELECT left(siret, 9) FROM restricted_sirets);
