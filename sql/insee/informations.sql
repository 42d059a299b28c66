-- The mirror's own dates for /informations: the latest dateDernierTraitement of each collection.
SELECT (SELECT max(dateDernierTraitementUniteLegale) FROM unites_legales) AS unites_legales,
       (SELECT max(dateDernierTraitementEtablissement) FROM etablissements) AS etablissements,
       (SELECT max(dateDernierTraitementLienSuccession) FROM liens_succession) AS liens_succession;
