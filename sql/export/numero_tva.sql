-- The French intra-community VAT number of a unit (export and batch column numero_tva_intracommunautaire),
-- computed from its SIREN as the tax administration defines it: "FR", a 2-digit key
-- (12 + 3 × (SIREN mod 97)) mod 97, the SIREN (impots.gouv.fr; API Entreprise v2's "donnée théorique").
-- The v2 document (sql/views/22_documents_v2.sql) writes the same expression inline (its views are plain
-- SQL, transpiled to other engines); tests/export/test_tva.py checks that both give the same number.
-- ${siren}: the column expression of the SIREN.
'FR' || lpad(CAST((12 + 3 * (CAST(${siren} AS BIGINT) % 97)) % 97 AS VARCHAR), 2, '0') || ${siren}
