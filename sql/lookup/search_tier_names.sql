-- SQLite: the first tier of a ranked search: the best ?2 units holding every word of the text expression ?1
-- in their names, by search_nom's bm25 (rowid = the unit's id, score: lower is better), then id.
-- bm25() sorted by SQLite, not FTS5's `ORDER BY rank`: FTS5 computes the rank of every match to sort them,
-- then again for each row it returns, and the first of those computes its phrases' statistics again
-- (measured at 1 M units, 1,000 rows: "boulangerie" 17.8 ms against 13.2 ms, "boulangerie patisserie"
-- 2.4 ms against 1.7 ms). Names weigh 10, as in search_tier_enseignes.sql: the tiers' scores on one scale.
SELECT rowid, bm25(search_nom, 10.0) AS score FROM search_nom
WHERE search_nom MATCH ?1
ORDER BY score, rowid LIMIT ?2
