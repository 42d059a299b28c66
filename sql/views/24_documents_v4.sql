-- API Entreprise v4 documents: the unit and établissement documents are defined beside the v3 ones in
-- 23_documents_v3.sql (documents_v3_v4_*: one pass builds both); here the v4 adresse and siège documents.

CREATE OR REPLACE VIEW documents_v4_adresses AS
SELECT siret, siren, departement, diffusibles, statut_diffusion, ul_statut_diffusion AS statut_diffusion_unite_legale,
    json_object(
        'data', adresse,
        'links', json_object(
            'unite_legale', 'https://entreprise.api.gouv.fr/v4/insee/sirene/unites_legales/' || siren,
            'etablissement', 'https://entreprise.api.gouv.fr/v4/insee/sirene/etablissements/' || siret),
        'meta', json_object('date_derniere_mise_a_jour', date_mise_a_jour_v3)
    ) AS document
FROM doc_etablissements_variants;

CREATE OR REPLACE VIEW documents_v4_sieges AS
SELECT u.siren, e.siret, e.diffusibles, e.statut_diffusion, e.statut_diffusion_unite_legale, e.document
FROM doc_unites_legales_core u
JOIN documents_v4_etablissements e ON e.siren = u.siren AND e.nic = u.nic_siege;
