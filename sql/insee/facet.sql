-- One `facettes[]` entry of an INSEE search (facette.champ): the rows matching ${where} counted by the
-- value of ${column}: rows without value, rows with one, distinct values, and the counts by value (most
-- frequent first, then by value; at most ? of them).
WITH m AS (SELECT CAST(${column} AS VARCHAR) AS valeur FROM ${table} ${alias} WHERE ${where}),
c AS (SELECT valeur, count(*) AS nombre FROM m WHERE valeur IS NOT NULL GROUP BY valeur)
SELECT (SELECT count(*) FROM m WHERE valeur IS NULL) AS manquants,
       (SELECT coalesce(sum(nombre), 0) FROM c) AS total,
       (SELECT count(*) FROM c) AS modalites,
       (SELECT list({'valeur': valeur, 'nombre': nombre} ORDER BY nombre DESC, valeur)
        FROM (SELECT * FROM c ORDER BY nombre DESC, valeur LIMIT ?)) AS comptages;
