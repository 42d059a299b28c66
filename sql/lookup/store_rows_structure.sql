-- The column types of a base view, in order, as the JSON structure from_json takes for a list of its rows
-- (the lookup store records it at build time for sql/documents/as_of_source_rows.sql). ${table}: a base
-- view's name.
SELECT '[{' || string_agg(to_json(column_name) || ':' || to_json(column_type), ',' ORDER BY ordinal) || '}]'
FROM (SELECT column_name, column_type, row_number() OVER () AS ordinal FROM (DESCRIBE ${table}))
