-- Rows of the company search index (mirror.lookup.search_index.index_units), one per unité légale, in siren
-- order (the FTS5 rowid is the siren as an integer: appending rowids in order keeps FTS5's doclists cheap).
-- Every text comes from the *_diffusibles views, so the '[ND]' masks are respected; '[ND]' values are
-- skipped, and a partially diffusible natural person (${opted_out}: sql/catalog/opted_out_person.sql, the
-- views' own definition) gets no name text at all (no person name, no dénomination usuelle, no
-- enseigne): it is found by its SIREN / SIRET only. Units whose siren is not 9 digits are left out.
--   ${restrict}: a condition on `siren` (`true` for a full build, else sql/lookup/search_restrict.sql).
-- Columns: the FTS5 row (id, nom, enseignes, departement, code_postal, naf, etat, commune, region, epci,
-- section, tranche, categorie, nature, flags), then the search_units row (siren and the display fields), see
-- sql/lookup/search_schema.sql.
WITH u AS (
    SELECT *,
        ${opted_out} AS nd_person
    FROM unites_legales_diffusibles
    WHERE ${restrict} AND regexp_full_match(siren, '[0-9]{9}')
),
e AS (
    -- Enseignes, postcodes and départements of the siège and of the open établissements.
    SELECT siren,
        count(*) FILTER (WHERE etatAdministratifEtablissement = 'A') AS ouverts,
        min(siret) FILTER (WHERE etablissementSiege) AS siege_siret,
        min(codePostalEtablissement) FILTER (WHERE etablissementSiege) AS siege_cp,
        min(libelleCommuneEtablissement) FILTER (WHERE etablissementSiege) AS siege_commune,
        min(departement) FILTER (WHERE etablissementSiege) AS siege_dep,
        list(DISTINCT codePostalEtablissement) FILTER (
            WHERE (etablissementSiege OR etatAdministratifEtablissement = 'A')
              AND codePostalEtablissement IS NOT NULL AND codePostalEtablissement <> '[ND]') AS cps,
        list(DISTINCT departement) FILTER (
            WHERE (etablissementSiege OR etatAdministratifEtablissement = 'A') AND departement IS NOT NULL) AS deps,
        list(DISTINCT codeCommuneEtablissement) FILTER (
            WHERE (etablissementSiege OR etatAdministratifEtablissement = 'A')
              AND codeCommuneEtablissement IS NOT NULL AND codeCommuneEtablissement <> '[ND]') AS communes,
        list(DISTINCT region) FILTER (
            WHERE (etablissementSiege OR etatAdministratifEtablissement = 'A') AND region IS NOT NULL) AS regions,
        list(DISTINCT epci) FILTER (
            WHERE (etablissementSiege OR etatAdministratifEtablissement = 'A') AND epci IS NOT NULL) AS epcis,
        count(*) AS total,
        list_distinct(list_concat(
            list(enseigne1Etablissement) FILTER (WHERE etablissementSiege OR etatAdministratifEtablissement = 'A'),
            list(enseigne2Etablissement) FILTER (WHERE etablissementSiege OR etatAdministratifEtablissement = 'A'),
            list(enseigne3Etablissement) FILTER (WHERE etablissementSiege OR etatAdministratifEtablissement = 'A'),
            list(denominationUsuelleEtablissement)
                FILTER (WHERE etablissementSiege OR etatAdministratifEtablissement = 'A'))) AS enseignes
    FROM etablissements_diffusibles
    WHERE ${restrict}
    GROUP BY siren
),
t AS (
    SELECT u.*, e.* EXCLUDE (siren),
        -- Each distinct value once (prénom usuel = prénom 1 would count twice in bm25).
        CASE WHEN nd_person THEN '' ELSE array_to_string(list_filter(list_distinct([
            denominationUniteLegale, sigleUniteLegale, denominationUsuelle1UniteLegale,
            denominationUsuelle2UniteLegale, denominationUsuelle3UniteLegale, nomUniteLegale, nomUsageUniteLegale,
            prenom1UniteLegale, prenom2UniteLegale, prenom3UniteLegale, prenom4UniteLegale, prenomUsuelUniteLegale,
            pseudonymeUniteLegale]), x -> x IS NOT NULL AND x <> '[ND]'), ' ') END AS nom_text,
        -- At most 50 enseignes, the first in sorted order: list() gathers them in no set order, and the
        -- text of a unit must not change from one build to the next.
        CASE WHEN nd_person THEN '' ELSE array_to_string(list_slice(
            list_sort(list_filter(e.enseignes, x -> x IS NOT NULL AND x <> '[ND]')), 1, 50), ' ') END
            AS enseignes_text,
        nullif(denominationUniteLegale, '[ND]') AS denomination,
        nullif(sigleUniteLegale, '[ND]') AS sigle_connu,
        CASE WHEN nd_person OR nomUniteLegale = '[ND]' THEN NULL
             ELSE concat_ws(' ', coalesce(prenomUsuelUniteLegale, prenom1UniteLegale),
                            coalesce(nomUsageUniteLegale, nomUniteLegale),
                            CASE WHEN nomUsageUniteLegale IS NOT NULL AND nomUsageUniteLegale <> nomUniteLegale
                                 THEN '(' || nomUniteLegale || ')' END) END AS personne,
        n.section AS naf_section,
        -- One token per flag and value ('ess1' / 'ess0'), so that est_ess=false is a positive FTS5 term too.
        concat_ws(' ',
            CASE WHEN economieSocialeSolidaireUniteLegale = 'O' THEN 'ess1' ELSE 'ess0' END,
            CASE WHEN societeMissionUniteLegale = 'O' THEN 'mission1' ELSE 'mission0' END,
            -- recherche-entreprises' est_association: an RNA identifier, or an association's catégorie
            -- juridique (92xx, INSEE's "Association de droit local / loi 1901" family).
            CASE WHEN identifiantAssociationUniteLegale IS NOT NULL
                      OR starts_with(categorieJuridiqueUniteLegale, '92') THEN 'asso1' ELSE 'asso0' END,
            -- est_entrepreneur_individuel: catégorie juridique 1000 (search-infra's rule).
            CASE WHEN categorieJuridiqueUniteLegale = '1000' THEN 'ei1' ELSE 'ei0' END) AS flag_text
    FROM u LEFT JOIN e ON e.siren = u.siren
    LEFT JOIN ref_naf_rev2 n
        ON n.code = u.activitePrincipaleUniteLegale AND u.nomenclatureActivitePrincipaleUniteLegale = 'NAFRev2'
)
SELECT
    CAST(siren AS BIGINT) AS id,
    -- Hyphenated (and apostrophe-joined, elided articles aside) words are also indexed joined:
    -- SAINT-ETIENNE -> SAINTETIENNE, O'TACOS -> OTACOS (the FTS tokenizer splits them on the separator).
    concat_ws(' ', nom_text, array_to_string(list_transform(list_filter(list_transform(
        regexp_extract_all(nom_text, '[\pL\pN]+(?:[-‐‑''’`ʼ][\pL\pN]+)+'),
        x -> regexp_replace(x, '^(?:[LDJMNSTldjmnst]|[Qq][Uu])[''’`ʼ]', '')),
        x -> regexp_matches(x, '[-‐‑''’`ʼ]')), x -> regexp_replace(x, '[-‐‑''’`ʼ]', '', 'g')), ' ')) AS nom,
    concat_ws(' ', enseignes_text, array_to_string(list_transform(list_filter(list_transform(
        regexp_extract_all(enseignes_text, '[\pL\pN]+(?:[-‐‑''’`ʼ][\pL\pN]+)+'),
        x -> regexp_replace(x, '^(?:[LDJMNSTldjmnst]|[Qq][Uu])[''’`ʼ]', '')),
        x -> regexp_matches(x, '[-‐‑''’`ʼ]')), x -> regexp_replace(x, '[-‐‑''’`ʼ]', '', 'g')), ' ')) AS enseignes,
    array_to_string(list_sort(coalesce(deps, [])), ' ') AS departement,
    array_to_string(list_sort(coalesce(cps, [])), ' ') AS code_postal,
    lower(replace(coalesce(activitePrincipaleUniteLegale, ''), '.', '')) AS naf,
    lower(coalesce(etatAdministratifUniteLegale, '')) AS etat,
    array_to_string(list_sort(coalesce(communes, [])), ' ') AS commune,
    array_to_string(list_sort(coalesce(regions, [])), ' ') AS region,
    array_to_string(list_sort(coalesce(epcis, [])), ' ') AS epci,
    lower(coalesce(naf_section, '')) AS section,
    lower(coalesce(trancheEffectifsUniteLegale, '')) AS tranche,
    lower(coalesce(categorieEntreprise, '')) AS categorie,
    coalesce(categorieJuridiqueUniteLegale, '') AS nature,
    flag_text AS flags,
    siren,
    CASE WHEN nd_person THEN '[ND]'
         WHEN denomination IS NOT NULL
             THEN denomination || coalesce(' (' || sigle_connu || ')', '')
         WHEN personne IS NOT NULL AND personne <> '' THEN personne || coalesce(' (' || sigle_connu || ')', '')
         WHEN statutDiffusionUniteLegale = 'P' THEN '[ND]'
    END AS nom_complet,
    sigleUniteLegale AS sigle,
    coalesce(siege_siret, siren || nicSiegeUniteLegale) AS siret_siege,
    siege_cp AS code_postal_siege,
    siege_commune AS commune,
    siege_dep AS departement_siege,
    activitePrincipaleUniteLegale AS activite_principale,
    etatAdministratifUniteLegale AS etat_administratif,
    categorieJuridiqueUniteLegale AS categorie_juridique,
    trancheEffectifsUniteLegale AS tranche_effectif_salarie,
    coalesce(ouverts, 0) AS etablissements_ouverts,
    coalesce(total, 0) AS etablissements,
    naf_section AS section_activite_principale,
    categorieEntreprise AS categorie_entreprise,
    flag_text AS unit_flags
FROM t
ORDER BY id
