-- SIREN / SIRET validity of a batch of raw identifiers, vectorised: the rule of
-- mirror.core.identifiers.is_valid_siren / is_valid_siret (the one definition for a single identifier;
-- tests/export/test_valid_identifiers.py checks that the two agree):
--   * the blanks of ? (1st parameter, mirror.export.batch._BLANK_CHARS) are removed first;
--   * 9 or 14 ASCII digits;
--   * Luhn (every second digit from the right doubled, minus 9 above 9; the sum divisible by 10), or, for a
--     14-digit SIRET whose SIREN is ? (2nd parameter, LA_POSTE_SIREN), a digit sum divisible by 5.
-- ${input}: a relation (pos BIGINT, input VARCHAR). Result: pos, input, siren (the first 9 digits of a valid
-- identifier), siret (a valid 14-digit one), valid; in pos order.
WITH cleaned AS (
    SELECT pos, input, translate(input, ?, '') AS v
    FROM ${input}
),
shaped AS (
    SELECT pos, input, v,
        coalesce(length(v) IN (9, 14) AND regexp_full_match(v, '[0-9]+'), false) AS shape_ok
    FROM cleaned
),
summed AS (
    SELECT pos, input, v, shape_ok,
        CASE WHEN shape_ok THEN
            list_sum(list_transform(string_split(reverse(v), ''),
                     (c, i) -> CASE WHEN i % 2 = 0 THEN [0, 2, 4, 6, 8, 1, 3, 5, 7, 9][ascii(c) - 47]
                                    ELSE ascii(c) - 48 END))
        END AS luhn_sum,
        CASE WHEN shape_ok AND length(v) = 14 AND starts_with(v, ?) THEN
            list_sum(list_transform(string_split(v, ''), c -> ascii(c) - 48))
        END AS digit_sum
    FROM shaped
),
checked AS (
    SELECT pos, input, v,
        shape_ok AND (luhn_sum % 10 = 0 OR coalesce(digit_sum % 5 = 0, false)) AS valid
    FROM summed
)
SELECT pos, input,
    CASE WHEN valid THEN v[1:9] END AS siren,
    CASE WHEN valid AND length(v) = 14 THEN v END AS siret,
    valid
FROM checked
ORDER BY pos
