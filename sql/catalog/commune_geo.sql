-- Lookups for the derived columns of `etablissements`, derived from the COG files once per machine on a
-- private connection holding the macros of sql/catalog/commune_macros.sql (mirror.core.typed.commune_cache,
-- an entry of mirror.core.ref_cache; run on the typing connection itself when there is no usable entry);
-- each connection that types rows gets the four tables (sql/catalog/commune_cached.sql), the variables of
-- sql/catalog/commune_variables.sql and the UDFs below. ${ref_dir}: absolute path of sql/ref,
-- whose CSV files are RFC 4180 (the dialect is given: DuckDB then skips most of its sniffing, half the time
-- of these reads).
--
-- A join would lose the source's row order (INSEE's files are sorted by siret and the loader keeps that
-- order to write sorted partitions in one pass), so the lookups are lists indexed by an integer key of the
-- code: the commune lists (_mirror_commune_lists, one row) are read once by mirror.core.typed, which takes
-- from them in the Arrow UDFs mirror_commune_departement / _region / _epci(key); the short département
-- lists are session variables read with getvariable(...)[key + 1]. (A 102,000-entry list in a variable is
-- copied for every chunk of 2,048 rows that reads it: 0.27 µs a row and a reference.)
--   mirror_commune_departement / _region / _epci: every code Sirene may carry in codeCommuneEtablissement:
--     current communes, arrondissements municipaux (751xx, 6938x, 132xx: EPCI of their parent commune),
--     communes déléguées/associées (parent's EPCI) and former codes merged into a commune nouvelle. One
--     entry per code (priority: actuelle, arrondissement, déléguée/associée, ancien code). The région is
--     NULL for collectivités d'outre-mer (zone 'com'), as it is not a COG région.
--   mirror_departement_code / _region (variables): fallback for commune codes missing from the COG table.
CREATE OR REPLACE TEMP TABLE _mirror_commune_geo AS
WITH c AS (
    SELECT * FROM read_csv('${ref_dir}/communes.csv.gz', all_varchar = true, header = true, delim = ',', quote = '"', escape = '"')
), actuelle AS (
    SELECT * FROM c WHERE type = 'commune-actuelle'
), candidates AS (
    SELECT c.code, c.departement, CASE WHEN c.zone = 'com' THEN NULL ELSE c.region END AS region,
           coalesce(c.epci, p.epci) AS epci,
           CASE c.type WHEN 'commune-actuelle' THEN 1 WHEN 'arrondissement-municipal' THEN 2 ELSE 3 END AS prio
    FROM c LEFT JOIN actuelle p ON p.code = c.commune_parent
    UNION ALL
    SELECT unnest(string_split(a.anciens_codes, '|')) AS code, a.departement,
           CASE WHEN a.zone = 'com' THEN NULL ELSE a.region END, a.epci, 4
    FROM actuelle a WHERE a.anciens_codes IS NOT NULL AND a.anciens_codes <> ''
)
SELECT DISTINCT ON (code) mirror_commune_key(code) AS key, code, departement, region, epci
FROM candidates ORDER BY code, prio;

CREATE OR REPLACE TEMP TABLE _mirror_departements AS
SELECT mirror_departement_key(code) AS key, code, CASE WHEN zone = 'com' THEN NULL ELSE region END AS region
FROM read_csv('${ref_dir}/departements.csv', all_varchar = true, header = true, delim = ',', quote = '"', escape = '"');

CREATE OR REPLACE TEMP TABLE _mirror_commune_lists AS
SELECT list(g.departement ORDER BY k.key) AS departement, list(g.region ORDER BY k.key) AS region,
       list(g.epci ORDER BY k.key) AS epci
FROM range(102000) k(key) LEFT JOIN _mirror_commune_geo g ON g.key = k.key;

CREATE OR REPLACE TEMP TABLE _mirror_departement_lists AS
SELECT list(d.code ORDER BY k.key) AS code, list(d.region ORDER BY k.key) AS region
FROM range(1000) k(key) LEFT JOIN _mirror_departements d ON d.key = k.key;
