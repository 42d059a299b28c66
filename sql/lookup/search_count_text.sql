-- SQLite: the number of units matching the text expression ?1 in names or enseignes (an unfiltered search's
-- total: the same units as search_count.sql's `{nom enseignes} : (?1)`, from the smaller index).
SELECT count(*) FROM search_names WHERE search_names MATCH ?1
