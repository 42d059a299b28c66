-- SQLite: the first tier of a ranked search: the best ?2 units holding every word of the text expression ?1
-- in their names, by search_nom's bm25 (rowid = the unit's id, rank: lower is better).
SELECT rowid, rank FROM search_nom WHERE search_nom MATCH ?1 ORDER BY rank LIMIT ?2
