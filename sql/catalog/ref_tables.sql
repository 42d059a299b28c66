-- The ref_* tables (sql/ref as tables) of the current database: a catalog, or its ref-table template.
SELECT table_name FROM duckdb_tables()
WHERE database_name = current_database() AND schema_name = 'main' AND starts_with(table_name, 'ref_')
ORDER BY table_name
