"""What a shell user expects of `mirror export` / `mirror batch` outputs, through the real CLI (a subprocess on
the session's loaded mirror): `-o -` is standard output, a --format contradicting the extension is refused,
TSV and XML are formats of their own, the same command gives the same bytes (ordered by identifier or
--sort), --with-libelles adds the libellés of the chosen columns only; batch keeps blank input lines as
invalid rows and finds the identifier column of a CSV given without --column."""

from __future__ import annotations

import csv
import io
import json
import os
import pty
import subprocess
import sys
import xml.etree.ElementTree as ET

import pyarrow.parquet as pq
import pytest
from conftest import REPO, mirror_env, run_mirror

from mirror.catalog.build import connect


@pytest.fixture(scope="module")
def mirror_facts(loaded_stock):
    """Sirens of the loaded mirror with several établissements, and active sirens (their diffusible view)."""
    with connect(loaded_stock, read_only=True) as con:
        multi = [
            r[0]
            for r in con.execute(
                "SELECT siren FROM etablissements_diffusibles GROUP BY siren HAVING count(*) >= 3 ORDER BY siren"
            ).fetchall()
        ]
        sirens = [
            r[0]
            for r in con.execute(
                "SELECT siren FROM unites_legales_diffusibles WHERE statutDiffusionUniteLegale = 'O' "
                "ORDER BY siren LIMIT 12"
            ).fetchall()
        ]
        actives = con.execute(
            "SELECT count(*) FROM etablissements_diffusibles WHERE etatAdministratifEtablissement = 'A'"
        ).fetchone()[0]
    return {"multi": multi[:6], "sirens": sirens, "active_etablissements": actives}


def export(data, *args, cwd=None):
    return run_mirror("export", "-q", *args, data_dir=data, cwd=cwd)


def one_line_error(proc, code, needle):
    assert proc.returncode == code, (proc.stdout, proc.stderr)
    assert needle in proc.stderr, proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr


def siren_filter(facts):
    return [a for s in facts["multi"] for a in ("--siren", s)]


# --- `-o -`: standard output ------------------------------------------------------------------------------

STDOUT_FORMATS = {"csv": ".csv", "tsv": ".tsv", "jsonl": ".jsonl", "geojson": ".geojson", "xml": ".xml"}


@pytest.mark.slow
@pytest.mark.parametrize("fmt", sorted(STDOUT_FORMATS))
def test_dash_writes_the_file_bytes_to_stdout_and_creates_no_file(loaded_stock, mirror_facts, tmp_path, fmt):
    args = [*siren_filter(mirror_facts), "--all", "--columns", "siret,siren,codePostalEtablissement"]
    piped = subprocess.run(
        [sys.executable, "-m", "mirror", "export", "-q", *args, "-o", "-", "--format", fmt],
        capture_output=True,
        env={**os.environ, "MIRROR_DATA_DIR": str(loaded_stock), "MIRROR_LOOKUP_STORE": "off"},
        cwd=tmp_path,
    )
    assert piped.returncode == 0, piped.stderr
    assert not (tmp_path / "-").exists()
    assert "written to standard output" in piped.stderr.decode()  # the summary, on stderr only
    written = export(loaded_stock, *args, "-o", str(tmp_path / f"x{STDOUT_FORMATS[fmt]}"))
    assert written.returncode == 0, written.stderr
    assert piped.stdout == (tmp_path / f"x{STDOUT_FORMATS[fmt]}").read_bytes() != b""


def test_dash_is_csv_by_default_and_warnings_stay_off_stdout(loaded_stock, mirror_facts, tmp_path):
    proc = export(
        loaded_stock, "--siren", mirror_facts["multi"][0], "--columns", "siret", "--include-non-diffusible",
        "-o", "-", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "siret" and all(line.isdigit() and len(line) == 14 for line in lines[1:])
    assert "prospection" in proc.stderr and "prospection" not in proc.stdout
    assert not (tmp_path / "-").exists()


def test_binary_formats_are_not_written_to_a_terminal(loaded_stock, mirror_facts, tmp_path):
    leader, follower = pty.openpty()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "mirror", "export", "-q", "--siren", mirror_facts["multi"][0], "-o", "-",
             "--format", "parquet"],
            stdout=follower,
            stderr=subprocess.PIPE,
            env={**os.environ, "MIRROR_DATA_DIR": str(loaded_stock), "MIRROR_LOOKUP_STORE": "off"},
            cwd=REPO,
            timeout=120,
        )  # fmt: skip
    finally:
        os.close(follower)
        os.close(leader)
    assert proc.returncode == 2 and b"to a terminal" in proc.stderr


