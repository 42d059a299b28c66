-- The changes of one table (mirror.serve.changes): for every key a delta day of [?, ?] touched, its versions
-- (the snapshot row, then each day's row, in the order the merge rules rank them: dateDernierTraitement,
-- then day and fetch), and between consecutive versions one row per variable whose value differs, or one
-- `creation` row for a key whose first version is a day's. Identical versions (INSEE re-sends) report
-- nothing. A variable masked ([ND]) in the key's latest version is [ND] in all its changes: the values it
-- had before the person opted out of diffusion are not shown again.
--   ${snapshot}: the base view's SELECT over the snapshot alone; ${days}: the typed rows of every delta day
--   (with _delta_day, _delta_seq); ${key}, ${level}, ${processed}, ${created}: the table's key, level name,
--   dateDernierTraitement and creation-date columns; ${lags}: `lag(col) OVER w AS "_prev_col"` and
--   `last_value(col) OVER whole AS "_last_col"` per compared variable; ${unpivot}: one {field, old, new, historised, masked} struct per compared variable; ${first}: the
--   first compared variable (the one struct a creation keeps); ${ids}: the identifiers to keep (a query);
--   ${rows}: sql/changes/rows.sql, which turns `compared` into the changes' rows.
WITH touched AS (
    SELECT DISTINCT ${key} AS k FROM ${days} WHERE _delta_day BETWEEN ? AND ?
),
versions AS (
    SELECT s.*, NULL::DATE AS _delta_day, CAST(-1 AS BIGINT) AS _delta_seq
    FROM ${snapshot} AS s WHERE s.${key} IN (SELECT k FROM touched)
    UNION ALL BY NAME
    SELECT d.* FROM ${days} AS d WHERE d.${key} IN (SELECT k FROM touched)
),
ranked AS (
    SELECT *, row_number() OVER w = 1 AND _delta_day IS NOT NULL AS is_new, ${lags}
    FROM versions
    WINDOW w AS (PARTITION BY ${key} ORDER BY ${processed} NULLS FIRST, _delta_day NULLS FIRST, _delta_seq),
           whole AS (w ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
),
pairs AS (
    SELECT * FROM ranked
    WHERE _delta_day BETWEEN ? AND ? AND ${key} IN (${ids})
),
compared AS (
    SELECT ${key} AS identifier, _delta_day AS day, ${processed} AS processing_date, dateDebut AS period_start,
           ${created} AS created, is_new, false AS is_removed,
           unnest([${unpivot}]) AS c
    FROM pairs
)
${rows}
