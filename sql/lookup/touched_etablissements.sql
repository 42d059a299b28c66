-- The SIRETs whose rows the delta days applied after the store's last refresh (sequence number > ?)
-- changed (etablissements and its historique files): their document is re-derived.
SELECT DISTINCT siret FROM read_parquet(${files}, union_by_name = true)
WHERE siret IS NOT NULL AND _delta_seq > ?
