-- The four tables of sql/catalog/commune_geo.sql on a connection that types rows, read from the machine's
-- cache entry (mirror.core.typed.commune_cache) instead of derived again. ${folder}: the entry's folder.
-- Tables, not views: a damaged file fails here, where the caller derives the lookups again instead.
CREATE OR REPLACE TEMP TABLE _mirror_commune_geo AS SELECT * FROM read_parquet('${folder}/_mirror_commune_geo.parquet');
CREATE OR REPLACE TEMP TABLE _mirror_departements AS SELECT * FROM read_parquet('${folder}/_mirror_departements.parquet');
CREATE OR REPLACE TEMP TABLE _mirror_commune_lists AS SELECT * FROM read_parquet('${folder}/_mirror_commune_lists.parquet');
CREATE OR REPLACE TEMP TABLE _mirror_departement_lists AS SELECT * FROM read_parquet('${folder}/_mirror_departement_lists.parquet');
