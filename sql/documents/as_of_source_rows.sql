-- Point in time from the lookup store (mirror.serve.documents.point_in_time): the TEMP table as_of_source_*
-- of one base view, from the rows the store keeps per SIREN (sql/lookup/store_rows.sql). Parameters: the
-- JSON array of the rows, the structure recorded with them (the base view's column names and types, in
-- order), both bound values.
CREATE OR REPLACE TEMP TABLE ${name} AS
SELECT unnest(from_json(CAST(? AS JSON), ?), recursive := true);
