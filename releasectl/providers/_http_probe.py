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
    """The same GET with the standard library, one connection per probe, for a server on this machine: no
    proxy setting can apply, and a release does not import requests for it (~70 ms of CPU on its path)."""
    import http.client

    url = _url(address, port, path)
    started = time.monotonic()
    conn = http.client.HTTPConnection(address, port, timeout=timeout)
    try:
        conn.request("GET", "/" + path.lstrip("/"))
        resp = conn.getresponse()
        body = resp.read(body_limit).decode(errors="replace")
        return Probe(status=resp.status, latency=time.monotonic() - started, body=body)
    except (OSError, http.client.HTTPException) as exc:
        return Probe(status=None, latency=time.monotonic() - started, error=f"{type(exc).__name__}: {url}")
    finally:
        conn.close()


def _url(address: str, port: int, path: str) -> str:
    host = f"[{address}]" if ":" in address else address
    return f"http://{host}:{port}/{path.lstrip('/')}"
