-- The condition restricting sql/lookup/search_units.sql to the sirens of one relation (an incremental
-- re-index): ${sirens} is the quoted name of a table or view with one VARCHAR column `siren`.
siren IN (SELECT siren FROM ${sirens})
