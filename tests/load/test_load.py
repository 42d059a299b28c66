"""mirror load: real stock files (real INSEE sample rows and generated stocks) -> real Parquet snapshot."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import duckdb
import pytest
from conftest import caller_env, run_mirror
from stock_samples import ETAB_2026, write_parquet, write_sample_stock, write_zip

from mirror.catalog.build import connect
from mirror.core import datadir as snapshot
from mirror.core.config import THREADS_ENV
from mirror.core.errors import MirrorError
from mirror.core.schema import ETABLISSEMENTS, UNITES_LEGALES
from mirror.core.typed import typed_relation
from mirror.load.stock import find_sources, load_snapshot

# Superseded folders deleted at once by a CLI run (the grace period has its own tests, test_readers.py).
NO_GRACE = {snapshot.GRACE_ENV: "0"}

# A partially diffusible établissement: the Avignon sample row masked as INSEE does (street part of
# the address, postcode and coordinates are the literal [ND]; the commune stays public).
ND_ROW = dict(
    ETAB_2026[2],
    nic="00040",
    siret="00032517500040",
    statutDiffusionEtablissement="P",
    complementAdresseEtablissement="[ND]",
    numeroVoieEtablissement="[ND]",
    typeVoieEtablissement="[ND]",
    libelleVoieEtablissement="[ND]",
    codePostalEtablissement="[ND]",
    identifiantAdresseEtablissement="[ND]",
    coordonneeLambertAbscisseEtablissement="[ND]",
    coordonneeLambertOrdonneeEtablissement="[ND]",
    dateDernierTraitementEtablissement="2024-03-31T23:10:00.123",
)
PARIS_ROW = dict(
    ETAB_2026[1],
    nic="00057",
    siret="00032517500057",
    codeCommuneEtablissement="75104",  # arrondissement municipal: EPCI of Paris
    codePostalEtablissement="75004",
    libelleCommuneEtablissement="PARIS 4",
    coordonneeLambertAbscisseEtablissement="652469",
    coordonneeLambertOrdonneeEtablissement="6862035",
    dateCreationEtablissement="5015-04-05",  # junk dates stay readable
    dateDebut="0001-01-16",
)
FOREIGN_ROW = {
    "siren": "000325175",
    "nic": "00065",
    "siret": "00032517500065",
    "statutDiffusionEtablissement": "O",
    "dateDernierTraitementEtablissement": "2024-03-22T14:26:06",
    "etablissementSiege": "false",
    "libelleCommuneEtrangerEtablissement": "GENEVE",
    "codePaysEtrangerEtablissement": "99140",
    "libellePaysEtrangerEtablissement": "SUISSE",
    "dateCreationEtablissement": "not a date",
}
UNKNOWN_COMMUNE_ROW = dict(
    ETAB_2026[0], nic="00073", siret="00032517500073", codeCommuneEtablissement="XX999"
)


def rows_of(con, sql: str) -> list[dict]:
    rel = con.sql(sql)
    return [dict(zip(rel.columns, r, strict=True)) for r in rel.fetchall()]


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["3.9", "3.11", "current"])
def test_load_every_layout_from_real_sample_rows(tmp_path, layout):
    src = write_sample_stock(tmp_path / "stock", layout=layout)
    data = tmp_path / "data"
    s = load_snapshot(data, [src], month="2024-04", force=True)
    assert s["layouts"] == {"unites_legales": layout, "etablissements": layout}
    assert s["rows"]["unites_legales"] == (3 if layout == "3.9" else 10)
    con = connect(data)
    ul = rows_of(con, "SELECT * FROM unites_legales WHERE siren = '000325175'")[0]
    assert ul["nicSiegeUniteLegale"] == "00065" and ul["categorieJuridiqueUniteLegale"] == "1000"
    assert str(ul["dateCreationUniteLegale"]) == "2000-09-26"
    assert ul["activitePrincipaleNAF25UniteLegale"] == ("32.12Y" if layout == "current" else None)
    assert ul["societeMissionUniteLegale"] is None
    assert ul["caractereEmployeurUniteLegale"] == ("N" if layout == "3.9" else None)
    et = rows_of(con, "SELECT * FROM etablissements ORDER BY siret")
    assert [e["siret"] for e in et][:2] == ["00032517500016", "00032517500024"]
    assert et[0]["departement"] == "987" and et[0]["region"] is None  # Polynésie: a COM, no région
    avignon = et[1]
    assert avignon["departement"] == "84" and avignon["region"] == "93" and avignon["epci"] == "248400251"
    if layout == "3.9":
        assert avignon["latitude"] is None and avignon["typeVoieEtablissement"] == "PL"
    else:
        assert avignon["latitude"] == pytest.approx(43.938, abs=0.01)
        assert avignon["longitude"] == pytest.approx(4.883, abs=0.01)
        assert avignon["identifiantAdresseEtablissement"] == "84007cvsr_B"
    assert avignon["etablissementSiege"] is False
    con.close()


def test_parquet_integer_nic_and_categorie_juridique_are_repadded(tmp_path):
    src = write_sample_stock(
        tmp_path / "stock",
        layout="current",
        fmt="parquet",
        etab_parquet_types={"nic": "BIGINT", "anneeEffectifsEtablissement": "BIGINT"},
    )
    # the UL file of that era too: nicSiegeUniteLegale and categorieJuridiqueUniteLegale BIGINT
    from stock_samples import ul_rows

    header = UNITES_LEGALES.header("current")
    write_parquet(
        src,
        UNITES_LEGALES,
        header,
        ul_rows("current"),
        {
            "nicSiegeUniteLegale": "BIGINT",
            "categorieJuridiqueUniteLegale": "BIGINT",
            "dateCreationUniteLegale": "DATE",
            "dateDernierTraitementUniteLegale": "TIMESTAMP",
        },
    )
    con = duckdb.connect()
    assert (
        con.sql(
            f"SELECT typeof(nic) FROM read_parquet('{src / ETABLISSEMENTS.parquet_name}') LIMIT 1"
        ).fetchone()[0]
        == "BIGINT"
    )
    con.close()
    data = tmp_path / "data"
    load_snapshot(data, [src], month="2024-04", force=True)
    con = connect(data)
    assert sorted(r[0] for r in con.sql("SELECT nic FROM etablissements").fetchall()) == [
        "00016",
        "00024",
        "00032",
    ]
    ul = con.sql(
        "SELECT nicSiegeUniteLegale, categorieJuridiqueUniteLegale, typeof(dateCreationUniteLegale) "
        "FROM unites_legales WHERE siren = '005410220'"
    ).fetchone()
    assert ul == ("00015", "1000", "DATE")
    con.close()


def test_nd_masking_junk_dates_foreign_and_unknown_communes(tmp_path):
    src = write_sample_stock(
        tmp_path / "stock", extra_etab=[ND_ROW, PARIS_ROW, FOREIGN_ROW, UNKNOWN_COMMUNE_ROW]
    )
    data = tmp_path / "data"
    load_snapshot(data, [src], month="2024-04", force=True)
    con = connect(data)
    by = {r["siret"]: r for r in rows_of(con, "SELECT * FROM etablissements")}
    nd = by["00032517500040"]
    assert nd["coordonneesMasquees"] is True
    assert nd["coordonneeLambertAbscisseEtablissement"] is None and nd["latitude"] is None
    assert nd["codePostalEtablissement"] == "[ND]" and nd["libelleVoieEtablissement"] == "[ND]"
    assert nd["libelleCommuneEtablissement"] == "AVIGNON" and nd["departement"] == "84"
    assert str(nd["dateDernierTraitementEtablissement"]) == "2024-03-31 23:10:00.123000"
    assert by["00032517500024"]["coordonneesMasquees"] is False
    paris = by["00032517500057"]
    assert paris["latitude"] == pytest.approx(48.85, abs=0.01) and paris["longitude"] == pytest.approx(
        2.35, abs=0.01
    )
    assert (paris["departement"], paris["region"], paris["epci"]) == ("75", "11", "200054781")
    assert str(paris["dateCreationEtablissement"]) == "5015-04-05" and str(paris["dateDebut"]) == "0001-01-16"
    foreign = by["00032517500065"]
    assert (
        foreign["departement"] == "99"
        and foreign["region"] is None
        and foreign["dateCreationEtablissement"] is None
    )
    unknown = by["00032517500073"]
    assert unknown["departement"] is None and unknown["epci"] is None
    # [ND] never leaks into typed columns; text columns keep it literally
    assert con.sql("SELECT count(*) FROM etablissements WHERE departement IS NULL").fetchone()[0] == 1
    con.close()


def test_unknown_column_is_kept_and_reported(tmp_path):
    src = write_sample_stock(tmp_path / "stock", extra_columns={"nouvelleColonneInsee": "X1"})
    data = tmp_path / "data"
    r = run_mirror("load", str(src), "--month", "2024-04", "--force", data_dir=data)
    assert r.returncode == 0, r.stderr
    assert "unknown column(s) kept as they are: nouvelleColonneInsee" in r.stderr
    con = connect(data)
    cols = con.sql("SELECT * FROM etablissements LIMIT 0").columns
    assert cols[-1] == "nouvelleColonneInsee" and cols.index("departement") < cols.index(
        "nouvelleColonneInsee"
    )
    assert con.sql("SELECT DISTINCT nouvelleColonneInsee FROM etablissements").fetchall() == [("X1",)]
    con.close()


def test_file_detection_and_user_errors(tmp_path):
    src = write_sample_stock(tmp_path / "stock")
    # a prefix trap: StockEtablissementHistorique is not StockEtablissement
    write_zip(
        src,
        __import__("mirror.core.schema", fromlist=["x"]).ETABLISSEMENTS_HISTORIQUE,
        ["siren", "nic", "siret", "dateFin", "dateDebut"],
        [],
    )
    (src / "StockEtablissement_utf8.zip.part").write_bytes(b"partial download")
    found, warnings = find_sources([src])
    assert found["etablissements"].path.name == "StockEtablissement_utf8.zip"
    assert found["etablissements_historique"].path.name == "StockEtablissementHistorique_utf8.zip"
    assert any("StockDoublons not found" in w for w in warnings)
    only_ul = tmp_path / "only_ul"
    only_ul.mkdir()
    os.link(src / UNITES_LEGALES.zip_name, only_ul / UNITES_LEGALES.zip_name)
    r = run_mirror("load", str(only_ul), data_dir=tmp_path / "data")
    assert r.returncode == 1 and r.stderr.strip().startswith("Error: StockEtablissement is missing")
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    with pytest.raises(MirrorError, match="invalid month"):
        load_snapshot(tmp_path / "data", [src], month="2024-13")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / UNITES_LEGALES.zip_name).write_bytes(b"not a zip")
    os.link(src / ETABLISSEMENTS.zip_name, bad / ETABLISSEMENTS.zip_name)
    with pytest.raises(MirrorError, match="not a readable zip"):
        load_snapshot(tmp_path / "data", [bad])
    assert not (tmp_path / "data" / "sirene.duckdb").exists()
    assert not list((tmp_path / "data" / "snapshots").iterdir())  # the failed build was cleaned


@pytest.mark.slow
def test_month_inferred_from_data_and_freshness_guard(tmp_path):
    src = write_sample_stock(tmp_path / "stock")
    data = tmp_path / "data"
    s = load_snapshot(data, [src])
    assert s["month"] == "2024-04" and "inferred" in s["month_source"]  # max dateDernierTraitement 2024-03-30
    with pytest.raises(MirrorError, match="stale stock for 2024-06 .month from --month.: latest"):
        load_snapshot(data, [src], month="2024-06")
    assert snapshot.current_snapshot(data)["month"] == "2024-04"


@pytest.mark.slow
def test_row_count_guard_refuses_a_shrunken_stock_unless_forced(tmp_path):
    data = tmp_path / "data"
    many = [dict(ETAB_2026[1], nic=f"{n:05d}", siret=f"000325175{n:05d}") for n in range(100, 160)]
    load_snapshot(data, [write_sample_stock(tmp_path / "big", extra_etab=many)], month="2024-04")
    small = write_sample_stock(tmp_path / "small", extra_etab=many[:57])  # 60 of 63 rows: 95 %
    with pytest.raises(MirrorError, match="fewer than 98 %"):
        load_snapshot(data, [small], month="2024-04")
    assert connect(data).sql("SELECT count(*) FROM etablissements").fetchone()[0] == 63
    r = run_mirror("load", str(small), "--month", "2024-04", "--force", data_dir=data, env=NO_GRACE)
    assert r.returncode == 0, r.stderr
    assert "forced: etablissements: 60 rows, fewer than 98 %" in r.stderr
    assert connect(data).sql("SELECT count(*) FROM etablissements").fetchone()[0] == 60
    # the old copy was deleted (no grace period here: see tests/load/test_readers.py)
    assert [p.name for p in (data / "snapshots").iterdir()] == ["2024-04.2"]


def test_partition_pruning_and_sorted_files(tmp_path):
    many = [dict(PARIS_ROW, nic=f"{n:05d}", siret=f"000325175{n:05d}") for n in range(99999, 99000, -1)]
    src = write_sample_stock(tmp_path / "stock", extra_etab=many + [FOREIGN_ROW, UNKNOWN_COMMUNE_ROW])
    data = tmp_path / "data"
    load_snapshot(data, [src], month="2024-04", force=True)
    parts = sorted(p.name for p in (data / "snapshots" / "2024-04" / "etablissements").iterdir())
    assert parts == [
        "departement=75",
        "departement=84",
        "departement=987",
        "departement=99",
        "departement=__HIVE_DEFAULT_PARTITION__",
    ]
    con = connect(data)
    plan = con.sql(
        "EXPLAIN ANALYZE SELECT max(siret) FROM etablissements WHERE departement = '75'"
    ).fetchall()[0][1]
    assert "Scanning Files: 1/5" in plan and "departement=75" in plan
    assert con.sql("SELECT count(*) FROM etablissements WHERE departement = '75'").fetchone()[0] == 999
    # each partition file is sorted by siret (the source was not), and compressed with zstd
    f = data / "snapshots" / "2024-04" / "etablissements" / "departement=75" / "data_0.parquet"
    sirets = [r[0] for r in con.sql(f"SELECT siret FROM read_parquet('{f}')").fetchall()]
    assert sirets == sorted(sirets)
    codecs = {r[0] for r in con.sql(f"SELECT compression FROM parquet_metadata('{f}')").fetchall()}
    assert codecs == {"ZSTD"}
    con.close()


def test_typed_relation_types_string_rows_like_the_snapshot(tmp_path):
    """The reuse contract for the daily deltas: all-VARCHAR rows, missing columns -> same typed rows."""
    src = write_sample_stock(tmp_path / "stock")
    data = tmp_path / "data"
    load_snapshot(data, [src], month="2024-04", force=True)
    con = duckdb.connect()
    row = {k: v for k, v in ETAB_2026[1].items() if k != "identifiantAdresseEtablissement"}
    cols = ", ".join(f"'{v}' AS \"{k}\"" for k, v in row.items())
    con.execute(f"CREATE TEMP VIEW api_rows AS SELECT {cols}")
    typed = typed_relation(con, "etablissements", "api_rows")
    got = dict(zip(typed.columns, typed.fetchone(), strict=True))
    cat = connect(data)
    snap_row = rows_of(cat, "SELECT * FROM etablissements WHERE siret = '00032517500024'")[0]
    assert typed.columns == cat.sql("SELECT * FROM etablissements LIMIT 0").columns
    assert got["identifiantAdresseEtablissement"] is None
    assert {k: v for k, v in got.items() if k != "identifiantAdresseEtablissement"} == {
        k: v for k, v in snap_row.items() if k != "identifiantAdresseEtablissement"
    }
    cat.close()
    con.close()


@pytest.mark.slow
def test_writer_lock_names_the_holder(tmp_path):
    src = write_sample_stock(tmp_path / "stock")
    data = tmp_path / "data"
    with snapshot.writer_lock(data, "pytest holder"):
        r = run_mirror("load", str(src), data_dir=data)
    assert r.returncode == 1
    assert f"pid {os.getpid()} (`pytest holder`" in r.stderr and "Traceback" not in r.stderr
    assert not (data / "snapshots").exists()  # refused before any work
    load_snapshot(data, [src], month="2024-04")  # released: the next writer gets it


def _duckdb_count(data: Path, cwd: Path) -> int:
    import subprocess

    from conftest import REPO

    out = subprocess.run(
        [
            str(REPO / ".venv" / "bin" / "duckdb"),
            "-readonly",
            "-csv",
            "-noheader",
            str(data / "sirene.duckdb"),
            "-c",
            "select count(*) from etablissements",
        ],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return int(out.stdout.strip())


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["build", "after-rename", "after-catalog"])
def test_crash_injection_keeps_previous_snapshot_and_rerun_finishes(tmp_path, stage):
    data = tmp_path / "data"
    load_snapshot(data, [write_sample_stock(tmp_path / "m1")], month="2024-04")
    second = write_sample_stock(tmp_path / "m2", extra_etab=[ND_ROW, PARIS_ROW])
    r = run_mirror(
        "load", str(second), "--month", "2024-05", "--force", data_dir=data, env={"MIRROR_CRASH_AT": stage}
    )
    assert r.returncode == 86, r.stderr
    # readers still get a complete snapshot: the old one, or the new one once the catalog switched
    expected = 5 if stage in ("after-catalog", "after-state") else 3
    assert _duckdb_count(data, tmp_path) == expected
    assert json.loads((data / "state.json").read_text())["snapshot"]["month"] == (
        "2024-05" if stage == "after-state" else "2024-04"
    )
    r = run_mirror(
        "load", str(second), "--month", "2024-05", "--force", "--keep", "1", data_dir=data, env=NO_GRACE
    )
    assert r.returncode == 0, r.stderr
    assert _duckdb_count(data, tmp_path) == 5
    assert not [p for p in (data / "snapshots").iterdir() if p.name.startswith(".")]
    assert len(list((data / "snapshots").iterdir())) == 1
    assert not [p for p in data.iterdir() if ".tmp-" in p.name]


@pytest.mark.slow
def test_retention_keeps_two_months_by_default(tmp_path, monkeypatch):
    monkeypatch.setenv(snapshot.GRACE_ENV, "0")  # superseded folders deleted at once (see test_readers.py)
    data = tmp_path / "data"
    src = write_sample_stock(tmp_path / "stock")
    for month in ("2024-04", "2024-05", "2024-06"):
        load_snapshot(data, [src], month=month, force=True)
    assert sorted(p.name for p in (data / "snapshots").iterdir()) == ["2024-05", "2024-06"]
    state = snapshot.read_state(data)
    assert state["snapshot"]["month"] == "2024-06" and state["previous_snapshots"][0]["month"] == "2024-05"


def test_zip_member_name_checked(tmp_path):
    src = tmp_path / "stock"
    write_sample_stock(src)
    with zipfile.ZipFile(src / UNITES_LEGALES.zip_name, "w") as zf:
        zf.writestr("readme.txt", "nothing here")
    with pytest.raises(MirrorError, match="no StockUniteLegale_utf8.csv inside"):
        load_snapshot(tmp_path / "data", [src], month="2024-04")


# ------------------------------------------------------------------------------------------------
# Generated stocks (mirror.synthetic.generate): every layout and format, row counts equal the source's
# ------------------------------------------------------------------------------------------------


def _source_rows(path: Path) -> int:
    con = duckdb.connect()
    if path.suffix == ".parquet":
        n = con.sql(f"SELECT count(*) FROM read_parquet('{path}')").fetchone()[0]
    else:
        with zipfile.ZipFile(path) as zf, zf.open(zf.namelist()[0]) as fh:
            n = sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b"")) - 1
    con.close()
    return n


@pytest.mark.slow
@pytest.mark.parametrize("layout,fmt", [("3.9", "zip"), ("3.11", "zip"), ("current", "parquet")])
def test_generated_stock_every_layout(tmp_path, layout, fmt):
    from mirror.synthetic.generate import generate_stock

    files = generate_stock(tmp_path / "stock", month="2026-10", scale=200, seed=3, fmt=fmt, layout=layout)
    data = tmp_path / "data"
    s = load_snapshot(data, [tmp_path / "stock"])
    assert s["month"] == "2026-10"
    assert s["layouts"]["unites_legales"] == s["layouts"]["etablissements"] == layout
    con = connect(data)
    for key, path in files.items():
        assert con.sql(f"SELECT count(*) FROM {key}").fetchone()[0] == _source_rows(path) == s["rows"][key]
    if layout == "3.9":
        assert s["rows"]["doublons"] == 0 and "doublons" not in files
    nics = con.sql(
        "SELECT count(*) FILTER (WHERE length(nic) <> 5 OR siret <> siren || nic) FROM etablissements"
    )
    assert nics.fetchone()[0] == 0
    geo = con.sql(
        "SELECT count(*) FILTER (WHERE departement IS NULL), count(latitude) FROM etablissements"
    ).fetchone()
    assert geo[0] == 0 and (geo[1] > 0) == (layout != "3.9")
    # latitude inside the right territory for a few départements
    for dep, lat_range in {"75": (48.8, 48.91), "974": (-21.4, -20.8), "971": (15.8, 16.6)}.items():
        bad = con.sql(
            f"SELECT count(*) FROM etablissements WHERE departement = '{dep}' AND latitude IS NOT NULL "
            f"AND latitude NOT BETWEEN {lat_range[0]} AND {lat_range[1]}"
        ).fetchone()[0]
        assert bad == 0
    con.close()


def test_projection_matches_pyproj():
    import numpy as np
    from pyproj import Transformer

    from mirror.core.projection import PARAMS, to_wgs84

    pts = {
        2154: (652469, 6862035),
        3163: (450000, 250000),
        5490: (650000, 1790000),
        2972: (350000, 540000),
        2975: (340000, 7670000),
        4467: (560000, 5200000),
        4471: (520000, 8580000),
        32701: (600000, 8540000),
        3297: (220000, 8050000),
    }
    assert set(pts) == set(PARAMS)
    for epsg, (x, y) in pts.items():
        xs, ys = np.array([x, x + 12345.6, x - 30000.0]), np.array([y, y - 5432.1, y + 40000.0])
        lat, lon = to_wgs84(xs, ys, epsg)
        lon2, lat2 = Transformer.from_crs(epsg, 4326, always_xy=True).transform(xs, ys)
        tol = 1e-5 if epsg == 3297 else 1e-7
        assert np.abs(lat - lat2).max() < tol and np.abs(lon - lon2).max() < tol, epsg
    lat, lon = to_wgs84(np.array([652469.0]), np.array([6862035.0]), 2154)
    assert lat[0] == pytest.approx(48.8566, abs=1e-3) and lon[0] == pytest.approx(2.3522, abs=1e-3)


@pytest.mark.slow
def test_projection_in_duckdb_threads_matches_known_points(tmp_path):
    """The WGS84 UDF runs on DuckDB's worker threads (one pyproj Transformer per thread) and lands each
    territory's points where they belong."""
    import duckdb

    from mirror.core.typed import prepare_connection

    pts = {  # EPSG: (x, y, expected lat, expected lon), a point of each territory
        2154: (652469, 6862035, 48.8566, 2.3522),  # Paris
        5490: (657000, 1794000, 16.2, -61.5),  # Guadeloupe
        2972: (353000, 545000, 4.93, -52.33),  # Cayenne
        2975: (338000, 7690000, -20.88, 55.45),  # Saint-Denis de La Réunion
        4471: (514000, 8588000, -12.78, 45.13),  # Mamoudzou
    }
    con = duckdb.connect()
    con.execute("SET threads = 4")
    prepare_connection(con)
    values = ", ".join(f"({x}, {y}, {e})" for e, (x, y, _, _) in pts.items())
    rows = con.execute(
        "SELECT e, avg(p.lat), avg(p.lon), count(*) FROM (SELECT e, mirror_wgs84(x + i % 7, y - i % 5, e) AS p "
        f"FROM (VALUES {values}) AS v(x, y, e), range(200000) AS r(i)) GROUP BY e"
    ).fetchall()
    assert len(rows) == len(pts)
    for e, lat, lon, n in rows:
        assert n == 200000
        assert lat == pytest.approx(pts[e][2], abs=0.05) and lon == pytest.approx(pts[e][3], abs=0.05), e


