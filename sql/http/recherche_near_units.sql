-- The unit-level filters of /near_point (embedded in sql/http/recherche_near.sql): the unit of the
-- établissement b matches the FTS5 expression ?13.
AND EXISTS (SELECT 1 FROM search_fts WHERE search_fts MATCH ?13 AND search_fts.rowid = b.id / 100000)
