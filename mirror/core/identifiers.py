"""SIREN / SIRET validity (Luhn, La Poste exception) and the French intra-EU VAT number."""

from __future__ import annotations

LA_POSTE_SIREN = "356000000"


def luhn_ok(digits: str) -> bool:
    """True when the digit string passes the Luhn check (every second digit from the right doubled)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def luhn_check_digit(partial: str) -> str:
    """The digit to append to `partial` so that the result passes Luhn."""
    for d in "0123456789":
        if luhn_ok(partial + d):
            return d
    raise AssertionError("unreachable")


def is_valid_siren(value: str) -> bool:
    return len(value) == 9 and value.isdigit() and value.isascii() and luhn_ok(value)


def is_valid_siret(value: str) -> bool:
    """14 digits passing Luhn; La Poste établissements (356000000...) may instead have a digit sum % 5 == 0."""
    if not (len(value) == 14 and value.isdigit() and value.isascii()):
        return False
    if luhn_ok(value):
        return True
    return value.startswith(LA_POSTE_SIREN) and sum(ord(c) - 48 for c in value) % 5 == 0


def tva_key(siren: str) -> str:
    """The 2-digit key of the intra-community VAT number of a SIREN: (12 + 3 × (SIREN mod 97)) mod 97
    (impots.gouv.fr). Its SQL form, for whole columns, is sql/export/numero_tva.sql (tests/export/
    test_valid_identifiers.py checks that batch's vectorised check agrees with this one)."""
    return f"{(12 + 3 * (int(siren) % 97)) % 97:02d}"


def siren_of_tva(value: str) -> str | None:
    """The SIREN of a French intra-community VAT number (FR, its key, the SIREN; either case), None when
    `value` is not one (wrong shape, invalid SIREN, or a key that does not match)."""
    v = value.upper()
    if len(v) != 13 or not v.startswith("FR") or not v[2:].isascii() or not v[2:].isdigit():
        return None
    siren = v[4:]
    return siren if is_valid_siren(siren) and v[2:4] == tva_key(siren) else None
