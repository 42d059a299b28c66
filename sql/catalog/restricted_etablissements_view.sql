-- An établissement-level base table of a restricted catalog (catalog.build.restricted): every établissement
-- of the units asked for, and the établissements asked for (a table: see restricted_view.sql).
CREATE OR REPLACE TABLE ${name} AS
SELECT * FROM ${source}
WHERE siren IN (SELECT siren FROM restricted_units) OR siret IN (SELECT siret FROM restricted_sirets);
