-- The établissements for the lookup store, protected documents (both versions) and diffusion statuses.
SELECT siret AS key, statut_diffusion AS statut, statut_diffusion_unite_legale AS statut_ul,
    document_v3, document_v4
FROM documents_v3_v4_etablissements
WHERE NOT diffusibles
