"""The stand-in upstreams' HTTP server (mirror.synthetic.upstream.UpstreamServer): a client that hangs up
before its answer is written leaves no traceback on stderr; any other failure of a handler still does."""

from __future__ import annotations

import socket
import struct
import time

import requests

from mirror.synthetic.upstream import send_bytes, serve


class _App:
    """/big: 32 MB (more than the socket buffers hold, so the write meets the closed connection);
    /boom: a handler bug."""

    def handle(self, handler) -> bool:
        if handler.path == "/big":
            send_bytes(handler, 200, b"x" * (32 << 20), "application/octet-stream")
            return True
        if handler.path == "/boom":
            raise ValueError("a bug in the handler")
        return False


def _hang_up_on(host: str, port: int, path: str) -> None:
    """Sends a request, then closes the socket with a reset before reading the answer."""
    sock = socket.create_connection((host, port))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    time.sleep(0.2)  # the server is writing by now
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def test_a_client_hanging_up_is_no_traceback_and_a_bug_still_is(capfd):
    server, base = serve([_App()])
    try:
        host, port = server.server_address[:2]
        for _ in range(3):
            _hang_up_on(host, port, "/big")
        time.sleep(0.5)
        assert requests.get(base + "/nothing-here", timeout=10).status_code == 404  # still serving
        assert "Traceback" not in capfd.readouterr().err

        _hang_up_on(host, port, "/boom")
        time.sleep(0.5)
        err = capfd.readouterr().err
        assert "Traceback" in err and "a bug in the handler" in err
    finally:
        server.shutdown()
        server.server_close()
