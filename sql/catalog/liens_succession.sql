-- Base view `liens_succession` over the current snapshot (template filled by mirror/catalog.py).
-- ${snapshot}: absolute path of the snapshot folder; ${columns}: the typed columns, INSEE names, current layout.
CREATE OR REPLACE VIEW liens_succession AS
SELECT ${columns}
FROM read_parquet('${snapshot}/liens_succession/*.parquet');
