-- SQLite: the second tier of a ranked search: the best ?2 units matching the text expression ?1 in names and
-- enseignes together but not in their names alone (those are the first tier, search_tier_names.sql, every
-- one of them, not only its window), by search_enseignes' bm25 (a unit without enseignes that matches the
-- text matches it in its name: search_enseignes holds the units with enseignes alone). Names weigh more than
-- enseignes, as much as in search_tier_names.sql (bm25() rather than `rank`: see there).
SELECT rowid, bm25(search_enseignes, 10.0, 3.0) AS score FROM search_enseignes
WHERE search_enseignes MATCH ?1 AND +rowid NOT IN (SELECT rowid FROM search_nom WHERE search_nom MATCH ?1)
ORDER BY score, rowid LIMIT ?2
