"""Compaction of the delta days (mirror.deltas.store.compact) and the merged views, on a real loaded snapshot.

The expected views are computed independently of the code under test, from the plain snapshot views and
the rows of the day files: a key present in a day at or after the coverage's day replaces the snapshot row
by its delta row with the greatest dateDernierTraitement (a NULL one lowest), then the latest fetch; a
unit's history is replaced by the periods fetched with that kept row (in Python, delta_rules); every other
key keeps its snapshot rows (compared in the test's own SQL, assert_views_follow_the_rules).
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import date, datetime
from pathlib import Path

import duckdb
import pytest
from conftest import private_mirror, run_mirror

from mirror.catalog import build as catalog
from mirror.core import schema
from mirror.core.datadir import GRACE_ENV
from mirror.core.typed import prepare_connection
from mirror.deltas import store as deltas

TABLES = schema.DELTA_TABLES
COVERAGE = datetime(2026, 10, 1)  # the 2026-10 snapshot, no coverage recorded: the 1st of its month
NAMES = {  # short names of the plain snapshot copies in base.duckdb
    "unites_legales": "ul",
    "etablissements": "et",
    "unites_legales_historique": "ulh",
    "etablissements_historique": "eth",
    "liens_succession": "ls",
}


@pytest.fixture(scope="module")
def loaded(loaded_stock, tmp_path_factory) -> Path:
    """The run's loaded generated stock (no delta) as `data`, and base.duckdb, a copy of its plain views."""
    root = tmp_path_factory.mktemp("deltas")
    (root / "data").symlink_to(loaded_stock, target_is_directory=True)  # read only: `mirror` copies it
    con = duckdb.connect(str(root / "base.duckdb"))
    con.execute(f"ATTACH '{loaded_stock / 'sirene.duckdb'}' AS cat (READ_ONLY)")
    for table, name in NAMES.items():
        con.execute(f"CREATE TABLE {name} AS SELECT * FROM cat.{table}")
    con.close()
    return root


@pytest.fixture
def mirror(loaded, tmp_path) -> Path:
    """A private copy of the loaded mirror (catalog rebuilt for the copy's paths)."""
    return private_mirror(loaded / "data", tmp_path / "data")


