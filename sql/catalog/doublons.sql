-- The SELECT of base view `doublons` over the current snapshot (filled by mirror.catalog.build).
-- ${snapshot}: absolute path of the snapshot folder; ${columns}: the typed columns, INSEE names, current layout.
SELECT ${columns}
FROM read_parquet('${snapshot}/doublons/*.parquet');
