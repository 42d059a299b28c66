-- Unités légales created per month over the last 24 months (all states), by catégorie juridique level 1.
-- duckdb -readonly data/sirene.duckdb < sql/examples/creations_per_month.sql
SELECT date_trunc('month', dateCreationUniteLegale) AS mois,
       count(*) AS creations,
       count(*) FILTER (WHERE categorieJuridiqueUniteLegale = '1000') AS entrepreneurs_individuels,
       count(*) FILTER (WHERE categorieJuridiqueUniteLegale LIKE '5%') AS societes_commerciales
FROM unites_legales_diffusibles
WHERE dateCreationUniteLegale >= date_trunc('month', current_date) - INTERVAL 24 MONTH
  AND dateCreationUniteLegale <= current_date
GROUP BY ALL
ORDER BY mois;
