-- SQLite: the ids of the units with the exact-name key ?1 (mirror.lookup.search.exact_keys).
SELECT id FROM search_exact WHERE key = ?1
