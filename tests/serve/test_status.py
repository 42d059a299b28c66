"""mirror status: snapshot month, counts, last update, freshness, disk use, staleness."""

from __future__ import annotations

import json
from datetime import date

import pytest
from conftest import run_mirror
from stock_samples import write_sample_stock

from mirror.core import datadir as snapshot
from mirror.load.stock import load_snapshot
from mirror.serve.status import status


@pytest.mark.slow
def test_status_text_json_and_staleness(tmp_path):
    data = tmp_path / "data"
    load_snapshot(data, [write_sample_stock(tmp_path / "stock")], month="2024-04")
    r = run_mirror("status", "--json", data_dir=data)
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["snapshot"]["month"] == "2024-04"
    assert s["rows"]["unites_legales"] == 10 and s["rows"]["etablissements"] == 3
    assert s["freshness"]["etablissements"] == "2024-03-30T05:56:39"
    assert s["disk_bytes"]["snapshots"] > 0 and s["disk_bytes"]["total"] >= s["disk_bytes"]["snapshots"]
    assert s["stale"] and "stale: snapshot 2024-04" in s["warnings"][0]  # today is long after April 2024
    r = run_mirror("status", data_dir=data)
    assert r.returncode == 0 and "snapshot:  2024-04" in r.stdout and "WARNING: stale" in r.stdout

    fresh = status(data, today=date(2024, 4, 20))
    assert not fresh["stale"] and fresh["last_update"] is None
    # once daily updates have been applied, a gap of more than 3 days is reported
    with snapshot.writer_lock(data, "test"):
        snapshot.update_state(
            data, deltas=["2024-04-02", "2024-04-03"], delta_watermark="2024-04-03T08:00:00"
        )
    s = status(data, today=date(2024, 4, 5))
    assert s["last_update"] == "2024-04-03" and not s["stale"]
    s = status(data, today=date(2024, 4, 9))
    assert s["stale"] and "last daily update applied is 2024-04-03" in s["warnings"][0]
