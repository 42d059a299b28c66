-- The départements (partitions of the etablissements view) holding the requested SIRETs, from the small
-- siret-sorted index etablissements_departements (${keys_filter}: the condition naming the SIRETs).
SELECT DISTINCT departement FROM etablissements_departements
WHERE ${keys_filter};
