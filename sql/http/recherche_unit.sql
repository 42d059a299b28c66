-- SQLite (DATA_DIR/lookup.sqlite): one unit of the search index by id (the siren as an integer), with the
-- fields of a recherche-entreprises result that the index holds (mirror.http.recherche).
SELECT siren, nom_complet, sigle, siret_siege, activite_principale, etat_administratif, categorie_juridique,
       tranche_effectif_salarie, etablissements_ouverts, etablissements, section, categorie_entreprise, flags
FROM search_units WHERE id = ?
