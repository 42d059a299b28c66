-- The SIRENs whose unit rows the delta days applied after the store's last refresh (sequence number > ?)
-- changed (unites_legales and its historique files): their unit document and every établissement
-- document (the nested unite_legale) are re-derived.
SELECT DISTINCT siren FROM read_parquet(${files}, union_by_name = true)
WHERE siren IS NOT NULL AND _delta_seq > ?
