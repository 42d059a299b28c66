"""Checks of INSEE API answers before anything is applied: a malformed answer must fail the day, never be
taken as "no change" (the watermark would move over lost changes) nor typed into NULLs over a real unit.

Each check raises `Malformed` with a short reason; the client (mirror.update.insee_client) turns it into a
one-line IntegrityError naming the request. What is checked, per the API Sirene 3.11 OpenAPI:

- a page: a JSON object with a `header` object and the expected array (`unitesLegales`, `etablissements`,
  `liensSuccession`) of objects; `header.total`, when given, a non-negative integer (the client compares it
  with the records received over all pages);
- a record: SIREN (9 digits, Luhn) and SIRET (14 digits, Luhn; La Poste's SIRETs per
  mirror.core.identifiers), the SIRET made of the SIREN and the NIC; `dateDernierTraitement...` present and a
  timestamp the typing layer reads; every date (creation, period start and end, succession) a real
  YYYY-MM-DD or null; periods a non-empty list of objects, addresses and the nested unit objects; every
  other field a scalar (never an object or a list).
"""

from __future__ import annotations

import re
from datetime import date, datetime

from mirror.core.identifiers import is_valid_siren, is_valid_siret
from mirror.core.insee_records import ADRESSE, ADRESSE2, ET_PERIOD, ET_TOP, LIEN_FIELDS, UL_PERIOD, UL_TOP

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?)?")
_SCALARS = (str, int, float, bool, type(None))


class Malformed(ValueError):
    """An upstream answer that must not be applied; the message is the reason (one line, values quoted)."""


def shown(value, limit: int = 40) -> str:
    """A value quoted for a one-line message (repr escapes newlines; long values are cut)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def oneline(text: str, limit: int = 200) -> str:
    """Upstream text (a query, a server message) fit for a one-line message: control characters escaped."""
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_page(js, array_key: str) -> tuple[dict, list[dict]]:
    """(header, records) of one search page; Malformed unless the page has the 3.11 shape."""
    if not isinstance(js, dict):
        raise Malformed(f"the answer is a JSON {type(js).__name__}, not an object")
    header = js.get("header")
    if not isinstance(header, dict):
        raise Malformed("the answer has no header object")
    total = header.get("total")
    if total is not None and (not isinstance(total, int) or isinstance(total, bool) or total < 0):
        raise Malformed(f"header total {shown(total)} is not a count")
    if array_key not in js:
        raise Malformed(f"the answer has no {array_key} array (header total {shown(total)})")
    records = js[array_key]
    if not isinstance(records, list):
        raise Malformed(f"{array_key} is a JSON {type(records).__name__}, not an array")
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise Malformed(f"{array_key}[{i}] is a JSON {type(rec).__name__}, not an object")
    return header, records


def _object(value, where: str, required: bool = True) -> dict:
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise Malformed(f"{where} is {shown(value)}, not an object")
    return value


def _scalars(obj: dict, fields, where: str) -> None:
    for f in fields:
        if not isinstance(obj.get(f), _SCALARS):
            raise Malformed(f"{where}{f} is a JSON {type(obj[f]).__name__}, not a value")


def _date(obj: dict, field: str, where: str) -> None:
    value = obj.get(field)
    if value is None:
        return
    if isinstance(value, str) and _DATE.fullmatch(value):
        try:
            date.fromisoformat(value)
            return
        except ValueError:
            pass
    raise Malformed(f"{where}{field} {shown(value)} is not a date YYYY-MM-DD")


def _timestamp(obj: dict, field: str) -> None:
    value = obj.get(field)
    if isinstance(value, str) and _TIMESTAMP.fullmatch(value):
        try:
            datetime.fromisoformat(value)
            return
        except ValueError:
            pass
    raise Malformed(f"{field} {shown(value)} is not a timestamp")


def _siren(value, field: str = "siren") -> str:
    if not (isinstance(value, str) and is_valid_siren(value)):
        raise Malformed(f"{field} {shown(value)} is not a SIREN (9 digits, Luhn)")
    return value


def _siret(value, field: str = "siret") -> str:
    if not (isinstance(value, str) and is_valid_siret(value)):
        raise Malformed(f"{field} {shown(value)} is not a SIRET (14 digits, Luhn)")
    return value


def _periods(rec: dict, field: str, fields: tuple[str, ...]) -> None:
    periods = rec.get(field)
    if not isinstance(periods, list) or not periods:
        raise Malformed(f"{field} is {shown(periods)}, not a non-empty array")
    for i, p in enumerate(periods):
        where = f"{field}[{i}]"
        _object(p, where)
        _scalars(p, fields, where + ".")
        _date(p, "dateDebut", where + ".")
        _date(p, "dateFin", where + ".")


def check_unite_legale(rec: dict) -> None:
    """A `unitesLegales[]` record."""
    _siren(rec.get("siren"))
    _scalars(rec, UL_TOP, "")
    _timestamp(rec, "dateDernierTraitementUniteLegale")
    _date(rec, "dateCreationUniteLegale", "")
    _periods(rec, "periodesUniteLegale", UL_PERIOD)


def check_etablissement(rec: dict) -> None:
    """An `etablissements[]` record (the nested `uniteLegale` block is not converted: only its type)."""
    siren = _siren(rec.get("siren"))
    siret = _siret(rec.get("siret"))
    if siret[:9] != siren or rec.get("nic") != siret[9:]:
        raise Malformed(f"siret {shown(siret)} is not siren {shown(siren)} + nic {shown(rec.get('nic'))}")
    _scalars(rec, ET_TOP, "")
    _timestamp(rec, "dateDernierTraitementEtablissement")
    _date(rec, "dateCreationEtablissement", "")
    _scalars(
        _object(rec.get("adresseEtablissement"), "adresseEtablissement"), ADRESSE, "adresseEtablissement."
    )
    address2 = _object(rec.get("adresse2Etablissement"), "adresse2Etablissement", required=False)
    _scalars(address2, ADRESSE2, "adresse2Etablissement.")
    _object(rec.get("uniteLegale"), "uniteLegale", required=False)
    _periods(rec, "periodesEtablissement", ET_PERIOD)


def check_lien(rec: dict) -> None:
    """A `liensSuccession[]` record."""
    _siret(rec.get("siretEtablissementPredecesseur"), "siretEtablissementPredecesseur")
    _siret(rec.get("siretEtablissementSuccesseur"), "siretEtablissementSuccesseur")
    _scalars(rec, LIEN_FIELDS, "")
    _timestamp(rec, "dateDernierTraitementLienSuccession")
    _date(rec, "dateLienSuccession", "")


def identify(rec: dict) -> str:
    """How a record is named in a message: its SIRET or SIREN when it has a readable one."""
    for key in ("siret", "siren", "siretEtablissementSuccesseur"):
        value = rec.get(key)
        if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 14:
            return f" ({key} {value})"
    return ""


# Our table keys -> the record check (mirror.update.insee_client.KINDS).
RECORD_CHECKS = {
    "unites_legales": check_unite_legale,
    "etablissements": check_etablissement,
    "liens_succession": check_lien,
}
