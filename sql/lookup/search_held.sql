-- SQLite: how many units hold the FTS5 phrase ?1 in their names or enseignes, counting no further than ?2
-- (typo tolerance asks whether (almost) no unit holds a word: it stops at the first few rows).
SELECT count(*) FROM (SELECT 1 FROM search_fts WHERE search_fts MATCH '{nom enseignes} : ' || ?1 LIMIT ?2)
