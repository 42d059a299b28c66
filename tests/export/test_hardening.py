"""Issue 18 for export and batch: the sandbox behind --where, outputs that never clobber, one-line
errors, xlsx temporary files beside the output, no silent results (empty filters, reversed ranges,
duplicated keys)."""

from __future__ import annotations

import csv
import os
import shutil
import stat
from datetime import date
from pathlib import Path

import duckdb
import pytest
from conftest import run_mirror
from export_helpers import build_catalog, read_raw, write_edge_stock

from mirror.core.errors import BadInput, MirrorError
from mirror.core.schema import UNITES_LEGALES
from mirror.export.batch import batch
from mirror.export.exporter import export
from mirror.export.filters import Filters
from mirror.export.sandbox import sandboxed

FORMATS = {"csv": ".csv", "parquet": ".parquet", "jsonl": ".jsonl", "xlsx": ".xlsx", "geojson": ".geojson"}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("hardening")
    stock = write_edge_stock(root / "stock", n_units=40, seed=3)
    con = build_catalog(root / "data", stock)()
    uls = [r["siren"] for r in read_raw(stock, UNITES_LEGALES)]
    out = root / "out"
    out.mkdir()
    yield {"con": con, "data": root / "data", "uls": uls, "out": out, "root": root}
    con.close()


def one_line_error(proc, *needles):
    assert proc.returncode != 0, proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), proc.stderr
    for n in needles:
        assert n in lines[0], proc.stderr


# --- item 1, second wall: a condition that skips validation still cannot read files ---


@pytest.mark.slow
def test_sandbox_refuses_files_beyond_the_mirror(world, tmp_path):
    secret = tmp_path / "secret.env"
    secret.write_text("INSEE_API_KEY=abc\n")
    with sandboxed(world["con"]) as sb:
        assert sb.execute("SELECT count(*) FROM etablissements").fetchone()[0] > 0
        for sql in (
            f"SELECT * FROM read_text('{secret}')",
            f"SELECT * FROM read_csv('{secret}')",
            f"SELECT * FROM read_text('{world['data']}/../{tmp_path.name}/secret.env')",
            "SELECT * FROM glob('/etc/*')",
            f"COPY (SELECT 1) TO '{tmp_path / 'x.csv'}'",
            f"ATTACH '{tmp_path / 'x.duckdb'}' AS x",
        ):
            with pytest.raises(duckdb.PermissionException):
                sb.execute(sql)
        with pytest.raises(duckdb.Error, match="locked"):
            sb.execute("SET enable_external_access = true")
        # Cursors (mirror.serve.documents uses one) read the catalog too.
        assert sb.cursor().execute("SELECT count(*) FROM unites_legales").fetchone()[0] > 0
    # The caller's connection is left as it was.
    assert world["con"].execute("SELECT current_setting('enable_external_access')").fetchone()[0] is True


def test_export_runs_an_unvalidated_condition_in_the_sandbox(world, tmp_path, monkeypatch):
    """A --where that got past the check (simulated: the check is replaced) cannot read a file."""
    from mirror.export import filters as filters_mod

    secret = tmp_path / "secret.env"
    secret.write_text("KEY=1\n")
    sneaky = f"(SELECT count(*) FROM read_text('{secret}')) > 0"
    monkeypatch.setattr(filters_mod, "compile_where", lambda text, cols: (text, [], set()))
    # Without the sandbox the condition reads the file: the bypass is real.
    assert world["con"].execute(f"SELECT {sneaky}").fetchone()[0] is True
    with pytest.raises(MirrorError) as info:
        export(world["con"], world["out"] / "sneaky.csv", filters=Filters(where=sneaky))
    assert "disabled by configuration" in str(info.value) and "\n" not in str(info.value)
    assert not (world["out"] / "sneaky.csv").exists()
    with pytest.raises(MirrorError):
        export(world["con"], None, count_only=True, filters=Filters(where=sneaky))


def test_cli_refuses_the_audit_bypass(world, tmp_path):
    text = """CAST("siren" AS "x) OR read_text('/etc/passwd') IS NOT NULL OR CAST(1 AS x") IS NULL"""
    proc = run_mirror("export", "--where", text, "--count", data_dir=world["data"])
    one_line_error(proc, "--where refused")
    deep = "(" * 40 + "siren = '1'" + ")" * 40
    one_line_error(run_mirror("export", "--where", deep, "--count", data_dir=world["data"]), "nested")


