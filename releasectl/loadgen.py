"""A built-in HTTP load generator, bounded in time and in request count. Standard library only.

Used by `releasectl demo` and the zero-downtime benchmark to show what clients see while releasectl shifts
traffic. Two kinds of client threads run against one URL (normally the load balancer's endpoint):

- keep-alive clients reuse one `http.client.HTTPConnection` across requests and reconnect after an error
  or when the server closes the connection;
- new-connection clients open a fresh TCP connection per request and send `Connection: close`.

Every request is counted: total, 2xx, non-2xx by status, connection errors (no answer at all: refused,
reset, closed before a response, timed out) by exception type, and 2xx responses by body (the sample app
answers with its version). A *failed* request is a non-2xx response or a connection error. The stdlib
clients never retry, so what is reported is exactly what a naive client would have seen.

Each request is recorded with its wall-clock start time (`time.time()`, the clock progress events use), so
`stats(since=t0, until=t1)` reports any window, e.g. "before" and "during" a release. Latency is measured
with `time.perf_counter()` from sending the request to reading the whole body; percentiles cover answered
requests (any status), not connection errors.

    with LoadGenerator("http://127.0.0.1:8080/", duration=20, max_requests=200_000) as load:
        ...                      # change something
    print(load.snapshot().to_dict())

The generator stops at the first of: `duration` seconds after `start()`, `max_requests` requests started,
or `stop()`.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from array import array
from dataclasses import asdict, dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    import http.client

__all__ = ["LoadGenerator", "LoadStats", "percentile"]

KEEPALIVE = "keepalive"
NEW_CONNECTION = "new_connection"
CONNECTION_ERROR = 0  # the status recorded for a request that got no answer
NO_TEXT = -1
BODY_LIMIT = 80  # characters of a body kept for the by-body count
ERROR_BACKOFF = 0.01  # seconds a client sleeps after a connection error, so a dead endpoint is not spun on


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100): the smallest value with at least q% of the values at or below it;
    None for an empty list. The only definition: the load generator's p50/p99 and the engine's
    `analyze.max_p95` gate both use it. Any order (an ascending list is sorted in linear time)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = math.ceil(round(q * len(ordered) / 100.0, 9))  # round: 0.95 * 60 must be rank 57, not 58
    return ordered[min(max(rank, 1), len(ordered)) - 1]


@dataclass(frozen=True)
class LoadStats:
    """What the clients saw in one window (or over the whole run). Latencies are in milliseconds."""

    url: str
    since: float | None  # the window asked for (wall clock), None = open
    until: float | None
    first_at: float | None  # start of the first and last request in the window
    last_at: float | None
    requests: int
    ok: int  # 2xx
    non_2xx: int
    connection_errors: int
    by_status: dict[int, int] = field(default_factory=dict)  # answered requests by HTTP status
    errors_by_kind: dict[str, int] = field(default_factory=dict)  # connection errors by exception type
    by_body: dict[str, int] = field(default_factory=dict)  # 2xx responses by (stripped) body
    by_client: dict[str, dict[str, int]] = field(default_factory=dict)  # keepalive / new_connection
    p50_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    stopped_by: str | None = None  # duration, max_requests or stop, once the generator has ended

    @property
    def failed(self) -> int:
        """Non-2xx responses plus connection errors."""
        return self.non_2xx + self.connection_errors

    @property
    def seconds(self) -> float:
        """The time the window's requests span (0 with fewer than two requests)."""
        if self.first_at is None or self.last_at is None:
            return 0.0
        return max(0.0, self.last_at - self.first_at)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["by_status"] = {str(k): v for k, v in sorted(self.by_status.items())}
        data["failed"] = self.failed
        data["seconds"] = round(self.seconds, 3)
        data["rps"] = round(self.rps, 1)
        for key in ("p50_ms", "p99_ms", "max_ms"):
            if data[key] is not None:
                data[key] = round(data[key], 2)
        return data


