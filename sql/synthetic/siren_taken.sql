-- Whether SIREN ? (bound twice) exists in the stock or in the overlay of a day already generated.
SELECT count(*) FROM (
    SELECT siren FROM unites_legales WHERE siren = ?
    UNION ALL
    SELECT siren FROM ov_unites_legales WHERE siren = ?
);
