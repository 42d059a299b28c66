-- SQLite: the best `?2` matches of the FTS5 expression ?1 by bm25 (the caller re-ranks them), with their
-- display fields.
SELECT u.siren, u.nom_complet, u.sigle, u.siret_siege, u.code_postal, u.commune, u.departement,
       u.activite_principale, u.etat_administratif, u.categorie_juridique, u.tranche_effectif_salarie,
       u.etablissements_ouverts, f.rank
FROM (SELECT rowid, rank FROM search_fts WHERE search_fts MATCH ?1 ORDER BY rank LIMIT ?2) AS f
JOIN search_units AS u ON u.id = f.rowid
ORDER BY f.rank, u.id