@pytest.mark.slow
def test_tables_are_in_key_order_by_row_group(tmp_path, monkeypatch):
    """Sorted sources keep their order (checked on row-group statistics); unsorted ones get sorted."""
    from stock_samples import ul_rows

    import mirror.load.stock as load_mod

    checks = []
    real_check = load_mod._row_groups_sorted
    monkeypatch.setattr(load_mod, "ROW_GROUP_SIZE", 2048)
    monkeypatch.setattr(
        load_mod, "_row_groups_sorted", lambda *a: checks.append(real_check(*a)) or checks[-1]
    )
    base = ul_rows("current")[1]
    rows = [dict(base, siren=f"{i:09d}", nicSiegeUniteLegale="00010") for i in range(1, 5001)]
    src = write_sample_stock(tmp_path / "stock")
    con = duckdb.connect()
    f = tmp_path / "data" / "snapshots" / "2024-04" / "unites_legales" / "data_0.parquet"
    for month, source_rows, was_sorted in (
        ("2024-04", rows, True),
        ("2024-05", rows[2500:] + rows[:2500], False),
    ):
        write_zip(src, UNITES_LEGALES, UNITES_LEGALES.header("current"), source_rows)
        checks.clear()
        load_snapshot(tmp_path / "data", [src], month=month, force=True)
        assert checks[0] is was_sorted  # first check: unites_legales
        f = tmp_path / "data" / "snapshots" / month / "unites_legales" / "data_0.parquet"
        sirens = [r[0] for r in con.sql(f"SELECT siren FROM read_parquet('{f}')").fetchall()]
        assert sirens == sorted(sirens) and len(sirens) == 5000
        stats = con.sql(
            f"SELECT stats_min_value, stats_max_value FROM parquet_metadata('{f}') "
            "WHERE path_in_schema = 'siren' ORDER BY row_group_id"
        ).fetchall()
        assert len(stats) == 3 and all(stats[i][0] >= stats[i - 1][1] for i in range(1, 3))
    con.close()


