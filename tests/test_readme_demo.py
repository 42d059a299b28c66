"""`make demo`, then the README's examples, as a newcomer runs them: the demo module at a small scale in a
fresh working directory (with the checkout's .venv and sql/ beside it, as in the checkout), then every
shell example of the README that uses `mirror` or `duckdb`, run by bash exactly as written (after the
quick start's `source` and `export` lines). Each must exit 0 with some output, and the mirror must be
fresh (not stale) on today's date."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from conftest import REPO, caller_env, run_mirror

from mirror.synthetic import demo

README = REPO / "README.md"
# Not run: the blocks about a real mirror and a long-running server (`mirror sync` needs data.gouv.fr and an
# INSEE key, `mirror serve` runs until stopped: the demo itself makes its requests), and `mirror batch`,
# which reads the user's own file. Every other `mirror` / `duckdb` line of a ```sh block is run.
BLOCK_NOT_RUN = re.compile(r"^mirror (sync|serve)\b")
NOT_RUN = re.compile(r"^mirror batch\b")
SETUP = re.compile(r"^(source |export )")


def sh_blocks(text: str) -> list[list[str]]:
    """The lines of each ```sh block of the README (comments after a command removed)."""
    blocks = re.findall(r"^```sh\n(.*?)^```", text, flags=re.M | re.S)
    return [[re.sub(r"\s+#.*$", "", li).strip() for li in b.splitlines() if li.strip()] for b in blocks]


def examples(text: str) -> tuple[list[str], list[str]]:
    """(setup lines, commands): the quick start's `source`/`export` lines, and the `mirror`/`duckdb` lines."""
    setup, commands = [], []
    for block in sh_blocks(text):
        if any(BLOCK_NOT_RUN.match(line) for line in block):
            continue
        for line in block:
            if SETUP.match(line):
                setup.append(line)
            elif re.match(r"^(mirror|duckdb|\.venv/bin/duckdb) ", line) and not NOT_RUN.match(line):
                commands.append(line)
    return setup, commands


def test_the_readme_examples_are_found():
    setup, commands = examples(README.read_text(encoding="utf-8"))
    assert "source .venv/bin/activate" in setup
    assert any(li.startswith("export MIRROR_DATA_DIR=") for li in setup)
    assert "mirror status" in commands
    assert any(li.startswith("duckdb -readonly data/demo/mirror/sirene.duckdb") for li in commands)
    assert any(li.startswith(f"mirror get {demo.SHOWCASE_SIREN}") for li in commands)


@pytest.mark.parametrize(
    ("today", "month", "through", "first", "last"),
    [
        (date(2026, 12, 2), "2026-12", None, date(2026, 12, 1), date(2026, 12, 1)),
        (date(2026, 12, 1), "2026-11", date(2026, 11, 25), date(2026, 11, 25), date(2026, 11, 30)),
        (date(2026, 11, 20), "2026-11", date(2026, 11, 14), date(2026, 11, 14), date(2026, 11, 19)),
        (date(2027, 1, 6), "2027-01", None, date(2027, 1, 1), date(2027, 1, 5)),
        (date(2027, 3, 1), "2027-02", date(2027, 2, 23), date(2027, 2, 23), date(2027, 2, 28)),
    ],
)
def test_the_demo_month_follows_today(today, month, through, first, last):
    p = demo.plan(today, 5)
    assert (p.month, p.stock_through, p.first_day, p.last_day) == (month, through, first, last)
    assert p.today == today  # the INSEE-like API publishes every day before today
    fixed = demo.plan(today, 5, "2026-10")  # --month: the old fixed behaviour
    assert (fixed.month, fixed.stock_through, fixed.today) == ("2026-10", None, date(2026, 10, 6))


@pytest.mark.slow
@pytest.mark.lookup_store
def test_make_demo_then_the_readme_examples(tmp_path):
    work = tmp_path / "checkout"
    work.mkdir()
    venv = Path(sys.executable).parent.parent
    (work / ".venv").symlink_to(venv)
    (work / "sql").symlink_to(REPO / "sql")
    env = caller_env()
    env["PYTHONPATH"] = str(REPO)

    ran = subprocess.run(
        [sys.executable, "-m", "mirror.synthetic.demo", "--scale", "200", "--days", "1"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    out = ran.stdout
    # The demo printed the quick start's commands, the serve requests (with their curl lines) and stopped
    # the server cleanly.
    readme = README.read_text(encoding="utf-8")
    setup, commands = examples(readme)
    for line in demo.explore_lines(work / "data/demo/mirror", Path("data/demo")):
        assert f"  {line}\n" in out
        assert line in setup or line in commands, f"{line!r} is printed by the demo, not in the README"
    for path in (
        "/v3/insee/sirene/unites_legales/356000000?context=demo",
        "/search?q=la+poste&per_page=2",
        "/api-sirene/3.11/siren/356000000",  # the README's INSEE base-URL swap, on the demo's identifiers
        "/api-sirene/3.11/siren/356000000?date=2020-01-01&champs=siren,denominationUniteLegale,dateDebut",
        "/api-sirene/3.11/siret?q=siren:356000000%20AND%20periode(etatAdministratifEtablissement:A)&nombre=2",
    ):
        assert re.search(rf"^\$ curl 'http://127\.0\.0\.1:\d+{re.escape(path)}", out, re.M), out[-3000:]
        assert f"curl 'http://127.0.0.1:8000{path}" in readme
    assert "mirror serve stopped (SIGTERM, exit 0)" in out

    script_head = "set -e\n" + "\n".join(setup) + "\n"
    for command in commands:
        result = subprocess.run(
            ["bash", "-c", script_head + command],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, f"{command}\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
        written = re.search(r"-o (\S+)", command)
        if written and written.group(1) == "-":  # standard output: piped, its output checked below
            written = None
        if written:  # an export: the file it wrote
            assert (work / written.group(1)).stat().st_size > 0, command
        assert result.stdout.strip() or written, f"{command}: no output"

    # Every curl example of the README, run by bash as written against `mirror serve` on the demo mirror
    # (port 8000 replaced by a free one): HTTP 2xx with a body (`curl -f` fails on 4xx/5xx), so every
    # identifier they name exists in the demo. Before: the API Entreprise example named 41816609600051.
    curls = [li for block in sh_blocks(readme) for li in block if li.startswith("curl ")]
    assert len(curls) >= 8 and any("/etablissements/" in li for li in curls)
    port = demo._free_port()
    serve_env = {**env, "MIRROR_DATA_DIR": str(work / "data/demo/mirror")}
    server = subprocess.Popen(
        [sys.executable, "-m", "mirror", "serve", "--port", str(port), "--no-access-log"],
        cwd=work, env=serve_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        health = f"curl -sf --retry 30 --retry-connrefused --retry-delay 1 http://127.0.0.1:{port}/health"
        assert subprocess.run(["bash", "-c", health], capture_output=True, timeout=90).returncode == 0
        for line in curls:
            command = line.replace("curl ", "curl -sf ", 1).replace("127.0.0.1:8000", f"127.0.0.1:{port}")
            got = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=60)
            assert got.returncode == 0 and got.stdout.strip(), f"{line}: curl exit {got.returncode}"
    finally:
        server.terminate()
        server.wait(timeout=30)

    # Fresh on today's date: status is not stale, the last 30 days hold closures.
    status = subprocess.run(
        ["bash", "-c", script_head + "mirror status --json"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
    )
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["stale"] is False, status.stdout
    closures = subprocess.run(
        ["bash", "-c", script_head + "duckdb -readonly -csv data/demo/mirror/sirene.duckdb "
         "< sql/examples/closures_last_30_days.sql"],
        cwd=work, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert closures.returncode == 0, closures.stderr
    assert len(closures.stdout.strip().splitlines()) >= 2, closures.stdout  # header + at least one closure


def test_the_cron_line_and_exit_codes_agree_between_readme_and_sync_help():
    readme = README.read_text(encoding="utf-8")
    (cron,) = re.findall(r"^```cron\n(.*?)\n```", readme, flags=re.M | re.S)
    helped = run_mirror("sync", "--help")
    assert helped.returncode == 0, helped.stderr
    assert cron.strip() in helped.stdout, helped.stdout
    assert "between 07:00 and 08:00" in helped.stdout and "between 07:00 and 08:00 (Paris time)" in readme
    for code, word in (("0", "up to date"), ("4", "partly done"), ("3", "mass update")):
        assert re.search(rf"^\s+{code}\s+.*{word}", helped.stdout, re.M), (code, helped.stdout)
        assert re.search(rf"^\| {code} \| .*{word}", readme, re.M), code
