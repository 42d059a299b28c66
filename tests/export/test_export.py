"""`mirror export`: output formats, columns and libellés, --count, the Excel limit, diffusion,
atomic output under a real crash, and the CLI (through `run_mirror`, a real subprocess)."""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile

import pyarrow.parquet as pq
import pytest
from conftest import run_mirror
from export_helpers import build_catalog, read_raw, write_edge_stock

from mirror.core.errors import MirrorError
from mirror.core.faults import EXPORT_CRASH_ENV
from mirror.core.schema import ETABLISSEMENTS, UNITES_LEGALES
from mirror.core.sql import REF_DIR
from mirror.export import exporter as export_mod
from mirror.export.exporter import export
from mirror.export.filters import Filters


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    stock = write_edge_stock(root / "stock", n_units=250, seed=5)
    opener = build_catalog(root / "data", stock)
    con = opener()
    uls = {r["siren"]: r for r in read_raw(stock, UNITES_LEGALES)}
    ets = read_raw(stock, ETABLISSEMENTS)
    yield {"con": con, "data": root / "data", "uls": uls, "ets": ets, "out": root}
    con.close()


def active_ets(world):
    return [e for e in world["ets"] if e["etatAdministratifEtablissement"] == "A"]


def xlsx_sheets(path) -> dict[str, list[list[str]]]:
    """Cell texts per sheet, read straight from the xlsx XML (inline strings, numbers)."""
    sheets = {}
    with zipfile.ZipFile(path) as z:
        names = sorted(n for n in z.namelist() if n.startswith("xl/worksheets/sheet"))
        for n in names:
            xml = z.read(n).decode()
            rows = []
            for row in re.findall(r"<row [^>]*>(.*?)</row>", xml):
                rows.append(
                    [
                        m[0] or m[1]
                        for m in re.findall(
                            r"<c [^>]*?(?:/>|>(?:<is><t[^>]*>(.*?)</t></is>|<v>(.*?)</v>))", row
                        )
                    ]
                )
            sheets[n] = rows
    return sheets


@pytest.mark.slow
def test_csv_with_delimiter_and_libelles(world):
    out = world["out"] / "a.csv"
    summary = export(
        world["con"],
        out,
        filters=Filters(departements=["75"]),
        columns=[
            "siret",
            "codeCommuneEtablissement",
            "activitePrincipaleEtablissement",
            "categorieJuridiqueUniteLegale",
            "departement",
            "region",
        ],
        with_libelles=True,
        delimiter=";",
    )
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8")), delimiter=";"))
    want = {e["siret"] for e in active_ets(world) if e["codeCommuneEtablissement"][:2] == "75"}
    assert {r["siret"] for r in rows} == want and summary["rows"] == len(want)
    assert list(rows[0]) == [  # each libellé right after its code, and only those of the chosen codes
        "siret",
        "codeCommuneEtablissement",
        "libelleCommune",
        "activitePrincipaleEtablissement",
        "libelleActivitePrincipaleEtablissement",
        "sectionActivitePrincipaleEtablissement",
        "categorieJuridiqueUniteLegale",
        "libelleCategorieJuridiqueUniteLegale",
        "departement",
        "libelleDepartement",
        "region",
        "libelleRegion",
    ]
    naf = {r["code"]: r["libelle"] for r in csv.DictReader(open(REF_DIR / "naf_rev2.csv", encoding="utf-8"))}
    for r in rows:
        assert r["libelleCommune"] in ("Paris", "Paris 1er Arrondissement")
        assert r["libelleDepartement"] == "Paris" and r["libelleRegion"] == "Île-de-France"
        if r["activitePrincipaleEtablissement"] in naf:
            assert r["libelleActivitePrincipaleEtablissement"] == naf[r["activitePrincipaleEtablissement"]]
        if r["categorieJuridiqueUniteLegale"] == "5710":
            assert r["libelleCategorieJuridiqueUniteLegale"] == "SAS, société par actions simplifiée"
    assert not (world["out"] / "a.csv.part").exists()


def test_parquet_keeps_types_and_default_columns(world):
    out = world["out"] / "b.parquet"
    export(world["con"], out, filters=Filters(etat="all"))
    table = pq.read_table(out)
    assert table.num_rows == len(world["ets"])
    view_cols = [r[0] for r in world["con"].execute("DESCRIBE etablissements_diffusibles").fetchall()]
    assert table.column_names == view_cols
    types = {f.name: str(f.type) for f in table.schema}
    assert types["dateCreationEtablissement"] == "date32[day]"
    assert types["etablissementSiege"] == "bool"
    assert types["latitude"] == "double"


