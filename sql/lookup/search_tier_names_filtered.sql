-- SQLite: search_tier_names.sql among the units matching the whole search_fts expression ?3 (text and
-- filters). `+rowid` keeps the set out of search_nom's own plan: the set is built once, each name match
-- ranked by bm25 is tested against it (a rowid constraint handed to FTS5 would run the MATCH once per unit of
-- the set, its bm25 statistics with it: 494 ms for a common word at 1 M units).
SELECT rowid, bm25(search_nom, 10.0) AS score FROM search_nom
WHERE search_nom MATCH ?1 AND +rowid IN (SELECT rowid FROM search_fts WHERE search_fts MATCH ?3)
ORDER BY score, rowid LIMIT ?2
