"""`mirror batch`: input order and duplicates kept, per-row status, both levels, CSV input, CLI."""

from __future__ import annotations

import csv
import json
import random

import pyarrow.parquet as pq
import pytest
from conftest import run_mirror
from export_helpers import build_catalog, read_raw, write_edge_stock

from mirror.core.errors import MirrorError
from mirror.core.identifiers import luhn_check_digit
from mirror.core.schema import ETABLISSEMENTS, UNITES_LEGALES
from mirror.export.batch import STATUSES, batch, classify


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("batch")
    stock = write_edge_stock(root / "stock", n_units=200, seed=9)
    opener = build_catalog(root / "data", stock)
    con = opener()
    uls = {r["siren"]: r for r in read_raw(stock, UNITES_LEGALES)}
    ets = {r["siret"]: r for r in read_raw(stock, ETABLISSEMENTS)}
    yield {"con": con, "data": root / "data", "uls": uls, "ets": ets, "out": root}
    con.close()


def unknown_siren(world) -> str:
    for body in range(10_000_000, 10_000_100):
        s = f"{body:08d}" + luhn_check_digit(f"{body:08d}")
        if s not in world["uls"]:
            return s
    raise AssertionError


def sample_inputs(world) -> tuple[list[str], list[str]]:
    """(input lines, expected status per line)."""
    rng = random.Random(1)
    o_unit = next(s for s, u in world["uls"].items() if u["statutDiffusionUniteLegale"] == "O")
    p_unit = next(s for s, u in world["uls"].items() if u["statutDiffusionUniteLegale"] == "P")
    a_siret = rng.choice(sorted(world["ets"]))
    missing = unknown_siren(world)
    lines = [
        o_unit,
        "12345678",  # too short
        p_unit,
        o_unit,  # duplicate, kept
        f"{o_unit[:3]} {o_unit[3:6]} {o_unit[6:]}",  # spaces inside
        missing,
        o_unit[:8] + str((int(o_unit[8]) + 1) % 10),  # Luhn fails
        a_siret,  # a SIRET at unit level: its unit
        "ABCDEFGHI",
        "1234567890123456789",
    ]
    a_status = "non_diffusible" if world["uls"][a_siret[:9]]["statutDiffusionUniteLegale"] == "P" else "ok"
    statuses = [
        "ok",
        "invalid",
        "non_diffusible",
        "ok",
        "ok",
        "not_found",
        "invalid",
        a_status,
        "invalid",
        "invalid",
    ]
    return lines, statuses


@pytest.mark.slow
def test_unit_level_order_duplicates_and_status(world):
    lines, statuses = sample_inputs(world)
    src = world["out"] / "ids.txt"
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = world["out"] / "ids.csv"
    summary = batch(
        world["con"], src, out, columns=["siren", "denominationUniteLegale", "categorieJuridiqueUniteLegale"]
    )
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert [r["input"] for r in rows] == lines
    assert [r["status"] for r in rows] == statuses
    for r in rows:
        if r["status"] in ("ok", "non_diffusible"):
            u = world["uls"][r["input"].replace(" ", "")[:9]]
            assert r["siren"] == u["siren"]
            assert r["categorieJuridiqueUniteLegale"] == u["categorieJuridiqueUniteLegale"]
        else:
            assert r["siren"] == "" and r["denominationUniteLegale"] == ""
    assert summary["rows"] == len(lines)
    assert summary["statuses"] == {s: statuses.count(s) for s in STATUSES}


def test_etablissement_level_csv_column_input(world):
    """SIRETs give their établissement, SIRENs their siège; CSV input with ';' and a named column."""
    sirets = sorted(world["ets"])[:5]
    siren = sirets[0][:9]
    siege = siren + world["uls"][siren]["nicSiegeUniteLegale"]
    src = world["out"] / "portfolio.csv"
    with src.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, delimiter=";")
        w.writerow(["client", "Siret"])
        for i, s in enumerate([*sirets, siren, "", sirets[1]]):
            w.writerow([f"client {i}", s])
    out = world["out"] / "portfolio.parquet"
    batch(world["con"], src, out, level="etablissement", column="siret", columns=["siret", "libelleCommune"])
    t = pq.read_table(out).to_pylist()
    assert [r["input"] for r in t] == [*sirets, siren, "", sirets[1]]
    assert [r["siret"] for r in t] == [*sirets, siege, None, sirets[1]]
    assert t[6]["status"] == "invalid"
    for r in t[:5]:
        assert r["status"] == (
            "non_diffusible" if world["ets"][r["siret"]]["statutDiffusionEtablissement"] == "P" else "ok"
        )


