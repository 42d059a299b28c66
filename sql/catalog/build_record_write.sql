-- The one-row table `mirror_catalog_build`: what this catalog was built from (mirror.catalog.build).
-- fingerprint: snapshot and data paths, SQL files, ref tables and DuckDB version (a daily rebuild reuses
-- the catalog only when it matches; a publication checks it to finish an interrupted switch); merged: the
-- folder name of the merged delta version the base views read (NULL: the plain snapshot), checked by
-- `mirror update` to repair a catalog left stale by a crash; snapshot: the absolute path of the snapshot
-- folder, checked by `connect` so that a deleted folder is a one-line error.
CREATE OR REPLACE TABLE mirror_catalog_build AS
SELECT ?::VARCHAR AS fingerprint, ?::VARCHAR AS merged, ?::VARCHAR AS snapshot;
