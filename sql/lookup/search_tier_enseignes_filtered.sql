-- SQLite: search_tier_enseignes.sql among the units matching the whole search_fts expression ?3 (text and
-- filters; `+rowid`: see search_tier_names_filtered.sql).
SELECT rowid, bm25(search_enseignes, 10.0, 3.0) AS score FROM search_enseignes
WHERE search_enseignes MATCH ?1
  AND +rowid NOT IN (SELECT rowid FROM search_nom WHERE search_nom MATCH ?1)
  AND +rowid IN (SELECT rowid FROM search_fts WHERE search_fts MATCH ?3)
ORDER BY score, rowid LIMIT ?2
