-- The current state of table ${table} after day ${day}: for each key (${key}) the overlay version of the
-- latest day up to it wins over the stock row. ${day}: a DATE literal.
-- ${table}, ${overlay} and ${key} are quoted identifiers from mirror.core.schema.
WITH latest AS (
    SELECT ${key}, max(day) AS day FROM ${overlay} WHERE day <= ${day} GROUP BY ${key}
)
SELECT o.* EXCLUDE (day, seq)
FROM ${overlay} AS o JOIN latest AS l ON o.${key} = l.${key} AND o.day = l.day
UNION ALL BY NAME
SELECT * FROM ${table} AS s
WHERE s.${key} NOT IN (SELECT ${key} FROM ${overlay} WHERE day <= ${day});
