-- The keys of the commune lookups (sql/catalog/commune_geo.sql), as TEMP macros of the connection that
-- types rows (mirror.core.typed.prepare_connection) and of the one deriving the lookups.
--   mirror_commune_key(code): 0..99999 for a 5-digit code, 100000 + n for 2Ann, 101000 + n for 2Bnnn,
--     NULL for anything else (junk codes find nothing).
--   mirror_departement_key(code): the département part of a commune code (2 characters, 3 for 97x/98x) as
--     0..99, 970..989, 200 (2A), 201 (2B).
CREATE OR REPLACE TEMP MACRO mirror_commune_key(c) AS (
    CASE WHEN length(c) = 5 AND lpad(CAST(TRY_CAST(c AS INTEGER) AS VARCHAR), 5, '0') = c
         THEN TRY_CAST(c AS INTEGER)
         WHEN length(c) = 5 AND c[1:2] IN ('2A', '2B') AND lpad(CAST(TRY_CAST(c[3:] AS INTEGER) AS VARCHAR), 3, '0') = c[3:]
         THEN 100000 + CASE c[2] WHEN 'A' THEN 0 ELSE 1000 END + TRY_CAST(c[3:] AS INTEGER)
    END
);

CREATE OR REPLACE TEMP MACRO mirror_departement_key(c) AS (
    CASE WHEN c[1:2] = '2A' THEN 200
         WHEN c[1:2] = '2B' THEN 201
         WHEN c[1:2] IN ('97', '98') AND lpad(CAST(TRY_CAST(c[1:3] AS INTEGER) AS VARCHAR), 3, '0') = c[1:3]
         THEN TRY_CAST(c[1:3] AS INTEGER)
         WHEN lpad(CAST(TRY_CAST(c[1:2] AS INTEGER) AS VARCHAR), 2, '0') = c[1:2] THEN TRY_CAST(c[1:2] AS INTEGER)
    END
);
