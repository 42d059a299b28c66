-- SQLite: the units matching the FTS5 expression ?1 one of whose établissements (siège or open,
-- search_etablissements) meets every address filter at once (several address filters: the FTS5 column
-- filters alone let each be met by another établissement), in id order.
--   ?2..?6: JSON arrays of accepted codes postaux, communes, départements, régions, EPCI (NULL: any).
SELECT f.rowid
FROM search_fts AS f
WHERE search_fts MATCH ?1
  AND EXISTS (
      SELECT 1 FROM search_etablissements AS e
      WHERE e.id BETWEEN f.rowid * 100000 AND f.rowid * 100000 + 99999
        AND (?2 IS NULL OR e.code_postal IN (SELECT value FROM json_each(?2)))
        AND (?3 IS NULL OR e.commune IN (SELECT value FROM json_each(?3)))
        AND (?4 IS NULL OR e.departement IN (SELECT value FROM json_each(?4)))
        AND (?5 IS NULL OR e.region IN (SELECT value FROM json_each(?5)))
        AND (?6 IS NULL OR e.epci IN (SELECT value FROM json_each(?6))))
ORDER BY f.rowid
