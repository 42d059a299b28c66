"""Projected coordinate systems of the Sirene Lambert columns, per territory.

Mainland France and Corsica use Lambert-93 (EPSG:2154); overseas territories use their local
projection, chosen from the commune (or postcode) prefix, as annuaire-entreprises does (INSEE documents
the EPSG per territory in the description of the établissement file).
"""

from __future__ import annotations

LAMBERT_93 = 2154

# Prefix of the code commune (or postcode) -> EPSG of its projected coordinates.
OVERSEAS_EPSG: dict[str, int] = {
    "971": 5490,  # Guadeloupe (UTM 20N, RGAF09)
    "972": 5490,  # Martinique
    "977": 5490,  # Saint-Barthélemy
    "978": 5490,  # Saint-Martin
    "973": 2972,  # Guyane (UTM 22N, RGFG95)
    "974": 2975,  # La Réunion (UTM 40S, RGR92)
    "975": 4467,  # Saint-Pierre-et-Miquelon (UTM 21N, RGSPM06)
    "976": 4471,  # Mayotte (UTM 38S, RGM04)
    "986": 32701,  # Wallis-et-Futuna (a guess in annuaire-entreprises' own code)
    "987": 3297,  # Polynésie française (UTM 6S, RGPF)
    "988": 3163,  # Nouvelle-Calédonie (Lambert NC, RGNC91-93)
}


def epsg_for_commune(code_commune: str | None) -> int | None:
    """EPSG of the Lambert columns for an établissement located in this commune (None if unknown/abroad)."""
    if not code_commune:
        return None
    if code_commune[:2] in ("97", "98"):
        return OVERSEAS_EPSG.get(code_commune[:3])
    return LAMBERT_93
