-- Rows of search_etablissements (mirror.lookup.search_index.index_units): the siège and the open
-- établissements of the indexed units, from etablissements_diffusibles (masked addresses stay '[ND]', masked
-- coordinates NULL), in siret order. The last column, `geo`, tells whether the point goes to search_geo
-- (/near_point): coordinates known and the unit diffusible 'O' (recherche-entreprises' geographic search
-- shows only those).
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
    longitude,
    latitude IS NOT NULL AND longitude IS NOT NULL
        AND siren IN (SELECT siren FROM unites_legales WHERE statutDiffusionUniteLegale = 'O' AND ${restrict}) AS geo
FROM etablissements_diffusibles
WHERE ${restrict} AND regexp_full_match(siret, '[0-9]{14}')
  AND (etablissementSiege OR etatAdministratifEtablissement = 'A')
ORDER BY id
