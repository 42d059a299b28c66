-- SQLite (DATA_DIR/lookup.sqlite): the units of the search index whose ids (the sirens as integers) are in
-- the JSON array ?1, with the fields of a recherche-entreprises result that the index holds
-- (mirror.http.recherche): the units of one page in one query.
SELECT id, siren, nom_complet, sigle, siret_siege, activite_principale, etat_administratif,
       categorie_juridique, tranche_effectif_salarie, etablissements_ouverts, etablissements, section,
       categorie_entreprise, flags
FROM search_units WHERE id IN (SELECT value FROM json_each(?1))
