-- SQLite: what orders the units of one relevance bucket (active first, then more open établissements), for
-- the ids in the JSON array ?1: a page sorts its buckets on these, then reads its own rows (search_rows.sql).
SELECT id, etat_administratif = 'A', etablissements_ouverts
FROM search_units
WHERE id IN (SELECT value FROM json_each(?1))
