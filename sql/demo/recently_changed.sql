-- The demo's showcase units: diffusible units changed in the last three days of changes applied, those
-- with the longest history first.
SELECT siren, denominationUniteLegale, nomUniteLegale, etatAdministratifUniteLegale,
       dateDernierTraitementUniteLegale
FROM unites_legales
WHERE dateDernierTraitementUniteLegale >= (SELECT max(dateDernierTraitementUniteLegale)
                                           FROM unites_legales) - INTERVAL 3 DAY
  AND statutDiffusionUniteLegale = 'O'
ORDER BY nombrePeriodesUniteLegale DESC, dateDernierTraitementUniteLegale DESC, siren
LIMIT 3;
