-- The /diffusibles/ documents the lookup store keeps: those of établissements not diffusible 'O' or whose
-- unit is not (the nested unite_legale is masked then).
SELECT siret AS key, document_v3, document_v4
FROM documents_v3_v4_etablissements
WHERE diffusibles AND (coalesce(statut_diffusion, '') <> 'O' OR coalesce(statut_diffusion_unite_legale, 'O') <> 'O')

