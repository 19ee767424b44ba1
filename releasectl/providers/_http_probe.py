"""One HTTP GET from the runner to a server's app: shared by the providers' `probe` (never raises)."""

from __future__ import annotations

import time

import requests

from releasectl.providers.base import Probe


def http_get_probe(session: requests.Session, address: str, port: int, path: str, timeout: float, *, body_limit: int = 1000) -> Probe:
    host = f"[{address}]" if ":" in address else address
    url = f"http://{host}:{port}/{path.lstrip('/')}"
    started = time.monotonic()
    try:
        resp = session.get(url, timeout=timeout, allow_redirects=False)
        return Probe(status=resp.status_code, latency=time.monotonic() - started, body=resp.text[:body_limit])
    except requests.RequestException as exc:
        return Probe(status=None, latency=time.monotonic() - started, error=f"{type(exc).__name__}: {url}")
