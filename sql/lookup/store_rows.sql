-- The lookup store's point-in-time rows (mirror.lookup.build._write_rows): per SIREN of [$low, $high), the
-- current rows of its unité légale and of all its établissements and the periods of both historiques, as
-- the JSON arrays DuckDB's to_json writes (one object per row, every column, nulls included). A `get
-- --date` rebuilds the four TEMP tables of mirror.serve.documents.point_in_time from them with from_json and
-- the column types recorded at build time, instead of scanning four Parquet tables for one SIREN.
-- The rows of a list are in no particular order (an ORDER BY there tripled the cost): the views order what
-- they output. Ranges bound the memory of the list aggregates at national scale; the bounds are bound
-- values ($low, $high, written $$ for string.Template).
WITH sirens AS (
    SELECT siren FROM unites_legales WHERE siren >= $$low AND siren < $$high
    UNION
    SELECT siren FROM etablissements WHERE siren >= $$low AND siren < $$high
),
ul AS (
    SELECT siren, to_json(list(t)) AS j
    FROM unites_legales t WHERE siren >= $$low AND siren < $$high GROUP BY siren
),
ulh AS (
    SELECT siren, to_json(list(t)) AS j
    FROM unites_legales_historique t WHERE siren >= $$low AND siren < $$high GROUP BY siren
),
et AS (
    SELECT siren, to_json(list(t)) AS j
    FROM etablissements t WHERE siren >= $$low AND siren < $$high GROUP BY siren
),
eth AS (
    SELECT siren, to_json(list(t)) AS j
    FROM etablissements_historique t WHERE siren >= $$low AND siren < $$high GROUP BY siren
)
SELECT
    s.siren,
    'unites_legales' || chr(9) || coalesce(ul.j, '[]') || chr(10)
    || 'unites_legales_historique' || chr(9) || coalesce(ulh.j, '[]') || chr(10)
    || 'etablissements' || chr(9) || coalesce(et.j, '[]') || chr(10)
    || 'etablissements_historique' || chr(9) || coalesce(eth.j, '[]') || chr(10) AS rows_text
FROM sirens s
LEFT JOIN ul USING (siren)
LEFT JOIN ulh USING (siren)
LEFT JOIN et USING (siren)
LEFT JOIN eth USING (siren)
