"""`mirror changes` / mirror.serve.changes: a real mirror synced from the local upstream, then a week of daily
changes applied by the real `mirror update`; the listed changes must replay the snapshot into the mirror's
current state, field by field."""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import built_once, run_mirror

from mirror.catalog.build import connect, snapshot_select
from mirror.serve.changes import KINDS, changes, compared_columns
from mirror.synthetic.upstream import server

MONTH, SCALE, SEED = "2026-10", 600, 21
SINCE = date(2026, 10, 1)
ENV = {"INSEE_API_KEY": server.DEFAULT_API_KEY}
KEYS = {"unites_legales": "siren", "etablissements": "siret"}
LEVELS = {"unites_legales": "unite_legale", "etablissements": "etablissement"}


@pytest.fixture(scope="module")
def mirror(tmp_path_factory) -> Path:
    """A mirror synced on 2026-10-01, then updated through 2026-10-07 (read only)."""

    def build(root: Path) -> None:
        up_data, data = root / "upstream", root / "mirror"
        server.prepare_stock(up_data, MONTH, SCALE, SEED)
        for today, command in ((date(2026, 10, 1), "sync"), (date(2026, 10, 8), "update")):
            up = server.start(up_data, MONTH, scale=SCALE, seed=SEED, today=today)
            try:
                urls = ["--insee-url", up.insee_url, "--rate", "100000", "-q"]
                if command == "sync":
                    urls += ["--datagouv-url", up.datagouv_url]
                done = run_mirror(command, *urls, data_dir=data, env=ENV)
                assert done.returncode == 0, done.stderr
            finally:
                up.close()

    return built_once(tmp_path_factory, "changes-mirror", build) / "mirror"


@pytest.mark.slow
def test_the_changes_replay_the_snapshot_into_the_current_state(mirror):
    """Per key and variable, the first old value is the snapshot's and the last new value the mirror's
    current one; a key without a snapshot row starts with a creation; every kind is a known one."""
    rows = changes(mirror, SINCE).to_pylist()
    assert rows and {r["kind"] for r in rows} <= set(KINDS)
    assert {"creation", "cessation", "fermeture", "name", "activity", "address"} <= {r["kind"] for r in rows}
    con = connect(mirror)
    try:
        for table, key in KEYS.items():
            mine = [r for r in rows if r["level"] == LEVELS[table] and r["kind"] != "succession"]
            columns = compared_columns(table)
            cols = ", ".join(f'CAST("{c}" AS VARCHAR) AS "{c}"' for c in columns)
            ids = sorted({r["identifier"] for r in mine})
            current = {
                r[0]: dict(zip(columns, r[1:], strict=True))
                for r in con.execute(f"SELECT {key}, {cols} FROM {table} WHERE {key} IN (SELECT unnest(?))", [ids])
                .fetchall()
            }  # fmt: skip
            snapshot = {
                r[0]: dict(zip(columns, r[1:], strict=True))
                for r in con.execute(
                    f"SELECT {key}, {cols} FROM ({snapshot_select(con, mirror, table)}) WHERE {key} IN (SELECT unnest(?))",
                    [ids],
                ).fetchall()
            }
            first, last = {}, {}
            for r in mine:
                if r["kind"] == "creation":
                    assert r["identifier"] not in snapshot, r
                    continue
                first.setdefault((r["identifier"], r["field"]), r["old_value"])
                last[(r["identifier"], r["field"])] = r["new_value"]
            assert first
            for (ident, field), old in first.items():
                if ident in snapshot and snapshot[ident][field] != "[ND]" and current[ident][field] != "[ND]":
                    assert old == snapshot[ident][field], (ident, field)
            for (ident, field), new in last.items():
                if current[ident][field] != "[ND]":
                    assert new == current[ident][field], (ident, field)
                else:
                    assert new == "[ND]" and first[(ident, field)] == "[ND]", (ident, field)
    finally:
        con.close()


