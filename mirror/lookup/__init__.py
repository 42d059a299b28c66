"""The serving store: DATA_DIR/lookup.sqlite, keyed documents and the company search index (SQLite FTS5)."""
