-- Lookup tables for the derived columns of `etablissements` (created as TEMP tables by mirror/load.py on
-- the connection that types rows). ${ref_dir}: absolute path of sql/ref.
--   _mirror_commune_geo(code, departement, region, epci): every code Sirene may carry in
--   codeCommuneEtablissement: current communes, arrondissements municipaux (751xx, 6938x, 132xx: EPCI of
--   their parent commune), communes déléguées/associées (parent's EPCI) and former codes merged into a
--   commune nouvelle. One row per code (priority: actuelle, arrondissement, déléguée/associée, ancien code).
--   region is NULL for collectivités d'outre-mer (zone 'com'), as it is not a COG région.
--   _mirror_departements(code, region): fallback for commune codes missing from the COG table.
CREATE OR REPLACE TEMP TABLE _mirror_commune_geo AS
WITH c AS (
    SELECT * FROM read_csv('${ref_dir}/communes.csv.gz', all_varchar = true, header = true)
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
SELECT DISTINCT ON (code) code, departement, region, epci FROM candidates ORDER BY code, prio;

CREATE OR REPLACE TEMP TABLE _mirror_departements AS
SELECT code, CASE WHEN zone = 'com' THEN NULL ELSE region END AS region
FROM read_csv('${ref_dir}/departements.csv', all_varchar = true, header = true);
