"""The local provider's probe: one GET over a plain socket (providers/_http_probe.loopback_get_probe)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from releasectl.providers._http_probe import loopback_get_probe
from tests.helpers import closed_port


@pytest.fixture
def raw_server() -> Iterator[tuple[int, list[bytes], list[bytes]]]:
    """A one-connection-at-a-time server that sends whatever `replies` holds next (then, unless the reply
    ends in b"<hold>", closes); yields (port, replies, requests received)."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)
    replies: list[bytes] = []
    received: list[bytes] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(5)
                data = b""
                while b"\r\n\r\n" not in data and (chunk := conn.recv(4096)):
                    data += chunk
                received.append(data)
                reply = replies.pop(0) if replies else b""
                hold = reply.endswith(b"<hold>")
                conn.sendall(reply.removesuffix(b"<hold>"))
                if hold:  # keep the connection open (a server that ignores Connection: close)
                    stop.wait(5)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], replies, received
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


def test_status_and_body_and_the_request_sent(raw_server):
    port, replies, received = raw_server
    replies.append(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 5\r\n\r\nbusy\n")
    probe = loopback_get_probe("127.0.0.1", port, "healthz", 1.0)
    assert (probe.status, probe.body, probe.error) == (503, "busy\n", None) and probe.latency >= 0
    assert received[0].startswith(b"GET /healthz HTTP/1.0\r\n") and b"\r\nConnection: close\r\n" in received[0]


def test_a_server_that_keeps_the_connection_is_read_up_to_content_length(raw_server):
    port, replies, _ = raw_server
    replies.append(b"HTTP/1.1 200 OK\r\nContent-length: 3\r\n\r\nok\n<hold>")
    probe = loopback_get_probe("127.0.0.1", port, "/healthz", 2.0)
    assert (probe.status, probe.body) == (200, "ok\n") and probe.latency < 2.0


def test_the_body_is_cut_at_the_limit(raw_server):
    port, replies, _ = raw_server
    replies.append(b"HTTP/1.0 200 OK\r\n\r\n" + b"x" * 5000)
    probe = loopback_get_probe("127.0.0.1", port, "/", 1.0, body_limit=10)
    assert (probe.status, probe.body) == (200, "x" * 10)


@pytest.mark.parametrize("reply", [b"", b"HTTP/1.1 200 OK\r\nContent-Le", b"SSH-2.0-OpenSSH\r\n\r\n", b"HTTP/1.1 20 OK\r\n\r\n"])
def test_no_or_a_broken_reply_is_an_error_never_a_raise(raw_server, reply):
    port, replies, _ = raw_server
    replies.append(reply)
    probe = loopback_get_probe("127.0.0.1", port, "/healthz", 1.0)
    assert probe.status is None and probe.error == f"ValueError: http://127.0.0.1:{port}/healthz"


def test_a_silent_server_times_out_and_a_closed_port_is_refused(raw_server):
    port, replies, _ = raw_server
    replies.append(b"<hold>")
    slow = loopback_get_probe("127.0.0.1", port, "/healthz", 0.2)
    assert slow.status is None and slow.error.startswith("TimeoutError: ")
    refused = loopback_get_probe("127.0.0.1", closed_port(), "/healthz", 1.0)
    assert refused.status is None and refused.error.startswith("ConnectionRefusedError: ")
