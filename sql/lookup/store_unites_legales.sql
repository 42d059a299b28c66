-- The unités légales for the lookup store: diffusion status, siège SIRET (siren || nicSiegeUniteLegale,
-- as `mirror get --siege` finds it) and both versions of the protected document.
SELECT siren AS key, statut_diffusion AS statut, siret_siege AS siege, document_v3, document_v4
FROM documents_v3_v4_unites_legales
WHERE NOT diffusibles
