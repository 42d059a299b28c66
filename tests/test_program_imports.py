"""The `mirror` program does not import pandas, even where it is installed (mirror.core.unused_imports)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from conftest import mirror_env

pytest.importorskip("pandas")  # the test environment has it (pynsee, pyspark need it): the case to prove


def _imported(args: list[str], env: dict) -> set[str]:
    """The packages a Python run imported, from its -X importtime report: a package counts when one of its
    submodules was imported (the report also lists an import that failed, such as a hidden `pandas`)."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", *args], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, [line for line in result.stderr.splitlines() if "import time:" not in line]
    return {
        name.split(".")[0]
        for name in (
            line.rsplit("|", 1)[1].strip() for line in result.stderr.splitlines() if "import time:" in line
        )
        if "." in name
    }


def test_duckdb_alone_imports_pandas_on_a_bound_parameter():
    """What the entry point guards against: a bound parameter makes DuckDB import pandas."""
    code = "import duckdb; duckdb.connect().execute('SELECT ?', [1]).fetchall()"
    assert "pandas" in _imported(["-c", code], mirror_env())


def test_commands_that_bind_parameters_run_without_pandas(loaded_stock: Path):
    con = duckdb.connect(str(loaded_stock / "sirene.duckdb"), read_only=True)
    try:
        (siren,) = con.execute(
            "SELECT min(siren) FROM unites_legales WHERE dateCreationUniteLegale < DATE '2020-01-01'"
        ).fetchone()
    finally:
        con.close()
    env = mirror_env(loaded_stock)
    for command in (
        ["get", siren, "--date", "2020-01-01"],  # the views over TEMP tables, bound SIRENs and day
        ["changes", "--since", "2026-01-01", "--siren", siren, "-o", "-"],
        ["status"],
    ):
        modules = _imported(["-m", "mirror", *command], env)
        assert "duckdb" in modules and "pandas" not in modules, command


def test_reading_commands_leave_numpy_and_pyarrow_unimported(loaded_stock: Path):
    """numpy and pyarrow (0.2 s of a process's start) are for the writers: status and catalog read views."""
    env = mirror_env(loaded_stock)
    for command in (["status"], ["catalog"]):
        modules = _imported(["-m", "mirror", *command], env)
        assert "duckdb" in modules and not {"numpy", "pyarrow"} & modules, (command, modules)
