"""Stage: monthly stock files -> a typed, partitioned Parquet snapshot, validated and published."""
