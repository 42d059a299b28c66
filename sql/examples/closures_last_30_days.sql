-- Établissements closed (état F) in the last 30 days: dateDebut is the date the current state began.
-- duckdb -readonly data/sirene.duckdb < sql/examples/closures_last_30_days.sql
SELECT e.siret, u.denominationUniteLegale, e.enseigne1Etablissement, e.codePostalEtablissement,
       e.libelleCommuneEtablissement, e.activitePrincipaleEtablissement, e.dateDebut AS date_fermeture
FROM etablissements_diffusibles e
JOIN unites_legales_diffusibles u USING (siren)
WHERE e.etatAdministratifEtablissement = 'F'
  AND e.dateDebut BETWEEN current_date - INTERVAL 30 DAY AND current_date
ORDER BY e.dateDebut DESC, e.siret;
