-- header.total of an INSEE multicriteria search (${table} ${alias}: the base view; ${where}: the q
-- predicate of mirror.http.insee_query, values bound as ?).
SELECT count(*) FROM ${table} ${alias} WHERE ${where};
