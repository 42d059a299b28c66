"""The SQL files and reference tables of Sirene Mirror, installed as the package data `mirror.sql`.

The folder stays at the top of the repository (`sql/`) for people who read or run the SQL directly;
pyproject.toml maps it into the package so that a wheel carries it (read with importlib.resources).
"""
