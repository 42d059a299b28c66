-- API Entreprise v4 documents (documents helper, issue 5): the v3 documents of 23_documents_v3.sql with
-- `activite_principale` in NAF 2025 (activitePrincipaleNAF25*, nomenclature "NAF2025") followed by
-- `activite_principale_naf_rev2` (the v3 object), also in the nested unite_legale. Same two rows per unit
-- (`diffusibles` false / true) as v3.

CREATE OR REPLACE VIEW documents_v4_unites_legales AS
SELECT siren, diffusibles, statut_diffusion,
    json_object(
        'data', json_object(
            'siren', siren, 'rna', rna, 'siret_siege_social', siret_siege,
            'categorie_entreprise', categorie_entreprise, 'status_diffusion', status_diffusion,
            'diffusable_commercialement', diffusable_v3, 'type', type,
            'personne_morale_attributs',
                CASE WHEN nd AND type IS DISTINCT FROM 'personne_physique' THEN pm_attributs_nd ELSE pm_attributs END,
            'personne_physique_attributs',
                CASE WHEN nd AND type = 'personne_physique' THEN pp_attributs_nd ELSE pp_attributs END,
            'forme_juridique', forme_juridique_json, 'activite_principale', activite_naf25,
            'activite_principale_naf_rev2', activite_v3,
            'tranche_effectif_salarie', tranche, 'etat_administratif', etat,
            'economie_sociale_et_solidaire', ess, 'date_cessation', date_cessation_v3,
            'date_creation', date_creation_ts_v3),
        'links', json_object(
            'siege_social', url_siege,
            'siege_social_adresse', url_siege || '/adresse'),
        'meta', json_object('date_derniere_mise_a_jour', date_mise_a_jour_v3, 'redirect_from_siren', NULL)
    ) AS document
FROM (
    SELECT u.*, v.diffusibles, v.diffusibles AND u.partiel AS nd,
        'https://entreprise.api.gouv.fr/v4/insee/sirene/etablissements/'
            || CASE WHEN v.diffusibles THEN 'diffusibles/' ELSE '' END || u.siret_siege AS url_siege,
        CASE WHEN u.etat = 'C'
             THEN epoch(CAST(c.date_cessation AS TIMESTAMP) AT TIME ZONE 'Europe/Paris')::BIGINT END AS date_cessation_v3
    FROM doc_unites_legales u
    CROSS JOIN (VALUES (false), (true)) v(diffusibles)
    LEFT JOIN doc_unites_legales_cessation c ON c.siren = u.siren
);

CREATE OR REPLACE VIEW documents_v4_etablissements AS
SELECT siret, siren, nic, departement, diffusibles, statut_diffusion, ul_statut_diffusion AS statut_diffusion_unite_legale,
    json_object(
        'data', json_object(
            'siret', siret, 'siege_social', siege_social, 'etat_administratif', etat,
            'date_fermeture', date_fermeture_v3,
            'enseigne', CASE WHEN nd AND ul_type = 'personne_physique' THEN '[ND]' ELSE enseigne END,
            'status_diffusion', status_diffusion, 'activite_principale', activite_naf25,
            'activite_principale_naf_rev2', activite_v3,
            'tranche_effectif_salarie', tranche, 'diffusable_commercialement', coalesce(statut_diffusion = 'O', false),
            'date_creation', date_creation_ts,
            'unite_legale', CASE WHEN nd_unite_legale THEN ul_nested_v4_nd ELSE ul_nested_v4 END,
            'adresse', adresse),
        'links', json_object('unite_legale', 'https://entreprise.api.gouv.fr/v4/insee/sirene/unites_legales/' || url_variant || siren),
        'meta', json_object('date_derniere_mise_a_jour', date_mise_a_jour_v3, 'redirect_from_siret', NULL)
    ) AS document
FROM doc_etablissements_variants;

CREATE OR REPLACE VIEW documents_v4_adresses AS
SELECT siret, siren, departement, diffusibles, statut_diffusion, ul_statut_diffusion AS statut_diffusion_unite_legale,
    json_object(
        'data', adresse,
        'links', json_object(
            'unite_legale', 'https://entreprise.api.gouv.fr/v4/insee/sirene/unites_legales/' || url_variant || siren,
            'etablissement', 'https://entreprise.api.gouv.fr/v4/insee/sirene/etablissements/' || url_variant || siret),
        'meta', json_object('date_derniere_mise_a_jour', date_mise_a_jour_v3)
    ) AS document
FROM doc_etablissements_variants;

CREATE OR REPLACE VIEW documents_v4_sieges AS
SELECT u.siren, e.siret, e.diffusibles, e.statut_diffusion, e.statut_diffusion_unite_legale, e.document
FROM doc_unites_legales_core u
JOIN documents_v4_etablissements e ON e.siren = u.siren AND e.nic = u.nic_siege;
