-- The SELECT of base view `unites_legales_historique` over the current snapshot (filled by mirror.catalog.build).
-- ${snapshot}: absolute path of the snapshot folder; ${columns}: the typed columns, INSEE names, current layout.
SELECT ${columns}
FROM read_parquet('${snapshot}/unites_legales_historique/*.parquet');
