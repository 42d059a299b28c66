-- SQLite: how many units match the FTS5 expression ?1 (one phrase in the text columns), counting no further
-- than ?2 (typo tolerance asks whether (almost) no unit holds a word: it stops at the first few rows).
SELECT count(*) FROM (SELECT 1 FROM search_fts WHERE search_fts MATCH ?1 LIMIT ?2)
