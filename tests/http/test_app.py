"""The app's last lines of defence, driven in-process through ASGI (no server needed): the per-request time
limit (503 JSON) and the catch-all (a JSON 500 without the traceback, which goes to the log); then
`--workers 2` on a real server."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import pytest
from conftest import CONTEXT, running_server
from starlette.requests import Request

from mirror.http import app as http_app
from mirror.http.app import Guard, ServeConfig, _App


async def _call(asgi, path: str) -> tuple[int, dict, bytes]:
    scope = {
        "type": "http",
        "method": "GET",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
        "scheme": "http",
        "root_path": "",
    }
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    await asgi(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], dict(start["headers"]), body


def test_time_limit_answers_503_json(http_mirror):
    state = _App(ServeConfig(data_dir=str(http_mirror), timeout=0.2))
    request = Request(
        {"type": "http", "path": "/v3/insee/sirene/unites_legales/1", "headers": [], "query_string": b""}
    )
    t0 = time.monotonic()
    response = asyncio.run(state.call(request, time.sleep, 3))
    assert time.monotonic() - t0 < 2
    assert response.status_code == 503
    body = json.loads(response.body)
    assert body["errors"][0]["code"] == "01001" and "0.2 s" in body["errors"][0]["detail"]


def test_unexpected_error_is_a_json_500_and_logged(http_mirror, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(http_app.entreprise, "answer_from_store", broken)
    app = http_app.create_app(ServeConfig(data_dir=str(http_mirror), require_context=False))
    with caplog.at_level(logging.ERROR, logger="mirror.http"):
        status, headers, body = asyncio.run(_call(app, "/v3/insee/sirene/unites_legales/552049447"))
    assert status == 500
    assert json.loads(body)["errors"][0]["code"] == "00500"
    assert b"secret internal detail" not in body and b"Traceback" not in body
    assert "secret internal detail" in caplog.text  # the traceback is in the server's log

    async def crash(scope, receive, send):
        raise ValueError("boom")

    status, _, body = asyncio.run(_call(Guard(crash, ServeConfig(data_dir=str(http_mirror))), "/v2/x"))
    assert status == 500 and json.loads(body) == {
        "errors": ["Erreur interne du serveur"],
        "gateway_error": False,
    }


@pytest.mark.lookup_store
def test_workers(http_mirror, samples, tmp_path):
    with running_server(http_mirror, "--workers", "2", log_dir=tmp_path) as srv:
        for siret in samples["sirets_o"][:10]:
            assert srv.get(f"/v4/insee/sirene/etablissements/{siret}", CONTEXT).status_code == 200
        assert srv.get("/health").status_code == 200
        code = srv.stop()
    assert code == 0, srv.log.read_text()
