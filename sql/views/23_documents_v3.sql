-- API Entreprise v3 and v4 documents (the JSON of API Entreprise's v3 / v4 INSEE endpoints). v4 is v3 with
-- `activite_principale` in NAF 2025 (activitePrincipaleNAF25*, nomenclature "NAF2025") followed by
-- `activite_principale_naf_rev2` (the v3 object), also in the nested unite_legale.
-- Each view has two rows per unit: `diffusibles` false (the protected endpoint) and true (the /diffusibles/
-- endpoint, where the fields of a partially diffusible (P) resource become "[ND]"). Filter on it.
-- /unites_legales/{siren}/siege_social has the établissement document of the siège (documents_v3_sieges).
-- `links` point to the protected routes in both variants: siade's serializers build them with url_for on
-- the protected controllers, and the real /diffusibles/ payloads agree. So the /diffusibles/ document of
-- a resource with nothing masked is the protected document itself (the lookup store keeps one copy).


-- Both versions of the unit document from one pass over the units (the lookup store reads them together);
-- documents_v3_unites_legales and documents_v4_unites_legales each project one of them (DuckDB drops the other).
CREATE OR REPLACE VIEW documents_v3_v4_unites_legales AS
SELECT siren, diffusibles, statut_diffusion, siret_siege,
    json_object(
        'data', json_object(
            'siren', siren, 'rna', rna, 'siret_siege_social', siret_siege,
            'categorie_entreprise', categorie_entreprise, 'status_diffusion', status_diffusion,
            'diffusable_commercialement', diffusable_v3, 'type', type,
            'personne_morale_attributs',
                CASE WHEN nd AND type IS DISTINCT FROM 'personne_physique' THEN pm_attributs_nd ELSE pm_attributs END,
            'personne_physique_attributs',
                CASE WHEN nd AND type = 'personne_physique' THEN pp_attributs_nd ELSE pp_attributs END,
            'forme_juridique', forme_juridique_json, 'activite_principale', activite_v3,
            'tranche_effectif_salarie', tranche, 'etat_administratif', etat,
            'economie_sociale_et_solidaire', ess, 'date_cessation', date_cessation_v3,
            'date_creation', date_creation_ts_v3),
        'links', json_object(
            'siege_social', url_siege_v3,
            'siege_social_adresse', url_siege_v3 || '/adresse'),
        'meta', json_object('date_derniere_mise_a_jour', date_mise_a_jour_v3, 'redirect_from_siren', NULL)
    ) AS document_v3,
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
            'siege_social', url_siege_v4,
            'siege_social_adresse', url_siege_v4 || '/adresse'),
        'meta', json_object('date_derniere_mise_a_jour', date_mise_a_jour_v3, 'redirect_from_siren', NULL)
    ) AS document_v4
FROM (
    SELECT u.*, v.diffusibles, v.diffusibles AND u.partiel AS nd,
        'https://entreprise.api.gouv.fr/v3/insee/sirene/etablissements/' || u.siret_siege AS url_siege_v3,
        'https://entreprise.api.gouv.fr/v4/insee/sirene/etablissements/' || u.siret_siege AS url_siege_v4,
        CASE WHEN u.etat = 'C'
             THEN epoch(CAST(c.date_cessation AS TIMESTAMP) AT TIME ZONE 'Europe/Paris')::BIGINT END AS date_cessation_v3
    FROM doc_unites_legales u
    CROSS JOIN (VALUES (false), (true)) v(diffusibles)
    LEFT JOIN doc_unites_legales_cessation c ON c.siren = u.siren
);

-- Établissement with its v3 `adresse` object (plain or masked) and the masking decisions.
CREATE OR REPLACE VIEW doc_etablissements_variants AS
SELECT *,
    json_object(
        'complement_adresse', CASE WHEN nd THEN '[ND]' ELSE complement_adresse END,
        'numero_voie', CASE WHEN nd THEN '[ND]' ELSE numero_voie END,
        'status_diffusion', status_diffusion,
        'indice_repetition_voie', CASE WHEN nd THEN '[ND]' ELSE indice_repetition_v3 END,
        'type_voie', CASE WHEN nd THEN '[ND]' ELSE type_voie_v3 END,
        'libelle_voie', CASE WHEN nd THEN '[ND]' ELSE libelle_voie END,
        'code_postal', CASE WHEN nd THEN '[ND]' ELSE code_postal END,
        'libelle_commune', libelle_commune,
        'libelle_commune_etranger', libelle_commune_etranger,
        'distribution_speciale', CASE WHEN nd THEN '[ND]' ELSE distribution_speciale END,
        'code_commune', code_commune,
        'code_cedex', CASE WHEN nd THEN '[ND]' ELSE code_cedex END,
        'libelle_cedex', CASE WHEN nd THEN '[ND]' ELSE libelle_cedex END,
        'code_pays_etranger', code_pays_etranger,
        'libelle_pays_etranger', libelle_pays_etranger,
        'acheminement_postal', CASE WHEN nd
            THEN json_object('l1', '[ND]', 'l2', '[ND]', 'l3', '[ND]', 'l4', '[ND]', 'l5', '[ND]', 'l6', '[ND]',
                             'l7', v3_l7)
            ELSE json_object('l1', v3_l1, 'l2', v3_l2, 'l3', v3_l3, 'l4', v3_l4, 'l5', v3_l5, 'l6', v3_l6,
                             'l7', v3_l7) END
    ) AS adresse
