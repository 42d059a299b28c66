-- One geolocation column of etablissements_masques_adresse (sql/views/20_diffusibles.sql): NULL where the
-- coordinates are masked (`nd`: statutDiffusionEtablissement = 'P'). ${column}: the quoted column name.
CASE WHEN nd THEN NULL ELSE ${column} END AS ${column}
