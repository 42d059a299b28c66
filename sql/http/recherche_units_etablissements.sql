-- SQLite: the siège and open établissements of the units whose ids (the sirens as integers) are in the JSON
-- array ?1, in siret order (a SIRET is the SIREN × 100000 + the NIC: one range of ids per unit), for one
-- page in one query.
SELECT e.id, e.siege, e.etat, e.code_postal, e.commune, e.departement, e.region, e.epci, e.latitude,
       e.longitude
FROM json_each(?1) AS u
JOIN search_etablissements AS e ON e.id BETWEEN u.value * 100000 AND u.value * 100000 + 99999
ORDER BY e.id