@pytest.mark.slow
def test_ctrl_c_during_the_build_leaves_the_previous_snapshot(tmp_path, stock_dir):
    import signal
    import subprocess
    import sys

    from conftest import REPO

    data = tmp_path / "data"
    load_snapshot(data, [write_sample_stock(tmp_path / "m1")], month="2024-04")
    env = caller_env(insee_key=True)
    env["MIRROR_PAUSE_AT"] = "build"  # the loader waits there (mid-build) until interrupted
    proc = subprocess.Popen(
        [sys.executable, "-m", "mirror", "load", str(stock_dir), "--data-dir", str(data), "-q"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr.readline().strip() == "[paused at build]"
    assert any(p.name.startswith(".building-") for p in (data / "snapshots").iterdir())
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Interrupted" in err and "Traceback" not in err
    assert [p.name for p in (data / "snapshots").iterdir()] == ["2024-04"]
    assert _duckdb_count(data, tmp_path) == 3


@pytest.mark.slow
def test_sorted_source_gives_sorted_partitions_in_one_pass(tmp_path, stock_dir, monkeypatch):
    """INSEE's order (siret) survives typing: every partition is written sorted straight from the stream
    (no partition re-sorted), in row groups of ROW_GROUP_SIZE, and holds the same rows as the source."""
    import mirror.load.stock as load_mod

    monkeypatch.setattr(load_mod, "ROW_GROUP_SIZE", 50)
    monkeypatch.setenv(THREADS_ENV, "2")  # two splitting threads, whatever the machine and the test workers
    resorted = []
    real_close = load_mod._PartitionWriter.close
    monkeypatch.setattr(
        load_mod._PartitionWriter, "close", lambda self: resorted.extend(self.unsorted) or real_close(self)
    )
    data = tmp_path / "data"
    load_snapshot(data, [stock_dir], month="2026-10", force=True)
    assert resorted == []
    con = duckdb.connect()
    root = data / "snapshots" / "2026-10" / "etablissements"
    files = [f for part in root.iterdir() for f in part.glob("*.parquet")]
    assert {f.name for f in files} >= {"data_0.parquet", "data_1.parquet"}  # one file per splitting thread
    big = max(files, key=lambda f: f.stat().st_size)
    for f in files:
        sirets = [r[0] for r in con.sql(f"SELECT siret FROM read_parquet('{f}')").fetchall()]
        assert sirets == sorted(sirets), f
    sizes = [
        r[0]
        for r in con.sql(
            f"SELECT row_group_num_rows FROM parquet_metadata('{big}') "
            "WHERE column_id = 0 ORDER BY row_group_id"
        ).fetchall()
    ]
    assert len(sizes) > 2 and max(sizes) == 50
    with connect(data) as c:
        assert (
            c.sql("SELECT count(*), count(DISTINCT siret) FROM etablissements").fetchone()
            == (c.sql("SELECT count(*) FROM etablissements_departements").fetchone()[0],) * 2
        )


@pytest.mark.slow
def test_derived_geography_equals_a_join_on_the_cog_lookup(tmp_path, stock_dir):
    """departement / region / epci come from list lookups keyed on the commune code (order-preserving);
    they equal a plain join on the COG lookup table for every établissement, including arrondissements,
    Corsica, overseas, foreign and unknown codes."""
    from mirror.core.typed import prepare_connection

    data = tmp_path / "data"
    load_snapshot(data, [stock_dir], month="2026-10", force=True)
    con = duckdb.connect()
    prepare_connection(con)
    glob = data / "snapshots" / "2026-10" / "etablissements" / "*" / "*.parquet"
    con.execute(
        f"CREATE TABLE e AS SELECT * FROM read_parquet('{glob}', hive_partitioning = true, "
        "hive_types = {'departement': 'VARCHAR'})"
    )
    kinds = con.sql(
        "SELECT count(DISTINCT left(codeCommuneEtablissement, 2)) FILTER (WHERE codeCommuneEtablissement "
        "LIKE '97%' OR codeCommuneEtablissement LIKE '2A%' OR codeCommuneEtablissement LIKE '2B%'), "
        "count(*) FILTER (WHERE departement = '99') FROM e"
    ).fetchone()
    assert kinds[0] >= 3 and kinds[1] > 0
    mismatches = con.sql(
        """
        SELECT count(*) FROM e
        LEFT JOIN _mirror_commune_geo g ON g.code = e.codeCommuneEtablissement
        LEFT JOIN _mirror_departements d ON d.code = CASE WHEN left(e.codeCommuneEtablissement, 2) IN ('97', '98')
            THEN left(e.codeCommuneEtablissement, 3) ELSE left(e.codeCommuneEtablissement, 2) END
        WHERE e.departement IS DISTINCT FROM CASE
                WHEN g.departement IS NOT NULL THEN g.departement
                WHEN e.codeCommuneEtablissement LIKE '99%' THEN '99'
                WHEN e.codeCommuneEtablissement IS NULL AND (e.codePaysEtrangerEtablissement IS NOT NULL
                     OR e.libellePaysEtrangerEtablissement IS NOT NULL) THEN '99'
                ELSE d.code END
           OR e.region IS DISTINCT FROM coalesce(g.region, d.region)
           OR e.epci IS DISTINCT FROM g.epci
        """
    ).fetchone()[0]
    assert mismatches == 0
    assert con.sql("SELECT count(*) FROM e WHERE epci IS NOT NULL").fetchone()[0] > 0


def test_both_forms_of_the_derived_geography_give_the_same_rows(loaded_stock):
    """typed_select_sql's list lookups (the loader: source order kept) and its joins (update days: fast to
    bind) give the same rows, on every établissement of a snapshot and on edge commune codes."""
    from mirror.core.schema import STOCK_FILES_BY_KEY
    from mirror.core.typed import prepare_connection, typed_select_sql

    con = duckdb.connect()
    prepare_connection(con)
    columns = ", ".join(
        f'CAST("{c}" AS VARCHAR) AS "{c}"' for c in STOCK_FILES_BY_KEY["etablissements"].columns
    )
    glob = loaded_stock / "snapshots" / "2026-10" / "etablissements" / "*" / "*.parquet"
    con.execute(f"CREATE TABLE raw AS SELECT {columns} FROM read_parquet('{glob}')")
    edge = [
        "2A004",
        "2B033",
        "75101",
        "13201",
        "99123",
        "97101",
        "98735",
        "97501",
        "2A999",
        "ABCDE",
        "1234",
        None,
    ]
    con.executemany(
        "INSERT INTO raw (siret, codeCommuneEtablissement) VALUES (?, ?)",
        [(f"edge{i}", code) for i, code in enumerate(edge)],
    )
    types = dict.fromkeys(STOCK_FILES_BY_KEY["etablissements"].columns, "VARCHAR")
    lists, joins = (typed_select_sql("etablissements", "raw", types, keep_order=k) for k in (True, False))
    (rows,) = con.execute("SELECT count(*) FROM raw").fetchone()
    for a, b in ((lists, joins), (joins, lists)):
        assert con.execute(f"SELECT count(*) FROM (({a}) EXCEPT ALL ({b}))").fetchone() == (0,)
    (located,) = con.execute(f"SELECT count(departement) FROM ({joins})").fetchone()
    assert rows > 1000 and located > rows * 0.9


@pytest.mark.slow
def test_write_error_while_splitting_partitions_is_one_line_and_keeps_the_previous_snapshot(
    tmp_path, monkeypatch
):
    """An I/O error in the partition writers (e.g. a full disk) is a MirrorError naming the table, the
    build folder is removed and the current snapshot still answers."""
    import mirror.load.stock as load_mod

    src = write_sample_stock(tmp_path / "stock")
    data = tmp_path / "data"
    load_snapshot(data, [src], month="2024-04", force=True)

    def full(self, dep):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(load_mod._PartitionWriter, "_flush", full)
    with pytest.raises(MirrorError, match="cannot write etablissements into .*No space left on device"):
        load_snapshot(data, [src], month="2024-05", force=True)
    assert sorted(p.name for p in (data / "snapshots").iterdir()) == ["2024-04"]
    with connect(data) as con:
        assert con.sql("SELECT count(*) FROM etablissements").fetchone()[0] > 0
