-- SQLite: the number of units matching the FTS5 expression ?.
SELECT count(*) FROM search_fts WHERE search_fts MATCH ?
