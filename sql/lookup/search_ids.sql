-- SQLite: the ids (rowid = siren as an integer) of the units matching the FTS5 expression ?1 after the id ?2,
-- in id order, at most ?3 (paging through every match, with no ranking window).
SELECT rowid FROM search_fts WHERE search_fts MATCH ?1 AND rowid > ?2 ORDER BY rowid LIMIT ?3
