-- A key of the layer `l` that the later layer ${keys} (its key relation: the base table's layer for a
-- history table) replaces: such rows are left out (sql/engines/layer.sql). ${equal}: the key columns' equality,
-- NULL-safe for a column that may be NULL (liens_succession's dateLienSuccession).
NOT EXISTS (SELECT 1 FROM ${keys} AS k WHERE ${equal})
