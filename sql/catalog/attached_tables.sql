-- The tables and views of the attached catalog ${catalog} (schema main): a restricted catalog re-exposes
-- each of them under its own name.
SELECT table_name FROM information_schema.tables WHERE table_catalog = ? AND table_schema = 'main'
