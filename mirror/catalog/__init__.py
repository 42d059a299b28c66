"""Layer 2: the DuckDB catalog DATA_DIR/sirene.duckdb (views over the snapshot and the merged deltas, ref
tables), rebuilt aside and switched atomically by load and update, read by serve and export."""
