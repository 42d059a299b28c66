-- SQLite: the number of units matching the text expression ?1 only with an enseigne, the units of the JSON
-- array ?2 aside (every name match of the text, when its first tier read them all: an unfiltered total is
-- then that array's length plus this count).
SELECT count(*) FROM search_enseignes
WHERE search_enseignes MATCH ?1 AND +rowid NOT IN (SELECT value FROM json_each(?2))
