-- SQLite: the best `?2` units for the text expression ?1 by search_names' bm25 (the caller re-ranks them),
-- with their display fields.
SELECT u.siren, u.nom_complet, u.sigle, u.siret_siege, u.code_postal, u.commune, u.departement,
       u.activite_principale, u.etat_administratif, u.categorie_juridique, u.tranche_effectif_salarie,
       u.etablissements_ouverts, f.rank
FROM (SELECT rowid, rank FROM search_names WHERE search_names MATCH ?1 ORDER BY rank LIMIT ?2) AS f
JOIN search_units AS u ON u.id = f.rowid
ORDER BY f.rank, u.id
