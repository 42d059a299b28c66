-- New, changed and closed units of a day, relative to the mirror before the day (mirror.update._count):
-- the previous state of the day's keys, by the same merge as the base view (sql/deltas/<table>.sql),
-- each branch restricted to the day's keys first. (Through the view, DuckDB probes every snapshot row
-- against the merged keys before it keeps the day's keys: 1.5 times slower at national scale.)
-- A unit is "changed" only when a compared column (its dateDernierTraitement: INSEE processed it again)
-- differs from its previous version: re-applying a day, or dry-running a day already applied, counts 0.
-- Filled in by mirror.deltas.previous_state_sql:
--   ${day}: the day's typed table; ${key}: siren or siret; ${state}: the état administratif column;
--   ${closed}: its closed value; ${snapshot}: the snapshot's SELECT;
--   ${merged}, ${recent}: the merged version's base and recent files (empty relations when none);
--   ${values_d}, ${values_r}, ${values_m}, ${values_s}: the compared columns as one row value,
--   qualified by the alias d, r, m or s
WITH keys AS (
    SELECT DISTINCT ${key} FROM ${day}
), merged AS (
    SELECT r.${key}, r.${state}, ${values_r} AS v FROM ${recent} AS r SEMI JOIN keys AS k ON r.${key} = k.${key}
    UNION ALL
    SELECT m.${key}, m.${state}, ${values_m} AS v FROM ${merged} AS m
    SEMI JOIN keys AS k ON m.${key} = k.${key}
    ANTI JOIN (SELECT ${key} FROM ${recent}) AS r ON m.${key} = r.${key}
), previous AS (
    SELECT * FROM merged
    UNION ALL
    SELECT s.${key}, s.${state}, ${values_s} AS v FROM ${snapshot} AS s
    SEMI JOIN keys AS k ON s.${key} = k.${key}
    ANTI JOIN merged AS m ON s.${key} = m.${key}
)
SELECT count(*) FILTER (WHERE p.${key} IS NULL) AS new,
       count(*) FILTER (WHERE p.${key} IS NOT NULL AND d.${state} = '${closed}'
                        AND p.${state} IS DISTINCT FROM '${closed}') AS closed,
       count(*) FILTER (WHERE p.${key} IS NOT NULL
                        AND NOT (d.${state} = '${closed}' AND p.${state} IS DISTINCT FROM '${closed}')
                        AND ${values_d} IS DISTINCT FROM p.v) AS changed
FROM ${day} AS d
LEFT JOIN previous AS p ON p.${key} = d.${key}
