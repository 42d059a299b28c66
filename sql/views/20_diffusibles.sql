-- Diffusion rules applied once (documents helper, issue 5 item 3).
--
-- unites_legales_diffusibles / etablissements_diffusibles: exactly the columns of `unites_legales` /
-- `etablissements`, with the personal data of partially diffusible (statutDiffusion = 'P') rows masked.
-- Exports and bulk documents read these two views, so that no export can forget the rules.
-- Masked values are the literal '[ND]' (text) or NULL (numbers); they are never reconstructed.
--
-- Unit (statutDiffusionUniteLegale = 'P'):
--   * natural persons (catégorie juridique 1000, 2xxx groupings of persons, or unknown): identity
--     columns (mirror.schema.MASKED_UL_PERSON_COLUMNS) and the dénominations usuelles;
--   * every P unit: sigleUniteLegale (mirror.schema.MASKED_UL_COMPANY_COLUMNS).
-- Établissement (statutDiffusionEtablissement = 'P', independent of the unit's status):
--   * the street part of the address, postcode, cedex, address id (MASKED_ETABLISSEMENT_COLUMNS) -> '[ND]';
--     Lambert coordinates, latitude and longitude -> NULL, coordonneesMasquees -> true;
--     the geolocation file's columns (mirror.schema.GEOLOCATION_COLUMNS: qualiteXY, iris, qpv), when the
--     snapshot has them, -> NULL with the coordinates (an IRIS is finer than the commune: it would locate
--     the masked address). ${geolocation_masks} is one sql/catalog/masked_geolocation_column.sql per column
--     (mirror.catalog.build.views_sql); filters on the view (--iris, --qpv, a radius) thus never find a
--     P établissement by a masked value;
--   * the secondary address's street part -> '[ND]' when present (conservative, not in INSEE's list);
--   * for a natural person's établissement: enseignes and dénomination usuelle -> '[ND]'.
-- Who is such a natural person: sql/catalog/opted_out_person.sql, ${opted_out_unit} over the unit's columns,
-- ${opted_out_etablissement} over the établissement's statut and its unit's catégorie juridique.
-- The commune, pays, activity, effectifs, état administratif, dates and identifiers stay public.
--
-- etablissements_masques_adresse: the établissement rule alone (every mask above except the enseignes and
-- dénomination usuelle, whose rule needs the unit's catégorie juridique), so with no join. It is a building
-- block, NOT a diffusible view: its four name columns (mirror.schema.MASKED_ETABLISSEMENT_PERSON_COLUMNS)
-- are raw. etablissements_diffusibles is this view plus the natural-person rule. Exports read it instead of
-- etablissements_diffusibles only for queries needing none of those four columns (mirror.export.exporter),
-- where both give the same rows and values: a count or a filter on activity, place, size or state then
-- costs what it costs on `etablissements` (the join with the 1M-row unit scan is left out).

CREATE OR REPLACE VIEW unites_legales_diffusibles AS
SELECT * EXCLUDE (nd_person) REPLACE (
    CASE WHEN nd_person THEN '[ND]' ELSE sexeUniteLegale END AS sexeUniteLegale,
    CASE WHEN nd_person THEN '[ND]' ELSE prenom1UniteLegale END AS prenom1UniteLegale,
    CASE WHEN nd_person THEN '[ND]' ELSE prenom2UniteLegale END AS prenom2UniteLegale,
    CASE WHEN nd_person THEN '[ND]' ELSE prenom3UniteLegale END AS prenom3UniteLegale,
    CASE WHEN nd_person THEN '[ND]' ELSE prenom4UniteLegale END AS prenom4UniteLegale,
    CASE WHEN nd_person THEN '[ND]' ELSE prenomUsuelUniteLegale END AS prenomUsuelUniteLegale,
    CASE WHEN nd_person THEN '[ND]' ELSE pseudonymeUniteLegale END AS pseudonymeUniteLegale,
    CASE WHEN nd_person THEN '[ND]' ELSE nomUniteLegale END AS nomUniteLegale,
    CASE WHEN nd_person THEN '[ND]' ELSE nomUsageUniteLegale END AS nomUsageUniteLegale,
    CASE WHEN nd_person AND denominationUsuelle1UniteLegale IS NOT NULL THEN '[ND]'
         ELSE denominationUsuelle1UniteLegale END AS denominationUsuelle1UniteLegale,
    CASE WHEN nd_person AND denominationUsuelle2UniteLegale IS NOT NULL THEN '[ND]'
         ELSE denominationUsuelle2UniteLegale END AS denominationUsuelle2UniteLegale,
    CASE WHEN nd_person AND denominationUsuelle3UniteLegale IS NOT NULL THEN '[ND]'
         ELSE denominationUsuelle3UniteLegale END AS denominationUsuelle3UniteLegale,
    CASE WHEN statutDiffusionUniteLegale = 'P' THEN '[ND]' ELSE sigleUniteLegale END AS sigleUniteLegale
)
FROM (
    SELECT *,
        ${opted_out_unit} AS nd_person
    FROM unites_legales
);

CREATE OR REPLACE VIEW etablissements_masques_adresse AS
SELECT * EXCLUDE (nd) REPLACE (
    CASE WHEN nd THEN '[ND]' ELSE complementAdresseEtablissement END AS complementAdresseEtablissement,
    CASE WHEN nd THEN '[ND]' ELSE numeroVoieEtablissement END AS numeroVoieEtablissement,
    CASE WHEN nd THEN '[ND]' ELSE indiceRepetitionEtablissement END AS indiceRepetitionEtablissement,
    CASE WHEN nd THEN '[ND]' ELSE dernierNumeroVoieEtablissement END AS dernierNumeroVoieEtablissement,
    CASE WHEN nd THEN '[ND]' ELSE indiceRepetitionDernierNumeroVoieEtablissement END
        AS indiceRepetitionDernierNumeroVoieEtablissement,
    CASE WHEN nd THEN '[ND]' ELSE typeVoieEtablissement END AS typeVoieEtablissement,
    CASE WHEN nd THEN '[ND]' ELSE libelleVoieEtablissement END AS libelleVoieEtablissement,
    CASE WHEN nd THEN '[ND]' ELSE codePostalEtablissement END AS codePostalEtablissement,
    CASE WHEN nd THEN '[ND]' ELSE distributionSpecialeEtablissement END AS distributionSpecialeEtablissement,
    CASE WHEN nd THEN '[ND]' ELSE codeCedexEtablissement END AS codeCedexEtablissement,
    CASE WHEN nd THEN '[ND]' ELSE libelleCedexEtablissement END AS libelleCedexEtablissement,
    CASE WHEN nd THEN '[ND]' ELSE identifiantAdresseEtablissement END AS identifiantAdresseEtablissement,
    CASE WHEN nd THEN NULL ELSE coordonneeLambertAbscisseEtablissement END AS coordonneeLambertAbscisseEtablissement,
    CASE WHEN nd THEN NULL ELSE coordonneeLambertOrdonneeEtablissement END AS coordonneeLambertOrdonneeEtablissement,
    CASE WHEN nd AND complementAdresse2Etablissement IS NOT NULL THEN '[ND]'
         ELSE complementAdresse2Etablissement END AS complementAdresse2Etablissement,
    CASE WHEN nd AND numeroVoie2Etablissement IS NOT NULL THEN '[ND]'
         ELSE numeroVoie2Etablissement END AS numeroVoie2Etablissement,
    CASE WHEN nd AND indiceRepetition2Etablissement IS NOT NULL THEN '[ND]'
         ELSE indiceRepetition2Etablissement END AS indiceRepetition2Etablissement,
    CASE WHEN nd AND typeVoie2Etablissement IS NOT NULL THEN '[ND]'
         ELSE typeVoie2Etablissement END AS typeVoie2Etablissement,
    CASE WHEN nd AND libelleVoie2Etablissement IS NOT NULL THEN '[ND]'
         ELSE libelleVoie2Etablissement END AS libelleVoie2Etablissement,
    CASE WHEN nd AND codePostal2Etablissement IS NOT NULL THEN '[ND]'
         ELSE codePostal2Etablissement END AS codePostal2Etablissement,
    CASE WHEN nd AND distributionSpeciale2Etablissement IS NOT NULL THEN '[ND]'
         ELSE distributionSpeciale2Etablissement END AS distributionSpeciale2Etablissement,
    CASE WHEN nd AND codeCedex2Etablissement IS NOT NULL THEN '[ND]'
         ELSE codeCedex2Etablissement END AS codeCedex2Etablissement,
    CASE WHEN nd AND libelleCedex2Etablissement IS NOT NULL THEN '[ND]'
         ELSE libelleCedex2Etablissement END AS libelleCedex2Etablissement,
    CASE WHEN nd THEN NULL ELSE latitude END AS latitude,
    CASE WHEN nd THEN NULL ELSE longitude END AS longitude,
    CASE WHEN nd THEN true ELSE coordonneesMasquees END AS coordonneesMasquees${geolocation_masks}
)
FROM (
    SELECT *, coalesce(statutDiffusionEtablissement = 'P', false) AS nd
    FROM etablissements
);

CREATE OR REPLACE VIEW etablissements_diffusibles AS
SELECT * EXCLUDE (nd_person) REPLACE (
    CASE WHEN nd_person THEN '[ND]' ELSE enseigne1Etablissement END AS enseigne1Etablissement,
    CASE WHEN nd_person THEN '[ND]' ELSE enseigne2Etablissement END AS enseigne2Etablissement,
    CASE WHEN nd_person THEN '[ND]' ELSE enseigne3Etablissement END AS enseigne3Etablissement,
    CASE WHEN nd_person THEN '[ND]' ELSE denominationUsuelleEtablissement END AS denominationUsuelleEtablissement
)
FROM (
    SELECT e.*,
        ${opted_out_etablissement} AS nd_person
    FROM etablissements_masques_adresse e
    LEFT JOIN (SELECT siren, categorieJuridiqueUniteLegale FROM unites_legales) u ON u.siren = e.siren
);
