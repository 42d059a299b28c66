-- A base view of the catalog: ${name} (quoted) AS ${select} (a snapshot SELECT, merged with the
-- delta days by sql/deltas/<table>.sql when there are any).
CREATE OR REPLACE VIEW ${name} AS
${select};
