-- SQLite: search_tier_enseignes.sql among the units matching the whole search_fts expression ?3 (text and
-- filters; `+rowid`: see search_tier_names_filtered.sql).
SELECT rowid, rank FROM search_enseignes
WHERE search_enseignes MATCH ?1
  AND +rowid NOT IN (SELECT rowid FROM search_nom WHERE search_nom MATCH ?1)
  AND +rowid IN (SELECT rowid FROM search_fts WHERE search_fts MATCH ?3)
ORDER BY rank LIMIT ?2