def test_unite_legale_level_with_siege_columns(world):
    out = world["out"] / "ul.csv"
    export(
        world["con"],
        out,
        level="unite-legale",
        filters=Filters(etat="all"),
        columns=[
            "siren",
            "denominationUniteLegale",
            "siret",
            "codePostalEtablissement",
            "libelleCategorieJuridiqueUniteLegale",
        ],
    )
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert len(rows) == len(world["uls"])
    for r in rows:
        u = world["uls"][r["siren"]]
        assert r["siret"] == r["siren"] + u["nicSiegeUniteLegale"]
        siege = next(e for e in world["ets"] if e["siret"] == r["siret"])
        masked = (
            siege["statutDiffusionEtablissement"] == "P"
        )  # the diffusible view masks the whole street part
        assert r["codePostalEtablissement"] == ("[ND]" if masked else siege["codePostalEtablissement"])


def test_count_matches_export(world):
    n = export(world["con"], None, filters=Filters(naf=["J"]), count_only=True)["rows"]
    out = world["out"] / "c.parquet"
    assert export(world["con"], out, filters=Filters(naf=["J"]))["rows"] == n == pq.read_table(out).num_rows


def test_geojson_points_skip_rows_without_coordinates(world):
    out = world["out"] / "d.geojson"
    summary = export(
        world["con"], out, columns=["siret", "denominationUniteLegale"], filters=Filters(etat="all")
    )
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert doc["type"] == "FeatureCollection"
    with_coords = [e for e in world["ets"] if e["coordonneeLambertAbscisseEtablissement"] not in ("", "[ND]")]
    assert len(doc["features"]) == summary["rows"] == len(with_coords)
    assert summary["skipped_without_coordinates"] == len(world["ets"]) - len(with_coords) > 0
    f = doc["features"][0]
    assert f["geometry"]["type"] == "Point" and set(f["properties"]) == {"siret", "denominationUniteLegale"}
    lon, lat = f["geometry"]["coordinates"]
    assert -180 <= lon <= 180 and -90 <= lat <= 90


def test_jsonl_documents(world):
    out = world["out"] / "e.jsonl"
    summary = export(world["con"], out, filters=Filters(departements=["69"]), document="v3")
    lines = out.read_text(encoding="utf-8").splitlines()
    want = {e["siret"] for e in active_ets(world) if e["codeCommuneEtablissement"].startswith("69")}
    assert summary["rows"] == len(lines) == len(want)
    assert {json.loads(line)["data"]["siret"] for line in lines} == want


def test_xlsx_rows_and_typed_cells(world):
    out = world["out"] / "f.xlsx"
    summary = export(
        world["con"],
        out,
        columns=["siret", "dateCreationEtablissement", "denominationUniteLegale"],
        filters=Filters(departements=["13"]),
    )
    sheets = xlsx_sheets(out)
    assert len(sheets) == 1
    rows = next(iter(sheets.values()))
    assert rows[0] == ["siret", "dateCreationEtablissement", "denominationUniteLegale"]
    assert len(rows) - 1 == summary["rows"] > 0
    assert {r[0] for r in rows[1:]} == {
        e["siret"] for e in active_ets(world) if e["codeCommuneEtablissement"].startswith("13")
    }