# --- formats: one table, the extension must agree --------------------------------------------------------


@pytest.mark.parametrize(
    "fmt, name, told",
    [
        ("xlsx", "x.csv", "csv"),
        ("csv", "x.xlsx", "xlsx"),
        ("parquet", "x.geojson", "geojson"),
        ("csv", "x.tsv", "tsv"),
    ],
)
def test_a_format_contradicting_the_extension_is_refused(loaded_stock, tmp_path, fmt, name, told):
    proc = export(loaded_stock, "--format", fmt, "-o", str(tmp_path / name))
    one_line_error(proc, 2, f"--format {fmt} contradicts the extension of '{name}' ({told})")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_tsv_is_a_format_and_agrees_with_txt(loaded_stock, mirror_facts, tmp_path):
    args = ["--siren", mirror_facts["multi"][0], "--columns", "siret,siren"]
    by_ext = export(loaded_stock, *args, "-o", str(tmp_path / "a.tsv"))
    assert by_ext.returncode == 0 and "(tsv, " in by_ext.stderr, by_ext.stderr
    assert (tmp_path / "a.tsv").read_text().splitlines()[0] == "siret\tsiren"
    by_flag = export(loaded_stock, *args, "--format", "tsv", "-o", str(tmp_path / "a.txt"))
    assert by_flag.returncode == 0 and (tmp_path / "a.txt").read_bytes() == (tmp_path / "a.tsv").read_bytes()
    one_line_error(
        export(loaded_stock, *args, "--delimiter", ";", "-o", str(tmp_path / "b.tsv")),
        2,
        "TSV is tab-separated",
    )


# --- XML --------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_xml_export_is_well_formed_and_holds_the_csv_values(loaded_stock, tmp_path):
    cols = "siren,denominationUniteLegale,dateCreationUniteLegale,dateDernierTraitementUniteLegale,categorieJuridiqueUniteLegale"
    for name in ("u.xml", "u.csv"):
        proc = export(loaded_stock, "--level", "unite-legale", "--columns", cols, "-o", str(tmp_path / name))
        assert proc.returncode == 0, proc.stderr
    root = ET.parse(tmp_path / "u.xml").getroot()
    rows = list(csv.DictReader(open(tmp_path / "u.csv", encoding="utf-8")))
    assert root.tag == "unitesLegales" and len(root) == len(rows) > 100
    nulls = 0
    for element, row in zip(root, rows, strict=True):
        assert element.tag == "uniteLegale"
        got = {child.tag: child.text or "" for child in element}
        assert set(got) <= set(cols.split(",")) and got["siren"] == row["siren"]
        for c in cols.split(","):
            if c not in got:  # NULL: no element
                nulls += 1
                assert row[c] == ""
            elif c == "dateDernierTraitementUniteLegale":  # xs:dateTime
                assert got[c].replace("T", " ").startswith(row[c][:19]) and "T" in got[c]
            else:
                assert got[c] == row[c]
    assert nulls  # the fixture has units without a dénomination (natural persons)


def test_xml_batch_escapes_the_input_and_keeps_every_row(loaded_stock, mirror_facts, tmp_path):
    siren = mirror_facts["sirens"][0]
    src = tmp_path / "ids.txt"
    src.write_text(f'{siren}\n<a&b>"\x01\n\n{siren[:3]} {siren[3:]}\n', encoding="utf-8")
    proc = run_mirror(
        "batch", str(src), "-q", "--columns", "siren", "-o", str(tmp_path / "o.xml"), data_dir=loaded_stock
    )
    assert proc.returncode == 0, proc.stderr
    root = ET.parse(tmp_path / "o.xml").getroot()
    rows = [{c.tag: c.text or "" for c in e} for e in root]
    assert [r["input"] for r in rows] == [siren, '<a&b>"\ufffd', "", f"{siren[:3]} {siren[3:]}"]
    assert [r["status"] for r in rows] == ["ok", "invalid", "invalid", "ok"]
    assert [r.get("siren") for r in rows] == [siren, None, None, siren]


