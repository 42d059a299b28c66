-- SQLite: the indexed terms among a list of candidates (typo tolerance), with their document counts.
--   ${candidates}: a generated list of `?` placeholders.
SELECT term, doc FROM search_vocab WHERE term IN (${candidates})
