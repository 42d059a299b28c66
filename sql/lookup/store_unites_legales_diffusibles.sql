-- The /diffusibles/ documents the lookup store keeps: those of units not diffusible 'O' (elsewhere the
-- /diffusibles/ document is byte for byte the protected one: links point to the protected routes).
SELECT siren AS key, document_v3, document_v4
FROM documents_v3_v4_unites_legales
WHERE diffusibles AND coalesce(statut_diffusion, '') <> 'O'
