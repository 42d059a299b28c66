"""`mirror update` against the combined local upstream (real HTTP on 127.0.0.1, real CLI runs)."""

from __future__ import annotations

import json
import os
import re
from datetime import date, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import duckdb
import pytest
from conftest import run_mirror

from mirror.core import schema
from mirror.deltas import store as deltas
from mirror.synthetic.upstream import send_bytes, server

MONTH = "2026-10"
SCALE = 800
SEED = 9
KEY = server.DEFAULT_API_KEY
ENV = {"INSEE_API_KEY": KEY}


@pytest.fixture(scope="module")
def upstream_data(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("upstream")
    server.prepare_stock(data, MONTH, SCALE, SEED)
    return data


def start(upstream_data: Path, today: date, **options) -> server.Upstream:
    return server.start(upstream_data, MONTH, scale=SCALE, seed=SEED, today=today, **options)


def mirror_cmd(command: str, data_dir: Path, up: server.Upstream, *extra: str, env: dict | None = None):
    urls = ["--insee-url", up.insee_url, "--rate", "100000", "-q"]
    if command == "sync":
        urls = ["--datagouv-url", up.datagouv_url, *urls]
    return run_mirror(command, *urls, *extra, data_dir=data_dir, env={**ENV, **(env or {})})


def tree(path: Path) -> dict[str, tuple[int, int]]:
    """Every file under path with its size and mtime."""
    out = {}
    for root, _dirs, files in os.walk(path):
        for name in files:
            p = Path(root, name)
            st = p.stat()
            if name != ".lock":  # the writer lock file is touched by every writer, even a refused one
                out[str(p.relative_to(path))] = (st.st_size, st.st_mtime_ns)
    return out


def day_queries(up: server.Upstream) -> list[str]:
    """The `q` of every search the INSEE-like API received (in order)."""
    return [params.get("q", "") for _m, sub, params in up.insee.calls if sub in ("/siren", "/siret")]


class EmptyDay:
    """Answers every search about `day` like the real API on a day without changes: HTTP 404."""

    def __init__(self, day: date):
        self.day = day.isoformat()
        self.hits = 0

    def handle(self, handler) -> bool:
        parts = urlsplit(handler.path)
        q = parse_qs(parts.query).get("q", [""])[-1]
        if (
            handler.command == "GET"
            and self.day in q
            and parts.path.rsplit("/", 1)[-1] in ("siren", "siret", "liensSuccession")
        ):
            self.hits += 1
            body = {"header": {"statut": 404, "message": "Aucun élément trouvé pour la requête"}}
            send_bytes(handler, 404, json.dumps(body).encode(), "application/json;charset=utf-8")
            return True
        return False


@pytest.mark.slow
def test_update_watermark_overlap_dry_run_mass_update_and_unpublished_days(upstream_data, tmp_path):
    up = start(upstream_data, today=date(2026, 10, 3))  # 1 and 2 Oct published
    try:
        mirror = tmp_path / "mirror"
        first = mirror_cmd("sync", mirror, up)
        assert first.returncode == 0, first.stderr
        assert [d.isoformat() for d in deltas.list_days(mirror)] == ["2026-10-01", "2026-10-02"]
        st = json.loads((mirror / "state.json").read_text())
        assert st["delta_watermark"] == "2026-10-03T00:00:00"
        assert st["deltas"] == ["2026-10-01", "2026-10-02"]
        # summary: one line per day with counts, requests and duration
        line = next(li for li in first.stdout.splitlines() if li.startswith("2026-10-01"))
        assert len(line.split()) == 10
        assert "INSEE requests:" in first.stdout

        # Two more days published (3 and 4 Oct; the 5th is not finished).
        up.insee.today = date(2026, 10, 5)

        # --dry-run fetches and counts, writes nothing.
        before = tree(mirror)
        dry = mirror_cmd("update", mirror, up, "--dry-run")
        assert dry.returncode == 0, dry.stderr
        assert "dry run" in dry.stdout and "2026-10-04" in dry.stdout and "2026-10-05" not in dry.stdout
        assert tree(mirror) == before

        # A mass update by INSEE on a day still to fetch: nothing is paged, a one-line reason, exit 3.
        up.insee.mass_treatment = datetime(2026, 10, 4, 4, 30)
        up.insee.calls.clear()
        mass = mirror_cmd("update", mirror, up)
        assert mass.returncode == 3
        assert "mass update" in mass.stderr and "mirror sync" in mass.stderr
        assert mass.stderr.strip().count("\n") == 0
        assert day_queries(up) == []
        assert tree(mirror) == before
        up.insee.mass_treatment = datetime(2026, 8, 20, 5, 0)

        # The next run starts a day before the watermark (2 Oct) and stops at the last published day.
        up.insee.calls.clear()
        result = mirror_cmd("update", mirror, up, "--until", "2026-12-01")
        assert result.returncode == 0, result.stderr
        assert "published changes through 2026-10-04 only" in result.stdout
        days = sorted({q.split(":", 1)[1] for q in day_queries(up)})
        assert days == ["2026-10-02", "2026-10-03", "2026-10-04"]
        assert deltas.list_days(mirror)[-1] == date(2026, 10, 4)

        con = duckdb.connect(str(mirror / "sirene.duckdb"), read_only=True)
        # The views see the deltas: units created on 4 Oct are there, once each.
        created = [
            r["siren"]
            for r in up.changes.changes_for(date(2026, 10, 4)).unites_legales
            if r["dateCreationUniteLegale"] == "2026-10-04"
        ]
        assert created
        (n,) = con.execute(
            "SELECT count(*) FROM unites_legales WHERE siren IN (SELECT unnest(?))", [created]
        ).fetchone()
        assert n == len(created)
        # Partition pruning on departement still reaches the snapshot scan under the merge: one folder read.
        plan = con.execute(
            "EXPLAIN ANALYZE SELECT count(*) FROM etablissements WHERE departement = '75'"
        ).fetchall()
        match = re.search(r"Scanning Files: (\d+)/(\d+)", plan[0][1])
        assert match and match.group(1) == "1" and int(match.group(2)) > 20, plan[0][1]
        # ... and so does projection pushdown: counting rows reads no column such as nic (the merge, an
        # anti-join on the merged delta keys, is there).
        plan = con.execute("EXPLAIN SELECT count(*) FROM etablissements").fetchall()[0][1]
        assert "Join Type: ANTI" in plan and not re.search(r"\bnic\b", plan), plan
        con.close()

        # Up to date: only the overlap day is fetched again.
        up.insee.calls.clear()
        again = mirror_cmd("update", mirror, up)
        assert again.returncode == 0, again.stderr
        assert sorted({q.split(":", 1)[1] for q in day_queries(up)}) == ["2026-10-04"]

        # --since after the usual start leaves a gap: the watermark does not jump over it.
        up.insee.today = date(2026, 10, 8)
        gap = mirror_cmd("update", mirror, up, "--since", "2026-10-06")
        assert gap.returncode == 0, gap.stderr
        # (2026-10-04, the last applied day, would have been fetched again: it is applied, not missing)
        assert "Day 2026-10-05 is not applied (--since 2026-10-06): the watermark stays" in gap.stdout
        assert json.loads((mirror / "state.json").read_text())["delta_watermark"] == "2026-10-05T00:00:00"
        up.insee.calls.clear()
        assert mirror_cmd("update", mirror, up).returncode == 0
        assert sorted({q.split(":", 1)[1] for q in day_queries(up)}) == [
            f"2026-10-0{d}" for d in (4, 5, 6, 7)
        ]
        assert json.loads((mirror / "state.json").read_text())["delta_watermark"] == "2026-10-08T00:00:00"
    finally:
        up.close()


@pytest.mark.slow
def test_day_without_changes_404_is_applied_as_empty(upstream_data, tmp_path):
    empty = EmptyDay(date(2026, 10, 2))
    up = start(upstream_data, today=date(2026, 10, 4), before=[empty])
    try:
        mirror = tmp_path / "mirror"
        result = mirror_cmd("sync", mirror, up)
        assert result.returncode == 0, result.stderr
        assert empty.hits >= 2
        assert date(2026, 10, 2) in deltas.list_days(mirror)
        line = next(li for li in result.stdout.splitlines() if li.startswith("2026-10-02"))
        assert line.split()[1:8] == ["0"] * 7
        con = duckdb.connect()
        for table in schema.DELTA_TABLES:
            (n,) = con.execute(
                f"SELECT count(*) FROM '{mirror}/deltas/2026-10-02/{table}.parquet'"
            ).fetchone()
            assert n == 0
        (n,) = con.execute(
            f"SELECT count(*) FROM '{mirror}/deltas/2026-10-03/unites_legales.parquet'"
        ).fetchone()
        assert n > 0
    finally:
        up.close()


@pytest.mark.slow
def test_user_errors_are_one_line(upstream_data, tmp_path):
    result = run_mirror("update", "--since", "yesterday", data_dir=tmp_path / "m", env=ENV)
    assert result.returncode != 0 and "--since expects a date" in result.stderr
    result = run_mirror(
        "update", "--since", "2026-10-05", "--until", "2026-10-01", data_dir=tmp_path / "m", env=ENV
    )
    assert result.returncode != 0 and "is after --until" in result.stderr
    result = run_mirror("update", data_dir=tmp_path / "m", env=ENV)
    assert result.returncode != 0 and "no snapshot" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_crash_between_day_and_catalog_is_repaired_by_the_next_run(upstream_data, tmp_path):
    """Each day is compacted and the catalog rebuilt over it; a crash before the new merged version is
    published leaves the previous views working, and the next run publishes it before fetching."""
    up = start(upstream_data, today=date(2026, 10, 3))
    try:
        mirror = tmp_path / "mirror"
        crashed = mirror_cmd("sync", mirror, up, env={"MIRROR_CRASH_AT": "compact-before-swap"})
        assert crashed.returncode == 86, crashed.stderr
        assert deltas.list_days(mirror) == [date(2026, 10, 1)]  # the day is written ...
        assert deltas.merged_versions(mirror) == []  # ... its merged version is not published
        con = duckdb.connect(str(mirror / "sirene.duckdb"), read_only=True)
        (view_sql,) = con.execute(
            "SELECT sql FROM duckdb_views() WHERE view_name = 'unites_legales'"
        ).fetchone()
        assert (
            "deltas-merged" not in view_sql
            and con.execute("SELECT count(*) FROM unites_legales").fetchone()[0] > 0
        )
        con.close()

        # A run that fetches nothing (--until before the snapshot's coverage) still repairs the catalog.
        repair = mirror_cmd("update", mirror, up, "--until", "2026-09-30")
        assert repair.returncode == 0, repair.stderr
        assert deltas.list_days(mirror) == [date(2026, 10, 1)]
        assert [p.name for p in deltas.merged_versions(mirror)] == ["1"]
        con = duckdb.connect(str(mirror / "sirene.duckdb"), read_only=True)
        (view_sql,) = con.execute(
            "SELECT sql FROM duckdb_views() WHERE view_name = 'unites_legales'"
        ).fetchone()
        con.close()
        assert "deltas-merged/1/" in view_sql

        result = mirror_cmd("update", mirror, up)
        assert result.returncode == 0, result.stderr
        assert deltas.list_days(mirror) == [date(2026, 10, 1), date(2026, 10, 2)]
        versions = deltas.merged_versions(mirror)
        assert not list((mirror / "deltas-merged").glob(".staging-*"))
        con = duckdb.connect(str(mirror / "sirene.duckdb"), read_only=True)
        (view_sql,) = con.execute(
            "SELECT sql FROM duckdb_views() WHERE view_name = 'unites_legales'"
        ).fetchone()
        assert f"deltas-merged/{versions[-1].name}/" in view_sql
        # Every unit changed on either day shows its delta version.
        changed = {}
        for d in (date(2026, 10, 1), date(2026, 10, 2)):
            for r in up.changes.changes_for(d).unites_legales:
                changed[r["siren"]] = r["dateDernierTraitementUniteLegale"]
        assert changed
        got = dict(
            con.execute(
                "SELECT siren, strftime(dateDernierTraitementUniteLegale, '%Y-%m-%dT%H:%M:%S') FROM unites_legales "
                "WHERE siren IN (SELECT unnest(?))",
                [sorted(changed)],
            ).fetchall()
        )
        con.close()
        assert {s: v[:19] for s, v in changed.items()} == got
    finally:
        up.close()


@pytest.mark.slow
def test_summary_counts_are_new_changed_and_closed_against_the_mirror_before_the_day(upstream_data, tmp_path):
    """Each day's counts compare its fetched rows (its delta files) with the mirror as it was before the
    day: absent = new; closed now but not before = closed; processed again (dateDernierTraitement differing)
    = changed, the rest is unchanged: a day fetched again counts 0 everywhere, applied or dry-run. Counted
    independently here, on every INSEE column: the changed units differ in some column too."""
    up = start(upstream_data, today=date(2026, 10, 3))
    try:
        mirror = tmp_path / "mirror"
        assert mirror_cmd("sync", mirror, up).returncode == 0
        states = {"unites_legales": ("siren", "etatAdministratifUniteLegale", "C")}
        states["etablissements"] = ("siret", "etatAdministratifEtablissement", "F")
        totals = {"new": 0, "closed": 0, "changed": 0}
        for today in (date(2026, 10, 4), date(2026, 10, 5), date(2026, 10, 6)):
            up.insee.today = today  # one more day published; the run re-fetches the previous one too
            con = duckdb.connect(str(mirror / "sirene.duckdb"), read_only=True)
            columns = {t: ", ".join(f'"{c}"' for c in schema.STOCK_FILES_BY_KEY[t].columns) for t in states}
            before = {
                t: {row[0]: row for row in con.execute(f"SELECT {k}, {columns[t]} FROM {t}").fetchall()}
                for t, (k, _, _) in states.items()
            }
            con.close()
            dry = mirror_cmd("update", mirror, up, "--dry-run")
            run = mirror_cmd("update", mirror, up)
            assert run.returncode == 0 and dry.returncode == 0, run.stderr + dry.stderr
            day = date.fromordinal(today.toordinal() - 1)
            again = date.fromordinal(day.toordinal() - 1)
            for out in (run.stdout, dry.stdout):  # the day fetched again (already applied): nothing changes
                line = next(li for li in out.splitlines() if li.startswith(again.isoformat())).split()
                assert [int(x) for x in line[1:7]] == [0] * 6, out
            line = next(li for li in run.stdout.splitlines() if li.startswith(day.isoformat())).split()
            got = [int(x) for x in line[1:7]]
            dry_line = next(li for li in dry.stdout.splitlines() if li.startswith(day.isoformat())).split()
            assert [int(x) for x in dry_line[1:7]] == got, dry.stdout
            expected = []
            for table, (key, state, closed) in states.items():
                con = duckdb.connect()
                fetched = con.execute(
                    f"SELECT {key}, {columns[table]} FROM '{deltas.day_dir(mirror, day) / table}.parquet'"
                ).fetchall()
                con.close()
                at = 1 + schema.STOCK_FILES_BY_KEY[table].columns.index(state)
                prev = before[table]
                new = sum(1 for r in fetched if r[0] not in prev)
                shut = sum(
                    1 for r in fetched if r[0] in prev and r[at] == closed and prev[r[0]][at] != closed
                )
                ts = 1 + schema.STOCK_FILES_BY_KEY[table].columns.index(schema.LAST_PROCESSED[table])
                kept = [
                    r for r in fetched if r[0] in prev and not (r[at] == closed and prev[r[0]][at] != closed)
                ]
                changed = sum(1 for r in kept if r[ts] != prev[r[0]][ts])
                assert changed == sum(
                    1 for r in kept if r != prev[r[0]]
                )  # processed again = some column differs
                expected += [new, changed, shut]
                totals["new"] += new
                totals["closed"] += shut
                totals["changed"] += changed
            assert got == expected, (day, run.stdout)
        assert all(totals.values()), totals  # the generated days have creations, closures and changes
    finally:
        up.close()
