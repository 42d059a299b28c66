"""`make demo` / `python -m mirror.synthetic.demo --scale N`: the whole mirror on SYNTHETIC data, end to end.

1. generates a demo-scale monthly stock (cached in ./data/demo/upstream/),
2. starts the combined local upstream (data.gouv.fr-like + INSEE-like API) on 127.0.0.1 in a background
   thread,
3. runs the real `mirror sync` against it (a subprocess, with a demo API key): the stock is downloaded and
   loaded, then the last days of changes are applied,
4. prints a few lookups and a DuckDB query,
5. starts `mirror serve` on a free loopback port, makes a few real requests (API Entreprise v3, the
   recherche-entreprises /search) with the curl lines that repeat them, and stops it,
6. prints how to explore the result: the same commands as the README's quick start.

The month and days follow today's date (`plan`), so the mirror is fresh right after the demo (`mirror
status` and /health say so, `sql/examples/closures_last_30_days.sql` finds rows): the stock of the month
of yesterday, then its days through yesterday. Past the first days of a month, the stock is the mid-month
kind INSEE published on 2025-12-16 (the month's changes through a day included), so that only the last
`--days` days are fetched. `--month` gives the old fixed behaviour (that month's stock and its first days).

Everything lives in ./data/demo/ (inside the git-ignored data folder): a real mirror in ./data is never
touched. The mirror is rebuilt from scratch at each run; the generated upstream files are reused.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from mirror.core.identifiers import LA_POSTE_SIREN

BANNER = "SYNTHETIC DATA: generated for this demo, not the real Sirene register."
# The showcase unit: every synthetic stock holds La Poste's SIREN (the one exception to the Luhn rule)
# whatever its scale, so the README's examples answer on the demo mirror and on a real one alike.
SHOWCASE_SIREN = LA_POSTE_SIREN
RECIPIENT = "13002526500013"  # the SIRET API Entreprise's own examples give as `recipient`
SERVE_TIMEOUT = 60.0  # seconds for `mirror serve` to answer /health


@dataclass(frozen=True)
class Plan:
    """What the demo upstream serves: the stock of `month` (holding the month's changes through
    `stock_through` when set, a mid-month stock), and the INSEE-like API's `today` (days before it are
    published)."""

    month: str
    stock_through: date | None
    today: date

    @property
    def first_day(self) -> date:
        """The first day `mirror sync` fetches (the stock's last day again when it is a mid-month stock)."""
        return self.stock_through or date.fromisoformat(self.month + "-01")

    @property
    def last_day(self) -> date:
        return self.today - timedelta(days=1)


def plan(today: date, days: int, month: str | None = None) -> Plan:
    """The month and days to serve so that the mirror is fresh on `today` with about `days` days of changes.

    Without `month`: the stock of the month of yesterday and its days through yesterday; when yesterday is
    later than the `days`-th of its month, a mid-month stock holding the changes through `days` days before
    yesterday (re-fetched, it counts no change), then the last `days` days. With `month`: that month's
    stock and its first `days` days (not fresh unless that month is the current one)."""
    if month is not None:
        return Plan(month, None, date.fromisoformat(month + "-01") + timedelta(days=days))
    last = today - timedelta(days=1)
    month = f"{last.year:04d}-{last.month:02d}"
    through = last - timedelta(days=days) if last.day > days else None
    return Plan(month, through, today)


def _say(text: str = "") -> None:
    print(text, flush=True)


def _run_mirror(args: list[str], env: dict) -> None:
    cmd = [sys.executable, "-m", "mirror", *args]
    _say("$ mirror " + " ".join(args))
    result = subprocess.run(cmd, env=env)
    if result.returncode != 0:
        raise SystemExit(f"demo failed: `mirror {' '.join(args)}` exited with {result.returncode}")


def _mid_month_stock(up, upstream_dir: Path, p: Plan, scale: int, seed: int) -> Path:
    """The mid-month stock of the plan (the month's stock + its changes through `stock_through`), cached."""
    folder = upstream_dir / f"{p.month}-through-{p.stock_through.isoformat()}"
    marker = folder / ".generated.json"
    wanted = {"month": p.month, "through": p.stock_through.isoformat(), "scale": scale, "seed": seed}
    if marker.is_file() and json.loads(marker.read_text()) == wanted:
        return folder
    for old in upstream_dir.glob(f"{p.month}-through-*"):  # earlier demos' mid-month stocks
        shutil.rmtree(old, ignore_errors=True)
    up.changes.write_next_month_stock(folder, through=p.stock_through)
    marker.write_text(json.dumps(wanted))
    return folder


def explore_lines(mirror_dir: Path, root_arg: Path) -> list[str]:
    """The commands printed at the end: those of the README's quick start (for the default --root)."""
    rel = root_arg / "mirror"
    return [
        "source .venv/bin/activate",
        f"export MIRROR_DATA_DIR={rel}",
        "mirror status",
        f"mirror get {SHOWCASE_SIREN}",
        f"mirror get {SHOWCASE_SIREN} --siege --format v4",
        'mirror search "la poste" --limit 3',
        f"mirror export --siren {SHOWCASE_SIREN} --all -o la-poste.csv",
        f"duckdb -readonly {rel}/sirene.duckdb < sql/examples/closures_last_30_days.sql",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mirror.synthetic.demo", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--scale", type=int, default=20000, help="unités légales generated (default 20000)")
    parser.add_argument(
        "--month", default=None, help="stock month served (default: the month of yesterday, so it is fresh)"
    )
    parser.add_argument("--days", type=int, default=5, help="days of changes published (default 5)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--root", type=Path, default=Path("data/demo"), help="demo folder (default ./data/demo)"
    )
    parser.add_argument(
        "--today",
        type=date.fromisoformat,
        default=None,
        help="plan the month and days as on this date (tests)",
    )
    parser.add_argument("--no-serve", action="store_true", help="skip the `mirror serve` requests")
    args = parser.parse_args(argv)
    if args.days < 1:
        parser.error("--days must be at least 1")

    from mirror.synthetic.upstream import server

    t0 = time.monotonic()
    root = args.root.resolve()
    upstream_dir, mirror_dir = root / "upstream", root / "mirror"
    p = plan(args.today or date.today(), args.days, args.month)
    _say("=" * 78)
    _say(BANNER)
    _say("=" * 78)
    _say(f"[1/5] Generating (or reusing) the {p.month} stock, {args.scale} unités légales ...")
    up = server.start(
        upstream_dir, p.month, scale=args.scale, seed=args.seed, today=p.today, geolocation=True
    )
    try:
        if p.stock_through is not None:
            _say(f"      as re-published mid-month: with the changes through {p.stock_through.isoformat()}")
            up.datagouv.add_month(p.month, _mid_month_stock(up, upstream_dir, p, args.scale, args.seed))
        _say(f"[2/5] Local upstream on {up.base_url} (data.gouv.fr-like) and {up.insee_url} (INSEE-like)")
        if mirror_dir.exists():
            shutil.rmtree(mirror_dir)
        env = {k: v for k, v in os.environ.items() if not k.startswith("MIRROR_")}
        env["INSEE_API_KEY"] = server.DEFAULT_API_KEY
        env["MIRROR_DATA_DIR"] = str(mirror_dir)
        _say(
            f"[3/5] mirror sync: stock {p.month}, then the days of changes "
            f"{p.first_day.isoformat()} .. {p.last_day.isoformat()} ..."
        )
        _run_mirror(
            ["sync", "--datagouv-url", up.datagouv_url, "--insee-url", up.insee_url, "--rate", "6000"], env
        )
        _say("[4/5] Looking around")
        _show(mirror_dir, env)
    finally:
        up.close()
    if args.no_serve:
        _say("[5/5] mirror serve: skipped (--no-serve)")
    else:
        _say("[5/5] mirror serve: the local HTTP API, a few requests")
        _serve(mirror_dir, env)
    _say()
    _say(f"Demo mirror:    {mirror_dir}")
    _say(f"Upstream files: {upstream_dir}")
    _say("Explore it from this folder (the README's quick start):")
    for line in explore_lines(mirror_dir, args.root):
        _say(f"  {line}")
    _say(BANNER)
    _say(f"Done in {time.monotonic() - t0:.0f}s.")
    return 0


def _show(mirror_dir: Path, env: dict) -> None:
    from mirror.catalog import build as catalog
    from mirror.core.sql import render

    _run_mirror(["get", SHOWCASE_SIREN, "--compact"], env)
    con = catalog.connect(mirror_dir, read_only=True)
    try:
        sirens = [row[0] for row in con.execute(render("demo/recently_changed.sql")).fetchall()]
        for siren in sirens[:1]:  # an API Entreprise-like document rebuilt from the mirror
            _run_mirror(["get", siren, "--compact"], env)
        if sirens:
            _say(f"History of {sirens[0]} (unites_legales_historique):")
            for row in con.execute(render("demo/history.sql"), [sirens[0]]).fetchall():
                _say(f"  {row[0]} .. {str(row[1] or ''):<10}  état {row[2]}  APE {row[3]}")
        query = render("demo/active_by_departement.sql")
        _say(f"DuckDB: {query}")
        for dep, n in con.execute(query).fetchall():
            _say(f"  {dep or '?':>4}  {n}")
    finally:
        con.close()
    _run_mirror(["status"], env)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_requests(base: str) -> list[tuple[str, str]]:
    """(title, URL) of the demo's requests to `mirror serve` at `base`."""
    ctx = f"context=demo&object=demo&recipient={RECIPIENT}"
    return [
        ("API Entreprise v3, unité légale", f"{base}/v3/insee/sirene/unites_legales/{SHOWCASE_SIREN}?{ctx}"),
        ("API Entreprise v3, its siège", f"{base}/v3/insee/sirene/unites_legales/{SHOWCASE_SIREN}/siege_social?{ctx}"),
        ("recherche-entreprises /search", f"{base}/search?q=la+poste&per_page=2"),
        ("INSEE API Sirene 3.11, unité légale", f"{base}/api-sirene/3.11/siren/{SHOWCASE_SIREN}"),
        ("INSEE API Sirene 3.11, as it stood on 2020-01-01",
         f"{base}/api-sirene/3.11/siren/{SHOWCASE_SIREN}?date=2020-01-01&champs=siren,denominationUniteLegale,dateDebut"),
        ("INSEE API Sirene 3.11, its open établissements",
         f"{base}/api-sirene/3.11/siret?q=siren:{SHOWCASE_SIREN}%20AND%20periode(etatAdministratifEtablissement:A)&nombre=2"),
        ("health", f"{base}/health"),
    ]  # fmt: skip


def _serve(mirror_dir: Path, env: dict) -> None:
    """Starts `mirror serve` on a free loopback port, makes the requests of serve_requests, stops it."""
    import requests

    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "mirror", "serve", "--port", str(port), "--log-level", "warning"]
    _say(f"$ mirror serve --port {port} &")
    proc = subprocess.Popen(cmd + ["--no-access-log"], env=env, stdout=subprocess.DEVNULL)
    session = requests.Session()
    session.trust_env = False  # loopback: no proxy
    try:
        deadline = time.monotonic() + SERVE_TIMEOUT
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"demo failed: `mirror serve` exited with {proc.returncode}")
            try:
                session.get(f"{base}/health", timeout=2)
                break
            except requests.RequestException:
                if time.monotonic() > deadline:
                    raise SystemExit(
                        f"demo failed: `mirror serve` did not answer within {SERVE_TIMEOUT:.0f} s"
                    ) from None
                time.sleep(0.2)
        for title, url in serve_requests(base):
            resp = session.get(url, timeout=30)
            body = json.dumps(resp.json(), ensure_ascii=False)
            _say(f"# {title}: HTTP {resp.status_code}")
            _say(f"$ curl '{url}'")
            _say(f"  {body[:300]}{' ...' if len(body) > 300 else ''}")
            if resp.status_code != 200:
                raise SystemExit(f"demo failed: {url} answered HTTP {resp.status_code}")
    finally:
        session.close()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    _say(f"mirror serve stopped (SIGTERM, exit {proc.returncode}).")


if __name__ == "__main__":
    raise SystemExit(main())
