-- SQLite: the siège and open établissements of one unit (?1 = the siren as an integer), in siret order.
SELECT id, siege, etat, code_postal, commune, departement, region, epci, latitude, longitude
FROM search_etablissements
WHERE id BETWEEN ?1 * 100000 AND ?1 * 100000 + 99999
ORDER BY id
