-- Deterministic pseudo-random keys (${key}) of stock rows of ${table} matching ${where} (a fixed
-- condition of the change stream, never user input), outside the big units; ? = salt, ? = limit.
SELECT ${key} FROM ${table}
WHERE (${where}) AND siren NOT IN (SELECT siren FROM big_units)
ORDER BY hash(${key} || ?), ${key}
LIMIT ?;
