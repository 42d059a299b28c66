-- The changes of one table across a new monthly snapshot (mirror.load.stock_changes): per key, the
-- differences between the state the mirror showed just before the snapshot (${old}: the current catalog's
-- base view, i.e. the previous snapshot with its delta days) and the state it shows after (${new}: the new
-- snapshot with the delta days it does not contain). What the days already reported is equal on both sides,
-- so this lists only what they did not: keys that left the register (`removed`), keys the days never
-- created, and field changes no day carried. The keys are first compared on a hash of their compared
-- variables as text (two narrow scans and one join); only the keys that differ are read in full.
--   ${old}, ${new}: the two SELECTs; ${key}, ${level}, ${processed}, ${created}: the table's key, level
--   name, dateDernierTraitement and creation-date columns; ${hashed}: the compared variables cast to text,
--   comma-separated; ${unpivot}: one {field, old, new, historised, masked} struct per compared variable over
--   the aliases b (before) and a (after); ${rows}: sql/changes/rows.sql.
--   One parameter: the day of these changes (the new snapshot's coverage).
WITH o AS (SELECT ${key} AS k, hash(${hashed}) AS h FROM ${old}),
n AS (SELECT ${key} AS k, hash(${hashed}) AS h FROM ${new}),
differ AS (
    SELECT coalesce(o.k, n.k) AS k, o.k IS NULL AS is_new, n.k IS NULL AS is_removed
    FROM o FULL OUTER JOIN n ON o.k = n.k
    WHERE o.h IS DISTINCT FROM n.h
),
before AS (SELECT * FROM ${old} WHERE ${key} IN (SELECT k FROM differ WHERE NOT is_new)),
after AS (SELECT * FROM ${new} WHERE ${key} IN (SELECT k FROM differ WHERE NOT is_removed)),
compared AS (
    SELECT d.k AS identifier, CAST(? AS DATE) AS day, a.${processed} AS processing_date,
           a.dateDebut AS period_start, a.${created} AS created, d.is_new, d.is_removed,
           unnest([${unpivot}]) AS c
    FROM differ AS d
    LEFT JOIN before AS b ON b.${key} = d.k
    LEFT JOIN after AS a ON a.${key} = d.k
)
${rows}
