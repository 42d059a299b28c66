"""The vectorised identifier check (mirror.export.batch.classify, in Arrow compute and numpy) agrees with
the one definition of the rule for a single identifier, mirror.core.identifiers."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mirror.core.identifiers import (
    LA_POSTE_SIREN,
    is_valid_siren,
    is_valid_siret,
    luhn_check_digit,
    siren_of_tva,
    tva_key,
)
from mirror.export.batch import BLANK_CHARS, classify

_BLANKS = str.maketrans("", "", BLANK_CHARS)


def expected(raw: str) -> dict:
    """What the Python rule says of one raw input (blanks removed, then 9 or 14 characters)."""
    v = raw.translate(_BLANKS)
    if len(v) == 9 and is_valid_siren(v):
        return {"input": raw, "siren": v, "siret": None, "valid": True}
    if len(v) == 14 and is_valid_siret(v):
        return {"input": raw, "siren": v[:9], "siret": v, "valid": True}
    if siren_of_tva(v):
        return {"input": raw, "siren": siren_of_tva(v), "siret": None, "valid": True}
    return {"input": raw, "siren": None, "siret": None, "valid": False}


def check(values: list[str]) -> None:
    got = classify(values).to_pylist()
    assert [r["pos"] for r in got] == list(range(len(values)))
    for raw, row in zip(values, got, strict=True):
        row = {k: v for k, v in row.items() if k != "pos"}
        assert row == expected(raw), raw


def valid_siren(rng: random.Random) -> str:
    body = "".join(rng.choice("0123456789") for _ in range(8))
    return body + luhn_check_digit(body)


def valid_siret(rng: random.Random, siren: str | None = None) -> str:
    body = (siren or valid_siren(rng)) + "".join(rng.choice("0123456789") for _ in range(4))
    return body + luhn_check_digit(body)


def spaced(rng: random.Random, v: str) -> str:
    out = []
    for ch in v:
        if rng.random() < 0.15:
            out.append(rng.choice(BLANK_CHARS))
        out.append(ch)
    return "".join(out)


EDGE_CASES = [
    "",
    " ",
    "\t",
    "552100554",
    "552 100 554",
    "552\u00a0100\u00a0554",
    "552\u202f100\u202f554",
    " 552100554 ",
    "552100555",
    "55210055",
    "5521005540",
    "000000000",
    "00000000000000",
    "999999999",
    "73282932000074",
    "73282932000075",
    "7328293200007",
    "35600000000048",  # La Poste: fails Luhn, digit sum divisible by 5
    "35600000000049",
    "35600000000040",
    "356000000",  # La Poste's SIREN itself (Luhn applies)
    "35600000100000",
    "35600001000048",  # not La Poste's SIREN: no exception
    "3560000000004",
    "356000000000480",
    "55210055a",
    "ABCDEFGHI",
    "-55210055",
    "+552100554",
    "5521005.4",
    "5.52100554e8",
    "552_100_554",
    "552-100-554",
    "55210055\n4",
    "٥٥٢١٠٠٥٥٤",  # Arabic-Indic digits: not ASCII
    "５５２１００５５４",  # fullwidth digits
    "55210055²",
    "1234567890123456789",
    "99999999999999999999",
    "é52100554",
    "FR40303265045",  # a VAT number: FR, key (12 + 3 × (SIREN mod 97)) mod 97, SIREN
    "fr40303265045",
    "FR 40 303 265 045",
    "FR41303265045",  # wrong key
    "FR40303265046",  # invalid SIREN
    "FR4030326504",
    "FR403032650450",
    "FRXX303265045",
    "BE40303265045",
    "FR00000000000",  # SIREN 000000000 is Luhn-valid, its key is 12
    "FR12000000000",
]


def test_edge_cases_agree():
    check(EDGE_CASES)


def test_large_random_sample_agrees():
    """100k inputs: valid SIRENs and SIRETs, La Poste SIRETs, one-digit and one-character mutations,
    blanks, and random strings of digits, blanks, letters and non-ASCII digits."""
    rng = random.Random(20261202)
    alphabet = "0123456789" * 4 + BLANK_CHARS + "aZ-_.+٣７²é\n"
    values: list[str] = []
    for _ in range(100_000):
        kind = rng.randrange(8)
        if kind == 0:
            v = valid_siren(rng)
        elif kind == 1:
            v = valid_siret(rng)
        elif kind == 2:  # La Poste: half of these pass the digit-sum rule only
            v = LA_POSTE_SIREN + "".join(rng.choice("0123456789") for _ in range(5))
        elif kind == 3:  # a valid identifier with one digit changed (Luhn catches a single-digit error)
            v = rng.choice([valid_siren, valid_siret])(rng)
            i = rng.randrange(len(v))
            v = v[:i] + rng.choice("0123456789") + v[i + 1 :]
        elif kind == 4:
            v = spaced(rng, rng.choice([valid_siren, valid_siret])(rng))
        elif kind == 5 and rng.random() < 0.5:  # a VAT number, its key right or off by one
            siren = valid_siren(rng)
            key = int(tva_key(siren)) + rng.choice([0, 0, 1])
            v = spaced(rng, rng.choice(["FR", "fr"]) + f"{key % 100:02d}" + siren)
        elif kind == 5:  # digits only, any length around 9 and 14
            v = "".join(rng.choice("0123456789") for _ in range(rng.choice([8, 9, 10, 13, 14, 15])))
        else:
            v = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 20)))
        values.append(v)
    check(values)
    got = classify(values)
    assert 0.2 < sum(got.column("valid").to_pylist()) / len(values) < 0.8  # both outcomes well represented


_IDENTIFIER_TEXT = st.one_of(
    st.text(alphabet="0123456789", min_size=8, max_size=15),
    st.text(alphabet="0123456789" + BLANK_CHARS + "a٣７", max_size=18),
    st.text(max_size=16),
    st.builds(lambda tail: LA_POSTE_SIREN + tail, st.text(alphabet="0123456789", min_size=4, max_size=6)),
)


@pytest.mark.slow
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_IDENTIFIER_TEXT, max_size=40))
def test_any_input_agrees(values):
    check(values)


def test_empty_input():
    t = classify([])
    assert t.num_rows == 0 and t.column_names == ["pos", "input", "siren", "siret", "valid"]