FROM (
    SELECT d.*, v.diffusibles,
        v.diffusibles AND d.partiel AS nd,
        v.diffusibles AND (d.partiel OR coalesce(d.ul_partiel, false)) AS nd_unite_legale,
        CASE WHEN d.etat = 'F'
             THEN epoch(CAST(f.date_fermeture AS TIMESTAMP) AT TIME ZONE 'Europe/Paris')::BIGINT END AS date_fermeture_v3,
        CASE WHEN d.statut_diffusion = 'O' THEN 'diffusible' WHEN d.statut_diffusion = 'N' THEN 'non_diffusible'
             WHEN d.statut_diffusion = 'P' THEN 'partiellement_diffusible' END AS status_diffusion
    FROM doc_etablissements d
    CROSS JOIN (VALUES (false), (true)) v(diffusibles)
    LEFT JOIN doc_etablissements_fermeture f ON f.siren = d.siren AND f.siret = d.siret
);


-- Both versions of the établissement document from one pass (see documents_v3_v4_unites_legales).
CREATE OR REPLACE VIEW documents_v3_v4_etablissements AS
SELECT siret, siren, nic, departement, diffusibles, statut_diffusion, ul_statut_diffusion AS statut_diffusion_unite_legale,
    json_object(
        'data', json_object(
            'siret', siret, 'siege_social', siege_social, 'etat_administratif', etat,
            'date_fermeture', date_fermeture_v3,
            'enseigne', CASE WHEN nd AND ul_type = 'personne_physique' THEN '[ND]' ELSE enseigne END,
            'status_diffusion', status_diffusion, 'activite_principale', activite_v3,
            'tranche_effectif_salarie', tranche, 'diffusable_commercialement', coalesce(statut_diffusion = 'O', false),
            'date_creation', date_creation_ts,
            'unite_legale', CASE WHEN nd_unite_legale THEN ul_nested_v3_nd ELSE ul_nested_v3 END,
            'adresse', adresse),
        'links', json_object('unite_legale', 'https://entreprise.api.gouv.fr/v3/insee/sirene/unites_legales/' || siren),
        'meta', json_object('date_derniere_mise_a_jour', date_mise_a_jour_v3, 'redirect_from_siret', NULL)
    ) AS document_v3,
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
        'links', json_object('unite_legale', 'https://entreprise.api.gouv.fr/v4/insee/sirene/unites_legales/' || siren),
        'meta', json_object('date_derniere_mise_a_jour', date_mise_a_jour_v3, 'redirect_from_siret', NULL)
    ) AS document_v4
FROM doc_etablissements_variants;

CREATE OR REPLACE VIEW documents_v3_unites_legales AS
SELECT siren, diffusibles, statut_diffusion, document_v3 AS document FROM documents_v3_v4_unites_legales;

CREATE OR REPLACE VIEW documents_v4_unites_legales AS
SELECT siren, diffusibles, statut_diffusion, document_v4 AS document FROM documents_v3_v4_unites_legales;

CREATE OR REPLACE VIEW documents_v3_etablissements AS
SELECT siret, siren, nic, departement, diffusibles, statut_diffusion, statut_diffusion_unite_legale,
    document_v3 AS document
FROM documents_v3_v4_etablissements;

CREATE OR REPLACE VIEW documents_v4_etablissements AS
SELECT siret, siren, nic, departement, diffusibles, statut_diffusion, statut_diffusion_unite_legale,
    document_v4 AS document
FROM documents_v3_v4_etablissements;

CREATE OR REPLACE VIEW documents_v3_adresses AS
SELECT siret, siren, departement, diffusibles, statut_diffusion, ul_statut_diffusion AS statut_diffusion_unite_legale,
    json_object(
        'data', adresse,
        'links', json_object(
            'unite_legale', 'https://entreprise.api.gouv.fr/v3/insee/sirene/unites_legales/' || siren,
            'etablissement', 'https://entreprise.api.gouv.fr/v3/insee/sirene/etablissements/' || siret),
        'meta', json_object('date_derniere_mise_a_jour', date_mise_a_jour_v3)
    ) AS document
FROM doc_etablissements_variants;

CREATE OR REPLACE VIEW documents_v3_sieges AS
SELECT u.siren, e.siret, e.diffusibles, e.statut_diffusion, e.statut_diffusion_unite_legale, e.document
FROM doc_unites_legales_core u
JOIN documents_v3_etablissements e ON e.siren = u.siren AND e.nic = u.nic_siege;
