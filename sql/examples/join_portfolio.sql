-- Enrich a customer portfolio: a CSV file with a `siren` column (here portfolio.csv in the current
-- folder), joined with the units and their siège; unknown SIRENs are kept with NULLs.
-- duckdb -readonly data/sirene.duckdb < sql/examples/join_portfolio.sql
-- (`mirror batch portfolio.csv --column siren -o out.csv` does the same with a per-row status.)
SELECT p.*,
       u.denominationUniteLegale, u.etatAdministratifUniteLegale, u.categorieJuridiqueUniteLegale,
       cj.libelle AS libelleCategorieJuridique, u.activitePrincipaleUniteLegale, u.trancheEffectifsUniteLegale,
       s.siret AS siretSiege, s.codePostalEtablissement, s.libelleCommuneEtablissement
FROM read_csv('portfolio.csv', all_varchar = true, header = true) p
LEFT JOIN unites_legales_diffusibles u ON u.siren = replace(p.siren, ' ', '')
LEFT JOIN ref_categories_juridiques cj ON cj.code = u.categorieJuridiqueUniteLegale
LEFT JOIN etablissements_diffusibles s ON s.siret = u.siren || u.nicSiegeUniteLegale;
