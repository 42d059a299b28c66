-- Rows of search_etablissements (mirror.lookup.search_index.index_units): the siège and the open
-- établissements of the indexed units, from etablissements_diffusibles (masked addresses stay '[ND]', masked
-- coordinates NULL), in siret order.
--   ${restrict}: a condition on `siren` (`true` for a full build, else sql/lookup/search_restrict.sql).
SELECT
    CAST(siret AS BIGINT) AS id,
    coalesce(etablissementSiege, false) AS siege,
    etatAdministratifEtablissement AS etat,
    codePostalEtablissement AS code_postal,
    codeCommuneEtablissement AS commune,
    departement,
    region,
    epci,
    latitude,
    longitude
FROM etablissements_diffusibles
WHERE ${restrict} AND regexp_full_match(siret, '[0-9]{14}')
  AND (etablissementSiege OR etatAdministratifEtablissement = 'A')
ORDER BY id
