-- SQLite: the token of the state the lookup store answers for (mirror.lookup.store), read in the request's
-- transaction: it keys the ranked heads mirror.http.recherche keeps.
SELECT value FROM lookup_meta WHERE name = 'token'
