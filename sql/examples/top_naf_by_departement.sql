-- Top 5 NAF rév. 2 activities of active établissements in each département, with their libellé.
-- duckdb -readonly data/sirene.duckdb < sql/examples/top_naf_by_departement.sql
WITH counts AS (
    SELECT departement, activitePrincipaleEtablissement AS naf, count(*) AS n
    FROM etablissements_diffusibles
    WHERE etatAdministratifEtablissement = 'A'
      AND nomenclatureActivitePrincipaleEtablissement = 'NAFRev2'
    GROUP BY ALL
)
SELECT c.departement, d.nom AS libelleDepartement, c.naf, r.libelle, c.n
FROM counts c
LEFT JOIN ref_naf_rev2 r ON r.code = c.naf
LEFT JOIN ref_departements d ON d.code = c.departement
QUALIFY row_number() OVER (PARTITION BY c.departement ORDER BY c.n DESC, c.naf) <= 5
ORDER BY c.departement, c.n DESC, c.naf;
