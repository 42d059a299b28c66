-- SQLite: the number of units matching the text expression ?1 in names or enseignes (an unfiltered search's
-- total): the name matches, plus the units with enseignes that match only with them.
SELECT (SELECT count(*) FROM search_nom WHERE search_nom MATCH ?1)
     + (SELECT count(*) FROM search_enseignes
        WHERE search_enseignes MATCH ?1
          AND +rowid NOT IN (SELECT rowid FROM search_nom WHERE search_nom MATCH ?1))
