-- The (NAF rév. 2, NAF 2025) pairs of active units: the activity changes of the synthetic stream pick
-- among them, so that a new code is always a pair seen in the stock.
SELECT DISTINCT activitePrincipaleUniteLegale, activitePrincipaleNAF25UniteLegale
FROM unites_legales
WHERE etatAdministratifUniteLegale = 'A'
  AND nomenclatureActivitePrincipaleUniteLegale = 'NAFRev2'
  AND activitePrincipaleUniteLegale IS NOT NULL
ORDER BY 1, 2
LIMIT 2000;