def test_excel_limit_refused_then_split(world, monkeypatch):
    monkeypatch.setattr(export_mod, "EXCEL_MAX_ROWS", 40)
    out = world["out"] / "g.xlsx"
    total = export(world["con"], None, count_only=True)["rows"]
    assert total > 80
    with pytest.raises(MirrorError, match="exceed Excel's limit of 40 rows per sheet"):
        export(world["con"], out, columns=["siret"])
    assert not out.exists() and not (world["out"] / "g.xlsx.part").exists()
    summary = export(world["con"], out, columns=["siret"], split_sheets=True)
    sheets = xlsx_sheets(out)
    assert summary["rows"] == total
    assert len(sheets) == -(-total // 40)
    assert all(rows[0] == ["siret"] for rows in sheets.values())
    assert sum(len(rows) - 1 for rows in sheets.values()) == total
    assert all(len(rows) - 1 <= 40 for rows in sheets.values())


def test_diffusion_masks_by_default(world):
    """Enseignes of a P natural person's établissement: '[ND]' by default, raw with include_non_diffusible."""
    target = next(
        e
        for e in world["ets"]
        if e["statutDiffusionEtablissement"] == "P"
        and e["enseigne1Etablissement"]
        and world["uls"][e["siren"]]["categorieJuridiqueUniteLegale"] == "1000"
    )
    cols = ["siret", "enseigne1Etablissement", "codePostalEtablissement"]
    f = Filters(etat="all", where=f"siret = '{target['siret']}'")
    masked = world["out"] / "h1.csv"
    export(world["con"], masked, filters=f, columns=cols)
    raw = world["out"] / "h2.csv"
    export(world["con"], raw, filters=f, columns=cols, include_non_diffusible=True)
    (m,) = list(csv.DictReader(masked.open(encoding="utf-8")))
    (r,) = list(csv.DictReader(raw.open(encoding="utf-8")))
    assert m["enseigne1Etablissement"] == "[ND]" and m["codePostalEtablissement"] in ("[ND]", "")
    assert r["enseigne1Etablissement"] == target["enseigne1Etablissement"]


@pytest.mark.parametrize("fmt", ["parquet", "xlsx", "geojson", "jsonl"])
def test_empty_result_gives_a_valid_empty_file(world, fmt):
    out = world["out"] / f"empty.{fmt}"
    summary = export(world["con"], out, columns=["siret", "siren"], filters=Filters(departements=["2B"]))
    assert summary["rows"] == 0 and out.exists()
    if fmt == "parquet":
        assert pq.read_table(out).num_rows == 0 and pq.read_table(out).column_names == ["siret", "siren"]
    elif fmt == "xlsx":
        assert next(iter(xlsx_sheets(out).values())) == [["siret", "siren"]]
    elif fmt == "geojson":
        assert json.loads(out.read_text()) == {"type": "FeatureCollection", "features": []}
    else:
        assert out.read_text() == ""


def test_failure_mid_export_removes_the_part_file(world, monkeypatch):
    """An exception while writing (here a simulated Ctrl-C) leaves neither a .part nor a final file."""
    out = world["out"] / "interrupted.geojson"

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(export_mod, "crash_after_rows", boom)
    with pytest.raises(KeyboardInterrupt):
        export(world["con"], out, filters=Filters(etat="all"))
    assert not out.exists() and not (world["out"] / "interrupted.geojson.part").exists()


def test_output_path_with_quote_and_bad_delimiter(world):
    out = world["out"] / "it's here.csv"
    assert export(world["con"], out, columns=["siret"], filters=Filters(departements=["33"]))["rows"] > 0
    assert out.read_text().startswith("siret\n")
    with pytest.raises(MirrorError, match="delimiter"):
        export(world["con"], world["out"] / "x.csv", delimiter="';")
    with pytest.raises(MirrorError, match="unknown column"):
        export(world["con"], world["out"] / "x.csv", columns=["siret; DROP VIEW etablissements"])
    with pytest.raises(MirrorError, match="cannot tell the format"):
        export(world["con"], world["out"] / "x.dat")


# --- CLI, real subprocesses --------------------------------------------------------------------------


@pytest.mark.slow
def test_cli_export_and_count(world):
    out = world["out"] / "cli.csv"
    proc = run_mirror(
        "export",
        "--naf",
        "J",
        "--departement",
        "75",
        "-o",
        str(out),
        "--columns",
        "siret,siren",
        "--delimiter",
        "\\t",
        data_dir=world["data"],
    )
    assert proc.returncode == 0, proc.stderr
    lines = out.read_text().splitlines()
    assert lines[0] == "siret\tsiren"
    count = run_mirror("export", "--naf", "J", "--departement", "75", "--count", data_dir=world["data"])
    assert count.returncode == 0 and int(count.stdout.strip()) == len(lines) - 1
    assert f"{len(lines) - 1:,} rows written" in proc.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--where", "siret IN (SELECT siret FROM etablissements)", "--count"], "subqueries are not allowed"),
        (["--where", "1=1; DROP VIEW etablissements", "--count"], "only one expression"),
        (["--departement", "75' OR 1=1 --", "--count"], "invalid département"),
        (["--naf", "J", "--all", "--closed", "--count"], "either --all or --closed"),
        (["--columns", "nope", "-o", "x.csv"], "unknown column"),
        (["--near", "abc", "--radius-km", "1", "--count"], "invalid --near"),
    ],
)
@pytest.mark.slow
def test_cli_refuses_with_one_line(world, args, message):
    proc = run_mirror("export", *args, data_dir=world["data"], cwd=world["out"])
    assert proc.returncode == 2
    assert message in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_cli_non_diffusible_warning(world):
    out = world["out"] / "nd.parquet"
    proc = run_mirror("export", "--include-non-diffusible", "-o", str(out), data_dir=world["data"])
    assert proc.returncode == 0, proc.stderr
    assert "prospection" in proc.stderr and "rediffus" in proc.stderr
    quiet = run_mirror("export", "-o", str(out), data_dir=world["data"])
    assert "prospection" not in quiet.stderr


