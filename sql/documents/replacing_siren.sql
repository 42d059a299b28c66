-- The SIREN replacing a unit closed as a doublon (StockDoublons), NULL when it is not one.
--   ? : the SIREN looked up.
SELECT min(siren) FROM doublons WHERE sirenDoublon = ?