# --- item 2: never clobber ---


def device(tmp_path: Path, name: str, minor: int) -> Path:
    """A private copy of /dev/null (minor 3) or /dev/full (minor 7) when root may create one: a
    regression then replaces this node, never the system's. Otherwise the real one (a non-root
    process cannot replace it)."""
    node = tmp_path / name
    try:
        os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, minor))
    except OSError:
        if os.geteuid() == 0:
            pytest.skip("cannot create a device node, and the real one must not be put at risk as root")
        return Path(f"/dev/{name}")
    return node


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_dev_null_is_written_in_place_and_stays_a_device(world, fmt, tmp_path):
    null = device(tmp_path, "null", 3)
    proc = run_mirror("export", "-q", "--format", fmt, "-o", str(null), data_dir=world["data"])
    assert proc.returncode == 0, proc.stderr
    assert stat.S_ISCHR(os.stat(null).st_mode) and os.stat(null).st_rdev == os.makedev(1, 3)
    assert not Path(f"{null}.part").exists()


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_dev_full_is_a_one_line_no_space_error(world, fmt, tmp_path):
    full = device(tmp_path, "full", 7)
    proc = run_mirror("export", "-q", "--format", fmt, "-o", str(full), data_dir=world["data"])
    one_line_error(proc, "no space left on device")
    assert stat.S_ISCHR(os.stat(full).st_mode)


def test_a_fifo_is_written_in_place(world, tmp_path):
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    import threading

    got = {}

    def read():
        with open(fifo, "rb") as fh:
            got["data"] = fh.read()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    summary = export(world["con"], fifo, columns=["siret"])
    reader.join(10)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert got["data"].decode().splitlines()[0] == "siret"
    assert len(got["data"].decode().splitlines()) == summary["rows"] + 1


def test_a_symlink_is_followed_not_replaced(world, tmp_path):
    real = tmp_path / "real.csv"
    real.write_text("old\n")
    link = tmp_path / "link.csv"
    link.symlink_to(real)
    export(world["con"], link, columns=["siret"])
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert real.read_text().startswith("siret\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.csv", "real.csv"]


@pytest.mark.parametrize("name", ["sirene.duckdb", "state.json", "new.csv", "snapshots/x.csv"])
def test_outputs_inside_the_data_directory_are_refused(world, name):
    catalog = world["data"] / "sirene.duckdb"
    before = catalog.read_bytes()
    with pytest.raises(BadInput, match="data directory"):
        export(world["con"], world["data"] / name, fmt="csv")
    # Through a symlink pointing into it, too.
    link = world["root"] / "into-data.csv"
    link.unlink(missing_ok=True)
    link.symlink_to(world["data"] / name)
    with pytest.raises(BadInput, match="data directory"):
        export(world["con"], link, fmt="csv")
    assert catalog.read_bytes() == before and not (world["data"] / "new.csv").exists()


def test_batch_refuses_to_overwrite_its_input(world, tmp_path):
    src = tmp_path / "ids.csv"
    src.write_text("\n".join(world["uls"][:3]) + "\n")
    for out in (src, tmp_path / "alias.csv"):
        if out != src:
            out.symlink_to(src)
        with pytest.raises(BadInput, match="input file"):
            batch(world["con"], src, out)
    hard = tmp_path / "hard.csv"
    os.link(src, hard)
    with pytest.raises(BadInput, match="input file"):
        batch(world["con"], src, hard)
    assert src.read_text() == "\n".join(world["uls"][:3]) + "\n"
    proc = run_mirror("batch", str(src), "-o", str(src), data_dir=world["data"])
    one_line_error(proc, "input file")


# --- item 7 (xlsx part): temporary files beside the output, swept by the next run ---


