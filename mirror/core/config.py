"""Where things live: the data directory, upstream URLs and their environment variables.

The SQL folder and the reference tables are package data (`mirror.core.sql.SQL_DIR`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from mirror.core.errors import BadInput
from mirror.core.sql import literal

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

# Data derived from the reference files, once per machine (mirror.core.ref_cache).
CACHE_DIR_ENV = "MIRROR_CACHE_DIR"


def resolve_data_dir(value: str | os.PathLike | None = None) -> Path:
    """The data directory: the explicit value, else $MIRROR_DATA_DIR, else ./data (absolute)."""
    raw = value if value else os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR
    return Path(raw).expanduser().resolve()


def catalog_path(data_dir: Path) -> Path:
    """The DuckDB catalog file users open with the DuckDB CLI."""
    return data_dir / CATALOG_NAME


# DuckDB tuning of the monthly load (validated here, so that a bad value is one line wherever it is read).
THREADS_ENV = "MIRROR_THREADS"
MEMORY_LIMIT_ENV = "MIRROR_MEMORY_LIMIT"
DEFAULT_MEMORY_LIMIT = "6GB"
_MEMORY_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(b|bytes|kb|mb|gb|tb|kib|mib|gib|tib)\s*$", re.IGNORECASE)
_MEMORY_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")


def duckdb_threads() -> int | None:
    """$MIRROR_THREADS as an integer >= 1 (None: DuckDB's default, one per core)."""
    raw = os.environ.get(THREADS_ENV)
    if raw is None or raw == "":
        return None
    if not (raw.strip().isdigit() and int(raw) >= 1):
        raise BadInput(f"{THREADS_ENV} must be an integer >= 1 (got {raw[:40]!r})")
    return int(raw)


def duckdb_memory_limit() -> str:
    """$MIRROR_MEMORY_LIMIT as a DuckDB size: 6GB, 500MB, 1.5GiB as given, or a share of the physical memory
    (80%) turned into MB, since DuckDB's `SET memory_limit` takes no percentage."""
    raw = os.environ.get(MEMORY_LIMIT_ENV) or DEFAULT_MEMORY_LIMIT
    size, percent = _MEMORY_SIZE.match(raw), _MEMORY_PERCENT.match(raw)
    if size and float(size.group(1)) > 0:
        return raw.strip()
    if percent and 0 < float(percent.group(1)) <= 100:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        return f"{int(total * float(percent.group(1)) / 100 / 1e6)}MB"
    raise BadInput(
        f"{MEMORY_LIMIT_ENV} must be a memory size like 6GB, 500MB, 1.5GiB or a percentage like 80% "
        f"(got {raw[:40]!r})"
    )


def open_duckdb(database: str = ":memory:", read_only: bool = False):
    """A DuckDB connection with $MIRROR_THREADS threads (DuckDB's default, one per core, when unset): every
    connection the mirror opens comes from here, so that the setting bounds all of its DuckDB work (a
    server's queries, an update's days, a load), not only the bulk connections of tuned_connection."""
    import duckdb  # here: readers answered by the lookup store never import DuckDB

    threads = duckdb_threads()
    config = {} if threads is None else {"threads": threads}
    return duckdb.connect(database, read_only=read_only, config=config)


def tuned_connection(temp_dir: Path):
    """An in-memory DuckDB connection for a writer's bulk work: $MIRROR_MEMORY_LIMIT, $MIRROR_THREADS, spills
    into `temp_dir` (inside the writer's build folder, removed with it), no progress bar."""
    con = open_duckdb()
    con.execute(f"SET memory_limit = {literal(duckdb_memory_limit())}")
    con.execute(f"SET temp_directory = {literal(temp_dir)}")
    con.execute("SET enable_progress_bar = false")
    return con


NICE_ENV = "MIRROR_NICE"
# The writers' niceness: a cron `mirror sync` beside `mirror serve` on a 2-core machine took half the CPU from
# the server (DuckDB runs a thread per core), which put its p99 at 69 ms during an update (docs/BENCHMARKS.md).
DEFAULT_WRITER_NICE = 10


def writer_niceness() -> int:
    """$MIRROR_NICE: the scheduling niceness (0 to 19) the writer commands (load, update, sync, store) run at,
    so that they yield the CPU to readers on the same machine (an idle machine runs them at full speed all
    the same). Default DEFAULT_WRITER_NICE; 0 keeps the caller's priority."""
    raw = os.environ.get(NICE_ENV)
    if raw is None or raw.strip() == "":
        return DEFAULT_WRITER_NICE
    if not (raw.strip().isdigit() and 0 <= int(raw) <= 19):
        raise BadInput(f"{NICE_ENV} must be an integer from 0 to 19 (got {raw[:40]!r})")
    return int(raw)


LOOKUP_STORE_ENV = "MIRROR_LOOKUP_STORE"


def lookup_store_enabled() -> bool:
    """Whether writers keep DATA_DIR/lookup.sqlite (keyed documents and search) current: on unless
    MIRROR_LOOKUP_STORE=off (a mirror used only for bulk SQL saves the build time and the disk)."""
    raw = (os.environ.get(LOOKUP_STORE_ENV) or "on").strip().lower()
    if raw in ("on", "1", "true", "yes"):
        return True
    if raw in ("off", "0", "false", "no"):
        return False
    raise BadInput(f"{LOOKUP_STORE_ENV} must be on or off (got {raw[:40]!r})")


STORE_BUILD_ENV = "MIRROR_STORE_BUILD"
# A mirror with more unités légales than this builds its lookup store in the background by default: about
# 5 to 8 minutes of build per million units on the 2-core reference machine (docs/BENCHMARKS.md).
BACKGROUND_BUILD_UNITS = 2_000_000


def store_build_mode(units: int | None) -> str:
    """How a writer that needs a whole new lookup store gets it: "wait" (build it before returning, the
    previous store answering meanwhile) or "background" (a detached `mirror store` builds it beside the
    writers, lookups answer from the views until it is switched in). MIRROR_STORE_BUILD=wait|background|
    auto (default: background for a mirror of more than BACKGROUND_BUILD_UNITS units)."""
    raw = (os.environ.get(STORE_BUILD_ENV) or "auto").strip().lower()
    if raw in ("wait", "background"):
        return raw
    if raw == "auto":
        return "background" if (units or 0) > BACKGROUND_BUILD_UNITS else "wait"
    raise BadInput(f"{STORE_BUILD_ENV} must be wait, background or auto (got {raw[:40]!r})")
