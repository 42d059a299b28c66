-- Addresses of diffusible active établissements (${columns}), drawn deterministically from the salt ?,
-- for the siège transfers and new établissements of the change stream.
SELECT ${columns} FROM etablissements
WHERE statutDiffusionEtablissement = 'O' AND etatAdministratifEtablissement = 'A'
ORDER BY hash(siret || ?), siret
LIMIT 200;
