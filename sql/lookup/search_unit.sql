-- SQLite: one unit by its siren as an integer (a SIREN or SIRET typed in the search box).
SELECT siren, nom_complet, sigle, siret_siege, code_postal, commune, departement, activite_principale,
       etat_administratif, categorie_juridique, tranche_effectif_salarie, etablissements_ouverts, NULL AS rank
FROM search_units WHERE id = ?
