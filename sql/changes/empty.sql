-- No delta day: the changes' columns (mirror.serve.changes.COLUMNS), no row.
SELECT NULL::VARCHAR AS identifier, NULL::VARCHAR AS level, NULL::VARCHAR AS kind, NULL::VARCHAR AS field,
       NULL::VARCHAR AS old_value, NULL::VARCHAR AS new_value, NULL::DATE AS effective_date,
       NULL::TIMESTAMP AS processing_date, NULL::VARCHAR AS source, NULL::DATE AS day
WHERE false
