-- SIREN / SIRET validity of a batch of raw identifiers, vectorised: the rule of
-- mirror.core.identifiers.is_valid_siren / is_valid_siret (the one definition for a single identifier;
-- tests/export/test_valid_identifiers.py checks that the two agree):
--   * the blank characters given as the 1st parameter (mirror.export.batch.BLANK_CHARS) are removed first
--     (translate is slow: only from the inputs holding something other than digits);
--   * 9 or 14 ASCII digits;
--   * Luhn (every second digit from the right doubled, minus 9 above 9; the sum divisible by 10), or, for a
--     14-digit SIRET starting with the 2nd parameter (LA_POSTE_SIREN), a digit sum divisible by 5.
-- The digits are read arithmetically from the number n, two at a time (n // 100^m % 100, m from the right):
-- a SIREN is a 14-digit number with 5 leading zeros, which add nothing to either sum. In each pair the tens
-- digit t is the doubled one (2t, minus 9 when t >= 5) and the units digit u is kept: `luhn_pairs`[x + 1]
-- is that contribution of the pair x = 10t + u, so the Luhn sum is a sum of 7 look-ups (`digit_pairs`: t + u).
-- A French intra-community VAT number (FR, its 2-digit key, the SIREN; letters in either case) stands for
-- its SIREN: valid when the SIREN is and the whole number is the one sql/export/numero_tva.sql computes
-- from it (the key (12 + 3 × (SIREN mod 97)) mod 97).
-- ${input}: a relation (pos BIGINT, input VARCHAR); ${tva}: sql/export/numero_tva.sql over the column v.
-- Result: pos, input, siren (the first 9 digits of a valid identifier, the SIREN of a valid VAT number),
-- siret (a valid 14-digit one), valid; one row per input row, in no given order (order by pos).
WITH blanks_removed AS (
    SELECT pos, input, other, CASE WHEN other THEN translate(input, ?, '') ELSE input END AS v
    FROM (SELECT pos, input, regexp_matches(input, '[^0-9]') AS other FROM ${input})
),
cleaned AS (
    SELECT pos, input, other, CASE WHEN tva IS NOT NULL THEN v[5:] ELSE v END AS v, tva
    FROM (
        SELECT *, CASE WHEN other AND regexp_full_match(upper(v), 'FR[0-9]{11}') THEN upper(v) END AS tva
        FROM blanks_removed
    )
),
shaped AS (
    SELECT pos, input, v, tva,
        coalesce(length(v) IN (9, 14) AND NOT (other AND regexp_matches(v, '[^0-9]')), false) AS shape_ok
    FROM cleaned
),
numbered AS (
    SELECT pos, input, v, tva, shape_ok, CASE WHEN shape_ok THEN CAST(v AS BIGINT) END AS n
    FROM shaped
),
pairs AS (
    SELECT [2 * (x // 10) - 9 * (x // 50) + x % 10 FOR x IN range(100)] AS luhn_pairs,
        [x // 10 + x % 10 FOR x IN range(100)] AS digit_pairs
),
summed AS (
    SELECT pos, input, v, tva, shape_ok,
        luhn_pairs[n % 100 + 1]
            + luhn_pairs[n // 100 % 100 + 1]
            + luhn_pairs[n // 10000 % 100 + 1]
            + luhn_pairs[n // 1000000 % 100 + 1]
            + luhn_pairs[n // 100000000 % 100 + 1]
            + luhn_pairs[n // 10000000000 % 100 + 1]
            + luhn_pairs[n // 1000000000000 % 100 + 1] AS luhn_sum,
        -- La Poste: only SIRETs of its SIREN need the plain digit sum
        CASE WHEN length(v) = 14 AND starts_with(v, ?) THEN
            digit_pairs[n % 100 + 1]
                + digit_pairs[n // 100 % 100 + 1]
                + digit_pairs[n // 10000 % 100 + 1]
                + digit_pairs[n // 1000000 % 100 + 1]
                + digit_pairs[n // 100000000 % 100 + 1]
                + digit_pairs[n // 10000000000 % 100 + 1]
                + digit_pairs[n // 1000000000000 % 100 + 1]
        END AS digit_sum
    FROM numbered, pairs
),
checked AS (
    SELECT pos, input, v,
        shape_ok AND coalesce(luhn_sum % 10 = 0 OR digit_sum % 5 = 0, false)
            AND CASE WHEN tva IS NULL THEN true ELSE tva = ${tva} END AS valid
    FROM summed
)
SELECT pos, input,
    CASE WHEN valid THEN v[1:9] END AS siren,
    CASE WHEN valid AND length(v) = 14 THEN v END AS siret,
    valid
FROM checked
