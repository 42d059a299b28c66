"""Other engines over the mirror's current state: the catalog in other SQL dialects (`dialects`, `mirror
views --dialect`) and Apache Spark (`spark.register`). They read the layout of DATA_DIR/current.json
(mirror.catalog.current), never the DuckDB catalog file."""
