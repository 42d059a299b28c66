"""A copied or moved data directory: its catalog's views name the original's Parquet files by absolute path.
Reading commands say so at open (one line naming the original and the command that fixes it) instead of
silently reading the original (a copy) or failing at the first query (a move); `mirror catalog` fixes it
and writers (`mirror update`) rebuild it by themselves. Real CLI runs on a copy of the shared mirror."""

from __future__ import annotations

import shutil

import pytest
from conftest import run_mirror


@pytest.mark.slow
def test_copied_then_moved_data_dir_is_detected_at_open(loaded_stock, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(loaded_stock, copy, symlinks=True)
    for args in (["status"], ["export", "--count"]):  # (`get` reads the copy's own lookup store)
        r = run_mirror(*args, data_dir=copy)
        assert r.returncode == 1, (args, r.stdout, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
        assert f"was built for {loaded_stock.resolve()}" in lines[0], lines[0]
        assert f"run `mirror catalog --data-dir {copy.resolve()}`" in lines[0], lines[0]

    fixed = run_mirror("catalog", data_dir=copy)
    assert fixed.returncode == 0, fixed.stderr
    status = run_mirror("status", data_dir=copy)
    assert status.returncode == 0, status.stderr
    assert str(copy.resolve()) in status.stdout

    moved = tmp_path / "moved"
    copy.rename(moved)  # the original of this catalog is gone now
    r = run_mirror("status", data_dir=moved)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert f"was built for {copy.resolve()}" in r.stderr and "mirror catalog --data-dir" in r.stderr
    assert run_mirror("catalog", data_dir=moved).returncode == 0
    assert run_mirror("export", "--count", data_dir=moved).returncode == 0
