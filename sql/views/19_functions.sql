-- Functions the views and the exports share (created in the catalog with its views).

-- The French intra-community VAT number of a unit, computed from its SIREN as the tax administration
-- defines it: "FR", a 2-digit key (12 + 3 × (SIREN mod 97)) mod 97, the SIREN (impots.gouv.fr, "numéro de
-- TVA intracommunautaire"; API Entreprise v2's `numero_tva_intracommunautaire`, a "donnée théorique").
CREATE OR REPLACE MACRO numero_tva_intracommunautaire(siren) AS
    'FR' || lpad(CAST((12 + 3 * (CAST(siren AS BIGINT) % 97)) % 97 AS VARCHAR), 2, '0') || siren;
