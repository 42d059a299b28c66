"""`mirror serve` follows the mirror without a restart: a day applied by `mirror update` while the server runs
is served from the next request on, and no answer during the update is a mix of two states (each one is the
document before or the document after), for API Entreprise and for the INSEE API Sirene records alike."""

from __future__ import annotations

import json
import threading
from datetime import date

import pytest
from conftest import CONTEXT, run_mirror, running_server

from mirror.catalog.build import connect
from mirror.lookup import insee
from mirror.serve.documents import get_document
from mirror.synthetic.upstream import server as upstream

MONTH, SCALE, SEED = "2026-10", 600, 21
ENV = {"INSEE_API_KEY": upstream.DEFAULT_API_KEY}
API = "https://entreprise.api.gouv.fr"


def answer(response) -> tuple[int, dict]:
    return response.status_code, response.json()


def mirror_cmd(command: str, data_dir, up):
    urls = ["--insee-url", up.insee_url, "--rate", "100000", "-q"]
    if command == "sync":
        urls = ["--datagouv-url", up.datagouv_url, *urls]
    return run_mirror(command, *urls, data_dir=data_dir, env={**ENV, "MIRROR_LOOKUP_STORE": "on"})


@pytest.mark.slow
@pytest.mark.lookup_store
def test_a_day_applied_while_serving_is_served_at_once(tmp_path):
    data = tmp_path / "upstream"
    upstream.prepare_stock(data, MONTH, SCALE, SEED)
    mirror = tmp_path / "mirror"
    up = upstream.start(data, MONTH, scale=SCALE, seed=SEED, today=date(2026, 10, 1))
    try:
        assert mirror_cmd("sync", mirror, up).returncode == 0
    finally:
        up.close()

    up = upstream.start(data, MONTH, scale=SCALE, seed=SEED, today=date(2026, 10, 2))
    try:
        days = [up.changes.changes_for(date(2026, 10, 1))]  # one day: no intermediate state
        changed = sorted({r["siren"] for day in days for r in day.unites_legales})
        assert changed
        with running_server(mirror, log_dir=tmp_path) as srv:
            paths = {s: f"/v3/insee/sirene/unites_legales/diffusibles/{s}" for s in changed[:20]}
            before = {s: answer(srv.get(p, CONTEXT)) for s, p in paths.items()}
            insee_paths = {s: f"/api-sirene/3.11/siren/{s}" for s in changed[:20]}  # from the store too
            insee_before = {s: answer(srv.get(p)) for s, p in insee_paths.items()}
            health_before = srv.get("/health").json()
            # v2 is answered by the views (DuckDB) in the server process; an INSEE search opens its shared
            # catalog connection first, which must not keep later connections on the catalog it saw
            assert srv.get("/api-sirene/3.11/siren", {"q": f"siren:{changed[0]}"}).status_code == 200
            v2_paths = {s: f"/v2/entreprises/{s}" for s in changed[:20]}
            v2_before = {
                s: answer(srv.get(p, {**CONTEXT, "non_diffusables": "true"})) for s, p in v2_paths.items()
            }

            answers, insee_answers, stop = [], [], threading.Event()

            def reader():
                while not stop.is_set():
                    for s, p in paths.items():
                        r = srv.get(p, CONTEXT)
                        answers.append((s, answer(r)))
                    for s, p in insee_paths.items():
                        insee_answers.append((s, answer(srv.get(p))))

            thread = threading.Thread(target=reader)
            thread.start()
            try:
                result = mirror_cmd("update", mirror, up)
            finally:
                stop.set()
                thread.join()
            assert result.returncode == 0, result.stderr

            after = {s: answer(srv.get(p, CONTEXT)) for s, p in paths.items()}
            insee_after = {s: answer(srv.get(p)) for s, p in insee_paths.items()}
            v2_after = {
                s: answer(srv.get(p, {**CONTEXT, "non_diffusables": "true"})) for s, p in v2_paths.items()
            }
            health_after = srv.get("/health").json()
    finally:
        up.close()

    def on_server(body):
        links = body.get("links") or {}
        return {**body, "links": {k: v.replace(srv.url, API) for k, v in links.items()}} if links else body

    now = {s: get_document(mirror, s, fmt="v3", diffusibles=True) for s in paths}
    assert {s: (st, on_server(b)) for s, (st, b) in after.items()} == now  # the new state, without a restart
    assert any(before[s] != after[s] for s in paths), "the day changed none of the sampled units"
    v2_now = {s: get_document(mirror, s, fmt="v2", non_diffusables=True) for s in v2_paths}
    assert v2_after == v2_now and v2_after != v2_before  # the views of the new catalog, not the first one
    assert health_after["last_update"] == "2026-10-01" != health_before["last_update"]
    assert answers
    for s, got in answers:  # every answer during the update: one state or the other, never a 5xx
        assert got in (before[s], after[s]), (s, got[0])
    con = connect(mirror)
    try:  # the INSEE records served after the day are the views' records of the new state
        records = insee.records(con, "siren", list(insee_paths), None)
    finally:
        con.close()
    assert {s: b["uniteLegale"] for s, (_st, b) in insee_after.items()} == {
        s: json.loads(t) for s, t in records.items()
    }
    assert any(insee_before[s] != insee_after[s] for s in insee_paths)
    assert insee_answers
    for s, got in insee_answers:
        assert got in (insee_before[s], insee_after[s]), (s, got[0])
