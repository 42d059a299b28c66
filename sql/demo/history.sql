-- The periods of unit ? (unites_legales_historique), newest first.
SELECT dateDebut, dateFin, etatAdministratifUniteLegale, activitePrincipaleUniteLegale
FROM unites_legales_historique
WHERE siren = ?
ORDER BY dateDebut DESC NULLS LAST;
