-- A placeholder base view of the catalog's views template (mirror.catalog.build._views_template): the
-- columns and types of the real base view ${name}, no row and no file. The sql/views/*.sql views are
-- created over the placeholders once per machine; a full build copies the template and re-creates its
-- base views, as a daily rebuild re-creates those of the previous catalog.
--   ${columns}: CAST(NULL AS <type>) AS "<column>", for every column of the real base view, in order
CREATE OR REPLACE VIEW ${name} AS
SELECT ${columns}
LIMIT 0;