class _Log:
    """One client thread's records, as parallel arrays (cheap for a few hundred thousand requests)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.lock = threading.Lock()
        self.start = array("d")  # time.time() at the request's start
        self.latency = array("d")  # seconds
        self.status = array("i")  # HTTP status, or CONNECTION_ERROR
        self.text = array("i")  # interned body (2xx) or exception name (error), or NO_TEXT

    def add(self, start: float, latency: float, status: int, text: int) -> None:
        with self.lock:
            self.start.append(start)
            self.latency.append(latency)
            self.status.append(status)
            self.text.append(text)

    def copy(self) -> tuple[array, array, array, array]:
        with self.lock:
            return self.start[:], self.latency[:], self.status[:], self.text[:]


class LoadGenerator:
    """Client threads sending GET requests to `url` until `duration`, `max_requests` or `stop()`."""

    def __init__(
        self,
        url: str,
        *,
        duration: float,
        max_requests: int,
        keepalive_clients: int = 2,
        new_connection_clients: int = 1,
        timeout: float = 2.0,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"expected an http:// URL, got {url!r}")
        if duration <= 0 or max_requests <= 0:
            raise ValueError("duration and max_requests must be positive: the load must be bounded")
        if keepalive_clients < 0 or new_connection_clients < 0 or keepalive_clients + new_connection_clients == 0:
            raise ValueError("at least one client is needed")
        self.url = url
        self.host = parts.hostname
        self.port = parts.port or 80
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.duration = float(duration)
        self.max_requests = int(max_requests)
        self.timeout = float(timeout)
        self._kinds = [KEEPALIVE] * keepalive_clients + [NEW_CONNECTION] * new_connection_clients
        self._logs = [_Log(kind) for kind in self._kinds]
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._tickets = itertools.count()  # next() on it is atomic in CPython: one ticket per request
        self._texts: list[str] = []
        self._text_ids: dict[str, int] = {}
        self._text_lock = threading.Lock()
        self._deadline = 0.0
        self._stopped_by: str | None = None
        self.started_at: float | None = None  # wall clock
        self.ended_at: float | None = None

    # ---- control ------------------------------------------------------------------------------------

    def start(self) -> "LoadGenerator":
        if self._threads:
            raise RuntimeError("this load generator was already started")
        self.started_at = time.time()
        self._deadline = time.monotonic() + self.duration
        for index, log in enumerate(self._logs):
            thread = threading.Thread(
                target=self._client, args=(log,), name=f"loadgen-{log.kind}-{index}", daemon=True
            )
            self._threads.append(thread)
            thread.start()
        return self

    def stop(self) -> None:
        """Ask every client to stop after its current request (at most `timeout` seconds later)."""
        if self._stopped_by is None and not self._stop.is_set():
            self._stopped_by = "stop"
        self._stop.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the clients to end (by themselves or after `stop()`); True when all have."""
        limit = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            thread.join(None if limit is None else max(0.0, limit - time.monotonic()))
        done = not any(t.is_alive() for t in self._threads)
        if done and self._threads and self.ended_at is None:
            self.ended_at = time.time()
        return done

    @property
    def clients(self) -> int:
        return len(self._kinds)

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def __enter__(self) -> "LoadGenerator":
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
        self.join()

    # ---- the clients --------------------------------------------------------------------------------

    def _intern(self, text: str) -> int:
        found = self._text_ids.get(text)
        if found is not None:
            return found
        with self._text_lock:
            if text not in self._text_ids:
                self._text_ids[text] = len(self._texts)
                self._texts.append(text)
            return self._text_ids[text]

    def _should_stop(self) -> bool:
        if self._stop.is_set():
            return True
        if time.monotonic() >= self._deadline:
            self._end("duration")
            return True
        if next(self._tickets) >= self.max_requests:
            self._end("max_requests")
            return True
        return False

    def _end(self, why: str) -> None:
        if self._stopped_by is None:
            self._stopped_by = why
        self._stop.set()

    def _client(self, log: _Log) -> None:
        import http.client  # here: the engine imports this module for `percentile`, and status never sends load

        keepalive = log.kind == KEEPALIVE
        headers = {"Accept": "*/*"} if keepalive else {"Accept": "*/*", "Connection": "close"}
        conn: http.client.HTTPConnection | None = None
        try:
            while not self._should_stop():
                began = time.time()
                t0 = time.perf_counter()
                try:
                    if conn is None:
                        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
                    conn.request("GET", self.path, headers=headers)
                    response = conn.getresponse()
                    body = response.read()
                    status = response.status
                    if not keepalive or response.will_close:
                        conn.close()
                        conn = None
                except (OSError, http.client.HTTPException) as exc:
                    log.add(began, time.perf_counter() - t0, CONNECTION_ERROR, self._intern(type(exc).__name__))
                    if conn is not None:
                        conn.close()
                        conn = None
                    self._stop.wait(ERROR_BACKOFF)
                    continue
                latency = time.perf_counter() - t0
                text = NO_TEXT
                if 200 <= status < 300:
                    text = self._intern(body[:BODY_LIMIT].decode("utf-8", "replace").strip())
                log.add(began, latency, status, text)
        finally:
            if conn is not None:
                conn.close()

    # ---- results ------------------------------------------------------------------------------------

    def stats(self, since: float | None = None, until: float | None = None) -> LoadStats:
        """Counts and latency percentiles of the requests that started in [since, until) (wall clock)."""
        requests = ok = non_2xx = errors = 0
        by_status: dict[int, int] = {}
        errors_by_kind: dict[str, int] = {}
        by_body: dict[str, int] = {}
        by_client: dict[str, dict[str, int]] = {}
        latencies: list[float] = []
        first: float | None = None
        last: float | None = None
        lo = -math.inf if since is None else since
        hi = math.inf if until is None else until
        for log in self._logs:
            starts, lats, statuses, texts = log.copy()
            client = by_client.setdefault(log.kind, {"clients": 0, "requests": 0, "failed": 0})
            client["clients"] += 1
            for began, latency, status, text in zip(starts, lats, statuses, texts):
                if not lo <= began < hi:
                    continue
                requests += 1
                client["requests"] += 1
                first = began if first is None or began < first else first
                last = began if last is None or began > last else last
                if status == CONNECTION_ERROR:
                    errors += 1
                    client["failed"] += 1
                    name = self._texts[text] if text != NO_TEXT else "error"
                    errors_by_kind[name] = errors_by_kind.get(name, 0) + 1
                    continue
                latencies.append(latency)
                by_status[status] = by_status.get(status, 0) + 1
                if 200 <= status < 300:
                    ok += 1
                    if text != NO_TEXT:
                        body = self._texts[text]
                        by_body[body] = by_body.get(body, 0) + 1
                else:
                    non_2xx += 1
                    client["failed"] += 1
        latencies.sort()
        ms = (lambda v: None if v is None else v * 1000.0)
        return LoadStats(
            url=self.url,
            since=since,
            until=until,
            first_at=first,
            last_at=last,
            requests=requests,
            ok=ok,
            non_2xx=non_2xx,
            connection_errors=errors,
            by_status=by_status,
            errors_by_kind=errors_by_kind,
            by_body=dict(sorted(by_body.items(), key=lambda kv: -kv[1])),
            by_client=by_client,
            p50_ms=ms(percentile(latencies, 50)),
            p99_ms=ms(percentile(latencies, 99)),
            max_ms=ms(latencies[-1] if latencies else None),
            stopped_by=None if self.running else self._stopped_by,
        )

    def snapshot(self) -> LoadStats:
        """Everything so far (also while running)."""
        return self.stats()
