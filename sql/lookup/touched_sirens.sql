-- The SIRENs that the delta days applied after the store's last refresh (sequence number > ?) changed:
-- their unit, établissements and histories are re-derived.
SELECT DISTINCT siren FROM read_parquet(${files}, union_by_name = true)
WHERE siren IS NOT NULL AND _delta_seq > ?