def test_batch_xlsx_and_missing_column(world):
    src = world["out"] / "few.txt"
    src.write_text("\n".join(sorted(world["uls"])[:3]), encoding="utf-8")
    out = world["out"] / "few.xlsx"
    assert batch(world["con"], src, out, with_libelles=True)["rows"] == 3
    named = world["out"] / "named-columns.csv"  # its own file: tests of a module may run on other workers
    named.write_text("client;Siret\nclient 0;" + sorted(world["ets"])[0] + "\n", encoding="utf-8")
    with pytest.raises(MirrorError, match="no column 'nope'"):
        batch(world["con"], named, world["out"] / "x.csv", column="nope")
    with pytest.raises(MirrorError, match="not found"):
        batch(world["con"], world["out"] / "absent.txt", world["out"] / "x.csv")


def test_classify_la_poste_siret():
    # La Poste SIRETs may fail Luhn but have a digit sum divisible by 5.
    t = classify(["35600000000048", "35600000000049"]).to_pylist()
    assert t[0]["valid"] and t[0]["siret"] == "35600000000048"
    assert not t[1]["valid"]


def test_cli_batch(world):
    lines, statuses = sample_inputs(world)
    src = world["out"] / "cli.txt"
    src.write_text("\n".join(lines), encoding="utf-8")
    out = world["out"] / "cli.csv"
    proc = run_mirror(
        "batch",
        str(src),
        "-o",
        str(out),
        "--columns",
        "siren,libelleCategorieJuridiqueUniteLegale",
        data_dir=world["data"],
    )
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert [r["status"] for r in rows] == statuses
    assert f"invalid {statuses.count('invalid')}" in proc.stderr
    bad = run_mirror("batch", str(src), "-o", str(world["out"] / "x.dat"), data_dir=world["data"])
    assert bad.returncode == 2 and "cannot tell the format" in bad.stderr


def test_batch_jsonl_documents_one_line_per_input(world):
    """JSON Lines: the v3 document of each identifier, or its error body, in input order."""
    import json

    lines, statuses = sample_inputs(world)
    src = world["out"] / "docs.txt"
    src.write_text("\n".join(lines), encoding="utf-8")
    out = world["out"] / "docs.jsonl"
    summary = batch(world["con"], src, out, fmt="jsonl")
    docs = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(docs) == len(lines) == summary["rows"]
    for raw, status, doc in zip(lines, statuses, docs, strict=True):
        ident = raw.replace(" ", "")
        if status == "invalid":
            assert doc["errors"][0]["title"] == "Entité non traitable"
        elif status == "not_found":
            assert doc["errors"][0]["title"] == "Entité non trouvée"
        elif len(ident) == 9:
            assert doc["data"]["siren"] == ident
        else:
            assert doc["data"]["siret"] == ident
    assert summary["statuses"]["invalid"] == statuses.count("invalid")


@pytest.mark.parametrize("level", ["etablissement", "unite-legale"])
def test_the_batch_joins_are_hash_joins(world, level):
    """Every join of a batch's queries (the status count and the rows) is on an equality, so DuckDB hashes
    it: a nested-loop join costs input rows times the mirror's rows (200,000 SIRETs once took 13 minutes)."""
    from mirror.export.batch import build_batch_query

    con = world["con"]
    siret = sorted(world["ets"])[0]
    con.register("_plan_input", classify([siret, siret[:9], "12345678"]))
    try:
        for columns, dedupe in (([], False), (["siret" if level == "etablissement" else "siren"], True)):
            query = build_batch_query(con, level, columns, False, "_plan_input", dedupe=dedupe)
            plan = "\n".join(r[1] for r in con.execute(f"EXPLAIN {query.sql}").fetchall())
            assert "HASH_JOIN" in plan
            assert "NESTED_LOOP" not in plan and "BLOCKWISE_NL" not in plan and "CROSS_PRODUCT" not in plan, (
                plan
            )
    finally:
        con.unregister("_plan_input")


def test_a_one_column_list_with_a_header_keeps_its_raw_lines(world):
    """A list of identifiers under a header line (`siren`): --keep-columns carries each raw line, spaces
    included, under the header's name (`siren_input`, as the output has a `siren`), in CSV and JSON Lines."""
    lines, statuses = sample_inputs(world)
    src = world["out"] / "listed.txt"
    src.write_text("siren\n" + "\n".join(f" {line}" for line in lines) + "\n", encoding="utf-8")
    out = world["out"] / "listed.csv"
    summary = batch(world["con"], src, out, columns=["siren"], keep_columns=True)
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert list(rows[0]) == ["siren_input", "status", "siren"]
    assert [r["siren_input"] for r in rows] == [f" {line}" for line in lines]
    assert [r["status"] for r in rows] == statuses and summary["input"]["detected"]
    docs = world["out"] / "listed.jsonl"
    batch(world["con"], src, docs, keep_columns=True)
    inputs = [json.loads(line)["input"] for line in docs.read_text(encoding="utf-8").splitlines()]
    assert inputs == [{"siren": f" {line}"} for line in lines]
