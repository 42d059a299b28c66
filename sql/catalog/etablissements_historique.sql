-- Base view `etablissements_historique` over the current snapshot (template filled by mirror/catalog.py).
-- ${snapshot}: absolute path of the snapshot folder; ${columns}: the typed columns, INSEE names, current layout.
CREATE OR REPLACE VIEW etablissements_historique AS
SELECT ${columns}
FROM read_parquet('${snapshot}/etablissements_historique/*.parquet');
