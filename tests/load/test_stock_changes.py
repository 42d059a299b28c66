"""The comparison of a new monthly stock with the state it replaces (mirror.load.stock_changes): two
consecutive generated months (the shared stock of 2026-10 and the 2026-11 stock its change stream writes,
from which a few units leave the register and where doublons are added and dropped), loaded by the real
loader; `mirror changes` must list exactly the differences of the two snapshots, field by field, with source
"stock", and a watchlist must receive them once."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from datetime import date
from pathlib import Path

import duckdb
import pytest
from conftest import private_mirror, run_mirror

from mirror.core.changes import STOCK_CHANGES_FILE, TABLES, compared_columns
from mirror.core.datadir import GRACE_ENV, read_state, write_json_atomic
from mirror.core.schema import STOCK_FILES_BY_KEY
from mirror.load.stock import load_snapshot
from mirror.serve.changes import changes
from mirror.synthetic.upstream.changes import DailyChanges
from mirror.watch import lists as watch

MONTH, NEXT = "2026-10", "2026-11"
DAY = date(2026, 11, 1)  # the coverage of a regular 2026-11 stock: the day its changes are listed under
pytestmark = pytest.mark.slow  # a month of changes written as a stock, then loaded


def _read(folder: Path, key: str) -> list[dict]:
    """The rows of the zipped CSV of table `key` in `folder`."""
    sf = STOCK_FILES_BY_KEY[key]
    with zipfile.ZipFile(folder / sf.zip_name) as zf:
        return list(csv.DictReader(io.StringIO(zf.read(sf.csv_member).decode("utf-8"))))


def _rewrite(folder: Path, key: str, keep, extra: list[dict] = ()) -> list[dict]:
    """Rewrites the zipped CSV of table `key` in `folder` with the rows `keep(row)` accepts plus `extra`."""
    sf = STOCK_FILES_BY_KEY[key]
    path = folder / sf.zip_name
    rows = _read(folder, key)
    kept = [r for r in rows if keep(r)] + list(extra)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(sf.columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(kept)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(sf.csv_member, out.getvalue())
    return rows


@pytest.fixture(scope="module")
def next_stock(stock_dir, tmp_path_factory) -> dict:
    """The 2026-11 stock: the shared 2026-10 stock plus every change of its month (the change stream's
    oracle), minus four units the days never touched (they left the register, établissements and
    history with them), with two doublons added and the first one of 2026-10 dropped."""
    out = tmp_path_factory.mktemp("stock-2026-11")
    dc = DailyChanges(stock_dir, MONTH, seed=3)
    try:
        dc.write_next_month_stock(out)
        touched = {r["siren"] for d in dc.days for r in dc.changes_for(d).unites_legales}
    finally:
        dc.close()
    with zipfile.ZipFile(out / STOCK_FILES_BY_KEY["unites_legales"].zip_name) as zf:
        text = zf.read(STOCK_FILES_BY_KEY["unites_legales"].csv_member).decode("utf-8")
    sirens = [r["siren"] for r in csv.DictReader(io.StringIO(text))]
    quiet = [s for s in sirens if s not in touched]
    removed, keepers = set(quiet[10:14]), quiet[20:22]
    for key in ("unites_legales", "etablissements", "unites_legales_historique", "etablissements_historique"):
        _rewrite(out, key, lambda r: r["siren"] not in removed)
    added = [
        {"siren": keepers[0], "sirenDoublon": sorted(removed)[0], "dateDernierTraitementDoublon": "2026-10-30T09:00:00"},
        {"siren": keepers[1], "sirenDoublon": quiet[30], "dateDernierTraitementDoublon": "2026-10-30T09:00:00"},
    ]  # fmt: skip
    before = _rewrite(out, "doublons", lambda r: True)
    dropped = before[0]
    _rewrite(out, "doublons", lambda r: r != dropped, added)
    sirets = [r["siret"] for r in _read(out, "etablissements")[:2]]
    link = {"siretEtablissementPredecesseur": sirets[0], "siretEtablissementSuccesseur": sirets[1],
            "dateLienSuccession": "2026-10-12", "transfertSiege": "true", "continuiteEconomique": "false",
            "dateDernierTraitementLienSuccession": "2026-10-29T08:15:00"}  # fmt: skip
    unlinked = _read(stock_dir, "liens_succession")[0]
    _rewrite(out, "liens_succession", lambda r: r != unlinked, [link])
    return {
        "dir": out, "removed": removed, "added": added, "dropped": dropped, "touched": touched,
        "link": link, "unlinked": unlinked,
    }  # fmt: skip


@pytest.fixture(scope="module")
def loaded_next(loaded_stock, next_stock, tmp_path_factory) -> dict:
    """A private copy of the shared 2026-10 mirror with a watchlist, then the 2026-11 stock loaded by the
    real loader and the watchlists collected as `mirror sync` collects them."""
    data = private_mirror(loaded_stock, tmp_path_factory.mktemp("stock-changes") / "data")
    first = read_state(data)["snapshot"]["dir"]
    watched = (
        sorted(next_stock["removed"])[:2]
        + sorted(next_stock["touched"])[:3]
        + [next_stock["added"][0]["siren"]]
    )
    watch.add(data, "clients", watched)
    load_snapshot(data, [next_stock["dir"]], month=NEXT)
    collected = watch.collect(data)
    return {"data": data, "first": first, "watched": watched, "collected": collected}


def _snapshot_rows(con, folder: Path, table: str) -> dict[str, dict]:
    """{key: {variable: value as text}} of a snapshot folder's Parquet (read directly, not through the
    catalog): the oracle's side."""
    key = TABLES[table][0]
    pattern = folder / table / ("*/*.parquet" if table == "etablissements" else "*.parquet")
    columns = compared_columns(table)
    cols = ", ".join(f'CAST("{c}" AS VARCHAR)' for c in columns)
    return {
        r[0]: dict(zip(columns, r[1:], strict=True))
        for r in con.execute(
            f"SELECT {key}, {cols} FROM read_parquet('{pattern}', union_by_name = true)"
        ).fetchall()
    }


