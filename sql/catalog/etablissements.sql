-- The SELECT of base view `etablissements` over the current snapshot (filled by mirror.catalog.build).
-- ${snapshot}: absolute path of the snapshot folder; ${columns}: the typed columns (INSEE names, current
-- layout) then the derived ones (departement, region, epci, latitude, longitude, coordonneesMasquees).
-- Files are hive-partitioned by departement (NULL = __HIVE_DEFAULT_PARTITION__): a filter on
-- departement only opens the matching folder.
SELECT ${columns}
FROM read_parquet('${snapshot}/etablissements/*/*.parquet',
                  hive_partitioning = true, hive_types = {'departement': 'VARCHAR'});
