"""Keeps the `mirror` program from importing pandas, which it never uses.

DuckDB's Python client imports pandas (and numpy), when it is installed, on the first query with a bound
parameter, only to recognise DataFrame parameters; `import pyarrow.dataset` imports it too. That is 0.35 to
0.6 s of every `mirror` process on a machine where pandas is installed (most of our users' machines): more
than half of a `mirror get --date` (measured on the demo: 1.4 s with pandas importable, 0.8 s without).
Both libraries work without pandas (it is an optional dependency of each), so the program's entry point
(mirror.__main__.run) makes `import pandas` fail as in an environment without it. Library use
(`import mirror` in a user's program) is not affected: only the program does this.
"""

from __future__ import annotations

import sys

HIDDEN = ("pandas",)


class _HiddenModules:
    """A sys.meta_path finder that answers ModuleNotFoundError for HIDDEN and their submodules."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".", 1)[0] in HIDDEN:
            raise ModuleNotFoundError(
                f"No module named {name!r} (the mirror program does not use it)", name=name
            )
        return None


def hide_pandas() -> None:
    """Installs the finder (once); a module already imported stays usable."""
    if not any(isinstance(f, _HiddenModules) for f in sys.meta_path):
        sys.meta_path.insert(0, _HiddenModules())
