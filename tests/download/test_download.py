"""Discovery and download from a data.gouv.fr-like server on 127.0.0.1 (real sockets, real files)."""

from __future__ import annotations

import hashlib
import json
import random
import socket
import zipfile
from pathlib import Path

import pytest
import requests
from conftest import run_mirror

from mirror.core.config import SIRENE_DATASET_ID
from mirror.core.errors import MirrorError
from mirror.core.schema import STOCK_FILES
from mirror.download.datagouv import (
    _Lock,
    discover,
    download_stock,
    latest_month,
    match_title,
    parse_resources,
    pick,
    title_month,
)
from mirror.synthetic.upstream import send_bytes, serve
from mirror.synthetic.upstream.datagouv import RESOURCE_IDS, DatagouvUpstream, serve_datagouv, stock_title

NAMES = [f.name for f in STOCK_FILES]
FAST = {"backoff": 0.01}  # no real waiting between retries in tests


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_month(
    folder: Path, seed: int, size: int = 200_000, parquet_for=("StockUniteLegale", "StockEtablissement")
):
    """Random bytes named like stock files: the six zips, and Parquet for some names."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    for stock in STOCK_FILES:
        (folder / stock.zip_name).write_bytes(rng.randbytes(size + rng.randrange(1000)))
        if stock.name in parquet_for:
            (folder / stock.parquet_name).write_bytes(rng.randbytes(size + rng.randrange(1000)))
    return folder


@pytest.fixture
def upstream(tmp_path):
    """A running data.gouv-like server publishing 2026-10; yields (app, base_url, months root)."""
    root = tmp_path / "upstream"
    make_month(root / "2026-10", seed=10)
    server, base = serve_datagouv(root)
    try:
        yield server.upstream, base, root
    finally:
        server.shutdown()
        server.server_close()


# ---------------------------------------------------------------------------------------------
# Title matching and selection
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("style", ["old", "new"])
@pytest.mark.parametrize("fmt", ["zip", "parquet"])
def test_title_matching_never_confuses_prefixes(style, fmt):
    for name in NAMES:
        assert match_title(stock_title(name, fmt, "2026-08", style)) == name
    # The verbatim titles of the reference (section 8.2).
    assert match_title("Sirene : Fichier StockEtablissement du 01 Août 2026") == "StockEtablissement"
    assert match_title("Sirene : Fichier StockEtablissementHistorique du 01 Août 2026") == (
        "StockEtablissementHistorique"
    )
    assert match_title("Sirene : Fichier StockEtablissementLiensSuccession - 01 juillet 2026") == (
        "StockEtablissementLiensSuccession"
    )
    assert match_title("Sirene : Fichier StockUniteLegaleHistorique - 01 juillet 2026 (format parquet)") == (
        "StockUniteLegaleHistorique"
    )
    assert (
        match_title("Sirene : Fichier StockUniteLegale - 01 juillet 2026 (format parquet)")
        == "StockUniteLegale"
    )
    assert match_title("Fichier StockEtablissement") == "StockEtablissement"
    # Not stock files.
    assert match_title("Description-fichier-stocketablissement-311.pdf") is None
    assert match_title("StockUniteLegale : extrait de démonstration") is None
    assert match_title("Sirene : Fichier StockEtablissementGeo du 01 Août 2026") is None


def test_title_month_french_names_with_or_without_accents():
    assert title_month("Sirene : Fichier StockEtablissement du 01 Août 2026") == "2026-08"
    assert title_month("Sirene : Fichier StockEtablissement du 01 Aout 2026") == "2026-08"
    assert title_month("Sirene : Fichier StockEtablissement - 01 juillet 2026 (format parquet)") == "2026-07"
    assert title_month("Sirene : Fichier StockDoublons du 1er Décembre 2025") == "2025-12"
    assert title_month("Sirene : Fichier StockDoublons du 01 FEVRIER 2027") == "2027-02"
    assert title_month("Sirene : Fichier StockDoublons") is None
    for month in ("2026-01", "2026-02", "2026-08", "2026-12"):
        assert title_month(stock_title("StockUniteLegale", "zip", month, "old")) == month
        assert title_month(stock_title("StockUniteLegale", "parquet", month, "new")) == month


def _raw(title, fmt, last_modified, rid, checksum=None, size=100):
    return {
        "id": rid,
        "title": title,
        "format": fmt,
        "url": f"https://static.example/{rid}.{fmt}",
        "latest": f"https://www.data.gouv.fr/api/1/datasets/r/{rid}",
        "last_modified": last_modified,
        "filesize": size,
        "checksum": checksum,
    }


def test_parse_resources_latest_by_last_modified_and_formats():
    dataset = {
        "resources": [
            _raw(
                "Sirene : Fichier StockEtablissement du 01 Septembre 2026",
                "zip",
                "2026-09-01T07:40:00Z",
                "new",
            ),
            _raw("Sirene : Fichier StockEtablissement du 01 Mars 2024", "zip", "2024-03-01T06:00:00Z", "old"),
            _raw(
                "Sirene : Fichier StockEtablissementHistorique du 01 Septembre 2026",
                "zip",
                "2026-09-01T07:50:00Z",
                "hist",
                {"type": "sha256", "value": "AB" * 32},
            ),
            _raw(
                "Sirene : Fichier StockEtablissement - dessin (format pdf)",
                "pdf",
                "2099-01-01T00:00:00Z",
                "pdf",
            ),
            _raw(
                "Sirene : Fichier StockUniteLegale (format parquet)",
                "parquet",
                "2026-08-01T07:40:13.463Z",
                "ulp",
            ),
            _raw("Sirene : Fichier StockUniteLegale du 01 Août 2026", "csv", "2099-01-01T00:00:00Z", "csv"),
            _raw(
                "Sirene : Fichier StockDoublons du 01 Septembre 2026",
                "ZIP",
                "2026-09-01T08:00:00+00:00",
                "dbl",
                {"type": "sha1", "value": "cd" * 20},
            ),
        ]
    }
    found = {(r.name, r.format): r for r in parse_resources(dataset)}
    assert set(found) == {
        ("StockEtablissement", "zip"),
        ("StockEtablissementHistorique", "zip"),
        ("StockUniteLegale", "parquet"),
        ("StockDoublons", "zip"),
    }
    etab = found[("StockEtablissement", "zip")]
    assert (etab.id, etab.month, etab.url) == (
        "new",
        "2026-09",
        "https://www.data.gouv.fr/api/1/datasets/r/new",
    )
    # No date in the title: the month of last_modified.
    assert found[("StockUniteLegale", "parquet")].month == "2026-08"
    hist = found[("StockEtablissementHistorique", "zip")]
    assert (hist.checksum_type, hist.checksum_value) == ("sha256", "ab" * 32)
    assert found[("StockDoublons", "zip")].checksum_type == "sha1"
    assert found[("StockUniteLegale", "parquet")].checksum_type is None


def test_pick_prefers_parquet_and_falls_back_to_zip():
    dataset = {
        "resources": [
            _raw(
                stock_title("StockUniteLegale", "zip", "2026-09", "new"), "zip", "2026-09-01T07:00:00Z", "ulz"
            ),
            _raw(
                stock_title("StockUniteLegale", "parquet", "2026-09", "new"),
                "parquet",
                "2026-09-01T07:10:00Z",
                "ulp",
            ),
            # Parquet lagging one month behind the zip: the newer zip wins.
            _raw(
                stock_title("StockEtablissement", "zip", "2026-09", "old"),
                "zip",
                "2026-09-01T07:20:00Z",
                "etz",
            ),
            _raw(
                stock_title("StockEtablissement", "parquet", "2026-08", "old"),
                "parquet",
                "2026-08-01T07:30:00Z",
                "etp",
            ),
            _raw(stock_title("StockDoublons", "zip", "2026-09", "old"), "zip", "2026-09-01T07:40:00Z", "dbz"),
        ]
    }
    resources = parse_resources(dataset)
    assert [(r.name, r.id) for r in pick(resources, "auto")] == [
        ("StockUniteLegale", "ulp"),
        ("StockEtablissement", "etz"),
        ("StockDoublons", "dbz"),
    ]
    assert [r.id for r in pick(resources, "zip")] == ["ulz", "etz", "dbz"]
    assert [r.id for r in pick(resources, "parquet")] == ["ulp"]  # etp is older than the zip: not current
    assert [r.id for r in pick(resources, "auto", ["StockDoublons"])] == ["dbz"]


# ---------------------------------------------------------------------------------------------
# Against the data.gouv-like server
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("style", ["old", "new"])
def test_discover_real_dataset_json_with_decoys(upstream, style):
    app, base, _ = upstream
    app.title_style = style
    resources = discover(base, **FAST)
    got = {(r.name, r.format) for r in resources}
    assert got == {(n, "zip") for n in NAMES} | {
        ("StockUniteLegale", "parquet"),
        ("StockEtablissement", "parquet"),
    }
    for res in resources:
        assert res.month == "2026-10"
        assert res.url == f"{base}/api/1/datasets/r/{RESOURCE_IDS[(res.name, res.format)]}"
        assert res.filesize and res.filesize > 200_000
        assert res.checksum_type == ("sha256" if res.format == "zip" else None)
    assert latest_month(base, **FAST) == "2026-10"


def test_download_follows_redirect_verifies_and_writes_sidecar(upstream, tmp_path):
    app, base, root = upstream
    paths = download_stock(tmp_path / "data", base, progress=False, **FAST)
    assert [p.name for p in paths] == [
        "StockUniteLegale_utf8.parquet",
        "StockEtablissement_utf8.parquet",
        "StockUniteLegaleHistorique_utf8.zip",
        "StockEtablissementHistorique_utf8.zip",
        "StockEtablissementLiensSuccession_utf8.zip",
        "StockDoublons_utf8.zip",
    ]
    for path in paths:
        assert path.parent == tmp_path / "data" / "downloads" / "2026-10"
        assert sha256(path) == sha256(root / "2026-10" / path.name)
        meta = json.loads(path.with_name(path.name + ".json").read_text())
        assert meta["sha256"] == sha256(path)
        assert meta["size"] == meta["filesize"] == path.stat().st_size
        assert meta["url"].startswith(f"{base}/api/1/datasets/r/")
        assert meta["last_modified"].startswith("2026-10-01T")
        assert meta["checksum_verified"] == path.name.endswith(".zip")
        assert not path.with_name(path.name + ".part").exists()
    # Each file went through its stable r/<id> link (302), then the dated static URL.
    paths_requested = [e["path"] for e in app.log if e["method"] == "GET"]
    rid = RESOURCE_IDS[("StockUniteLegale", "parquet")]
    i = paths_requested.index(f"/api/1/datasets/r/{rid}")
    assert paths_requested[i + 1].endswith("/stock-stockunitelegale-parquet.parquet")
    assert len(app.file_requests()) == 6


def test_resume_after_cut_connection_uses_range(upstream, tmp_path):
    app, base, root = upstream
    app.cut_after = 100_000
    paths = download_stock(tmp_path / "data", base, files=["StockEtablissement"], progress=False, **FAST)
    assert sha256(paths[0]) == sha256(root / "2026-10" / "StockEtablissement_utf8.parquet")
    ranges = [e["range"] for e in app.file_requests()]
    assert ranges[0] is None and len(ranges) == 2
    start = int(ranges[1].removeprefix("bytes=").removesuffix("-"))
    assert 0 < start <= 100_000


def test_resume_in_a_later_run(upstream, tmp_path):
    app, base, root = upstream
    app.cut_after = 150_000
    with pytest.raises(MirrorError, match="run again to resume"):
        download_stock(tmp_path / "data", base, "zip", ["StockDoublons"], False, retries=0, **FAST)
    folder = tmp_path / "data" / "downloads" / "2026-10"
    part = folder / "StockDoublons_utf8.zip.part"
    kept = part.stat().st_size
    assert 0 < kept <= 150_000 and not (folder / "StockDoublons_utf8.zip").exists()
    paths = download_stock(tmp_path / "data", base, "zip", ["StockDoublons"], False, retries=0, **FAST)
    assert app.file_requests()[-1]["range"] == f"bytes={kept}-"
    assert sha256(paths[0]) == sha256(root / "2026-10" / "StockDoublons_utf8.zip")
    assert not part.exists()


def test_server_ignoring_range_restarts_from_scratch(upstream, tmp_path):
    app, base, root = upstream
    app.cut_after = 100_000
    app.ignore_range = True
    paths = download_stock(tmp_path / "data", base, "zip", ["StockUniteLegale"], False, **FAST)
    assert [e["range"] is not None for e in app.file_requests()] == [False, True]
    # Appending the 200 body to the kept bytes would have failed the size and checksum checks.
    assert sha256(paths[0]) == sha256(root / "2026-10" / "StockUniteLegale_utf8.zip")


def test_checksum_mismatch_refused_without_final_file(upstream, tmp_path):
    app, base, _ = upstream
    app.corrupt_checksum = True
    with pytest.raises(MirrorError, match="sha256 checksum mismatch"):
        download_stock(tmp_path / "data", base, "zip", ["StockDoublons"], False, **FAST)
    folder = tmp_path / "data" / "downloads" / "2026-10"
    assert sorted(p.name for p in folder.iterdir()) == []


def test_server_errors_are_retried_then_reported(upstream, tmp_path):
    app, base, root = upstream
    app.fail_next = 2
    paths = download_stock(tmp_path / "data", base, "zip", ["StockDoublons"], False, retries=2, **FAST)
    assert sha256(paths[0]) == sha256(root / "2026-10" / "StockDoublons_utf8.zip")
    assert len(app.file_requests()) == 3
    app.fail_next = 10
    with pytest.raises(
        MirrorError, match=r"StockEtablissementHistorique \(zip\) failed after 2 attempts: HTTP 503"
    ):
        download_stock(
            tmp_path / "data", base, "zip", ["StockEtablissementHistorique"], False, retries=1, **FAST
        )


def test_skip_when_already_present_and_refetch_when_republished(upstream, tmp_path):
    app, base, _ = upstream
    lines: list[str] = []
    download_stock(tmp_path / "data", base, progress=False, **FAST)
    before = len(app.log)
    paths = download_stock(tmp_path / "data", base, progress=False, report=lines.append, **FAST)
    assert len(paths) == 6 and all(line.startswith("skipped") for line in lines)
    new_requests = [e["path"] for e in app.log[before:]]
    assert new_requests == ["/api/1/datasets/5b7ffc618b4c4169d30727e0/"]  # discovery only, no file GET
    # A file modified on disk is not mistaken for the published one.
    paths[2].write_bytes(b"truncated")
    lines.clear()
    download_stock(tmp_path / "data", base, progress=False, report=lines.append, **FAST)
    assert [line.split()[0] for line in lines].count("downloaded") == 1
    # INSEE replaces the files of the same month: new last_modified, everything is fetched again.
    app.republish()
    lines.clear()
    download_stock(tmp_path / "data", base, progress=False, report=lines.append, **FAST)
    assert [line.split()[0] for line in lines] == ["downloaded"] * 6


def test_newer_month_appears(upstream, tmp_path):
    app, base, root = upstream
    assert latest_month(base, **FAST) == "2026-10"
    app.add_month("2026-11", make_month(root / "2026-11", seed=11))
    assert latest_month(base, **FAST) == "2026-10"  # added but not yet published
    app.publish("2026-11")
    assert latest_month(base, **FAST) == "2026-11"
    with pytest.raises(MirrorError, match="publishes the 2026-11 stock, not 2026-10"):
        download_stock(tmp_path / "data", base, progress=False, month="2026-10", **FAST)
    paths = download_stock(tmp_path / "data", base, progress=False, month="2026-11", **FAST)
    assert {p.parent.name for p in paths} == {"2026-11"}
    assert sha256(paths[0]) == sha256(root / "2026-11" / paths[0].name)


def test_missing_files(tmp_path):
    month = make_month(tmp_path / "up" / "2026-10", seed=3, size=1000, parquet_for=())
    (month / "StockDoublons_utf8.zip").unlink()
    server, base = serve_datagouv(tmp_path / "up")
    try:
        lines: list[str] = []
        download_stock(tmp_path / "data", base, progress=False, report=lines.append, **FAST)
        assert "warning: data.gouv.fr lists no resource for StockDoublons; skipped" in lines
        with pytest.raises(MirrorError, match="no parquet resource for StockUniteLegale, StockEtablissement"):
            download_stock(tmp_path / "data", base, "parquet", progress=False, **FAST)
        with pytest.raises(MirrorError, match="no resource for StockDoublons"):
            download_stock(tmp_path / "data", base, files=["doublons"], progress=False, **FAST)
        with pytest.raises(MirrorError, match="unknown stock file 'Stock'"):
            download_stock(tmp_path / "data", base, files=["Stock"], progress=False, **FAST)
    finally:
        server.shutdown()
        server.server_close()


def test_one_download_at_a_time(upstream, tmp_path):
    _, base, _ = upstream
    with _Lock(tmp_path / "data" / "downloads"):
        with pytest.raises(MirrorError, match=r"another download is running \(pid \d+"):
            download_stock(tmp_path / "data", base, progress=False, **FAST)


def test_generated_stock_downloads_byte_identical(stock_dir, tmp_path):
    """Real generated stock files (the session's stock_dir), downloaded through a cut connection."""
    server, base = serve_datagouv(stock_dir, month="2026-10", cut_after=50_000)
    try:
        paths = download_stock(tmp_path / "data", base, progress=False, **FAST)
    finally:
        server.shutdown()
        server.server_close()
    assert [p.name for p in paths] == [f.zip_name for f in STOCK_FILES]
    for path, stock in zip(paths, STOCK_FILES, strict=True):
        assert sha256(path) == sha256(stock_dir / path.name)
        with zipfile.ZipFile(path) as zf:
            assert zf.namelist() == [stock.csv_member]
            with zf.open(stock.csv_member) as member:
                assert member.readline().decode().strip().replace('"', "").split(",") == stock.header(
                    "current"
                )


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_cli_unreachable_url_is_a_one_line_error(tmp_path):
    result = run_mirror(
        "download",
        "--retries",
        "1",
        "--datagouv-url",
        f"http://127.0.0.1:{_free_port()}",
        data_dir=tmp_path / "data",
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("Error: cannot get the data.gouv.fr dataset")
    assert "Connection refused" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    result = run_mirror("download", "--datagouv-url", "www.data.gouv.fr", data_dir=tmp_path / "data")
    assert result.returncode == 1 and result.stderr.strip() == (
        "Error: invalid data.gouv.fr URL 'www.data.gouv.fr': expected http(s)://host[:port]"
    )


def test_cli_download_then_skip(upstream, tmp_path):
    _, base, root = upstream
    env = {"MIRROR_DATAGOUV_URL": base}
    args = ("download", "--only", "StockUniteLegale,etablissements", "--format", "zip", "--quiet")
    result = run_mirror(*args, data_dir=tmp_path / "data", env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("downloaded  ") == 2 and "sha256 verified" in result.stdout
    target = tmp_path / "data" / "downloads" / "2026-10" / "StockEtablissement_utf8.zip"
    assert sha256(target) == sha256(root / "2026-10" / target.name)
    result = run_mirror(*args, data_dir=tmp_path / "data", env=env, timeout=60)
    assert result.returncode == 0 and result.stdout.count("skipped     ") == 2
    result = run_mirror(*args, "--month", "2026-09", data_dir=tmp_path / "data", env=env, timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip() == "Error: data.gouv.fr publishes the 2026-10 stock, not 2026-09"


def test_app_mounted_under_a_prefix_next_to_another_app(tmp_path):
    """The demo upstream shares one server between this app and an INSEE-like API."""

    class Hello:
        def handle(self, handler):
            if handler.path != "/hello":
                return False
            send_bytes(handler, 200, b"hi", "text/plain")
            return True

    make_month(tmp_path / "up" / "2026-10", seed=5, size=5000)
    app = DatagouvUpstream(tmp_path / "up", prefix="/datagouv")
    server, base = serve([Hello(), app])
    try:
        assert requests.get(f"{base}/hello", timeout=5).text == "hi"
        assert requests.get(f"{base}/api/1/datasets/{SIRENE_DATASET_ID}/", timeout=5).status_code == 404
        paths = download_stock(tmp_path / "data", f"{base}/datagouv", "zip", ["StockDoublons"], False, **FAST)
    finally:
        server.shutdown()
        server.server_close()
    assert sha256(paths[0]) == sha256(tmp_path / "up" / "2026-10" / "StockDoublons_utf8.zip")
    assert app.file_requests()[0]["path"].startswith("/static/resources/")


def test_resume_without_published_size_or_checksum(upstream, tmp_path):
    app, base, root = upstream
    app.metadata = False
    app.cut_after = 70_000
    (res,) = [r for r in discover(base, **FAST) if r.name == "StockEtablissement" and r.format == "zip"]
    assert res.filesize is None and res.checksum_value is None
    paths = download_stock(tmp_path / "data", base, "zip", ["StockEtablissement"], False, **FAST)
    assert sha256(paths[0]) == sha256(root / "2026-10" / "StockEtablissement_utf8.zip")
    assert [e["range"] is not None for e in app.file_requests()] == [False, True]
    meta = json.loads(paths[0].with_name(paths[0].name + ".json").read_text())
    assert meta["filesize"] is None and meta["checksum_verified"] is False and meta["size"] > 200_000
    # Known only by last_modified: still skipped on the next run.
    before = len(app.file_requests())
    download_stock(tmp_path / "data", base, "zip", ["StockEtablissement"], False, **FAST)
    assert len(app.file_requests()) == before
