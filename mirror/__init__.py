"""Sirene Mirror: a local open-data mirror of the French company register (Sirene)."""

__version__ = "0.1.0"