def test_changes_list_exactly_the_differences_of_the_two_snapshots(loaded_next, next_stock, stock_dir):
    data = loaded_next["data"]
    snapshots = data / "snapshots"
    state = read_state(data)
    assert state["snapshot"]["month"] == NEXT
    assert not (
        snapshots / loaded_next["first"] / STOCK_CHANGES_FILE
    ).exists()  # the first load: nothing to compare
    rows = changes(data, date(2026, 10, 1)).to_pylist()
    assert rows and {r["source"] for r in rows} == {"stock"} and {r["day"] for r in rows} == {DAY}
    assert state["snapshot"]["stock_changes"] == len(rows)
    assert changes(data, date(2026, 10, 1), date(2026, 10, 31)).num_rows == 0  # before the stock's day

    con = duckdb.connect()
    expected = set()
    for table, (_key, level, _created, _hist) in TABLES.items():
        old = _snapshot_rows(con, snapshots / loaded_next["first"], table)
        new = _snapshot_rows(con, snapshots / state["snapshot"]["dir"], table)
        expected |= {(k, level, "removed", None, None, None) for k in old.keys() - new.keys()}
        expected |= {(k, level, "creation", None, None, None) for k in new.keys() - old.keys()}
        for k in old.keys() & new.keys():
            for field, value in new[k].items():
                if value != old[k][field]:
                    shown = "[ND]" if value == "[ND]" else old[k][field]
                    expected.add((k, level, "?", field, shown, value))
    con.close()
    for pair, sign in [(p, "new") for p in next_stock["added"]] + [(next_stock["dropped"], "old")]:
        for ident, field, other in ((pair["siren"], "sirenDoublon", pair["sirenDoublon"]),
                                    (pair["sirenDoublon"], "siren", pair["siren"])):  # fmt: skip
            values = (None, other) if sign == "new" else (other, None)
            expected.add((ident, "unite_legale", "doublon", field, *values))
    triple = ("siretEtablissementPredecesseur", "siretEtablissementSuccesseur", "dateLienSuccession")
    links_before = {tuple(r[c] for c in triple) for r in _read(stock_dir, "liens_succession")}
    links_after = {tuple(r[c] for c in triple) for r in _read(next_stock["dir"], "liens_succession")}
    assert tuple(next_stock["link"][c] for c in triple) in links_after - links_before
    assert tuple(next_stock["unlinked"][c] for c in triple) in links_before - links_after
    for links, sign in ((links_after - links_before, "new"), (links_before - links_after, "old")):
        for pred, succ, _day in links:
            for ident, field, other in ((pred, "siretEtablissementSuccesseur", succ),
                                        (succ, "siretEtablissementPredecesseur", pred)):  # fmt: skip
                values = (None, other) if sign == "new" else (other, None)
                expected.add((ident, "etablissement", "succession", field, *values))
    got = {
        (r["identifier"], r["level"],
         r["kind"] if r["kind"] in ("removed", "creation", "doublon", "succession") else "?",
         r["field"], r["old_value"], r["new_value"])
        for r in rows
    }  # fmt: skip
    assert len(got) == len(rows)  # one row per change
    assert got == expected
    link = next_stock["link"]
    mine = [r for r in rows if r["kind"] == "succession" and link["siretEtablissementPredecesseur"]
            in (r["new_value"], r["identifier"]) and link["siretEtablissementSuccesseur"]
            in (r["new_value"], r["identifier"])]  # fmt: skip
    assert len(mine) == 2
    assert {(str(r["effective_date"]), str(r["processing_date"])) for r in mine} == {
        ("2026-10-12", "2026-10-29 08:15:00")
    }
    kinds = {r["kind"] for r in rows}
    assert {
        "removed",
        "creation",
        "doublon",
        "succession",
        "cessation",
        "fermeture",
        "name",
        "activity",
        "address",
    } <= kinds
    removed_units = {r["identifier"] for r in rows if r["kind"] == "removed" and r["level"] == "unite_legale"}
    assert removed_units == next_stock["removed"]
    for r in rows:
        if r["field"] == "etatAdministratifUniteLegale":
            assert r["kind"] == ("cessation" if r["new_value"] == "C" else "reactivation")

    # filters apply to the stock rows as to the days'
    one = sorted(next_stock["removed"])[0]
    mine = changes(data, DAY, ids=[one]).to_pylist()
    assert {r["identifier"][:9] for r in mine} == {one}
    assert {"removed", "doublon"} <= {r["kind"] for r in mine}
    assert all(r["kind"] == "doublon" for r in changes(data, DAY, kinds=["doublon"]).to_pylist())
    assert changes(data, DAY, sources=("daily",)).num_rows == 0


