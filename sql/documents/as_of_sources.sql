-- Point in time (mirror.serve.documents.point_in_time): on a private cursor, the current rows of the units
-- asked for and of all their établissements, with their periods, copied from the catalog ${db} into TEMP
-- tables as_of_source_*; the point-in-time TEMP tables are derived from them.
--   ${sirens}: one `?` per SIREN (bound constants reach the Parquet scans' row-group statistics, a
--              sub-query does not);
--   ${departements}: the condition naming the département partitions of their établissements (from the
--              etablissements_departements index, bound too), so that only those partition files open.
CREATE OR REPLACE TEMP TABLE as_of_source_unites_legales AS
SELECT * FROM ${db}.main.unites_legales WHERE siren IN (${sirens});

CREATE OR REPLACE TEMP TABLE as_of_source_unites_legales_historique AS
SELECT * FROM ${db}.main.unites_legales_historique WHERE siren IN (${sirens});

CREATE OR REPLACE TEMP TABLE as_of_source_etablissements AS
SELECT * FROM ${db}.main.etablissements WHERE siren IN (${sirens}) AND (${departements});

CREATE OR REPLACE TEMP TABLE as_of_source_etablissements_historique AS
SELECT * FROM ${db}.main.etablissements_historique WHERE siren IN (${sirens});