def test_xlsx_temporary_files_live_beside_the_output_and_leftovers_are_removed(world, tmp_path, monkeypatch):
    out = tmp_path / "x.xlsx"
    leftover = tmp_path / "x.xlsx.part.tmp" / "xlsx"
    leftover.mkdir(parents=True)
    (leftover / "tmpabc123").write_bytes(b"x" * 1000)  # a killed run's xlsxwriter file
    (tmp_path / "x.xlsx.part").write_bytes(b"partial")
    seen = []
    import xlsxwriter

    original = xlsxwriter.Workbook.__init__

    def spy(self, filename, options=None):
        seen.append((options or {}).get("tmpdir"))
        original(self, filename, options)

    monkeypatch.setattr(xlsxwriter.Workbook, "__init__", spy)
    export(world["con"], out, columns=["siret"])
    assert seen == [str(tmp_path / "x.xlsx.part.tmp" / "xlsx")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.xlsx"]


def test_an_interrupted_xlsx_export_leaves_its_temporary_files_beside_the_output(world, tmp_path):
    from mirror.core.faults import EXPORT_CRASH_ENV

    out = tmp_path / "big.xlsx"
    proc = run_mirror(
        "export", "-q", "--all", "-o", str(out), data_dir=world["data"], env={EXPORT_CRASH_ENV: "5"}
    )
    assert proc.returncode == 70
    assert not out.exists() and (tmp_path / "big.xlsx.part.tmp").is_dir()
    ok = run_mirror("export", "-q", "-o", str(out), data_dir=world["data"])
    assert ok.returncode == 0, ok.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.xlsx"]


# --- item 8: one line, never a traceback ---


@pytest.mark.slow
@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_unwritable_output_path_is_one_line(world, fmt):
    proc = run_mirror("export", "-q", "-o", f"/proc/x{FORMATS[fmt]}", data_dir=world["data"])
    one_line_error(proc, "cannot write /proc/x")
    ids = world["root"] / "ids.txt"
    ids.write_text(world["uls"][0] + "\n")
    proc = run_mirror("batch", str(ids), "-q", "-o", f"/proc/x{FORMATS[fmt]}", data_dir=world["data"])
    one_line_error(proc, "cannot write /proc/x")


def test_part_existing_as_a_folder_is_one_line(world, tmp_path):
    (tmp_path / "a.csv.part").mkdir()
    proc = run_mirror("export", "-q", "-o", str(tmp_path / "a.csv"), data_dir=world["data"])
    one_line_error(proc, "a.csv.part", "folder")


def test_read_only_output_folder_is_one_line(world, tmp_path):
    """As root a chmod does not stop writes: a read-only bind of /proc stands in (kernel refuses)."""
    folder = Path("/proc/self")
    proc = run_mirror("export", "-q", "-o", str(folder / "x.csv"), data_dir=world["data"])
    one_line_error(proc, "cannot write")
    if os.geteuid() != 0:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        one_line_error(
            run_mirror("export", "-q", "-o", str(ro / "x.csv"), data_dir=world["data"]), "permission"
        )


@pytest.mark.slow
def test_full_tmpfs_is_one_line_for_every_format(world, tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    if os.geteuid() != 0 or os.system(f"mount -t tmpfs -o size=16k tmpfs {mnt} 2>/dev/null") != 0:
        pytest.skip("mounting a small tmpfs needs root")
    try:
        failed = 0
        for fmt, ext in FORMATS.items():
            proc = run_mirror("export", "-q", "--all", "-o", str(mnt / f"x{ext}"), data_dir=world["data"])
            if proc.returncode == 0:  # small enough to fit: nothing to check for this format
                (mnt / f"x{ext}").unlink()
                continue
            failed += 1
            one_line_error(proc, "no space left on device")
            assert not list(mnt.iterdir()), (fmt, list(mnt.iterdir()))
        assert failed >= 3
    finally:
        os.system(f"umount {mnt}")


def test_batch_input_in_latin1_is_read_and_binary_is_one_line(world, tmp_path):
    src = tmp_path / "clients.csv"
    src.write_bytes(("nom;siren\nCrêperie Noël;" + world["uls"][0] + "\n").encode("latin-1"))
    out = tmp_path / "out.csv"
    summary = batch(world["con"], src, out, column="siren", columns=["siren"])
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert [r["input"] for r in rows] == [world["uls"][0]] and summary["rows"] == 1
    binary = tmp_path / "ids.bin"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    one_line_error(
        run_mirror("batch", str(binary), "-o", str(out), data_dir=world["data"]), "not a text file"
    )
    one_line_error(
        run_mirror("batch", str(binary), "--column", "siren", "-o", str(out), data_dir=world["data"]),
        "not a text file",
    )


# --- item 9: no silent results ---


@pytest.mark.parametrize(
    "kwargs",
    [
        {"sirens": [""]},
        {"naf": [""]},
        {"naf": [","]},
        {"naf": ["62,"]},
        {"departements": [" "]},
        {"tranches": ["11", ""]},
        {"where": ""},
        {"near_siret": "", "radius_km": 1.0},
    ],
)
def test_empty_filter_values_are_errors(world, kwargs):
    with pytest.raises(BadInput):
        export(world["con"], None, count_only=True, filters=Filters(**kwargs))


@pytest.mark.slow
def test_empty_filter_values_on_the_cli(world):
    for args in (["--siren", ""], ["--naf", ""], ["--naf", ","]):
        one_line_error(run_mirror("export", *args, "--count", data_dir=world["data"]))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"created_from": date(2020, 1, 2), "created_to": date(2020, 1, 1)},
        {"updated_from": date(2025, 1, 1), "updated_to": date(2024, 1, 1)},
        {"effectif_min": 50, "effectif_max": 10},
    ],
)
def test_reversed_ranges_are_errors(world, kwargs):
    with pytest.raises(BadInput):
        export(world["con"], None, count_only=True, filters=Filters(**kwargs))