def test_cli_no_mirror(tmp_path):
    proc = run_mirror("export", "--count", data_dir=tmp_path / "none")
    assert proc.returncode == 1 and "no mirror" in proc.stderr


@pytest.mark.parametrize(
    "fmt, crash_after", [("xlsx", "30"), ("geojson", "1"), ("csv", "0"), ("parquet", "0")]
)
@pytest.mark.slow
def test_interrupted_export_never_leaves_a_truncated_file(world, fmt, crash_after):
    """The process dies abruptly (os._exit) mid-export or just before the rename: the previous file
    under the final name is untouched; a re-run replaces it completely."""
    out = world["out"] / f"crash.{fmt}"
    out.write_bytes(b"previous complete export")
    env = {EXPORT_CRASH_ENV: crash_after}
    proc = run_mirror("export", "--all", "-o", str(out), data_dir=world["data"], env=env)
    assert proc.returncode == 70, proc.stderr
    assert "simulated crash" in proc.stderr
    assert out.read_bytes() == b"previous complete export"
    ok = run_mirror("export", "--all", "-o", str(out), data_dir=world["data"])
    assert ok.returncode == 0, ok.stderr
    assert not out.with_name(out.name + ".part").exists()
    assert out.read_bytes() != b"previous complete export"
    if fmt == "parquet":
        assert pq.read_table(out).num_rows == len(world["ets"])


def test_sql_examples_run_in_the_duckdb_cli(world, tmp_path):
    """Every sql/examples/*.sql runs with the DuckDB CLI, read-only, from another folder."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    from mirror.core.sql import SQL_DIR

    cli = shutil.which("duckdb", path=str(Path(sys.executable).parent)) or shutil.which("duckdb")
    if cli is None:
        pytest.skip("the DuckDB CLI is not installed (make install provides .venv/bin/duckdb)")
    siren = sorted(world["uls"])[0]
    (tmp_path / "portfolio.csv").write_text(f"siren,client\n{siren},A\n000000000,B\n", encoding="utf-8")
    examples = sorted((SQL_DIR / "examples").glob("*.sql"))
    assert len(examples) >= 5
    for path in examples:
        proc = subprocess.run(
            [cli, "-readonly", "-csv", str(world["data"] / "sirene.duckdb")],
            stdin=path.open(),
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=60,
        )
        assert proc.returncode == 0 and "Error" not in proc.stderr + proc.stdout, (path.name, proc.stderr)
        if path.name == "join_portfolio.sql":
            rows = list(csv.DictReader(io.StringIO(proc.stdout)))
            assert [r["siren"] for r in rows] == [siren, "000000000"]
            assert rows[0]["denominationUniteLegale"] == world["uls"][siren]["denominationUniteLegale"]
        if path.name == "top_naf_by_departement.sql":
            rows = list(csv.DictReader(io.StringIO(proc.stdout)))
            paris = [(r["naf"], int(r["n"])) for r in rows if r["departement"] == "75"]
            raw = {}
            for e in active_ets(world):
                if (
                    e["codeCommuneEtablissement"][:2] == "75"
                    and e["nomenclatureActivitePrincipaleEtablissement"] == "NAFRev2"
                ):
                    raw[e["activitePrincipaleEtablissement"]] = (
                        raw.get(e["activitePrincipaleEtablissement"], 0) + 1
                    )
            assert paris == sorted(raw.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
