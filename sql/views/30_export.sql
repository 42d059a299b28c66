-- Lookup views used by `mirror export` / `mirror batch` to put libellés next to codes.
-- One row per key (safe for LEFT JOINs). They only read the ref_* tables.

-- Activity codes of every nomenclature Sirene uses, keyed by (nomenclature, code) as in the
-- nomenclatureActivitePrincipale* / activitePrincipale* columns. `section` only for NAF rév. 2.
CREATE OR REPLACE VIEW libelles_activites AS
SELECT 'NAFRev2' AS nomenclature, code, libelle, section FROM ref_naf_rev2
UNION ALL
SELECT 'NAFRev1', code, libelle, NULL FROM ref_naf_rev1
UNION ALL
SELECT 'NAF1993', code, libelle, NULL FROM ref_naf_1993
UNION ALL
SELECT 'NAP', code, libelle, NULL FROM ref_nap;

-- Commune names by COG code (communes and Paris/Lyon/Marseille arrondissements; the codes of
-- communes déléguées / associées may repeat a commune's code, so they are left out).
CREATE OR REPLACE VIEW libelles_communes AS
SELECT code, nom AS libelle
FROM ref_communes
WHERE type IN ('commune-actuelle', 'arrondissement-municipal');
