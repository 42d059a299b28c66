-- Building blocks of the API Entreprise documents (documents helper, issue 5).
-- Reference: API Entreprise's documentation of the INSEE endpoints (entreprise.api.gouv.fr, "unites_legales"
-- and "etablissements" v2/v3/v4) and siade's serialisers.
-- doc_* views are internal: one row per siren / siret with every derived value the documents need.
--
-- Timestamps: a date is the Unix time of its midnight in Europe/Paris
-- (`epoch(CAST(d AS TIMESTAMP) AT TIME ZONE 'Europe/Paris')`); v2 `date_mise_a_jour` keeps the time of
-- day (Paris local time; a time inside the spring-forward gap moves one hour forward, an ambiguous autumn
-- time takes the summer-time instant, like Rails' Time.zone.parse; milliseconds are truncated).

-- COG communes, one row per code (arrondissements municipaux keep their own name) with their région;
-- the collectivités d'outre-mer (975, 977, 978, 98x) have no région (API Geo gives none).
CREATE OR REPLACE VIEW doc_communes AS
SELECT c.code, c.nom, r.code AS region_code, r.nom AS region_nom
FROM (
    SELECT code, nom, region FROM ref_communes WHERE type IN ('commune-actuelle', 'arrondissement-municipal')
    UNION ALL
    SELECT code, nom, region FROM ref_communes
    WHERE type NOT IN ('commune-actuelle', 'arrondissement-municipal')
      AND code NOT IN (SELECT code FROM ref_communes WHERE type IN ('commune-actuelle', 'arrondissement-municipal'))
) c
LEFT JOIN (SELECT code, nom FROM ref_regions WHERE zone <> 'com') r ON r.code = c.region;

-- Tranches d'effectif as siade serialises them.
CREATE OR REPLACE VIEW doc_tranches AS
SELECT * FROM (VALUES
    ('NN', NULL, NULL, 'Unités non employeuses'),
    ('00', 0, 0, '0 salarié'),
    ('01', 1, 2, '1 ou 2 salariés'),
    ('02', 3, 5, '3 à 5 salariés'),
    ('03', 6, 9, '6 à 9 salariés'),
    ('11', 10, 19, '10 à 19 salariés'),
    ('12', 20, 49, '20 à 49 salariés'),
    ('21', 50, 99, '50 à 99 salariés'),
    ('22', 100, 199, '100 à 199 salariés'),
    ('31', 200, 249, '200 à 249 salariés'),
    ('32', 250, 499, '250 à 499 salariés'),
    ('41', 500, 999, '500 à 999 salariés'),
    ('42', 1000, 1999, '1 000 à 1 999 salariés'),
    ('51', 2000, 4999, '2 000 à 4 999 salariés'),
    ('52', 5000, 9999, '5 000 à 9 999 salariés'),
    ('53', 10000, NULL, '10 000 salariés et plus')
) t(code, de, a, intitule);

-- v3 type de voie: the historical INSEE codes with the OpenAPI spelling; any other value
-- (the 3.11 files hold full words such as PLACE) is emitted upper-cased as it is.
CREATE OR REPLACE VIEW doc_types_voie AS
SELECT * FROM (VALUES
    ('ALL', 'ALLÉE'), ('AV', 'AVENUE'), ('BD', 'BOULEVARD'), ('CAR', 'CARREFOUR'), ('CHE', 'CHEMIN'),
    ('CHS', 'CHAUSSÉE'), ('CITE', 'CITÉ'), ('COR', 'CORNICHE'), ('CRS', 'COURS'), ('DOM', 'DOMAINE'),
    ('DSC', 'DESCENTE'), ('ECA', 'ECART'), ('ESP', 'ESPLANADE'), ('FG', 'FAUBOURG'), ('GR', 'GRANDE RUE'),
    ('HAM', 'HAMEAU'), ('HLE', 'HALLE'), ('IMP', 'IMPASSE'), ('LD', 'LIEU-DIT'), ('LOT', 'LOTISSEMENT'),
    ('MAR', 'MARCHÉ'), ('MTE', 'MONTÉE'), ('PAS', 'PASSAGE'), ('PL', 'PLACE'), ('PLN', 'PLAINE'),
    ('PLT', 'PLATEAU'), ('PRO', 'PROMENADE'), ('PRV', 'PARVIS'), ('QUA', 'QUARTIER'), ('QUAI', 'QUAI'),
    ('RES', 'RÉSIDENCE'), ('RLE', 'RUELLE'), ('ROC', 'ROCADE'), ('RPT', 'ROND-POINT'), ('RTE', 'ROUTE'),
    ('RUE', 'RUE'), ('SEN', 'SENTIER'), ('SENTE', 'SENTIER'), ('SQ', 'SQUARE'), ('TPL', 'TERRE-PLEIN'),
    ('TRA', 'TRAVERSE'), ('VLA', 'VILLA'), ('VLGE', 'VILLAGE')
) t(code, libelle);

-- Unité légale: everything but the historique (the nested `unite_legale` of an établissement needs no more).
CREATE OR REPLACE VIEW doc_unites_legales_core AS
SELECT
    u.siren,
    u.statutDiffusionUniteLegale AS statut_diffusion,
    coalesce(u.statutDiffusionUniteLegale = 'P', false) AS partiel,
    u.categorieJuridiqueUniteLegale AS cj,
    CASE WHEN u.categorieJuridiqueUniteLegale = '1000' THEN 'personne_physique'
         WHEN u.categorieJuridiqueUniteLegale IS NOT NULL THEN 'personne_morale' END AS type,
    u.siren || u.nicSiegeUniteLegale AS siret_siege,
    u.nicSiegeUniteLegale AS nic_siege,
    u.etatAdministratifUniteLegale AS etat,
    u.dateDebut AS date_debut,
    u.denominationUniteLegale AS denomination,
    u.denominationUsuelle1UniteLegale AS denomination_usuelle_1,
    u.denominationUsuelle2UniteLegale AS denomination_usuelle_2,
    u.denominationUsuelle3UniteLegale AS denomination_usuelle_3,
    u.sigleUniteLegale AS sigle,
    u.nomUniteLegale AS nom,
    u.nomUsageUniteLegale AS nom_usage,
    u.prenom1UniteLegale AS prenom_1,
    u.sexeUniteLegale AS sexe,
    u.categorieEntreprise AS categorie_entreprise,
    u.trancheEffectifsUniteLegale AS code_effectif,
    u.activitePrincipaleUniteLegale AS naf_code,
    u.nomenclatureActivitePrincipaleUniteLegale AS naf_nomenclature,
    u.dateCreationUniteLegale AS date_creation,
    CASE WHEN u.categorieJuridiqueUniteLegale IS NULL THEN NULL
         ELSE coalesce(cj.libelle, 'non référencé') END AS forme_juridique,
    -- v2 raison sociale: a natural person's name as "NOM*NOM_USAGE/PRENOM1 PRENOM2 PRENOM3/".
    CASE WHEN u.categorieJuridiqueUniteLegale = '1000' THEN coalesce(
            u.denominationUniteLegale,
            coalesce(u.nomUniteLegale, '') || '*' || coalesce(u.nomUsageUniteLegale, '') || '/'
            || coalesce(u.prenom1UniteLegale, '') || ' ' || coalesce(u.prenom2UniteLegale, '') || ' '
            || coalesce(u.prenom3UniteLegale, '') || '/')
         ELSE u.denominationUniteLegale END AS raison_sociale_v2,
    CASE WHEN u.activitePrincipaleUniteLegale IS NULL THEN NULL
         WHEN u.activitePrincipaleUniteLegale = '00.00Z' THEN 'En instance de chiffrement'
         WHEN coalesce(u.nomenclatureActivitePrincipaleUniteLegale, 'NAFRev2') = 'NAFRev2'
             THEN coalesce(naf.libelle, 'non référencé')
         ELSE 'ancienne révision NAF (' || u.nomenclatureActivitePrincipaleUniteLegale || ') non supportée'
    END AS naf_libelle,
    json_object(
        'de', tr.de, 'a', tr.a, 'code', u.trancheEffectifsUniteLegale,
        'date_reference', CASE WHEN u.trancheEffectifsUniteLegale IS NOT NULL
                               THEN CAST(u.anneeEffectifsUniteLegale AS VARCHAR) END,
        'intitule', CASE WHEN u.trancheEffectifsUniteLegale IS NOT NULL
                         THEN coalesce(tr.intitule, 'non référencé') END
    ) AS tranche,
    json_object(
        'code', u.activitePrincipaleNAF25UniteLegale,
        'nomenclature', CASE WHEN u.activitePrincipaleNAF25UniteLegale IS NOT NULL THEN 'NAF2025' END,
        'libelle', CASE WHEN u.activitePrincipaleNAF25UniteLegale IS NOT NULL
                        THEN coalesce(naf25.libelle, 'non référencé') END
    ) AS activite_naf25,
    json_object('code', u.categorieJuridiqueUniteLegale, 'libelle',
        CASE WHEN u.categorieJuridiqueUniteLegale IS NULL THEN NULL
             ELSE coalesce(cj.libelle, 'non référencé') END) AS forme_juridique_json,
    json_object('raison_sociale', u.denominationUniteLegale, 'sigle', u.sigleUniteLegale) AS pm_attributs,
    json_object('raison_sociale', u.denominationUniteLegale, 'sigle', '[ND]') AS pm_attributs_nd,
    json_object(
        'pseudonyme', u.pseudonymeUniteLegale, 'prenom_usuel', u.prenomUsuelUniteLegale,
        'prenom_1', u.prenom1UniteLegale, 'prenom_2', u.prenom2UniteLegale, 'prenom_3', u.prenom3UniteLegale,
        'prenom_4', u.prenom4UniteLegale, 'nom_usage', u.nomUsageUniteLegale,
        'nom_naissance', u.nomUniteLegale, 'sexe', u.sexeUniteLegale
    ) AS pp_attributs,
    json_object(
        'pseudonyme', '[ND]', 'prenom_usuel', '[ND]', 'prenom_1', '[ND]', 'prenom_2', '[ND]', 'prenom_3', '[ND]',
        'prenom_4', '[ND]', 'nom_usage', '[ND]', 'nom_naissance', '[ND]', 'sexe', '[ND]'
    ) AS pp_attributs_nd,
    u.identifiantAssociationUniteLegale AS rna,
    CASE u.economieSocialeSolidaireUniteLegale WHEN 'O' THEN true WHEN 'N' THEN false END AS ess,
    u.statutDiffusionUniteLegale = 'O' AS diffusable_v2,
    coalesce(u.statutDiffusionUniteLegale = 'O', false) AS diffusable_v3,
    CASE u.statutDiffusionUniteLegale WHEN 'O' THEN 'diffusible' WHEN 'N' THEN 'non_diffusible'
         WHEN 'P' THEN 'partiellement_diffusible' END AS status_diffusion,
    epoch(CAST(u.dateCreationUniteLegale AS TIMESTAMP) AT TIME ZONE 'Europe/Paris')::BIGINT AS date_creation_ts,
    CASE WHEN u.dateCreationUniteLegale <> DATE '1900-01-01'
         THEN epoch(CAST(u.dateCreationUniteLegale AS TIMESTAMP) AT TIME ZONE 'Europe/Paris')::BIGINT
    END AS date_creation_ts_v3,
    CASE WHEN u.etatAdministratifUniteLegale = 'C'
         THEN epoch(CAST(u.dateDebut AS TIMESTAMP) AT TIME ZONE 'Europe/Paris')::BIGINT END AS date_cessation_v2,
    epoch(CAST(CAST(u.dateDernierTraitementUniteLegale AS DATE) AS TIMESTAMP) AT TIME ZONE 'Europe/Paris')::BIGINT
        AS date_mise_a_jour_v3
FROM unites_legales u
LEFT JOIN ref_categories_juridiques cj ON cj.code = u.categorieJuridiqueUniteLegale
LEFT JOIN ref_naf_rev2 naf ON naf.code = u.activitePrincipaleUniteLegale
LEFT JOIN ref_naf_2025 naf25 ON naf25.code = u.activitePrincipaleNAF25UniteLegale
LEFT JOIN doc_tranches tr ON tr.code = u.trancheEffectifsUniteLegale;

-- v3/v4 date_cessation: dateDebut of the most recent period that changed the état to C.
CREATE OR REPLACE VIEW doc_unites_legales_cessation AS
SELECT siren, max(dateDebut) AS date_cessation
FROM unites_legales_historique
WHERE changementEtatAdministratifUniteLegale AND etatAdministratifUniteLegale = 'C'
GROUP BY siren;

-- v3/v4 date_fermeture: same rule on the établissements' historique. Keyed by (siren, siret) so that a filter
-- on the SIREN of the documents (the lookup store reads them one SIREN range or set at a time) reaches the
-- historique's scan instead of aggregating all of it for every query.
CREATE OR REPLACE VIEW doc_etablissements_fermeture AS
SELECT siren, siret, max(dateDebut) AS date_fermeture
FROM etablissements_historique
WHERE changementEtatAdministratifEtablissement AND etatAdministratifEtablissement = 'F'
GROUP BY siren, siret;

-- The v3 `activite_principale` object and the nested `unite_legale` of v3/v4 établissements (no date_cessation),
-- plain and masked for /diffusibles/ (sigle of a legal person, identity of a natural person).
CREATE OR REPLACE VIEW doc_unites_legales AS
SELECT *,
    json_object(
        'siren', siren, 'rna', rna, 'siret_siege_social', siret_siege, 'type', type,
        'status_diffusion', status_diffusion,
        'personne_morale_attributs', pm_attributs, 'personne_physique_attributs', pp_attributs,
        'categorie_entreprise', categorie_entreprise, 'diffusable_commercialement', diffusable_v3,
        'forme_juridique', forme_juridique_json, 'activite_principale', activite_v3,
        'tranche_effectif_salarie', tranche, 'economie_sociale_et_solidaire', ess,
        'date_creation', date_creation_ts_v3, 'etat_administratif', etat
    ) AS nested_v3,
    json_object(
        'siren', siren, 'rna', rna, 'siret_siege_social', siret_siege, 'type', type,
        'status_diffusion', status_diffusion,
        'personne_morale_attributs', CASE WHEN type = 'personne_physique' THEN pm_attributs ELSE pm_attributs_nd END,
        'personne_physique_attributs', CASE WHEN type = 'personne_physique' THEN pp_attributs_nd ELSE pp_attributs END,
        'categorie_entreprise', categorie_entreprise, 'diffusable_commercialement', diffusable_v3,
        'forme_juridique', forme_juridique_json, 'activite_principale', activite_v3,
        'tranche_effectif_salarie', tranche, 'economie_sociale_et_solidaire', ess,
        'date_creation', date_creation_ts_v3, 'etat_administratif', etat
    ) AS nested_v3_nd,
    json_object(
        'siren', siren, 'rna', rna, 'siret_siege_social', siret_siege, 'type', type,
        'status_diffusion', status_diffusion,
        'personne_morale_attributs', pm_attributs, 'personne_physique_attributs', pp_attributs,
        'categorie_entreprise', categorie_entreprise, 'diffusable_commercialement', diffusable_v3,
        'forme_juridique', forme_juridique_json, 'activite_principale', activite_naf25,
        'activite_principale_naf_rev2', activite_v3,
        'tranche_effectif_salarie', tranche, 'economie_sociale_et_solidaire', ess,
        'date_creation', date_creation_ts_v3, 'etat_administratif', etat
    ) AS nested_v4,
    json_object(
        'siren', siren, 'rna', rna, 'siret_siege_social', siret_siege, 'type', type,
        'status_diffusion', status_diffusion,
        'personne_morale_attributs', CASE WHEN type = 'personne_physique' THEN pm_attributs ELSE pm_attributs_nd END,
        'personne_physique_attributs', CASE WHEN type = 'personne_physique' THEN pp_attributs_nd ELSE pp_attributs END,
        'categorie_entreprise', categorie_entreprise, 'diffusable_commercialement', diffusable_v3,
        'forme_juridique', forme_juridique_json, 'activite_principale', activite_naf25,
        'activite_principale_naf_rev2', activite_v3,
        'tranche_effectif_salarie', tranche, 'economie_sociale_et_solidaire', ess,
        'date_creation', date_creation_ts_v3, 'etat_administratif', etat
    ) AS nested_v4_nd
FROM (
    SELECT *, json_object('code', naf_code, 'nomenclature', naf_nomenclature, 'libelle', naf_libelle) AS activite_v3
    FROM doc_unites_legales_core
);

-- Établissement: every derived value of the v2 and v3 établissement documents (sections 4.2, 5.3, 6).
CREATE OR REPLACE VIEW doc_etablissements AS
SELECT *,
    -- v2 address lines: null when empty, INSEE's raw street type.
    coalesce(nullif(trim(regexp_replace(ul_denomination, '\s+', ' ', 'g')), ''),
             trim(regexp_replace(concat_ws(' ', CASE ul_sexe WHEN 'M' THEN 'MONSIEUR' WHEN 'F' THEN 'MADAME' END,
                                           ul_prenom_1, coalesce(ul_nom_usage, ul_nom)), '\s+', ' ', 'g'))) AS v2_l1,
    coalesce(nullif(concat_ws(' ', nullif(ul_denomination_usuelle_1, ''), nullif(ul_denomination_usuelle_2, ''),
                              nullif(ul_denomination_usuelle_3, '')), ''), enseigne) AS v2_l2,
    complement_adresse AS v2_l3,
    nullif(concat_ws(' ', nullif(numero_voie, ''), nullif(indice_repetition, ''), nullif(type_voie_raw, ''),
                     nullif(libelle_voie, '')), '') AS v2_l4,
    distribution_speciale AS v2_l5,
    nullif(concat_ws(' ', nullif(coalesce(code_cedex, code_postal), ''),
                     nullif(coalesce(libelle_cedex, libelle_commune, libelle_commune_etranger), '')), '') AS v2_l6,
    CASE WHEN adresse_francaise THEN 'FRANCE' ELSE libelle_pays_etranger END AS v2_l7,
    -- v3 acheminement postal: "" when empty, street type expanded.
    CASE WHEN ul_type = 'personne_morale' THEN trim(regexp_replace(
             coalesce(ul_denomination, '') || ' ' || CASE WHEN ul_denomination_usuelle_1 IS NOT DISTINCT FROM ul_denomination
                                                          THEN '' ELSE coalesce(ul_denomination_usuelle_1, '') END,
             '\s+', ' ', 'g')) ELSE '' END AS v3_l1,
    CASE WHEN ul_type = 'personne_physique'
         THEN trim(regexp_replace(coalesce(ul_nom, '') || ' ' || coalesce(ul_prenom_1, ''), '\s+', ' ', 'g'))
         ELSE '' END AS v3_l2,
    coalesce(complement_adresse, '') AS v3_l3,
    upper(concat_ws(' ', numero_voie, indice_repetition_l4, type_voie_v3, libelle_voie)) AS v3_l4,
    coalesce(distribution_speciale, '') AS v3_l5,
    CASE WHEN code_cedex IS NOT NULL THEN code_cedex || ' ' || coalesce(libelle_cedex, '')
         WHEN code_pays_etranger IS NOT NULL THEN libelle_commune_etranger
         ELSE coalesce(code_postal, '') || ' ' || coalesce(libelle_commune, '') END AS v3_l6,
    coalesce(libelle_pays_etranger, 'FRANCE') AS v3_l7,
    json_object('code', naf_code, 'nomenclature', naf_nomenclature, 'libelle', naf_libelle) AS activite_v3
FROM (
    SELECT
        e.siret, e.siren, e.nic, e.departement,
        e.statutDiffusionEtablissement AS statut_diffusion,
        coalesce(e.statutDiffusionEtablissement = 'P', false) AS partiel,
        e.etablissementSiege AS siege_social,
        e.etatAdministratifEtablissement AS etat,
        e.dateDebut AS date_debut,
        e.activitePrincipaleEtablissement AS naf_code,
        e.nomenclatureActivitePrincipaleEtablissement AS naf_nomenclature,
        CASE WHEN e.activitePrincipaleEtablissement IS NULL THEN NULL
             WHEN e.activitePrincipaleEtablissement = '00.00Z' THEN 'En instance de chiffrement'
             WHEN coalesce(e.nomenclatureActivitePrincipaleEtablissement, 'NAFRev2') = 'NAFRev2'
                 THEN coalesce(naf.libelle, 'non référencé')
             ELSE 'ancienne révision NAF (' || e.nomenclatureActivitePrincipaleEtablissement || ') non supportée'
        END AS naf_libelle,
        json_object(
            'code', e.activitePrincipaleNAF25Etablissement,
            'nomenclature', CASE WHEN e.activitePrincipaleNAF25Etablissement IS NOT NULL THEN 'NAF2025' END,
            'libelle', CASE WHEN e.activitePrincipaleNAF25Etablissement IS NOT NULL
                            THEN coalesce(naf25.libelle, 'non référencé') END
        ) AS activite_naf25,
        json_object(
            'de', tr.de, 'a', tr.a, 'code', e.trancheEffectifsEtablissement,
            'date_reference', CASE WHEN e.trancheEffectifsEtablissement IS NOT NULL
                                   THEN CAST(e.anneeEffectifsEtablissement AS VARCHAR) END,
            'intitule', CASE WHEN e.trancheEffectifsEtablissement IS NOT NULL
                             THEN coalesce(tr.intitule, 'non référencé') END
        ) AS tranche,
        epoch(CAST(e.dateCreationEtablissement AS TIMESTAMP) AT TIME ZONE 'Europe/Paris')::BIGINT AS date_creation_ts,
        CASE WHEN e.etatAdministratifEtablissement = 'F'
             THEN epoch(CAST(e.dateDebut AS TIMESTAMP) AT TIME ZONE 'Europe/Paris')::BIGINT END AS date_fermeture_v2,
        -- Paris local time -> Unix time; an ambiguous (autumn) time takes the earlier, summer-time instant.
        CASE WHEN timezone('Europe/Paris', to_timestamp(maj_epoch - 3600)) = maj_local
             THEN maj_epoch - 3600 ELSE maj_epoch END AS date_mise_a_jour_v2,
        epoch(CAST(CAST(e.dateDernierTraitementEtablissement AS DATE) AS TIMESTAMP)
              AT TIME ZONE 'Europe/Paris')::BIGINT AS date_mise_a_jour_v3,
        nullif(concat_ws(', ', nullif(e.enseigne1Etablissement, ''), nullif(e.enseigne2Etablissement, ''),
                         nullif(e.enseigne3Etablissement, '')), '') AS enseigne,
        e.codeCommuneEtablissement IS NOT NULL AND e.codePaysEtrangerEtablissement IS NULL AS adresse_francaise,
        com.code AS commune_code,
        coalesce(com.nom, e.libelleCommuneEtrangerEtablissement) AS commune_nom,
        com.region_code, com.region_nom,
        e.complementAdresseEtablissement AS complement_adresse,
        e.numeroVoieEtablissement AS numero_voie,
        e.indiceRepetitionEtablissement AS indice_repetition,
        coalesce(ir.libelle, e.indiceRepetitionEtablissement) AS indice_repetition_v3,
        ir.libelle AS indice_repetition_l4,
        e.typeVoieEtablissement AS type_voie_raw,
        upper(coalesce(tv.libelle, e.typeVoieEtablissement)) AS type_voie_v3,
        e.libelleVoieEtablissement AS libelle_voie,
        e.codePostalEtablissement AS code_postal,
        e.libelleCommuneEtablissement AS libelle_commune,
        e.libelleCommuneEtrangerEtablissement AS libelle_commune_etranger,
        e.distributionSpecialeEtablissement AS distribution_speciale,
        e.codeCommuneEtablissement AS code_commune,
        e.codeCedexEtablissement AS code_cedex,
        e.libelleCedexEtablissement AS libelle_cedex,
        e.codePaysEtrangerEtablissement AS code_pays_etranger,
        e.libellePaysEtrangerEtablissement AS libelle_pays_etranger,
        u.type AS ul_type, u.statut_diffusion AS ul_statut_diffusion, u.partiel AS ul_partiel,
        u.denomination AS ul_denomination, u.denomination_usuelle_1 AS ul_denomination_usuelle_1,
        u.denomination_usuelle_2 AS ul_denomination_usuelle_2, u.denomination_usuelle_3 AS ul_denomination_usuelle_3,
        u.sexe AS ul_sexe, u.prenom_1 AS ul_prenom_1, u.nom_usage AS ul_nom_usage, u.nom AS ul_nom,
        u.nested_v3 AS ul_nested_v3, u.nested_v3_nd AS ul_nested_v3_nd,
        u.nested_v4 AS ul_nested_v4, u.nested_v4_nd AS ul_nested_v4_nd
    FROM (
        SELECT *,
            date_trunc('second', dateDernierTraitementEtablissement) AS maj_local,
            epoch(date_trunc('second', dateDernierTraitementEtablissement) AT TIME ZONE 'Europe/Paris')::BIGINT
                AS maj_epoch
        FROM etablissements
    ) e
    LEFT JOIN doc_unites_legales u ON u.siren = e.siren
    LEFT JOIN doc_communes com ON com.code = e.codeCommuneEtablissement
    LEFT JOIN ref_naf_rev2 naf ON naf.code = e.activitePrincipaleEtablissement
    LEFT JOIN ref_naf_2025 naf25 ON naf25.code = e.activitePrincipaleNAF25Etablissement
    LEFT JOIN doc_tranches tr ON tr.code = e.trancheEffectifsEtablissement
    LEFT JOIN ref_indices_repetition ir ON ir.code = e.indiceRepetitionEtablissement
    LEFT JOIN doc_types_voie tv ON tv.code = e.typeVoieEtablissement
);
