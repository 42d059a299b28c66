"""Watchlists end to end: a real mirror synced from the local upstream, `mirror watch add`, later syncs
that collect the new days' changes into alerts files and POST them to a real webhook receiver on 127.0.0.1;
a crash between steps loses and duplicates nothing."""

from __future__ import annotations

import json
import threading
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import run_mirror

from mirror.serve.changes import changes
from mirror.synthetic.upstream import server

MONTH, SCALE, SEED = "2026-10", 600, 21
ENV = {"INSEE_API_KEY": server.DEFAULT_API_KEY}
pytestmark = pytest.mark.slow


class Receiver:
    """A webhook endpoint that answers 500 to its first `failures` requests, then 204; keeps the bodies."""

    def __init__(self, failures: int = 0):
        self.failures, self.bodies, self.keys = failures, [], []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if outer.failures > 0:
                    outer.failures -= 1
                    self.send_response(500)
                else:
                    outer.bodies.append(body)
                    outer.keys.append(self.headers["Idempotency-Key"])
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def sync(up_data: Path, mirror: Path, today: date, env: dict | None = None):
    up = server.start(up_data, MONTH, scale=SCALE, seed=SEED, today=today)
    try:
        return run_mirror(
            "sync", "--datagouv-url", up.datagouv_url, "--insee-url", up.insee_url, "--rate", "100000", "-q",
            data_dir=mirror, env={**ENV, **(env or {})},
        )  # fmt: skip
    finally:
        up.close()


def test_watchlists_collect_each_day_once_and_deliver_it(tmp_path):
    up_data, mirror = tmp_path / "upstream", tmp_path / "mirror"
    server.prepare_stock(up_data, MONTH, SCALE, SEED)
    assert sync(up_data, mirror, date(2026, 10, 2)).returncode == 0  # applies 2026-10-01
    up = server.start(up_data, MONTH, scale=SCALE, seed=SEED, today=date(2026, 10, 1))
    try:  # units the next days change, and one the first day changed (reported before the list existed)
        later = {
            r["siren"] for d in (2, 3, 4) for r in up.changes.changes_for(date(2026, 10, d)).unites_legales
        }
        earlier = {r["siren"] for r in up.changes.changes_for(date(2026, 10, 1)).unites_legales} - later
    finally:
        up.close()
    watched = sorted(later)[:6] + sorted(earlier)[:2]
    ids = tmp_path / "clients.csv"
    ids.write_text("raison_sociale;siren\n" + "".join(f"X;{s}\n" for s in watched))
    receiver = Receiver(failures=2)
    try:
        bad = run_mirror("watch", "add", "clients", str(ids), data_dir=mirror)
        assert bad.returncode == 2 and "--column" in bad.stderr and "Traceback" not in bad.stderr
        added = run_mirror("watch", "add", "clients", str(ids), "--column", "siren", "--webhook", receiver.url,
                           data_dir=mirror)  # fmt: skip
        assert added.returncode == 0 and "8 identifiers" in added.stdout, added.stderr

        # A crash after the alerts files are written and before the list records it: nothing lost.
        crashed = sync(up_data, mirror, date(2026, 10, 4), env={"MIRROR_CRASH_AT": "watch-before-record"})
        assert crashed.returncode == 86, crashed.stderr
        first = sync(up_data, mirror, date(2026, 10, 4))
        assert first.returncode == 0, first.stderr
        assert "Watchlist clients:" in first.stdout and "1 delivered" not in first.stdout
        alerts = sorted((mirror / "alerts" / "clients").glob("*.jsonl"))
        assert [p.stem for p in alerts] == ["2026-10-02", "2026-10-03"]
        rows = [json.loads(line) for p in alerts for line in p.read_text().splitlines()]
        expected = changes(mirror, date(2026, 10, 2), date(2026, 10, 3), ids=watched).to_pylist()
        assert len(rows) == len(expected) > 0
        assert {r["identifier"][:9] for r in rows} <= set(watched)
        assert not {r["identifier"][:9] for r in rows} & (set(earlier) - later)
        assert receiver.keys == ["clients/2026-10-02", "clients/2026-10-03"]  # 2 failures, then retried
        assert [len(b["changes"]) for b in receiver.bodies] == [
            sum(r["day"] == d for r in rows) for d in ("2026-10-02", "2026-10-03")
        ]

        # The receiver goes away: the sync still succeeds, the day waits and is delivered next time.
        receiver.close()
        down = sync(up_data, mirror, date(2026, 10, 5))
        assert down.returncode == 0 and "1 pending" in down.stdout, down.stdout
        listed = run_mirror("watch", "list", data_dir=mirror)
        assert "1 pending" in listed.stdout and receiver.url not in listed.stdout
        receiver = Receiver()
        run_mirror("watch", "add", "clients", str(ids), "--column", "siren", "--webhook", receiver.url,
                   data_dir=mirror)  # fmt: skip
        again = sync(up_data, mirror, date(2026, 10, 5))
        assert again.returncode == 0 and "1 delivered" in again.stdout, again.stdout
        assert receiver.keys == ["clients/2026-10-04"]  # only the day that was pending
        shown = run_mirror("watch", "show", "clients", data_dir=mirror)
        assert shown.returncode == 0 and len(shown.stdout.strip().splitlines()) - 1 == len(
            changes(mirror, date(2026, 10, 2), ids=watched)
        )
        assert run_mirror("watch", "rm", "clients", data_dir=mirror).returncode == 0
        assert "No watchlist" in run_mirror("watch", "list", data_dir=mirror).stdout
    finally:
        receiver.close()
