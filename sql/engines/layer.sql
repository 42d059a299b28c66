-- One layer of a base view over the current-state layout (DATA_DIR/current.json, mirror/catalog/current.py),
-- in the portable SQL every dialect of `mirror views` transpiles from: the ${columns} of the layer's relation
-- ${relation} (a column the layer lacks is a typed NULL), ${shadowed}: "" or the WHERE that leaves out the
-- keys a later layer replaces (a NOT EXISTS per later layer, shadowed.sql). The base view is the UNION ALL
-- of its layers, oldest first. The DuckDB catalog's own base views (sql/deltas/) say the same with DuckDB's
-- ANTI JOIN and UNION ALL BY NAME, which keep filters and projections reaching the snapshot scan.
SELECT ${columns}
FROM ${relation} AS l${shadowed}
