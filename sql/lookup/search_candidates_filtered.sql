-- SQLite: search_candidates.sql among the units matching the whole search_fts expression ?3 (text and
-- filters). `+rowid` keeps the set out of search_names' own plan: the set is built once, each text match
-- ranked by search_names' bm25 is tested against it (a rowid constraint handed to FTS5 would run the MATCH
-- once per unit of the set, its bm25 statistics with it).
SELECT u.siren, u.nom_complet, u.sigle, u.siret_siege, u.code_postal, u.commune, u.departement,
       u.activite_principale, u.etat_administratif, u.categorie_juridique, u.tranche_effectif_salarie,
       u.etablissements_ouverts, f.rank
FROM (
    SELECT rowid, rank FROM search_names
    WHERE search_names MATCH ?1 AND +rowid IN (SELECT rowid FROM search_fts WHERE search_fts MATCH ?3)
    ORDER BY rank LIMIT ?2
) AS f
JOIN search_units AS u ON u.id = f.rowid
ORDER BY f.rank, u.id
