"""Layer 1: the delta store: one folder of typed Parquet per INSEE day, compacted into merged versions that
the catalog's base views read (written by update, re-merged by load when a new snapshot changes the coverage)."""
