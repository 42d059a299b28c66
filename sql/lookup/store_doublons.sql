-- SIRENs closed as doublons and the SIREN that replaces each (the smallest when StockDoublons names several).
SELECT sirenDoublon AS siren, min(siren) AS replacing
FROM doublons
GROUP BY sirenDoublon
