-- The doublons a new monthly snapshot adds or drops (mirror.load.stock_changes): pairs (siren, sirenDoublon)
-- of its doublons file (${new}) not in the current catalog's (${old}), and the reverse. Each pair gives a
-- `doublon` row to both units, naming the other: field sirenDoublon on the siren, field siren on the
-- sirenDoublon; new_value is the other SIREN for an added pair, old_value for a dropped one.
-- One parameter: the day of these changes (the new snapshot's coverage).
WITH added AS (
    SELECT siren, sirenDoublon FROM ${new} EXCEPT SELECT siren, sirenDoublon FROM ${old}
),
dropped AS (
    SELECT siren, sirenDoublon FROM ${old} EXCEPT SELECT siren, sirenDoublon FROM ${new}
),
pairs AS (
    SELECT p.siren, p.sirenDoublon, p.added, n.processed
    FROM (SELECT *, true AS added FROM added UNION ALL SELECT *, false AS added FROM dropped) AS p
    LEFT JOIN (SELECT siren, sirenDoublon, max(dateDernierTraitementDoublon) AS processed FROM ${new} GROUP BY ALL) AS n
        ON n.siren = p.siren AND n.sirenDoublon = p.sirenDoublon
),
sides AS (
    SELECT siren AS identifier, 'sirenDoublon' AS field, sirenDoublon AS other, added, processed FROM pairs
    UNION ALL
    SELECT sirenDoublon, 'siren', siren, added, processed FROM pairs
)
SELECT identifier, 'unite_legale' AS level, 'doublon' AS kind, field,
       CASE WHEN added THEN NULL ELSE other END AS old_value,
       CASE WHEN added THEN other END AS new_value,
       NULL::DATE AS effective_date, processed AS processing_date, 'stock' AS source, CAST(? AS DATE) AS day
FROM sides
