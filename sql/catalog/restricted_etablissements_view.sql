-- An établissement-level base view of a restricted catalog (catalog.build.restricted): every établissement
-- of the units asked for, and the établissements asked for.
CREATE OR REPLACE VIEW ${name} AS
SELECT * FROM ${source}
WHERE siren IN (SELECT siren FROM restricted_units) OR siret IN (SELECT siret FROM restricted_sirets);
