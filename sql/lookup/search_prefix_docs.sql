-- SQLite: documents of the terms in [?1, ?2) (a prefix's range; a sum over terms, so an upper bound).
SELECT coalesce(sum(doc), 0) FROM search_vocab WHERE term >= ?1 AND term < ?2