@pytest.mark.slow
def test_successions_are_the_links_the_days_added_on_both_sides(mirror):
    """`succession` rows: for each lien de succession of the views that the snapshot does not hold, one row
    for the predecessor and one for the successor, dated by the link; a SIREN asks for its links too."""
    rows = [r for r in changes(mirror, SINCE).to_pylist() if r["kind"] == "succession"]
    con = connect(mirror)
    try:
        link = "siretEtablissementPredecesseur, siretEtablissementSuccesseur, dateLienSuccession"
        snapshot = set(
            con.execute(f"SELECT {link} FROM ({snapshot_select(con, mirror, 'liens_succession')})").fetchall()
        )
        added = set(con.execute(f"SELECT {link} FROM liens_succession").fetchall()) - snapshot
    finally:
        con.close()
    assert added, "the week of days brings new liens de succession"
    expected = sorted(
        [(p, "siretEtablissementSuccesseur", s, d) for p, s, d in added]
        + [(s, "siretEtablissementPredecesseur", p, d) for p, s, d in added]
    )
    got = sorted((r["identifier"], r["field"], r["new_value"], r["effective_date"]) for r in rows)
    assert got == expected
    assert {(r["level"], r["old_value"], r["source"]) for r in rows} == {("etablissement", None, "daily")}
    predecessor, successor, _ = sorted(added)[0]
    mine = changes(mirror, SINCE, ids=[predecessor[:9]], kinds=["succession"]).to_pylist()
    assert (predecessor, successor) in {(r["identifier"], r["new_value"]) for r in mine}
    assert {r["identifier"][:9] for r in mine} == {predecessor[:9]}


@pytest.mark.slow
def test_cli_filters_formats_and_errors(mirror, tmp_path):
    """--kind, --siren and --until filter; .csv, .jsonl and .parquet hold the same rows; bad input is one
    line and exit 2, never a file."""
    everything = changes(mirror, SINCE)
    closures = run_mirror(
        "changes", "--since", "2026-10-01", "--kind", "cessation", "--kind", "fermeture", data_dir=mirror
    )
    assert closures.returncode == 0, closures.stderr
    listed = list(csv.DictReader(io.StringIO(closures.stdout)))
    assert listed and {r["kind"] for r in listed} == {"cessation", "fermeture"}
    assert {r["new_value"] for r in listed} <= {"C", "F"}
    assert len(listed) == sum(k in ("cessation", "fermeture") for k in everything.column("kind").to_pylist())

    siren = next(r["identifier"] for r in everything.to_pylist() if r["level"] == "unite_legale")
    outputs = {}
    for ext in ("csv", "jsonl", "parquet"):
        out = tmp_path / f"c.{ext}"
        result = run_mirror(
            "changes", "--since", "2026-10-01", "--siren", siren, "-o", str(out), data_dir=mirror
        )
        assert result.returncode == 0, result.stderr
        if ext == "csv":
            outputs[ext] = [(r["identifier"], r["field"], r["new_value"]) for r in csv.DictReader(out.open())]
        elif ext == "jsonl":
            lines = [json.loads(line) for line in out.read_text().splitlines()]
            outputs[ext] = [(r["identifier"], r["field"] or "", r["new_value"] or "") for r in lines]
        else:
            outputs[ext] = [
                (r["identifier"], r["field"] or "", r["new_value"] or "")
                for r in pq.read_table(out).to_pylist()
            ]
    assert outputs["csv"] and outputs["csv"] == outputs["jsonl"] == outputs["parquet"]
    assert {i[:9] for i, _f, _n in outputs["csv"]} == {siren}

    dash = run_mirror(
        "changes", "--since", "2026-10-01", "--siren", siren, "-o", "-", data_dir=mirror, cwd=tmp_path
    )
    assert dash.returncode == 0 and dash.stdout == (tmp_path / "c.csv").read_text()  # -o -: standard output
    assert not (tmp_path / "-").exists()

    one_day = changes(mirror, date(2026, 10, 3), date(2026, 10, 3)).column("day").to_pylist()
    assert one_day and set(one_day) == {date(2026, 10, 3)}

    for args, words in (
        (("--kind", "nope"), "unknown change kind"),
        (("--fields", "nope"), "unknown field"),
        (("--siren", "12345"), "not a SIREN"),
        (("--until", "2026-09-01"), "before --since"),
        (("-o", str(tmp_path / "x.xlsx")), ".csv, .jsonl or .parquet"),
    ):
        bad = run_mirror("changes", "--since", "2026-10-01", *args, data_dir=mirror)
        assert bad.returncode == 2 and words in bad.stderr, (args, bad.stderr)
        assert "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.xlsx").exists()


