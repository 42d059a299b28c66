-- API Entreprise v2 documents (the JSON of API Entreprise's v2 INSEE endpoints, as siade serialises them).
-- One row per siret / siren; `document` is the JSON body of a 200 answer, in the serializers' key order.
-- The diffusion decision (HTTP 451 for a P unit, or a P établissement or an établissement of a P unit, unless
-- non_diffusables=true) is taken by mirror.serve.documents.is_diffusible from the statut_diffusion columns;
-- the rows are here for every unit.

-- /v2/etablissements/{siret} -> {"etablissement": ..., "gateway_error": false}
CREATE OR REPLACE VIEW documents_v2_etablissements AS
SELECT siret, siren, nic, departement, statut_diffusion, ul_statut_diffusion AS statut_diffusion_unite_legale,
    json_object('etablissement', etablissement, 'gateway_error', false) AS document,
    etablissement, adresse_francaise
FROM (
    SELECT *, json_object(
        'siege_social', siege_social,
        'siret', siret,
        'naf', replace(naf_code, '.', ''),
        'libelle_naf', naf_libelle,
        'date_mise_a_jour', date_mise_a_jour_v2,
        'tranche_effectif_salarie_etablissement', tranche,
        'date_creation_etablissement', date_creation_ts,
        'region_implantation', json_object('code', region_code, 'value', region_nom),
        'commune_implantation', json_object('code', commune_code, 'value', commune_nom),
        'pays_implantation', CASE WHEN adresse_francaise THEN json_object('code', 'FR', 'value', 'FRANCE')
                                  ELSE json_object('code', code_pays_etranger, 'value', libelle_pays_etranger) END,
        'diffusable_commercialement', CASE statut_diffusion WHEN 'O' THEN true WHEN 'N' THEN false END,
        'enseigne', enseigne,
        'adresse', json_object(
            'l1', v2_l1, 'l2', v2_l2, 'l3', v2_l3, 'l4', v2_l4, 'l5', v2_l5, 'l6', v2_l6, 'l7', v2_l7,
            'numero_voie', numero_voie, 'type_voie', type_voie_raw, 'nom_voie', libelle_voie,
            'complement_adresse', complement_adresse, 'code_postal', code_postal,
            'localite', coalesce(libelle_commune, libelle_commune_etranger),
            'code_insee_localite', code_commune, 'cedex', code_cedex),
        'etat_administratif', json_object('value', etat, 'date_fermeture', date_fermeture_v2)
    ) AS etablissement
    FROM doc_etablissements
);

-- /v2/entreprises/{siren} -> {"entreprise": ..., "etablissement_siege": ..., "gateway_error": false}.
-- `document_non_diffusables` is the answer with non_diffusables=true (adds entreprise.diffusable_commercialement).
-- Infogreffe fields are what a Sirene-only source gives: capital_social, nom_commercial, date_radiation null,
-- mandataires_sociaux [], procedure_collective false.
CREATE OR REPLACE VIEW documents_v2_entreprises AS
SELECT siren, statut_diffusion, siret_siege,
    json_object('entreprise', json_object(
        'siren', siren, 'capital_social', NULL, 'numero_tva_intracommunautaire', tva,
        'forme_juridique', forme_juridique, 'forme_juridique_code', cj, 'nom_commercial', NULL,
        'procedure_collective', false, 'enseigne', sigle, 'libelle_naf_entreprise', naf_libelle,
        'naf_entreprise', replace(naf_code, '.', ''), 'raison_sociale', raison_sociale_v2,
        'siret_siege_social', siret_siege, 'code_effectif_entreprise', code_effectif,
        'date_creation', date_creation_ts, 'nom', nom, 'prenom', prenom_1, 'date_radiation', NULL,
        'categorie_entreprise', categorie_entreprise, 'tranche_effectif_salarie_entreprise', tranche,
        'mandataires_sociaux', '[]'::JSON,
        'etat_administratif', json_object('value', etat, 'date_cessation', date_cessation_v2)
    ), 'etablissement_siege', etablissement, 'gateway_error', false) AS document,
    json_object('entreprise', json_object(
        'siren', siren, 'capital_social', NULL, 'numero_tva_intracommunautaire', tva,
        'forme_juridique', forme_juridique, 'forme_juridique_code', cj, 'nom_commercial', NULL,
        'procedure_collective', false, 'enseigne', sigle, 'libelle_naf_entreprise', naf_libelle,
        'naf_entreprise', replace(naf_code, '.', ''), 'raison_sociale', raison_sociale_v2,
        'siret_siege_social', siret_siege, 'code_effectif_entreprise', code_effectif,
        'date_creation', date_creation_ts, 'nom', nom, 'prenom', prenom_1, 'date_radiation', NULL,
        'categorie_entreprise', categorie_entreprise, 'tranche_effectif_salarie_entreprise', tranche,
        'mandataires_sociaux', '[]'::JSON,
        'etat_administratif', json_object('value', etat, 'date_cessation', date_cessation_v2),
        'diffusable_commercialement', diffusable_v2
    ), 'etablissement_siege', etablissement, 'gateway_error', false) AS document_non_diffusables
FROM (
    SELECT u.*, s.etablissement,
        -- TVA: null when the siège is abroad.
        CASE WHEN s.adresse_francaise IS DISTINCT FROM false
             THEN 'FR' || lpad(CAST((12 + 3 * (CAST(u.siren AS BIGINT) % 97)) % 97 AS VARCHAR), 2, '0') || u.siren
        END AS tva
    FROM doc_unites_legales_core u
    LEFT JOIN documents_v2_etablissements s ON s.siren = u.siren AND s.nic = u.nic_siege
);
