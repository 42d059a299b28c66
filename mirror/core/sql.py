"""The SQL files (package data `mirror.sql`, the repository's `sql/` folder) and the only quoting and
rendering helpers of the package.

Every query the code runs is a file under `sql/`, filled in by `render`, except the statements listed
in docs/ARCHITECTURE.md ("Where SQL lives"). Values from users or upstreams are never written into SQL
text: they are bound as parameters (`?`) or registered as Arrow tables. What `render` fills in is
written by the package itself (identifiers from mirror.core.schema, absolute paths, generated lists),
always through `ident` and `literal`.
"""

from __future__ import annotations

import functools
import os
from importlib.resources import files
from pathlib import Path
from string import Template

# A wheel installs its package data as plain files, so the folder is a real path (DuckDB reads the
# reference CSVs by path).
SQL_DIR = Path(str(files("mirror.sql")))
REF_DIR = SQL_DIR / "ref"


def ident(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + str(name).replace('"', '""') + '"'


def literal(value: str | os.PathLike) -> str:
    """A SQL string literal (paths and constants written by the package, never user input)."""
    return "'" + escape(value) + "'"


def escape(value: str | os.PathLike) -> str:
    """The body of a SQL string literal, for a path a template already puts between quotes
    (`'${snapshot}/unites_legales/*.parquet'`)."""
    return str(value).replace("'", "''")


def idents(names) -> str:
    """A comma-separated list of quoted identifiers."""
    return ", ".join(ident(n) for n in names)


def sql_file(path: str) -> str:
    """The text of sql/<path> (e.g. "deltas/count_day.sql")."""
    return (SQL_DIR / path).read_text(encoding="utf-8")


def render(path: str, /, **values) -> str:
    """sql/<path> with its `${placeholder}`s filled in (string.Template; every placeholder required).

    Whole-line `--` comments are dropped first (they may name placeholders) and a final `;` removed, so the result can be embedded in
    another statement (a sub-query, a view body)."""
    lines = [line for line in sql_file(path).splitlines() if not line.lstrip().startswith("--")]
    text = Template("\n".join(lines)).substitute({k: str(v) for k, v in values.items()})
    return text.strip().rstrip(";").rstrip()


@functools.lru_cache(maxsize=512)
def _rendered(path: str, values: tuple) -> str:
    return render(path, **dict(values))


def render_cached(path: str, /, **values) -> str:
    """`render`, kept per process for the hot paths (a lookup, a search request): the SQL files are the
    package's own and do not change while it runs. `values` must be hashable."""
    return _rendered(path, tuple(sorted(values.items())))


def private_cursor(con):
    """A cursor of the DuckDB connection `con` (its own TEMP objects and registrations, the same instance)
    in `con`'s current database. DuckDB's USE is per connection and a cursor is a new connection whose
    default database is the instance's: the catalog connections attach their file
    (mirror.catalog.build._attach_read_only), so their cursors are put back in it."""
    (database,) = con.execute("SELECT current_database()").fetchone()
    cur = con.cursor()
    try:
        cur.execute(f"USE {ident(database)}")
    except BaseException:
        cur.close()
        raise
    return cur
