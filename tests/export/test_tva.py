"""numero_tva_intracommunautaire: the export column and the v2 document give the same number, checked
against the tax administration's rule written here independently, through the real CLI."""

from __future__ import annotations

import csv
import io
import json

from conftest import run_mirror


def expected(siren: str) -> str:
    return f"FR{(12 + 3 * (int(siren) % 97)) % 97:02d}{siren}"


def test_tva_column_at_both_levels_and_in_v2(loaded_stock):
    assert expected("303265045") == "FR40303265045"  # the rule's published example
    for level, key in (("etablissement", "siret"), ("unite-legale", "siren")):
        done = run_mirror("export", "--level", level, "--columns", f"{key},numero_tva_intracommunautaire",
                          "-o", "-", "-q", data_dir=loaded_stock)  # fmt: skip
        assert done.returncode == 0, done.stderr
        rows = list(csv.DictReader(io.StringIO(done.stdout)))
        assert len(rows) > 100
        assert all(r["numero_tva_intracommunautaire"] == expected(r[key][:9]) for r in rows)
    listed = run_mirror("export", "--list-columns", data_dir=loaded_stock)
    assert "numero_tva_intracommunautaire" in listed.stdout
    siren = rows[0]["siren"]
    doc = run_mirror("get", siren, "--format", "v2", "--non-diffusables", "--compact", data_dir=loaded_stock)
    tva = json.loads(doc.stdout)["entreprise"]["numero_tva_intracommunautaire"]
    assert tva in (expected(siren), None)  # null when the siège is abroad
    assert tva == rows[0]["numero_tva_intracommunautaire"] or tva is None
