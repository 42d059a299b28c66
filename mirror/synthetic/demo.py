"""`make demo` / `python -m mirror.synthetic.demo --scale N`: the whole mirror on SYNTHETIC data, end to end.

1. generates a demo-scale monthly stock (cached in ./data/demo/upstream/),
2. starts the combined local upstream (data.gouv.fr-like + INSEE-like API) on 127.0.0.1 in a background
   thread,
3. runs the real `mirror sync` against it (a subprocess, with a demo API key): the stock is downloaded and
   loaded, then several days of changes are applied,
4. prints a few lookups and a DuckDB query, and how to explore the result.

Everything lives in ./data/demo/ (inside the git-ignored data folder): a real mirror in ./data is never
touched. The mirror is rebuilt from scratch at each run; the generated upstream files are reused.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

BANNER = "SYNTHETIC DATA: generated for this demo, not the real Sirene register."


def _say(text: str = "") -> None:
    print(text, flush=True)


def _run_mirror(args: list[str], env: dict) -> None:
    cmd = [sys.executable, "-m", "mirror", *args]
    _say("$ mirror " + " ".join(args))
    result = subprocess.run(cmd, env=env)
    if result.returncode != 0:
        raise SystemExit(f"demo failed: `mirror {' '.join(args)}` exited with {result.returncode}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mirror.synthetic.demo", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--scale", type=int, default=20000, help="unités légales generated (default 20000)")
    parser.add_argument("--month", default="2026-10", help="stock month served (default 2026-10)")
    parser.add_argument("--days", type=int, default=5, help="days of changes published (default 5)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--root", type=Path, default=Path("data/demo"), help="demo folder (default ./data/demo)"
    )
    args = parser.parse_args(argv)

    from mirror.synthetic.upstream import server

    t0 = time.monotonic()
    root = args.root.resolve()
    upstream_dir, mirror_dir = root / "upstream", root / "mirror"
    _say("=" * 78)
    _say(BANNER)
    _say("=" * 78)
    _say(f"[1/4] Generating (or reusing) the {args.month} stock, {args.scale} unités légales ...")
    today = date.fromisoformat(args.month + "-01") + timedelta(days=args.days)
    up = server.start(
        upstream_dir, args.month, scale=args.scale, seed=args.seed, today=today, geolocation=True
    )
    try:
        _say(f"[2/4] Local upstream on {up.base_url} (data.gouv.fr-like) and {up.insee_url} (INSEE-like)")
        if mirror_dir.exists():
            shutil.rmtree(mirror_dir)
        env = {k: v for k, v in os.environ.items() if not k.startswith("MIRROR_")}
        env["INSEE_API_KEY"] = server.DEFAULT_API_KEY
        env["MIRROR_DATA_DIR"] = str(mirror_dir)
        _say(f"[3/4] mirror sync: stock {args.month}, then {args.days} days of changes ...")
        _run_mirror(
            ["sync", "--datagouv-url", up.datagouv_url, "--insee-url", up.insee_url, "--rate", "6000"], env
        )
        _say("[4/4] Looking around")
        _show(mirror_dir, env)
    finally:
        up.close()
    duckdb_cli = Path(sys.executable).with_name("duckdb")
    db = mirror_dir / "sirene.duckdb"
    _say()
    _say(f"Demo mirror:  {mirror_dir}   (catalog {db})")
    _say(f"Upstream files: {upstream_dir}")
    _say(f"Explore it:   {duckdb_cli if duckdb_cli.exists() else 'duckdb'} -readonly {db}")
    _say(f"              .venv/bin/mirror status --data-dir {mirror_dir}")
    _say(BANNER)
    _say(f"Done in {time.monotonic() - t0:.0f}s.")
    return 0


def _show(mirror_dir: Path, env: dict) -> None:
    from mirror.catalog import build as catalog
    from mirror.core.sql import render

    con = catalog.connect(mirror_dir, read_only=True)
    try:
        sirens = [row[0] for row in con.execute(render("demo/recently_changed.sql")).fetchall()]
        for siren in sirens[:2]:  # API Entreprise-like documents rebuilt from the mirror
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


if __name__ == "__main__":
    raise SystemExit(main())
