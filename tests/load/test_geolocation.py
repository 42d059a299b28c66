"""INSEE's geolocation file, the optional seventh input of `mirror download` and `mirror load`, and the
synthetic coordinates placed around each établissement's own commune.

Everything goes through the real CLI in subprocesses: `mirror generate --geolocalisation` writes the file,
the data.gouv.fr-like upstream serves it as its own dataset, `mirror download --geolocalisation` puts it
beside the stock, `mirror load` joins it, `mirror export` filters on --qpv / --iris. Expected values are
computed here from the generated files themselves (csv module), not by the mirror's code.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
import zipfile
from pathlib import Path

import pytest

from mirror.core.schema import GEOLOCALISATION, GEOLOCALISATION_FILE_COLUMNS, GEOLOCATION_COLUMNS
from mirror.core.sql import REF_DIR
from mirror.synthetic.upstream.datagouv import serve_datagouv
from tests.conftest import built_once, run_mirror

pytestmark = pytest.mark.slow

MONTH = "2026-10"  # the stock_dir fixture's month, scale and seed: the six files must be the same bytes
SCALE, SEED = 3000, 7
LYON_CENTRE = (45.7640, 4.8357)


def _rows(zip_path: Path, delimiter: str = ",") -> list[dict[str, str]]:
    with zipfile.ZipFile(zip_path) as zf:
        text = zf.read(zf.namelist()[0]).decode("utf-8")
    return list(csv.DictReader(io.StringIO(text), delimiter=delimiter))


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def _km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = (
        math.sin((p2 - p1) / 2) ** 2
        + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    )
    return 2 * 6371.0088 * math.asin(math.sqrt(a))


def _ok(proc) -> str:
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.fixture(scope="module")
def geo_stock(tmp_path_factory) -> Path:
    """The stock_dir stock generated again with the geolocation file (`mirror generate --geolocalisation`)."""

    def build(out: Path) -> None:
        _ok(
            run_mirror(
                "generate",
                "--out",
                str(out / MONTH),
                "--month",
                MONTH,
                "--scale",
                str(SCALE),
                "--seed",
                str(SEED),
                "--geolocalisation",
            )  # fmt: skip
        )

    return built_once(tmp_path_factory, "geoloc-stock", build) / MONTH


@pytest.fixture(scope="module")
def geo_mirror(geo_stock, tmp_path_factory) -> dict:
    """Downloaded from the data.gouv.fr-like upstream with --geolocalisation, then loaded (real CLI)."""
    data = tmp_path_factory.mktemp("geo-mirror") / "data"
    server, url = serve_datagouv({MONTH: geo_stock})
    try:
        download = _ok(
            run_mirror("download", "--datagouv-url", url, "--geolocalisation", "-q", data_dir=data)
        )
    finally:
        server.shutdown()
        server.server_close()
    load = _ok(run_mirror("load", str(data / "downloads" / MONTH), "-q", data_dir=data))
    return {"data": data, "download": download, "load": load}


def _export(data: Path, out: Path, *args: str) -> list[dict[str, str]]:
    _ok(run_mirror("export", *args, "-o", str(out), "-q", data_dir=data))
    return _csv(out)


def _count(data: Path, *args: str) -> int:
    return int(_ok(run_mirror("export", *args, "--count", data_dir=data)).strip().replace(",", ""))


# ------------------------------------------------------------------------------------------------
# The generator
# ------------------------------------------------------------------------------------------------


def test_generate_writes_the_geolocation_file_and_the_same_six_files(geo_stock, stock_dir):
    path = geo_stock / GEOLOCALISATION.zip_name
    with zipfile.ZipFile(path) as zf:
        assert zf.namelist() == [GEOLOCALISATION.csv_member]
        header = zf.read(GEOLOCALISATION.csv_member).split(b"\n", 1)[0].decode()
    assert header == ";".join(GEOLOCALISATION_FILE_COLUMNS)
    for zipped in sorted(stock_dir.glob("Stock*_utf8.zip")):  # a generator of its own: same stock bytes
        assert (geo_stock / zipped.name).read_bytes() == zipped.read_bytes(), zipped.name

    etabs = {r["siret"]: r for r in _rows(stock_dir / "StockEtablissement_utf8.zip")}
    geo = _rows(path, ";")
    assert len({r["siret"] for r in geo}) == len(geo) and all(r["siret"] in etabs for r in geo)
    assert 0.80 <= len(geo) / len(etabs) <= 0.92  # the real file: 37.9 M of 44.06 M sirets
    for r in geo:
        e = etabs[r["siret"]]
        assert r["plg_code_commune"] == e["codeCommuneEtablissement"] and not e[
            "codeCommuneEtablissement"
        ].startswith("976")
        assert r["qualite_xy"] in ("11", "12", "21", "22", "33")
        if e["statutDiffusionEtablissement"] == "P":
            assert r["x"] == r["y"] == r["y_latitude"] == r["x_longitude"] == "[ND]"
        elif e["coordonneeLambertAbscisseEtablissement"]:  # the stock's point, when it has one
            assert float(r["x"]) == pytest.approx(
                float(e["coordonneeLambertAbscisseEtablissement"]), abs=0.01
            )
            assert float(r["y"]) == pytest.approx(
                float(e["coordonneeLambertOrdonneeEtablissement"]), abs=0.01
            )
    shares = {q: sum(r["qualite_xy"] == q for r in geo) / len(geo) for q in ("11", "33")}
    assert 0.5 < shares["11"] < 0.75 and 0.1 < shares["33"] < 0.3


def _centres() -> dict[str, tuple[float, float]]:
    with gzip.open(REF_DIR / "communes_centres.csv.gz", "rt", encoding="utf-8") as fh:
        return {r["code"]: (float(r["latitude"]), float(r["longitude"])) for r in csv.DictReader(fh)}


def test_stock_coordinates_lie_around_their_own_commune(loaded_stock, tmp_path):
    """Before: one 3-6 km box per département whatever the commune (every Paris arrondissement inside
    48.849-48.865 / 2.333-2.357, Lyon's établissements ~20 km west of Lyon)."""
    rows = _export(
        loaded_stock, tmp_path / "all.csv", "--all", "--include-non-diffusible",
        "--columns", "siret,codeCommuneEtablissement,statutDiffusionEtablissement,latitude,longitude",
    )  # fmt: skip
    centres = _centres()
    located = [r for r in rows if r["latitude"]]
    assert 0.09 <= len(located) / len(rows) <= 0.17  # ~13 % of the stock's rows carry coordinates
    near = [r for r in located if r["codeCommuneEtablissement"] in centres]
    assert len(near) > 0.8 * len(located)
    for r in near:
        lat, lon = centres[r["codeCommuneEtablissement"]]
        assert _km(float(r["latitude"]), float(r["longitude"]), lat, lon) < 6, r
    paris = [r for r in near if r["codeCommuneEtablissement"].startswith("751")]
    assert len({r["codeCommuneEtablissement"] for r in paris}) >= 10
    for r in paris:
        lat, lon = centres[r["codeCommuneEtablissement"]]
        assert _km(float(r["latitude"]), float(r["longitude"]), lat, lon) < 2.5, r
    lats = [float(r["latitude"]) for r in paris]
    assert max(lats) - min(lats) > 0.03  # the arrondissements spread over Paris, not one small box


def test_a_mirror_loaded_without_the_file_is_as_before(loaded_stock):
    columns = _ok(run_mirror("export", "--list-columns", data_dir=loaded_stock))
    assert not set(GEOLOCATION_COLUMNS) & {line.split()[0] for line in columns.splitlines() if line.strip()}
    proc = run_mirror("export", "--qpv", "any", "--count", data_dir=loaded_stock)
    assert proc.returncode != 0 and len(proc.stderr.strip().splitlines()) == 1
    assert "geolocation file" in proc.stderr and "Traceback" not in proc.stderr


# ------------------------------------------------------------------------------------------------
# Download and load
# ------------------------------------------------------------------------------------------------


def test_download_puts_the_file_beside_its_stock(geo_mirror, geo_stock):
    target = geo_mirror["data"] / "downloads" / MONTH / GEOLOCALISATION.zip_name
    assert target.read_bytes() == (geo_stock / GEOLOCALISATION.zip_name).read_bytes()
    meta = json.loads(target.with_name(target.name + ".json").read_text())
    assert meta["resource_id"] == "ba6a4e4c-aac6-4764-bbd2-f80ae345afc5"  # the real stable id
    assert meta["month"] == "2026-09" and meta["checksum_verified"]  # published on the 21st before the stock
    assert GEOLOCALISATION.name in geo_mirror["download"]


def test_download_only_the_geolocation_file(geo_stock, tmp_path):
    server, url = serve_datagouv({MONTH: geo_stock})
    try:
        only = ("download", "--datagouv-url", url, "--only", "geolocalisation", "-q")
        missing = run_mirror(*only, "--format", "parquet", data_dir=tmp_path)
        done = run_mirror(*only, data_dir=tmp_path)
    finally:
        server.shutdown()
        server.server_close()
    assert missing.returncode == 1 and len(missing.stderr.strip().splitlines()) == 1
    assert "no parquet resource for " + GEOLOCALISATION.name in missing.stderr
    _ok(done)
    files = sorted(p.name for p in (tmp_path / "downloads").rglob("*_utf8.*") if not p.name.endswith(".json"))
    assert files == [GEOLOCALISATION.zip_name]
    assert (tmp_path / "downloads" / MONTH / GEOLOCALISATION.zip_name).is_file()  # the stock's month


def test_load_takes_coordinates_and_zones_from_the_file(geo_mirror, geo_stock, loaded_stock, tmp_path):
    data = geo_mirror["data"]
    columns = "siret,statutDiffusionEtablissement,latitude,longitude,qualiteXY,iris,qpv"
    rows = {
        r["siret"]: r
        for r in _export(data, tmp_path / "g.csv", "--all", "--include-non-diffusible", "--columns", columns)
    }
    before = {
        r["siret"]: r
        for r in _export(loaded_stock, tmp_path / "s.csv", "--all", "--include-non-diffusible", "--columns", "siret,latitude,longitude")
    }  # fmt: skip
    geo = {r["siret"]: r for r in _rows(geo_stock / GEOLOCALISATION.zip_name, ";")}
    assert set(rows) == set(before)
    for siret, r in rows.items():
        g = geo.get(siret)
        if g is None:  # not in the file: the stock's own coordinates, no zones
            assert (r["latitude"], r["longitude"]) == (before[siret]["latitude"], before[siret]["longitude"])
            assert r["qualiteXY"] == r["iris"] == r["qpv"] == ""
            continue
        assert r["qualiteXY"] == g["qualite_xy"]
        assert r["iris"] == g["plg_code_commune"] + g["plg_iris"]
        assert r["qpv"] == ("" if g["plg_qp24"] in ("HZ", "CSZ") else g["plg_qp24"])
        if g["y_latitude"] == "[ND]":
            assert r["latitude"] == before[siret]["latitude"] == ""
        else:
            assert float(r["latitude"]) == pytest.approx(float(g["y_latitude"]), abs=1e-9)
            assert float(r["longitude"]) == pytest.approx(float(g["x_longitude"]), abs=1e-9)
    located = sum(bool(r["latitude"]) for r in rows.values()) / len(rows)
    assert located > 0.8  # from ~13 % with the stock alone
    assert f"geolocalisation: {len(geo):,} rows" in geo_mirror["load"]


def test_qpv_and_iris_filters(geo_mirror, geo_stock):
    data = geo_mirror["data"]
    etabs = {r["siret"]: r for r in _rows(geo_stock / "StockEtablissement_utf8.zip")}
    geo = [
        r for r in _rows(geo_stock / GEOLOCALISATION.zip_name, ";")
        if etabs[r["siret"]]["etatAdministratifEtablissement"] == "A"
        and etabs[r["siret"]]["statutDiffusionEtablissement"] == "O"  # P: zones masked (next test)
    ]  # fmt: skip
    in_qpv = [r for r in geo if r["plg_qp24"] not in ("HZ", "CSZ")]
    assert in_qpv
    assert _count(data, "--qpv", "any") == len(in_qpv)
    code = max({r["plg_qp24"] for r in in_qpv}, key=lambda c: sum(r["plg_qp24"] == c for r in in_qpv))
    assert _count(data, "--qpv", code.lower()) == sum(r["plg_qp24"] == code for r in in_qpv)
    iris = next(r["plg_code_commune"] + r["plg_iris"] for r in geo if r["plg_iris"] != "0000")
    expected = sum(r["plg_code_commune"] + r["plg_iris"] == iris for r in geo)
    assert _count(data, "--iris", iris) == expected > 0
    assert _count(data, "--iris", iris, "--qpv", "any") == sum(
        r["plg_code_commune"] + r["plg_iris"] == iris for r in in_qpv
    )
    for option, bad in (("--qpv", "X1"), ("--iris", "69383"), ("--qpv", "")):
        proc = run_mirror("export", option, bad, "--count", data_dir=data)
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, (option, bad, proc.stderr)


def test_zones_of_partially_diffusible_etablissements_are_masked(geo_mirror, geo_stock, tmp_path):
    """qualiteXY, iris and qpv are masked (empty) wherever the coordinates are, i.e. for a P établissement,
    in export and batch; --iris / --qpv find no P établissement by its masked zone (as a radius search finds
    none by its masked point); --include-non-diffusible shows and finds them. Before: the IRIS (finer than
    the commune) of a P établissement was exported and filterable."""
    data = geo_mirror["data"]
    etabs = {r["siret"]: r for r in _rows(geo_stock / "StockEtablissement_utf8.zip")}
    geo = {r["siret"]: r for r in _rows(geo_stock / GEOLOCALISATION.zip_name, ";")}
    hidden = {s: g for s, g in geo.items() if etabs[s]["statutDiffusionEtablissement"] == "P"}
    assert hidden  # the generator's P établissements are in the file, with their zones but no point
    zones = "siret,latitude,qualiteXY,iris,qpv,coordonneesMasquees"
    rows = {r["siret"]: r for r in _export(data, tmp_path / "all.csv", "--all", "--columns", zones)}
    for siret in hidden:
        assert (
            rows[siret]["latitude"],
            rows[siret]["qualiteXY"],
            rows[siret]["iris"],
            rows[siret]["qpv"],
        ) == ("", "", "", ""), siret
        assert rows[siret]["coordonneesMasquees"] == "true"
    shown = [s for s in geo if s not in hidden]
    assert all(rows[s]["iris"] == geo[s]["plg_code_commune"] + geo[s]["plg_iris"] for s in shown)

    # The filters: a P établissement's IRIS and QPV find it only with --include-non-diffusible.
    siret, g = next((s, g) for s, g in hidden.items() if g["plg_qp24"] not in ("HZ", "CSZ"))
    iris = g["plg_code_commune"] + g["plg_iris"]
    for option, value in (("--iris", iris), ("--qpv", g["plg_qp24"]), ("--qpv", "any")):
        args = ("--all", option, value, "--columns", "siret")
        found = {r["siret"] for r in _export(data, tmp_path / "f.csv", *args)}
        assert siret not in found and not found & set(hidden), option
        raw = {r["siret"] for r in _export(data, tmp_path / "r.csv", *args, "--include-non-diffusible")}
        assert siret in raw and raw - found <= set(hidden), option

    # Batch: the same masks, from the same views.
    ids = tmp_path / "ids.txt"
    ids.write_text(f"{siret}\n{shown[0]}\n")
    out = tmp_path / "batch.csv"
    _ok(run_mirror("batch", str(ids), "--level", "etablissement", "--columns", zones, "-o", str(out), "-q",
                   data_dir=data))  # fmt: skip
    got = {r["siret"]: r for r in _csv(out)}
    assert (got[siret]["qualiteXY"], got[siret]["iris"], got[siret]["qpv"]) == ("", "", "")
    assert got[shown[0]]["iris"] == geo[shown[0]]["plg_code_commune"] + geo[shown[0]]["plg_iris"]


def test_radius_search_around_lyon_centre_returns_lyon(geo_mirror, tmp_path):
    rows = _export(
        geo_mirror["data"], tmp_path / "lyon.csv", "--near", f"{LYON_CENTRE[0]},{LYON_CENTRE[1]}",
        "--radius-km", "2.5", "--all", "--columns", "siret,codeCommuneEtablissement,latitude,longitude",
    )  # fmt: skip
    assert len(rows) >= 5
    lyon = [r for r in rows if r["codeCommuneEtablissement"].startswith("6938")]
    assert len(lyon) >= 0.8 * len(rows)
    for r in rows:
        assert _km(float(r["latitude"]), float(r["longitude"]), *LYON_CENTRE) <= 2.5


def test_an_older_csv_file_without_wgs84_columns(geo_mirror, geo_stock, tmp_path):
    """A plain `;` CSV of the older header (plg_qp for the QPV, no y_latitude / x_longitude): the QPV is read
    from plg_qp and the coordinates come from x / y in the row's EPSG, as the current file gives them."""
    geo = _rows(geo_stock / GEOLOCALISATION.zip_name, ";")
    old = [c for c in GEOLOCALISATION_FILE_COLUMNS if c not in ("y_latitude", "x_longitude", "plg_qp15")]
    folder = tmp_path / "stock"
    folder.mkdir()
    for zipped in geo_stock.glob("Stock*_utf8.zip"):
        (folder / zipped.name).symlink_to(zipped)
    with open(folder / GEOLOCALISATION.csv_member, "w", encoding="utf-8", newline="") as fh:
        fh.write(";".join(c if c != "plg_qp24" else "plg_qp" for c in old) + "\n")
        for r in geo:
            fh.write(";".join(r[c] for c in old) + "\n")
    data = tmp_path / "data"
    _ok(run_mirror("load", str(folder), "-q", data_dir=data))
    columns = "siret,latitude,longitude,qualiteXY,iris,qpv"
    args = ("--all", "--include-non-diffusible", "--columns", columns)
    got = {r["siret"]: r for r in _export(data, tmp_path / "old.csv", *args)}
    want = {r["siret"]: r for r in _export(geo_mirror["data"], tmp_path / "new.csv", *args)}
    assert got.keys() == want.keys()
    for siret, r in got.items():
        w = want[siret]
        assert (r["qualiteXY"], r["iris"], r["qpv"]) == (w["qualiteXY"], w["iris"], w["qpv"])
        assert bool(r["latitude"]) == bool(w["latitude"])
        if r["latitude"]:  # x / y are written to the centimetre
            assert float(r["latitude"]) == pytest.approx(float(w["latitude"]), abs=1e-6)
            assert float(r["longitude"]) == pytest.approx(float(w["longitude"]), abs=1e-6)