def base_con(loaded: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    prepare_connection(con)
    con.execute(f"ATTACH '{loaded / 'base.duckdb'}' AS b (READ_ONLY)")
    return con


def write_day(data: Path, con, day: date, seq: int, **selects: str) -> None:
    """Writes a delta day whose tables are the given SELECTs (over the plain copies b.ul, b.et, ...)."""
    typed = {}
    for table in TABLES:
        name = f"day_{NAMES[table]}"
        select = selects.get(NAMES[table], f"SELECT * FROM b.{NAMES[table]} LIMIT 0")
        con.execute(f"CREATE OR REPLACE TABLE {name} AS {select}")
        typed[table] = name
    deltas.write_day(data, day, seq, con, typed)


def rows(con, sql: str) -> list[dict]:
    rel = con.execute(sql)
    cols = [d[0] for d in rel.description]
    return [dict(zip(cols, r, strict=True)) for r in rel.fetchall()]


def as_bag(records: list[dict]) -> Counter:
    return Counter(tuple(sorted(r.items())) for r in records)


def key_of(table: str, r: dict) -> tuple:
    return tuple(r[k] for k in schema.BUSINESS_KEYS[table])


_DAY_ROWS: dict[tuple, list[dict]] = {}


def day_rows(path: Path) -> list[dict]:
    """The rows of a day file, read once per version of the file (a re-applied day is a new file)."""
    st = path.stat()
    key = (str(path), st.st_ino, st.st_mtime_ns, st.st_size)
    if key not in _DAY_ROWS:
        con = duckdb.connect()
        _DAY_ROWS[key] = rows(con, f"SELECT * FROM '{path}'")
        con.close()
    return _DAY_ROWS[key]


def delta_rules(loaded: Path, data: Path, since: date) -> dict[str, tuple[set, Counter]]:
    """What the merge rules make of the day files, computed in Python: {table: (the keys the days replace,
    the bag of rows those keys have in the views)}. Every other key keeps its plain snapshot rows."""
    days = [d for d in deltas.list_days(data) if d >= since]
    delta = {t: [r for d in days for r in day_rows(deltas.day_dir(data, d) / f"{t}.parquet")] for t in TABLES}

    def rank(table, r):
        ddt = r[schema.LAST_PROCESSED[table]]
        return (ddt is not None, ddt or datetime.min, r["_delta_seq"])

    kept: dict[str, dict[tuple, dict]] = {}
    for table in ("unites_legales", "etablissements", "liens_succession"):
        best: dict[tuple, dict] = {}
        for r in delta[table]:
            k = key_of(table, r)
            if k not in best or rank(table, r) > rank(table, best[k]):
                best[k] = r
        kept[table] = best
    out = {}
    for table in TABLES:
        base = schema.HISTORY_OF.get(table, table)
        winners = kept[base]
        if table in schema.HISTORY_OF:
            added = [
                r
                for r in delta[table]
                if winners.get(key_of(table, r), {}).get("_delta_seq") == r["_delta_seq"]
            ]
        else:
            added = list(winners.values())
        added = [{k: v for k, v in r.items() if not k.startswith("_delta")} for r in added]
        out[table] = (set(winners), as_bag(added))
    return out


def assert_views_follow_the_rules(loaded: Path, data: Path) -> None:
    """The views of `data` are the merge rules applied to the plain snapshot copies and the day files: the
    keys the days replace have exactly the rows delta_rules gives them (compared in Python); every other
    key has exactly its plain snapshot rows (the two bags compared by the test's own EXCEPT ALL, both ways,
    so that the rows no day touches are not all turned into Python tuples at each check)."""
    import pyarrow as pa

    rules = delta_rules(loaded, data, COVERAGE.date())
    con = catalog.connect(data)
    try:
        con.execute(f"ATTACH '{loaded / 'base.duckdb'}' AS b (READ_ONLY)")
        for table in TABLES:
            replaced, expected = rules[table]
            keys = schema.BUSINESS_KEYS[table]
            columns = list(zip(*replaced, strict=True)) if replaced else [[] for _ in keys]
            types = [pa.date32() if k.startswith("date") else pa.string() for k in keys]
            con.register(
                "replaced", pa.table([pa.array(c, t) for c, t in zip(columns, types, strict=True)], keys)
            )
            match = " AND ".join(f'r."{k}" IS NOT DISTINCT FROM v."{k}"' for k in keys)
            con.execute(f"CREATE TEMP TABLE view_rows AS FROM {table}")  # the view's plan, run once
            got = as_bag(rows(con, f"SELECT v.* FROM view_rows v SEMI JOIN replaced r ON {match}"))
            assert got == expected, f"{table}: the rows of the keys the days replace differ from the rules"
            rest = f"SELECT v.* FROM {{}} v ANTI JOIN replaced r ON {match}"  # the keys no day replaces
            view, plain = rest.format("view_rows"), rest.format(f"b.{NAMES[table]}")
            (extra, missing) = con.execute(
                f"SELECT (SELECT count(*) FROM ({view} EXCEPT ALL {plain})), "
                f"(SELECT count(*) FROM ({plain} EXCEPT ALL {view}))"
            ).fetchone()
            con.execute("DROP TABLE view_rows")
            assert (extra, missing) == (0, 0), f"{table}: {extra} rows not in the snapshot, {missing} lost"
            con.unregister("replaced")
    finally:
        con.close()


def actual_views(data: Path) -> dict[str, Counter]:
    con = catalog.connect(data)
    try:
        return {t: as_bag(rows(con, f"SELECT * FROM {t}")) for t in TABLES}
    finally:
        con.close()


def view_sql(data: Path, view: str = "unites_legales") -> str:
    con = duckdb.connect(str(data / "sirene.duckdb"), read_only=True)
    try:
        return con.execute("SELECT sql FROM duckdb_views() WHERE view_name = ?", [view]).fetchone()[0]
    finally:
        con.close()


def pick(loaded: Path, sql: str) -> list:
    con = duckdb.connect(str(loaded / "base.duckdb"), read_only=True)
    try:
        return [r[0] for r in con.execute(sql).fetchall()]
    finally:
        con.close()


def ts(text: str) -> str:
    return f"TIMESTAMP '{text}'"


def ul_day(sirens: list[str], stamp: str | None, label: str) -> str:
    """A select of the units `sirens` with a new dateDernierTraitement (None: NULL) and denomination."""
    ddt = ts(stamp) if stamp else "NULL::TIMESTAMP"
    listed = ", ".join(f"'{s}'" for s in sirens)
    return (
        f"SELECT * REPLACE ({ddt} AS dateDernierTraitementUniteLegale, '{label}' AS denominationUniteLegale) "
        f"FROM b.ul WHERE siren IN ({listed})"
    )


def ulh_day(sirens: list[str], label: str) -> str:
    listed = ", ".join(f"'{s}'" for s in sirens)
    return f"SELECT * REPLACE ('{label}' AS denominationUniteLegale) FROM b.ulh WHERE siren IN ({listed})"


@pytest.mark.slow
def test_merged_views_follow_the_merge_rules_in_the_tricky_cases(loaded, mirror):
    """Same day re-applied, an older dateDernierTraitement arriving later, a unit in several days, NULL
    timestamps, histories replaced as a whole (even by none), a new unit, a day before the coverage."""
    s = pick(loaded, "SELECT siren FROM ul WHERE siren IN (SELECT siren FROM ulh) ORDER BY siren LIMIT 7")
    e = pick(loaded, "SELECT siret FROM et WHERE siret IN (SELECT siret FROM eth) ORDER BY siret LIMIT 3")
    links = pick(loaded, "SELECT DISTINCT siretEtablissementPredecesseur FROM ls ORDER BY 1 LIMIT 2")
    assert len(s) == 7 and len(e) == 3 and len(links) == 2
    other_dep = pick(
        loaded,
        f"SELECT departement FROM et WHERE departement <> (SELECT departement FROM et WHERE siret = '{e[0]}') AND departement IS NOT NULL LIMIT 1",
    )[0]
    new_siren = "999999999"
    con = base_con(loaded)

    def et_day(sirets, stamp, dep=None):
        listed = ", ".join(f"'{x}'" for x in sirets)
        dep_sql = f", '{dep}' AS departement" if dep else ""
        return (
            f"SELECT * REPLACE ({ts(stamp)} AS dateDernierTraitementEtablissement{dep_sql}) "
            f"FROM b.et WHERE siret IN ({listed})"
        )

    def ls_day(pred, stamp, null_date=False):
        ddt = ts(stamp) if stamp else "NULL::TIMESTAMP"
        date_sql = ", NULL::DATE AS dateLienSuccession" if null_date else ""
        return (
            f"SELECT * REPLACE ({ddt} AS dateDernierTraitementLienSuccession{date_sql}) "
            f"FROM b.ls WHERE siretEtablissementPredecesseur = '{pred}'"
        )

    # Day 1: s0, s1, s2 changed (s1 without any history period); s3 with a NULL timestamp.
    write_day(
        mirror,
        con,
        date(2026, 10, 1),
        1,
        ul=ul_day(s[:3], "2026-10-01 10:00:00", "V1") + " UNION ALL " + ul_day([s[3]], None, "V1"),
        ulh=ulh_day([s[0], s[2], s[3]], "V1"),
        et=et_day(e[:2], "2026-10-01 10:00:00"),
        eth=f"SELECT * FROM b.eth WHERE siret = '{e[0]}'",
        ls=ls_day(links[0], "2026-10-01 10:00:00")
        + " UNION ALL "
        + ls_day(links[1], "2026-10-01 10:00:00", True),
    )
    # Day 2: s0 newer; s1 with an OLDER timestamp (must lose); s3 NULL again (the later fetch wins); a new
    # unit; e0 newer and moved to another département; the first link with a NULL timestamp (loses).
    write_day(
        mirror,
        con,
        date(2026, 10, 2),
        2,
        ul=(
            ul_day([s[0]], "2026-10-02 09:00:00", "V2")
            + " UNION ALL "
            + ul_day([s[1]], "2026-09-15 09:00:00", "OLD")
            + " UNION ALL "
            + ul_day([s[3]], None, "V2")
            + f" UNION ALL SELECT * REPLACE ('{new_siren}' AS siren, 'NEW' AS denominationUniteLegale, "
            f"{ts('2026-10-02 08:00:00')} AS dateDernierTraitementUniteLegale) FROM b.ul WHERE siren = '{s[6]}'"
        ),
        ulh=ulh_day([s[0], s[1]], "V2"),
        et=et_day([e[0]], "2026-10-02 09:00:00", other_dep)
        + " UNION ALL "
        + et_day([e[1]], "2026-09-20 00:00:00"),
        ls=ls_day(links[0], None) + " UNION ALL " + ls_day(links[1], "2026-10-02 10:00:00", True),
    )
    # A day before the coverage (superseded by the snapshot): ignored, even with the greatest timestamps.
    write_day(mirror, con, date(2026, 9, 30), 3, ul=ul_day([s[0], s[5]], "2026-10-05 00:00:00", "BEFORE"))
    # Day 1 re-applied: s2 and s3 no longer in it (back to the snapshot / day 2); s1 now newer than day 2.
    write_day(
        mirror,
        con,
        date(2026, 10, 1),
        4,
        ul=ul_day([s[0]], "2026-10-01 11:00:00", "V1b")
        + " UNION ALL "
        + ul_day([s[1]], "2026-10-01 12:00:00", "V1b"),
        ulh=ulh_day([s[1]], "V1b"),
    )
    con.close()
    catalog.rebuild(mirror, deltas.compact_for(mirror))

    assert_views_follow_the_rules(loaded, mirror)
    # The oracle itself says what the rules mean, unit by unit.
    cat = catalog.connect(mirror)
    names = dict(
        cat.execute(
            "SELECT siren, denominationUniteLegale FROM unites_legales WHERE siren IN (SELECT unnest(?))",
            [[*s, new_siren]],
        ).fetchall()
    )
    plain = dict(
        zip(
            s,
            pick(
                loaded,
                f"SELECT denominationUniteLegale FROM ul WHERE siren IN ({', '.join(repr(x) for x in s)}) ORDER BY siren",
            ),
            strict=True,
        )
    )
    assert names == {
        s[0]: "V2",
        s[1]: "V1b",
        s[2]: plain[s[2]],
        s[3]: "V2",
        s[4]: plain[s[4]],
        s[5]: plain[s[5]],
        s[6]: plain[s[6]],
        new_siren: "NEW",
    }
    hist = dict(
        cat.execute(
            "SELECT siren, list(DISTINCT denominationUniteLegale) FROM unites_legales_historique WHERE siren IN (SELECT unnest(?)) GROUP BY siren",
            [s[:4]],
        ).fetchall()
    )
    assert hist[s[0]] == ["V2"] and hist[s[1]] == ["V1b"] and s[3] not in hist  # day 2 had no period for s3
    (dep,) = cat.execute(f"SELECT departement FROM etablissements WHERE siret = '{e[0]}'").fetchone()
    assert dep == other_dep
    # The siret -> département index knows the new département.
    deps = {
        r[0]
        for r in cat.execute(
            f"SELECT departement FROM etablissements_departements WHERE siret = '{e[0]}'"
        ).fetchall()
    }
    assert other_dep in deps
    cat.close()
    # No winner computation left at query time: the views only read the merged version.
    sql = view_sql(mirror)
    assert "deltas-merged/1/" in sql and "arg_max" not in sql and "deltas/2026" not in sql


def test_compaction_files_are_sorted_and_partition_pruning_still_works(loaded, mirror):
    con = base_con(loaded)
    write_day(
        mirror,
        con,
        date(2026, 10, 1),
        1,
        ul="SELECT * FROM b.ul USING SAMPLE 300 ROWS (reservoir, 1)",
        et="SELECT * FROM b.et USING SAMPLE 500 ROWS (reservoir, 1)",
    )
    write_day(mirror, con, date(2026, 10, 2), 2, et="SELECT * FROM b.et USING SAMPLE 50 ROWS (reservoir, 2)")
    con.close()
    catalog.rebuild(mirror, deltas.compact_for(mirror))
    (version,) = deltas.merged_versions(mirror)
    con = duckdb.connect()
    # Day 1 is in the base file, sorted by département, siret; day 2 (the newest) in the small recent one.
    for name, n in (("etablissements", 500), ("etablissements.recent", 50)):
        got = con.execute(f"SELECT departement, siret FROM '{version}/{name}.parquet'").fetchall()
        assert len(got) == n
        if name == "etablissements":
            assert got == sorted(got, key=lambda r: (r[0] is None, r[0] or "", r[1]))
        (codec,) = con.execute(
            f"SELECT DISTINCT compression FROM parquet_metadata('{version}/{name}.parquet')"
        ).fetchone()
        assert codec == "ZSTD"
    con.close()

    cat = catalog.connect(mirror)
    plan = cat.execute(
        "EXPLAIN ANALYZE SELECT count(*) FROM etablissements WHERE departement = '75'"
    ).fetchall()[0][1]
    scans = [(int(a), int(b)) for a, b in re.findall(r"Scanning Files: (\d+)/(\d+)", plan)]
    # The snapshot scan opens one partition folder of many; every scan (the merged file too) reads one file.
    assert any(a == 1 and b > 20 for a, b in scans), plan
    assert set(re.findall(r"Total Files Read: (\d+)", plan)) == {"1"}, plan
    assert "arg_max" not in plan and "WINDOW" not in plan
    cat.close()


@pytest.mark.slow
def test_crash_mid_compaction_keeps_the_previous_state_and_a_rerun_finishes(loaded, mirror):
    con = base_con(loaded)
    write_day(
        mirror,
        con,
        date(2026, 10, 1),
        1,
        ul="SELECT * REPLACE ('C1' AS denominationUniteLegale) FROM b.ul LIMIT 20",
    )
    catalog.rebuild(mirror, deltas.compact_for(mirror))
    before = actual_views(mirror)
    write_day(
        mirror,
        con,
        date(2026, 10, 2),
        2,
        ul="SELECT * REPLACE ('C2' AS denominationUniteLegale) FROM b.ul LIMIT 40",
    )
    con.close()
    for stage in ("compact-etablissements", "compact-before-swap"):
        crashed = run_mirror("catalog", data_dir=mirror, env={"MIRROR_CRASH_AT": stage})
        assert crashed.returncode == 86, crashed.stderr
        assert [p.name for p in deltas.merged_versions(mirror)] == ["1"]
        assert list((mirror / "deltas-merged").glob(".staging-*"))  # the half-written version, out of sight
        assert actual_views(mirror) == before  # the previous catalog and merged version still answer
    done = run_mirror("catalog", data_dir=mirror)
    assert done.returncode == 0, done.stderr
    assert [p.name for p in deltas.merged_versions(mirror)] == ["1", "2"]
    assert not list((mirror / "deltas-merged").glob(".staging-*"))
    assert_views_follow_the_rules(loaded, mirror)
    assert actual_views(mirror) != before
    # Re-running with nothing new writes no new version.
    assert run_mirror("catalog", data_dir=mirror).returncode == 0
    assert [p.name for p in deltas.merged_versions(mirror)] == ["1", "2"]


@pytest.mark.slow
def test_old_versions_are_cleaned_and_no_day_left_means_the_plain_snapshot(loaded, mirror, monkeypatch):
    con = base_con(loaded)
    for i in range(1, 5):
        write_day(mirror, con, date(2026, 10, i), i, ul=f"SELECT * FROM b.ul LIMIT {10 * i}")
        catalog.rebuild(mirror, deltas.compact_for(mirror))
    con.close()
    # Superseded versions stay for a grace period (readers of an older catalog), the two newest always.
    assert [p.name for p in deltas.merged_versions(mirror)] == ["1", "2", "3", "4"]
    monkeypatch.setenv(GRACE_ENV, "0")  # the grace is over (measured on the monotonic clock: test_readers)
    con = base_con(loaded)
    write_day(mirror, con, date(2026, 10, 5), 5, ul="SELECT * FROM b.ul LIMIT 50")
    con.close()
    catalog.rebuild(mirror, deltas.compact_for(mirror))
    assert [p.name for p in deltas.merged_versions(mirror)] == ["4", "5"]
    assert "deltas-merged/5/" in view_sql(mirror)
    assert_views_follow_the_rules(loaded, mirror)

    # Some days superseded by a snapshot (prune): the merged version is recomputed from the others.
    removed = deltas.prune(mirror, datetime(2026, 10, 4, 12, 0))
    assert removed == [date(2026, 10, d) for d in (1, 2, 3)]
    catalog.rebuild(mirror, deltas.compact_for(mirror))
    assert "deltas-merged/6/" in view_sql(mirror)
    assert_views_follow_the_rules(loaded, mirror)
    # No day left: the views are the plain snapshot again.
    deltas.remove_days(mirror, deltas.list_days(mirror))
    catalog.rebuild(mirror, deltas.compact_for(mirror))
    sql = view_sql(mirror)
    assert "deltas-merged" not in sql and "_delta" not in sql
    assert "deltas-merged" not in view_sql(mirror, "etablissements_departements")
    assert_views_follow_the_rules(loaded, mirror)


@pytest.mark.slow
def test_incremental_compaction_reuses_the_base_and_gives_the_same_rows(loaded, mirror):
    """A new day rewrites only the recent files (the base files are hard links to the previous version's);
    an older dateDernierTraitement arriving later still loses to the base row; re-applying a day the base
    covers recomputes the base. The views always equal the rules computed from the day files."""
    s = pick(loaded, "SELECT siren FROM ul WHERE siren IN (SELECT siren FROM ulh) ORDER BY siren LIMIT 3")
    con = base_con(loaded)

    def step(day: int, seq: int, **selects) -> Path:
        write_day(mirror, con, date(2026, 10, day), seq, **selects)
        catalog.rebuild(mirror, deltas.compact_for(mirror))
        assert_views_follow_the_rules(loaded, mirror)
        return deltas.merged_versions(mirror)[-1]

    def inode(version: Path, table: str = "unites_legales") -> int:
        return (version / f"{table}.parquet").stat().st_ino

    big = (
        "SELECT * REPLACE ('V1' AS denominationUniteLegale, TIMESTAMP '2026-10-01 10:00:00' AS "
        "dateDernierTraitementUniteLegale) FROM b.ul ORDER BY siren LIMIT 300"
    )
    step(1, 1, ul=big, ulh=ulh_day(s, "V1"))
    v2 = step(2, 2, ul=ul_day([s[2]], "2026-10-02 09:00:00", "V2"))  # base: day 1, recent: day 2
    v3 = step(
        3,
        3,
        ul=ul_day([s[0]], "2026-09-15 00:00:00", "OLD")
        + " UNION ALL "
        + ul_day([s[1]], "2026-10-03 09:00:00", "V3"),
        ulh=ulh_day([s[0]], "OLD"),
    )
    assert all(inode(v3, t) == inode(v2, t) for t in TABLES)  # the base was reused, not rewritten
    cat = catalog.connect(mirror)
    got = dict(
        cat.execute(
            "SELECT siren, denominationUniteLegale FROM unites_legales WHERE siren IN (SELECT unnest(?))", [s]
        ).fetchall()
    )
    hist = dict(
        cat.execute(
            "SELECT siren, list(DISTINCT denominationUniteLegale) FROM unites_legales_historique "
            "WHERE siren IN (SELECT unnest(?)) GROUP BY siren",
            [s],
        ).fetchall()
    )
    cat.close()
    assert got[s[0]] != "OLD" and got[s[1]] == "V3" and hist[s[0]] == ["V1"] and s[1] not in hist
    # Day 1 (in the base) re-applied with fewer units: the base is recomputed.
    v4 = step(1, 4, ul="SELECT * REPLACE ('V1b' AS denominationUniteLegale) FROM b.ul ORDER BY siren LIMIT 5")
    assert inode(v4) != inode(v3)
    con.close()


@pytest.mark.slow
def test_day_by_day_compaction_equals_the_rules_through_appends_and_folds(loaded, mirror, monkeypatch):
    """Daily updates build each version from the previous one (new days' winners appended to the recent
    files, folded into the base now and then): after every day, the views equal the rules computed from
    all the day files. Keys recur across days with newer, older and NULL timestamps; some units come
    without periods; two days are added at once; a day re-applied in between is recomputed."""
    monkeypatch.setattr(deltas, "RECENT_RATIO", 0.5)
    con = base_con(loaded)

    def stamp(column: str, key: str, i: int) -> str:
        return (
            f"CASE hash({key}, {i}) % 5 WHEN 0 THEN NULL::TIMESTAMP WHEN 1 THEN TIMESTAMP '2026-09-20 00:00:00' "
            f"ELSE TIMESTAMP '2026-10-{i:02d} 10:00:00' END AS {column}"
        )

    def pool(table: str, key: str, i: int, n: int = 60) -> str:
        return f"{key} IN (SELECT {key} FROM b.{table} ORDER BY {key} LIMIT {n}) AND hash({key}, {i}, 'pick') % 3 = 0"

    def day(i: int, seq: int) -> None:
        ul_keys = f"SELECT siren FROM b.ul WHERE {pool('ul', 'siren', i)}"
        et_keys = f"SELECT siret FROM b.et WHERE {pool('et', 'siret', i)}"
        write_day(
            mirror,
            con,
            date(2026, 10, i),
            seq,
            ul=f"SELECT * REPLACE ({stamp('dateDernierTraitementUniteLegale', 'siren', i)}, 'D{seq}' AS "
            f"denominationUniteLegale) FROM b.ul WHERE siren IN ({ul_keys})",
            ulh=f"SELECT * REPLACE ('D{seq}' AS denominationUniteLegale) FROM b.ulh "
            f"WHERE siren IN ({ul_keys}) AND hash(siren, {i}, 'h') % 4 <> 0",
            et=f"SELECT * REPLACE ({stamp('dateDernierTraitementEtablissement', 'siret', i)}, 'D{seq}' AS "
            f"enseigne1Etablissement) FROM b.et WHERE siret IN ({et_keys})",
            eth=f"SELECT * REPLACE ('D{seq}' AS enseigne1Etablissement) FROM b.eth WHERE siret IN ({et_keys})",
            ls=f"SELECT * REPLACE ({stamp('dateDernierTraitementLienSuccession', 'siretEtablissementPredecesseur', i)}, "
            f"CASE WHEN hash(siretEtablissementSuccesseur, {i}) % 4 = 0 THEN NULL ELSE dateLienSuccession END "
            f"AS dateLienSuccession) FROM b.ls "
            f"WHERE {pool('ls', 'siretEtablissementPredecesseur', i, 40)}",
        )

    def check() -> Path:
        catalog.rebuild(mirror, deltas.compact_for(mirror))
        assert_views_follow_the_rules(loaded, mirror)
        return deltas.merged_versions(mirror)[-1]

    def base_inode(version: Path) -> int:
        return (version / "etablissements.parquet").stat().st_ino

    seq, versions = 0, []
    for i in (1, 2, 3, 4):
        seq += 1
        day(i, seq)
        versions.append(check())
    seq += 1
    day(5, seq)
    seq += 1
    day(6, seq)  # two new days, one compaction
    versions.append(check())
    for i in (7, 8, 9):
        seq += 1
        day(i, seq)
        versions.append(check())
    folded = [base_inode(b) != base_inode(a) for a, b in zip(versions, versions[1:], strict=False)]
    assert any(folded) and not all(folded), folded  # both: base linked, and recent folded into it
    seq += 1
    day(4, seq)  # a day re-applied: recomputed from the day files
    check()
    seq += 1
    day(10, seq)  # and appended to again
    check()
    con.close()


@pytest.mark.slow
def test_daily_rebuild_reuses_the_catalog_and_only_repoints_its_base_views(loaded, mirror):
    """`rebuild(reuse=True)` (after each day of `mirror update`) copies the catalog and re-creates its base
    views only when the catalog was built from the same snapshot and SQL; the dependent views then answer
    exactly as after a full build. A different build record means a full build."""
    con = base_con(loaded)
    write_day(
        mirror, con, date(2026, 10, 1), 1, ul=ul_day(pick(loaded, "SELECT siren FROM ul LIMIT 5"), None, "R1")
    )
    probe = duckdb.connect(str(mirror / "sirene.duckdb"))
    probe.execute("CREATE VIEW probe AS SELECT 1 AS x")  # survives a copy, not a full build
    probe.close()
    catalog.rebuild(mirror, deltas.compact_for(mirror), reuse=True)

    def dump(data: Path) -> dict:
        cat = catalog.connect(data)
        try:
            views = [
                r[0]
                for r in cat.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()
            ]
            doc = cat.execute(
                "SELECT * FROM documents_v3_unites_legales WHERE siren IN (SELECT siren FROM unites_legales "
                "WHERE denominationUniteLegale = 'R1') ORDER BY siren"
            ).fetchall()
            return {"views": sorted(views), "doc": doc, "sql": view_sql(data)}
        finally:
            cat.close()

    reused = dump(mirror)
    assert (
        "probe" in reused["views"]
        and "deltas-merged/1/" in reused["sql"]
        and len({r[0] for r in reused["doc"]}) == 5
    )
    assert_views_follow_the_rules(loaded, mirror)
    catalog.rebuild(mirror, deltas.compact_for(mirror))  # a full build: same answers, the probe is gone
    full = dump(mirror)
    assert full["doc"] == reused["doc"] and full["sql"] == reused["sql"]
    assert set(reused["views"]) - set(full["views"]) == {"probe"}

    # A catalog recorded as built from something else is never reused.
    probe = duckdb.connect(str(mirror / "sirene.duckdb"))
    probe.execute("CREATE VIEW probe AS SELECT 1 AS x")
    probe.execute(f"UPDATE {catalog.BUILD_TABLE} SET fingerprint = 'another snapshot'")
    probe.close()
    write_day(
        mirror, con, date(2026, 10, 2), 2, ul=ul_day(pick(loaded, "SELECT siren FROM ul LIMIT 5"), None, "R2")
    )
    con.close()
    catalog.rebuild(mirror, deltas.compact_for(mirror), reuse=True)
    assert "probe" not in dump(mirror)["views"] and "deltas-merged/2/" in view_sql(mirror)
    assert_views_follow_the_rules(loaded, mirror)