# --- the same command, the same bytes ---------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("ext", [".csv", ".xlsx", ".parquet"])
def test_the_same_export_gives_the_same_bytes_ordered_by_identifier(loaded_stock, tmp_path, ext):
    args = ["--level", "unite-legale", "--columns", "siren,denominationUniteLegale,libelleCommune", "--all"]
    for name in ("a", "b"):
        proc = export(loaded_stock, *args, "-o", str(tmp_path / f"{name}{ext}"))
        assert proc.returncode == 0, proc.stderr
    assert (tmp_path / f"a{ext}").read_bytes() == (tmp_path / f"b{ext}").read_bytes()
    if ext == ".parquet":
        sirens = pq.read_table(tmp_path / "a.parquet").column("siren").to_pylist()
        assert sirens == sorted(sirens) and len(sirens) > 1000


@pytest.mark.slow
def test_sort_orders_by_the_columns_then_the_identifier(loaded_stock, tmp_path):
    out = tmp_path / "s.csv"
    proc = export(
        loaded_stock, "--columns", "siret,codePostalEtablissement,dateCreationEtablissement",
        "--sort", "codePostalEtablissement,-dateCreationEtablissement", "-o", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(open(out, encoding="utf-8")))
    keys = [
        (r["codePostalEtablissement"] or "\uffff", r["dateCreationEtablissement"], r["siret"]) for r in rows
    ]
    want = sorted(keys, key=lambda k: k[2])
    want = sorted(want, key=lambda k: k[1] or "", reverse=True)
    want = sorted(want, key=lambda k: k[0])
    assert keys == want and len({k[0] for k in keys}) > 10
    one_line_error(export(loaded_stock, "--sort", "nope", "-o", str(tmp_path / "n.csv")), 2, "unknown column")


# --- --with-libelles: the libellés of the chosen columns --------------------------------------------------


@pytest.mark.slow
def test_with_libelles_adds_the_libelles_of_the_chosen_codes_next_to_them(
    loaded_stock, mirror_facts, tmp_path
):
    proc = export(
        loaded_stock, "--siren", mirror_facts["multi"][0], "--columns", "siret,codeCommuneEtablissement,siren",
        "--with-libelles", "-o", "-",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == "siret,codeCommuneEtablissement,libelleCommune,siren"
    src = tmp_path / "one.txt"
    src.write_text(mirror_facts["sirens"][0] + "\n", encoding="utf-8")
    unit = run_mirror(
        "batch", str(src), "-q", "--columns", "activitePrincipaleUniteLegale", "--with-libelles", "-o", "-",
        data_dir=loaded_stock,
    )  # fmt: skip
    assert unit.returncode == 0, unit.stderr
    assert next(csv.reader(io.StringIO(unit.stdout))) == [
        "input",
        "status",
        "activitePrincipaleUniteLegale",
        "libelleActivitePrincipaleUniteLegale",
        "sectionActivitePrincipaleUniteLegale",
    ]


# --- batch input ------------------------------------------------------------------------------------------


def test_batch_keeps_blank_lines_as_invalid_rows(loaded_stock, mirror_facts, tmp_path):
    sirens = mirror_facts["sirens"]
    lines = [*sirens[:5], "", *sirens[5:10], "  ", sirens[10]]  # 13 lines, two of them blank
    src = tmp_path / "ids.txt"
    src.write_bytes(("\r\n".join(lines) + "\r\n").encode())
    proc = run_mirror("batch", str(src), "-q", "--columns", "siren", "-o", "-", data_dir=loaded_stock)
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    assert len(rows) == 13
    assert [r["status"] for r in rows] == ["invalid" if not v.strip() else "ok" for v in lines]
    assert [r["siren"] for r in rows] == [v.strip() for v in lines]
    assert "invalid 2" in proc.stderr


@pytest.mark.parametrize("column", ["SIRET du client", "code"])
def test_batch_csv_without_column_detects_the_header_and_the_identifier_column(
    loaded_stock, mirror_facts, tmp_path, column
):
    with connect(loaded_stock, read_only=True) as con:
        sirets = [
            r[0]
            for r in con.execute(
                "SELECT siret FROM etablissements_diffusibles ORDER BY siret LIMIT 3"
            ).fetchall()
        ]
    src = tmp_path / "clients.csv"
    with src.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, delimiter=";")
        w.writerow(["nom", column, "ville"])
        for i, s in enumerate(sirets):
            w.writerow([f"client {i}", s, "Paris"])
    proc = run_mirror(
        "batch",
        str(src),
        "-q",
        "--level",
        "etablissement",
        "--columns",
        "siret",
        "-o",
        "-",
        data_dir=loaded_stock,
    )
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    assert [r["input"] for r in rows] == [r["siret"] for r in rows] == sirets
    assert f"Read the column {column!r} of clients.csv" in proc.stderr