def test_a_watchlist_receives_the_stock_changes_once(loaded_next):
    data, watched = loaded_next["data"], loaded_next["watched"]
    (summary,) = loaded_next["collected"]
    assert summary.stocks == 1 and "1 new monthly stock" in summary.format()
    snapshot = read_state(data)["snapshot"]
    alerts = watch.alerts_dir(data, "clients")
    assert [p.name for p in alerts.glob("*.jsonl")] == [f"stock-{snapshot['dir']}.jsonl"]
    got = [json.loads(line) for line in (alerts / f"stock-{snapshot['dir']}.jsonl").read_text().splitlines()]
    expected = json.loads(json.dumps(changes(data, DAY, ids=watched).to_pylist(), default=str))
    assert got == expected and summary.changes == len(got) > 0
    assert {r["identifier"][:9] for r in got} <= set(watched)
    assert watch.get(data, "clients")["stock_through"] == snapshot["loaded_at"]
    (again,) = watch.collect(data)  # nothing new: nothing written again
    assert again.stocks == 0 and again.changes == 0

    # a webhook receives the stock's alerts file once, named by the snapshot, under its idempotency key
    posted = []

    class Answer:
        status_code = 204

    def post(url, json, headers, timeout):
        posted.append((json, headers["Idempotency-Key"]))
        return Answer()

    entry = watch.add(data, "hooked", watched, webhook="http://127.0.0.1:9/hook")
    entry["stock_through"] = read_state(data)["previous_snapshots"][0]["loaded_at"]  # listed before the load
    write_json_atomic(watch.lists_dir(data) / "hooked.json", entry)
    summaries = {c.name: c for c in watch.collect(data, post=post)}
    assert summaries["hooked"].stocks == 1 and summaries["hooked"].delivered == 1
    assert posted == [
        (
            {"watchlist": "hooked", "snapshot": snapshot["dir"], "changes": got},
            f"hooked/stock-{snapshot['dir']}",
        )
    ]
    watch.collect(data, post=post)
    assert len(posted) == 1  # delivered once


