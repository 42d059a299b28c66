"""Put first on PYTHONPATH of the tests' CLI subprocesses (conftest.mirror_env): `import pandas` fails there as
in an environment without pandas.

pandas is not a dependency of sirene-mirror; the test environment has it only for the real client libraries
and engines the tests drive (pynsee, pyspark). DuckDB's Python client imports it, when it is installed, on the
first query with bound parameters (to recognise DataFrame parameters), which costs about 0.35 s per process
here: a third of a small CLI run. Hiding it makes the CLI subprocesses run as in a plain install of the
package, and the suite faster. In-process tests are not affected.
"""

import sys


class _WithoutPandas:
    def find_spec(self, name, path=None, target=None):
        if name == "pandas" or name.startswith("pandas."):
            raise ModuleNotFoundError(f"No module named {name!r} (hidden by the tests)", name=name)
        return None


sys.meta_path.insert(0, _WithoutPandas())
