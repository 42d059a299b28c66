-- The SIRENs that cut the units into ranges of about equal size for sql/lookup/store_rows.sql (a full build
-- of a large mirror). Parameter: the list of fractions (1/n, 2/n, ...).
SELECT quantile_disc(siren, ?) FROM unites_legales