@pytest.mark.slow
def test_batch_changed_since_keep_columns_and_vat_numbers(mirror, tmp_path):
    """`mirror batch --changed-since` adds each row's changes (those `mirror changes --siren` lists), CSV and
    JSON Lines; --keep-columns carries the input CSV's columns; a VAT number stands for its SIREN, its key
    checked."""
    from mirror.core.identifiers import tva_key

    everything = changes(mirror, SINCE).to_pylist()
    both = {r["identifier"] for r in everything if r["level"] == "unite_legale"} & {
        r["identifier"][:9] for r in everything if r["level"] == "etablissement"
    }
    changed = sorted(both)[0]  # a unit with changes of its own and of its établissements
    con = connect(mirror)
    try:
        (quiet,) = con.execute(
            "SELECT min(siren) FROM unites_legales WHERE siren NOT IN (SELECT unnest(?))",
            [sorted({r["identifier"][:9] for r in everything})],
        ).fetchone()
    finally:
        con.close()
    vat = f"FR{tva_key(changed)}{changed}"
    wrong = f"FR{(int(tva_key(changed)) + 1) % 100:02d}{changed}"
    src = tmp_path / "clients.csv"
    src.write_text(
        f"ref;numero;note\nA;{vat};vat\nB;{quiet};quiet\nC;{wrong};wrong key\nD;{changed};siren\n",
        encoding="utf-8",
    )
    args = ["batch", str(src), "--column", "numero", "--keep-columns", "--changed-since", "2026-10-01", "-q"]
    done = run_mirror(*args, "-o", str(tmp_path / "out.csv"), data_dir=mirror)
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader((tmp_path / "out.csv").open(encoding="utf-8")))
    assert list(rows[0])[:4] == ["ref", "numero", "note", "status"]
    assert list(rows[0])[-4:] == ["changes_count", "changes_kinds", "changes_last_day", "changes"]
    assert [r["ref"] for r in rows] == ["A", "B", "C", "D"] and rows[0]["numero"] == vat
    assert [r["status"] != "invalid" for r in rows] == [True, True, False, True]
    expected = changes(mirror, SINCE, ids=[changed]).to_pylist()
    assert {r["identifier"] for r in expected} > {changed}  # the unit and some of its établissements
    for row in (rows[0], rows[3]):
        listed = json.loads(row["changes"])
        assert int(row["changes_count"]) == len(listed) == len(expected)
        assert [(c["identifier"], c["field"], c["new_value"]) for c in listed] == [
            (c["identifier"], c["field"], c["new_value"]) for c in expected
        ]
        assert row["changes_kinds"] == "|".join(sorted({c["kind"] for c in expected}))
        assert row["changes_last_day"] == max(c["day"] for c in expected).isoformat()
    assert (rows[1]["changes_count"], rows[1]["changes"]) == ("0", "[]")
    assert rows[2]["changes_count"] == rows[2]["changes"] == ""

    # level etablissement: a SIRET gets its own changes and its unit's
    siret = sorted(
        r["identifier"]
        for r in everything
        if r["level"] == "etablissement" and r["identifier"][:9] == changed
    )[0]
    (tmp_path / "sirets.txt").write_text(siret + "\n")
    done = run_mirror("batch", str(tmp_path / "sirets.txt"), "--level", "etablissement", "--changed-since",
                      "2026-10-01", "-q", "-o", str(tmp_path / "et.csv"), data_dir=mirror)  # fmt: skip
    assert done.returncode == 0, done.stderr
    (row,) = csv.DictReader((tmp_path / "et.csv").open(encoding="utf-8"))
    assert {c["identifier"] for c in json.loads(row["changes"])} == {siret, changed}

    # JSON Lines: the document, then an `input` object and a `changes` array at its top level
    done = run_mirror(*args, "-o", str(tmp_path / "out.jsonl"), data_dir=mirror)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [d["input"]["ref"] for d in lines] == ["A", "B", "C", "D"]
    assert lines[0]["data"]["siren"] == changed and "errors" in lines[2]
    assert [(c["identifier"], c["field"]) for c in lines[0]["changes"]] == [
        (c["identifier"], c["field"]) for c in expected
    ]
    assert lines[1]["changes"] == [] == lines[2]["changes"]

    plain = tmp_path / "ids.txt"
    plain.write_text(changed + "\n")
    bad = run_mirror("batch", str(plain), "--keep-columns", "-o", str(tmp_path / "x.csv"), data_dir=mirror)
    assert bad.returncode == 2 and "--keep-columns" in bad.stderr and "Traceback" not in bad.stderr
