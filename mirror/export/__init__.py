"""Stage: filtered bulk exports (CSV, Parquet, JSON Lines, Excel, GeoJSON), the `--where` check and batch enrichment."""
