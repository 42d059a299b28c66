-- Base view `unites_legales` over the current snapshot (template filled by mirror/catalog.py).
-- ${snapshot}: absolute path of the snapshot folder; ${columns}: the typed columns, INSEE names, current layout.
CREATE OR REPLACE VIEW unites_legales AS
SELECT ${columns}
FROM read_parquet('${snapshot}/unites_legales/*.parquet');
