"""The sample app, in this process: its routes, keep-alive rules and bad requests as http.server had them, and
each reply in one send() (a kill -9 between headers and body would leave the LB unable to retry, the headers
already forwarded, and the client with a cut-off reply); its SIGTERM drain, as a process."""

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


@pytest.fixture
def app_server(app_module, tmp_path, monkeypatch):
    """The app's server in this process (a thread), its health flag in tmp_path; yields (module, port)."""
    monkeypatch.setattr(app_module, "FAIL_FLAG", str(tmp_path / "FAIL_HEALTH"))
    server = app_module.Server(("127.0.0.1", 0), app_module.Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield app_module, server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.mark.parametrize("path,status,body", [("/", 200, b"dev\n"), ("/healthz", 200, b"ok\n"),
                                              ("/nope", 404, b"not found\n")])
def test_a_reply_leaves_in_one_send(app_server, monkeypatch, path, status, body):
    _, port = app_server
    sent: list[bytes] = []
    real_send, real_sendall = socket.socket.send, socket.socket.sendall

    def recording(real):
        def wrapper(sock, data, *args):
            if threading.current_thread() is not threading.main_thread():
                sent.append(bytes(data))
            return real(sock, data, *args)
        return wrapper

    monkeypatch.setattr(socket.socket, "send", recording(real_send))
    monkeypatch.setattr(socket.socket, "sendall", recording(real_sendall))
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", path)
    response = conn.getresponse()
    assert (response.status, response.read()) == (status, body)
    conn.close()
    assert len(sent) == 1, sent
    assert sent[0].startswith(f"HTTP/1.1 {status} ".encode()) and sent[0].endswith(b"\r\n\r\n" + body)


def _exchange(port: int, request: bytes) -> tuple[bytes, bool]:
    """Send raw bytes; everything the app sent back within 2 s, and whether it closed the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall(request)
        data = b""
        try:
            while chunk := sock.recv(65536):
                data += chunk
        except TimeoutError:
            return data, False
        return data, True


def test_routes_health_flag_and_keep_alive(app_server, tmp_path):
    """HTTP/1.1 keeps the connection for the next request; the health flag turns /healthz into a 500."""
    app, port = app_server
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    replies = []
    for path in ("/", "/healthz?probe=1", "//healthz", "/nope"):
        conn.request("GET", path)
        response = conn.getresponse()
        replies.append((response.status, response.read(), response.getheader("Content-Type")))
    (tmp_path / "FAIL_HEALTH").touch()
    conn.request("GET", "/healthz")
    response = conn.getresponse()
    replies.append((response.status, response.read(), response.getheader("Content-Type")))
    conn.close()
    text = "text/plain; charset=utf-8"
    assert replies == [(200, b"dev\n", text), (200, b"ok\n", text), (200, b"ok\n", text), (404, b"not found\n", text),
                       (500, b"unhealthy\n", text)]


@pytest.mark.parametrize("request_bytes,status,closed", [
    (b"GET /healthz HTTP/1.0\r\n\r\n", b"200", True),  # HAProxy's check: one request per connection
    (b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", b"200", False),
    (b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", b"200", True),
    (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"200", False),
    (b"POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n", b"501", True),
    (b"GET / HTTP/2.0\r\n\r\n", b"505", True),
    (b"GET / FOO\r\n\r\n", b"400", True),
    (b"GET / HTTP/1.1\r\n" + b"X-A: 1\r\n" * 101 + b"\r\n", b"431", True),
    (b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n", b"414", True),
])
def test_connection_rules_and_bad_requests(app_server, request_bytes, status, closed):
    """The rules http.server applied: the version and Connection header decide keep-alive; anything but GET
    and malformed requests get an error reply that closes the connection."""
    _, port = app_server
    data, was_closed = _exchange(port, request_bytes)
    assert data.startswith(b"HTTP/1.1 " + status + b" ") and was_closed is closed
    assert (b"\r\nConnection: close\r\n" in data) is (status != b"200")


def test_head_gets_no_body_and_http09_gets_a_bare_body(app_server):
    _, port = app_server
    data, _ = _exchange(port, b"HEAD / HTTP/1.1\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 501 ") and data.endswith(b"\r\n\r\n")
    assert _exchange(port, b"GET /\r\n\r\n") == (b"dev\n", True)


def test_a_reply_while_stopping_closes_its_connection(app_server):
    """Once SIGTERM has set the stop flag, a keep-alive client is told to go elsewhere."""
    app, port = app_server
    app._stopping.set()
    data, closed = _exchange(port, b"GET /healthz HTTP/1.1\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 200 ") and b"\r\nConnection: close\r\n" in data and closed


@pytest.mark.slow
def test_sigterm_lets_a_request_in_flight_finish(tmp_path):
    """The process: a request whose line has arrived is in flight; SIGTERM stops the listener at once, but the
    app waits for that request's reply (with `Connection: close`) before it exits 0."""
    import os
    import signal
    import subprocess
    import sys

    from releasectl.wait import wait_for
    from tests.helpers import free_port

    port = free_port()
    proc = subprocess.Popen([sys.executable, str(APP)], env={**os.environ, "PORT": str(port)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: _port_open(port), timeout=15, interval=0.02)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\n")  # the request line: in flight once the app has read it
            wait_for(lambda: _unread_bytes(port, sock.getsockname()[1]) == 0, timeout=5, interval=0.01)
            proc.send_signal(signal.SIGTERM)
            wait_for(lambda: not _port_open(port), timeout=5, interval=0.02)  # no longer accepting
            assert proc.poll() is None  # still waiting for the request in flight
            sock.sendall(b"Host: x\r\n\r\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        assert data.startswith(b"HTTP/1.1 200 ") and data.endswith(b"\r\n\r\ndev\n") and b"Connection: close" in data
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def _port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def _unread_bytes(port: int, peer_port: int) -> int | None:
    """The receive queue of the app's end of our connection (/proc/net/tcp), None until it is listed."""
    want = (f"0100007F:{port:04X}", f"0100007F:{peer_port:04X}")
    with open("/proc/net/tcp") as table:
        for row in table.readlines()[1:]:
            fields = row.split()
            if (fields[1], fields[2]) == want:
                return int(fields[4].split(":")[1], 16)
    return None