def test_batch_one_column_list_with_a_header_line(loaded_stock, mirror_facts, tmp_path):
    src = tmp_path / "list.txt"
    src.write_text("SIREN\n" + "\n".join(mirror_facts["sirens"][:3]) + "\n", encoding="utf-8")
    proc = run_mirror("batch", str(src), "-q", "--columns", "siren", "-o", "-", data_dir=loaded_stock)
    assert proc.returncode == 0, proc.stderr
    assert [r["status"] for r in csv.DictReader(io.StringIO(proc.stdout))] == ["ok"] * 3


@pytest.mark.parametrize(
    "text, needle",
    [
        (
            "nom;siren;siret\nA;1;2\n",
            "several identifier columns (siren, siret): pass --column siren or --column siret",
        ),
        ("nom,ville\nA,Paris\n", "none is clearly the SIREN / SIRET: pass --column NAME"),
        ("552100554;ACME\n", "looks like a CSV without a header line"),
    ],
)
def test_batch_csv_it_cannot_read_alone_says_what_to_pass(loaded_stock, tmp_path, text, needle):
    src = tmp_path / "in.csv"
    src.write_text(text, encoding="utf-8")
    one_line_error(run_mirror("batch", str(src), "-q", "-o", "-", data_dir=loaded_stock), 2, needle)


def test_jsonl_to_stdout_is_one_document_per_line(loaded_stock, mirror_facts):
    proc = export(loaded_stock, "--siren", mirror_facts["multi"][0], "--format", "jsonl", "-o", "-")
    assert proc.returncode == 0, proc.stderr
    sirets = [json.loads(line)["data"]["siret"] for line in proc.stdout.splitlines()]
    assert sirets == sorted(sirets) and len(sirets) >= 1


# --- a reader that goes away (`| head -1`) -------------------------------------------------------------


def test_export_to_head_ends_quietly_like_a_sigpiped_tool(loaded_stock):
    """`mirror export -o - | head -1` in a real shell pipeline: the header line, nothing on stderr, and the
    exit status of a tool killed by SIGPIPE (141, core.errors.OutputClosed). Before: "Error: cannot write
    standard output: the reader closed the pipe", exit 1."""
    script = f'{sys.executable} -m mirror export --all -o - -q | head -1; echo "status ${{PIPESTATUS[0]}}"'
    proc = subprocess.run(
        ["bash", "-c", script],
        capture_output=True,
        text=True,
        env=mirror_env(loaded_stock),
        cwd=REPO,
        timeout=120,
    )
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("siren,nic,siret,") and lines[1:] == ["status 141"], proc.stdout
    assert proc.stderr == ""


@pytest.mark.parametrize(
    "args",
    [
        ("batch", "{ids}", "--level", "etablissement", "-o", "-", "-q"),
        ("batch", "{ids}", "-o", "-", "--format", "jsonl", "-q"),
        ("search", "a", "--format", "json"),
        ("get", "{siren}"),
        ("export", "--all", "-o", "-", "--format", "xml", "-q"),
    ],
    ids=["batch-csv", "batch-jsonl", "search", "get", "export-xml"],
)
def test_closed_standard_output_ends_quietly(loaded_stock, mirror_facts, tmp_path, args):
    """Standard output closed before the command writes (a real pipe whose reader is gone): no message, no
    traceback, exit 141, whatever the command."""
    ids = tmp_path / "ids.txt"
    ids.write_text("\n".join(mirror_facts["sirens"]) + "\n")
    argv = [a.format(ids=ids, siren=mirror_facts["sirens"][0]) for a in args]
    proc = subprocess.Popen(
        [sys.executable, "-m", "mirror", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=mirror_env(loaded_stock),
        cwd=REPO,
    )
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141, err
    assert err == ""
