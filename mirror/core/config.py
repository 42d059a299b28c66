"""Where things live: the data directory, upstream URLs and their environment variables.

The SQL folder and the reference tables are package data (`mirror.core.sql.SQL_DIR`).
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR_ENV = "MIRROR_DATA_DIR"
DEFAULT_DATA_DIR = "./data"

DATAGOUV_URL_ENV = "MIRROR_DATAGOUV_URL"
DEFAULT_DATAGOUV_URL = "https://www.data.gouv.fr"
SIRENE_DATASET_ID = "5b7ffc618b4c4169d30727e0"

INSEE_URL_ENV = "MIRROR_INSEE_URL"
DEFAULT_INSEE_URL = "https://api.insee.fr/api-sirene/3.11"
INSEE_KEY_ENV = "INSEE_API_KEY"
INSEE_KEY_HEADER = "X-INSEE-Api-Key-Integration"

CATALOG_NAME = "sirene.duckdb"


def resolve_data_dir(value: str | os.PathLike | None = None) -> Path:
    """The data directory: the explicit value, else $MIRROR_DATA_DIR, else ./data (absolute)."""
    raw = value if value else os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR
    return Path(raw).expanduser().resolve()


def catalog_path(data_dir: Path) -> Path:
    """The DuckDB catalog file users open with the DuckDB CLI."""
    return data_dir / CATALOG_NAME
