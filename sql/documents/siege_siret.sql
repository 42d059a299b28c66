-- The SIRET of a unit's siège (siren + nicSiegeUniteLegale); no row when the unit is unknown.
--   ? : the SIREN looked up.
SELECT siren || nicSiegeUniteLegale FROM unites_legales WHERE siren = ?