def test_reversed_dates_on_the_cli(world):
    proc = run_mirror(
        "export",
        "--created-from",
        "2020-01-02",
        "--created-to",
        "2020-01-01",
        "--count",
        data_dir=world["data"],
    )
    one_line_error(proc, "after")


def test_columns_naming_no_column_is_an_error(world, tmp_path):
    for columns in ([], [""], [" ", ""]):
        with pytest.raises(BadInput, match="no column"):
            export(world["con"], tmp_path / "x.csv", columns=columns)
        with pytest.raises(BadInput, match="no column"):
            batch(world["con"], tmp_path / "x.txt", tmp_path / "y.csv", columns=columns)


def test_batch_keeps_one_row_per_input_when_the_mirror_holds_a_key_twice(world, tmp_path):
    """A damaged snapshot (every unit and établissement file duplicated) must not duplicate batch rows."""
    data = tmp_path / "data"
    shutil.copytree(world["data"], data, symlinks=True)
    from mirror.catalog.build import connect, rebuild
    from mirror.deltas.store import compact_for

    snap = next((data / "snapshots").iterdir())
    for folder in (snap / "unites_legales", *(snap / "etablissements").iterdir()):
        for f in list(folder.glob("*.parquet")):
            shutil.copy(f, f.with_name("dup_" + f.name))
    rebuild(data, compact_for(data))
    con = connect(data, read_only=True)
    try:
        sirens = world["uls"][:5]
        assert (
            con.execute("SELECT count(*) FROM unites_legales WHERE siren = ?", [sirens[0]]).fetchone()[0] == 2
        )
        src = tmp_path / "ids.txt"
        lines = [sirens[0], "123", sirens[1], sirens[0], sirens[2]]
        src.write_text("\n".join(lines) + "\n")
        for level in ("unite-legale", "etablissement"):
            out = tmp_path / f"{level}.csv"
            summary = batch(con, src, out, level=level, columns=["siren"])
            rows = list(csv.DictReader(out.open(encoding="utf-8")))
            assert [r["input"] for r in rows] == lines, level
            assert sum(summary["statuses"].values()) == len(lines)
    finally:
        con.close()


def test_dev_stdout_through_its_symlink_is_written_in_place(world):
    """`-o /dev/stdout` is a link to /proc/self/fd/1, a pipe here: it is followed and written, not refused
    because the pipe has no resolvable path."""
    r = run_mirror(
        "export", "-o", "/dev/stdout", "--format", "csv", "--columns", "siret", data_dir=world["data"]
    )
    assert r.returncode == 0, r.stderr
    rows = r.stdout.splitlines()
    assert rows[0] == "siret" and len(rows) > 1 and all(len(x) == 14 for x in rows[1:])
