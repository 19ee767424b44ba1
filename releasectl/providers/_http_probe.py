"""One HTTP GET from the runner to a server's app: shared by the providers' `probe` (never raises)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from releasectl.providers.base import Probe

if TYPE_CHECKING:
    import requests


def http_get_probe(session: requests.Session, address: str, port: int, path: str, timeout: float, *, body_limit: int = 1000) -> Probe:
    import requests  # here, not at the top: the local provider's probe (below) never needs it

    url = _url(address, port, path)
    started = time.monotonic()
    try:
        resp = session.get(url, timeout=timeout, allow_redirects=False)
        return Probe(status=resp.status_code, latency=time.monotonic() - started, body=resp.text[:body_limit])
    except requests.RequestException as exc:
        return Probe(status=None, latency=time.monotonic() - started, error=f"{type(exc).__name__}: {url}")


def loopback_get_probe(address: str, port: int, path: str, timeout: float, *, body_limit: int = 1000) -> Probe:
    """The same GET over a plain socket, one connection per probe, for a server on this machine: no proxy
    setting can apply, and it imports neither requests (~70 ms of CPU) nor http.client, whose email and ssl
    imports cost the first probe of a launch ~25 ms of CPU while the new fleet boots on the same cores. An
    HTTP/1.0 request with `Connection: close`: the reply ends when the server closes, or at Content-Length."""
    import socket

    url = _url(address, port, path)
    host = f"[{address}]" if ":" in address else address
    started = time.monotonic()
    try:
        request = f"GET /{path.lstrip('/')} HTTP/1.0\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n"
        # a bytes host: getaddrinfo encodes a str one with the idna codec, an import (~5 ms) of its own
        with socket.create_connection((address.encode(), port), timeout=timeout) as sock:
            sock.sendall(request.encode("latin-1"))
            status, body = _read_reply(sock, body_limit)
        return Probe(status=status, latency=time.monotonic() - started, body=body)
    except (OSError, ValueError) as exc:  # ValueError: a reply that is not HTTP, or a path that is not latin-1
        return Probe(status=None, latency=time.monotonic() - started, error=f"{type(exc).__name__}: {url}")


def _read_reply(sock, body_limit: int) -> tuple[int, str]:
    """The status and the first `body_limit` characters of the body of the reply on `sock`."""
    data = b""
    head_end = want = -1
    while want < 0 or len(data) < want:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
        if head_end < 0 and (head_end := data.find(b"\r\n\r\n")) >= 0:
            length = _content_length(data[:head_end])
            body_wanted = body_limit * 4 if length is None else min(length, body_limit * 4)  # 4: UTF-8 bytes
            want = head_end + 4 + body_wanted
        elif head_end < 0 and len(data) > 65536:
            raise ValueError("no end of the reply's headers in 64 KiB")
    if head_end < 0:
        raise ValueError("the server closed the connection before a whole reply" if data else "no reply")
    words = data[:head_end].split(b"\r\n", 1)[0].split(None, 2)
    if len(words) < 2 or not words[0].startswith(b"HTTP/") or not words[1].isdigit() or len(words[1]) != 3:
        raise ValueError(f"not an HTTP status line: {data[:40]!r}")
    return int(words[1]), data[head_end + 4 :].decode(errors="replace")[:body_limit]


def _content_length(head: bytes) -> int | None:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length" and value.strip().isdigit():
            return int(value.strip())
    return None


def _url(address: str, port: int, path: str) -> str:
    host = f"[{address}]" if ":" in address else address
    return f"http://{host}:{port}/{path.lstrip('/')}"
