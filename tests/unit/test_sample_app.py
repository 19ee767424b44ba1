"""The sample app writes each reply in one send(): a kill -9 between its headers and its body would leave the
LB unable to retry (headers already forwarded) and the client with a cut-off reply."""

from __future__ import annotations

import http.client
import importlib.util
import socket
import threading
from pathlib import Path

import pytest

import releasectl

APP = Path(releasectl.__file__).parent / "templates" / "app" / "app.py"


@pytest.fixture
def app_module():
    spec = importlib.util.spec_from_file_location("releasectl_sample_app_under_test", APP)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("path,status,body", [("/", 200, b"dev\n"), ("/healthz", 200, b"ok\n"),
                                              ("/nope", 404, b"not found\n")])
def test_a_reply_leaves_in_one_send(app_module, monkeypatch, path, status, body):
    server = app_module.Server(("127.0.0.1", 0), app_module.Handler)
    sent: list[bytes] = []
    real_send, real_sendall = socket.socket.send, socket.socket.sendall
    server_thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def recording(real):
        def wrapper(sock, data, *args):
            if threading.current_thread() is not threading.main_thread():
                sent.append(bytes(data))
            return real(sock, data, *args)
        return wrapper

    monkeypatch.setattr(socket.socket, "send", recording(real_send))
    monkeypatch.setattr(socket.socket, "sendall", recording(real_sendall))
    server_thread.start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=5)
        conn.request("GET", path)
        response = conn.getresponse()
        assert (response.status, response.read()) == (status, body)
        conn.close()
    finally:
        server.shutdown()
        server.server_close()
        server_thread.join(timeout=5)
    assert len(sent) == 1, sent
    assert sent[0].startswith(f"HTTP/1.1 {status} ".encode()) and sent[0].endswith(b"\r\n\r\n" + body)