def test_a_crash_before_publication_shows_no_stock_change_and_a_rerun_computes_them(
    loaded_stock, loaded_next, next_stock, tmp_path
):
    data = private_mirror(loaded_stock, tmp_path / "data")
    args = ("load", str(next_stock["dir"]), "--month", NEXT)
    crashed = run_mirror(*args, data_dir=data, env={"MIRROR_CRASH_AT": "before-rename", GRACE_ENV: "0"})
    assert crashed.returncode == 86, crashed.stderr
    assert read_state(data)["snapshot"]["month"] == MONTH
    assert changes(data, date(2026, 10, 1)).num_rows == 0
    left = list((data / "snapshots").glob(f"*/{STOCK_CHANGES_FILE}"))
    assert [p.parent.name[: len(".building-")] for p in left] == [".building-"]  # only in the build folder
    again = run_mirror(*args, data_dir=data, env={GRACE_ENV: "0"})
    assert again.returncode == 0, again.stderr
    reference = changes(loaded_next["data"], date(2026, 10, 1))
    assert changes(data, date(2026, 10, 1)).to_pylist() == reference.to_pylist()


def test_a_unit_masked_later_is_masked_in_its_stock_changes(loaded_next, tmp_path):
    """A person who opts out of diffusion after the stock (a later delta day makes the unit P, the field
    [ND]): the stock rows of that field show [ND] too, never the value it had."""
    from mirror.catalog import build as catalog
    from mirror.catalog.build import connect
    from mirror.core.schema import DELTA_TABLES, MASKABLE_COLUMNS
    from mirror.core.typed import prepare_connection
    from mirror.deltas import store as deltas

    data = private_mirror(loaded_next["data"], tmp_path / "data")
    rows = changes(data, DAY, sources=("stock",)).to_pylist()
    target = next(
        r
        for r in rows
        if r["level"] == "unite_legale"
        and r["field"] in MASKABLE_COLUMNS["unites_legales"]
        and r["new_value"] not in (None, "[ND]")
        and r["old_value"] not in (None, "[ND]")
    )
    siren, field = target["identifier"], target["field"]
    con = duckdb.connect()
    prepare_connection(con)
    source = connect(data)
    try:
        typed = {}
        for table in DELTA_TABLES:
            key = "siren" if table != "liens_succession" else None
            where = "siren = ?" if key else "false"
            rel = source.execute(
                f"SELECT * FROM {table} WHERE {where}", [siren] if key else []
            ).to_arrow_table()
            con.register(f"{table}_src", rel)
            select = f"SELECT * FROM {table}_src"
            if table == "unites_legales":
                select = (
                    f"SELECT * REPLACE ('P' AS statutDiffusionUniteLegale, '[ND]' AS \"{field}\", "
                    "TIMESTAMP '2026-11-02 10:00:00' AS dateDernierTraitementUniteLegale) FROM unites_legales_src"
                )
            con.execute(f"CREATE TABLE day_{table} AS {select}")
            typed[table] = f"day_{table}"
    finally:
        source.close()
    deltas.write_day(data, date(2026, 11, 2), 1, con, typed)
    con.close()
    catalog.rebuild(data, deltas.compact_for(data))
    (masked,) = [
        r for r in changes(data, DAY, ids=[siren], sources=("stock",)).to_pylist() if r["field"] == field
    ]
    assert (masked["old_value"], masked["new_value"]) == ("[ND]", "[ND]")
    daily = changes(data, DAY, ids=[siren], sources=("daily",)).to_pylist()
    assert any(r["field"] == "statutDiffusionUniteLegale" and r["new_value"] == "P" for r in daily)
    assert all(
        target["old_value"] not in (r["old_value"], r["new_value"])
        for r in changes(data, DAY, ids=[siren]).to_pylist()
        if r["field"] == field
    )


def test_a_comparison_that_cannot_be_made_never_stops_the_new_stock(loaded_stock, next_stock, tmp_path):
    data = private_mirror(loaded_stock, tmp_path / "data")
    for part in (data / "snapshots" / MONTH / "unites_legales").glob("*.parquet"):
        part.unlink()  # the state the new stock replaces is damaged on disk
    summary = load_snapshot(data, [next_stock["dir"]], month=NEXT)
    assert read_state(data)["snapshot"]["month"] == NEXT
    assert any("not compared with the previous state" in w for w in summary["warnings"])
    assert "stock_changes" not in read_state(data)["snapshot"]
    assert changes(data, date(2026, 10, 1)).num_rows == 0
