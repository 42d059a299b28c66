-- SQLite: the display and ordering fields (mirror.lookup.search.FIELDS) of the units whose ids are in the
-- JSON array ?1 (the ranked rows a page needs: a few dozen of a window of 1,000).
SELECT u.id, u.siren, u.nom_complet, u.sigle, u.siret_siege, u.code_postal, u.commune, u.departement,
       u.activite_principale, u.etat_administratif, u.categorie_juridique, u.tranche_effectif_salarie,
       u.etablissements_ouverts
FROM search_units AS u
WHERE u.id IN (SELECT value FROM json_each(?1))
