-- Bulk documents (mirror.documents.iter_documents): on a private cursor, TEMP tables named like the four base
-- views the document views read shadow them (DuckDB resolves a view's table names temp schema first), each
-- holding only the rows the requested identifiers need. The document views then build 1M documents instead
-- of computing all 30M and joining afterwards (a semi-join above the views' projections is not pushed down).
--   ${db}: the catalog's database name; ${ids}: the registered (pos, id) identifiers;
--   ${sirets_of_sieges}: true when the sièges of the requested SIRENs are needed (v2 entreprises, siege=True).
CREATE OR REPLACE TEMP TABLE _want_siren AS
SELECT DISTINCT substr(id, 1, 9) AS siren FROM ${ids} WHERE length(id) IN (9, 14);

CREATE OR REPLACE TEMP TABLE unites_legales AS
SELECT * FROM ${db}.main.unites_legales WHERE siren IN (SELECT siren FROM _want_siren);

CREATE OR REPLACE TEMP TABLE unites_legales_historique AS
SELECT * FROM ${db}.main.unites_legales_historique WHERE siren IN (SELECT siren FROM _want_siren);

CREATE OR REPLACE TEMP TABLE _want_siret AS
SELECT id AS siret FROM ${ids} WHERE length(id) = 14
UNION
SELECT siren || nicSiegeUniteLegale FROM unites_legales WHERE ${sirets_of_sieges} AND nicSiegeUniteLegale IS NOT NULL;

CREATE OR REPLACE TEMP TABLE etablissements AS
SELECT * FROM ${db}.main.etablissements WHERE siret IN (SELECT siret FROM _want_siret);

CREATE OR REPLACE TEMP TABLE etablissements_historique AS
SELECT * FROM ${db}.main.etablissements_historique WHERE siret IN (SELECT siret FROM _want_siret);
