"""The HTTP policy of the OpenStack provider, in one place.

One `requests.Session` per provider, with connect/read timeouts and TLS verified by default. Every call goes
through `Transport.request`, which:

- adds the token and `Accept: application/json` (Glance picks its error format from Accept);
- on a 401 asks the token source for a fresh token once and replays the call (safe for any method: a 401
  means nothing was done), and raises AuthError on a second one;
- retries, with capped exponential backoff and jitter and a bounded number of attempts:
  connection failures where the request was never sent (any method); read timeouts, resets, 500, 502,
  503 and 504 for idempotent calls (GET, HEAD, PUT, DELETE, and the writes callers mark idempotent because
  they state an end value: a replay cannot do harm); 429 (and 413 with a Retry-After), honouring
  Retry-After, for any method since the call was refused unprocessed;
- never retries a POST whose fate is unknown: it raises `UncertainWrite`, and the caller reconciles (looks
  the resource up by its unique name and marker) before trying again;
- maps an error answer to releasectl's error types with the service's own message and the request id
  (`raise_for_response`);
- at `verbose`, logs every request: service, method, path, status, duration and request id. Never a header,
  a body, a query string or a token (urllib3's own logger, which prints query strings at DEBUG, is kept at
  WARNING).

`ServiceClient` adds what every service shares: the endpoint from the catalog (looked up again when it seems
to have moved: a connection failure, or a 404 while the endpoint's own root is gone too), the one pagination
loop (`pages`), and `create_then_find` for the creates no API makes idempotent.
"""

from __future__ import annotations

import email.utils
import html
import json as jsonlib
import logging
import random
import re
import time
from dataclasses import dataclass
from typing import Any, Callable, Collection, Iterator, Mapping, TypeVar
from urllib.parse import parse_qsl, urlsplit

import requests
from requests import exceptions as rex

from releasectl.errors import AuthError, Conflict, NotFound, ProviderError
from releasectl.wait import REAL_CLOCK, Clock

log = logging.getLogger("releasectl.providers.openstack.http")
POOL_SIZE = 20  # HTTP connections kept per host (see Transport.__init__)
T = TypeVar("T")

IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
RETRY_IDEMPOTENT = frozenset({502, 503, 504})
REQUEST_ID_HEADERS = ("x-openstack-request-id", "x-compute-request-id", "x-trans-id", "x-openstack-request-id")
TokenSource = Callable[[bool], str]  # refresh -> token


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5  # total tries of one call
    base: float = 0.5  # first backoff, seconds
    cap: float = 10.0  # longest backoff
    max_retry_after: float = 60.0  # a longer Retry-After is not waited for

    def backoff(self, attempt: int) -> float:
        """Equal jitter: half the exponential delay plus a random half (attempt counts from 1)."""
        delay = min(self.cap, self.base * (2 ** (attempt - 1)))
        return delay / 2 + random.uniform(0, delay / 2)


@dataclass(frozen=True)
class Timeouts:
    connect: float = 10.0
    read: float = 60.0


class UncertainWrite(ProviderError):
    """A non-idempotent call may or may not have been applied (a 5xx, a timeout or a reset after it was
    sent). Look the resource up before trying again."""


class Unreachable(ProviderError):
    """The endpoint could not be reached (or kept timing out) through every retry; nothing was applied."""


def request_id(resp: requests.Response | None) -> str | None:
    if resp is None:
        return None
    for name in REQUEST_ID_HEADERS:
        value = resp.headers.get(name)
        if value:
            return value
    return None


_TAGS = re.compile(r"<[^>]+>")


def _clean(text: str) -> str:
    return re.sub(r"\s+", " ", html.unescape(_TAGS.sub(" ", text))).strip()


def error_message(resp: requests.Response) -> str:
    """The human message of an error answer, whatever the service's format.

    Keystone `{"error": {"message"}}`, Nova `{"<faultName>": {"message"}}`, Neutron `{"NeutronError":
    {"message"}}`, Octavia (WSME) `{"faultstring"}` or (pecan's 404) `{"code", "title", "description"}`,
    Glance `{"message", "code", "title"}` (JSON when asked, else an HTML page), Swift plain text; otherwise
    the reason phrase.
    """
    body = resp.text or ""
    data: Any = None
    if body.strip().startswith(("{", "[")):
        try:
            data = jsonlib.loads(body)
        except ValueError:
            data = None
    if isinstance(data, dict):
        for key in ("faultstring", "message", "description"):
            if isinstance(data.get(key), str) and data[key].strip():
                return _clean(data[key])
        if isinstance(data.get("error"), dict) and data["error"].get("message"):
            return _clean(str(data["error"]["message"]))
        for value in data.values():
            if isinstance(value, dict) and value.get("message"):
                return _clean(str(value["message"]))
    if body.strip():
        text = _clean(body)
        title = f"{resp.status_code} {resp.reason}" if resp.reason else ""
        if title and text.startswith(title):  # webob pages repeat the status line
            text = text[len(title):].strip() or text
        return text[:500]
    return resp.reason or f"HTTP {resp.status_code}"


def _retry_after(resp: requests.Response) -> float | None:
    value = resp.headers.get("Retry-After")
    if value:
        value = value.strip()
        if value.isdigit():
            return float(value)
        try:
            when = email.utils.parsedate_to_datetime(value)
            return max(0.0, when.timestamp() - time.time())
        except (TypeError, ValueError):
            return None
    try:  # Nova puts it in the body: {"overLimit": {"retryAfter": "5"}}
        data = resp.json()
        for fault in data.values():
            if isinstance(fault, dict) and str(fault.get("retryAfter", "")).isdigit():
                return float(fault["retryAfter"])
    except (ValueError, AttributeError):
        pass
    return None


def raise_for_response(resp: requests.Response, service: str, *, uncertain: bool = False) -> None:
    """Raise the releasectl error for an error answer (>= 400); return for anything else."""
    status = resp.status_code
    if status < 400:
        return
    method = resp.request.method if resp.request is not None else "?"
    path = urlsplit(resp.url or "").path
    rid = request_id(resp)
    message = f"{service} {method} {path} failed: HTTP {status}: {error_message(resp)}"
    if rid:
        message += f" (request id {rid})"
    hint = None
    if status == 401:
        cls: type[ProviderError] = AuthError
        hint = "check the credentials in clouds.yaml / secure.yaml, or run `releasectl login`"
    elif status == 404:
        cls = NotFound
    elif status == 409:
        cls = Conflict
    elif status == 403:
        cls = ProviderError
        hint = "a quota may be exhausted, or the account lacks a role for this call"
    elif status >= 500 and uncertain:
        cls = UncertainWrite
    else:
        cls = ProviderError
    exc = cls(message, hint=hint)
    exc.status = status  # type: ignore[attr-defined]
    exc.request_id = rid  # type: ignore[attr-defined]
    exc.service = service  # type: ignore[attr-defined]
    raise exc


def _never_sent(exc: BaseException) -> bool:
    """True when the connection failed before the request went out (refused, DNS, connect timeout)."""
    if isinstance(exc, rex.ConnectTimeout):
        return True
    if isinstance(exc, rex.SSLError):
        return False
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    from urllib3.exceptions import NameResolutionError, NewConnectionError

    return isinstance(reason, (NewConnectionError, NameResolutionError)) or isinstance(
        exc.args[0] if exc.args else None, (NewConnectionError, NameResolutionError)
    )


class Transport:
    """One session, one retry policy, one error mapping for every OpenStack call of a provider."""

    def __init__(
        self,
        *,
        verify: bool | str = True,
        timeouts: Timeouts = Timeouts(),
        policy: RetryPolicy = RetryPolicy(),
        verbose: bool = False,
        clock: Clock = REAL_CLOCK,
        user_agent: str = "releasectl",
    ) -> None:
        if verify is not True and verify is not False and not isinstance(verify, str):
            raise TypeError("verify is True, False or a CA bundle path")  # never a truthy/falsy stand-in
        logging.getLogger("urllib3").setLevel(logging.WARNING)  # at DEBUG it logs URLs with query strings
        self.session = requests.Session()
        # connections kept per host: a fleet's writes go up to 16 at a time (servers.FLEET_CONCURRENCY), and
        # requests keeps 10, so the rest would reconnect (TLS handshake) for every call and then be discarded
        pooled = requests.adapters.HTTPAdapter(pool_maxsize=POOL_SIZE)
        self.session.mount("https://", pooled)
        self.session.mount("http://", pooled)
        self.session.verify = verify
        # Passed with every request as well: requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE from the
        # environment override a Session's own `verify`, which would silently drop openstack.cacert.
        self.verify = verify
        self.session.headers["User-Agent"] = user_agent
        self.timeouts = timeouts
        self.policy = policy
        self.verbose = verbose
        self.clock = clock

    def close(self) -> None:
        self.session.close()

    def _log(self, service: str, method: str, url: str, status: str, started: float, rid: str | None, attempt: int) -> None:
        path = urlsplit(url).path
        took = time.monotonic() - started
        again = f" (attempt {attempt})" if attempt > 1 else ""
        level = logging.INFO if self.verbose else logging.DEBUG
        log.log(level, "%s %s %s -> %s in %.3fs request id %s%s", service, method, path, status, took, rid or "-", again)

    def request(
        self,
        service: str,
        method: str,
        url: str,
        *,
        json: Any = None,
        data: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | list[tuple[str, Any]] | None = None,
        token: TokenSource | None = None,
        idempotent: bool | None = None,
        allow: Collection[int] = (),
    ) -> requests.Response:
        """Send one call with the policy above. Statuses in `allow` are returned instead of raised."""
        method = method.upper()
        if idempotent is None:
            idempotent = method in IDEMPOTENT
        policy = self.policy
        reauthed = False
        attempt = 0
        while True:
            attempt += 1
            hdrs = {"Accept": "application/json"}
            if json is not None:
                hdrs["Content-Type"] = "application/json"
            hdrs.update(headers or {})
            if token is not None:
                hdrs["X-Auth-Token"] = token(False)
            body = jsonlib.dumps(json).encode() if json is not None else data
            started = time.monotonic()
            try:
                resp = self.session.request(
                    method, url, data=body, headers=hdrs, params=params, verify=self.verify,
                    timeout=(self.timeouts.connect, self.timeouts.read), allow_redirects=False,
                )
            except rex.SSLError as exc:
                self._log(service, method, url, "TLS error", started, None, attempt)
                raise ProviderError(
                    f"{service} {method} {urlsplit(url).path}: TLS verification failed for {urlsplit(url).netloc}: "
                    f"{type(exc).__name__}",
                    hint="set openstack.cacert (or cacert in clouds.yaml) to the CA bundle of this cloud",
                ) from None
            except (rex.ConnectionError, rex.Timeout) as exc:
                sent = not _never_sent(exc)
                what = "timed out" if isinstance(exc, rex.Timeout) else "connection failed"
                self._log(service, method, url, what, started, None, attempt)
                if (idempotent or not sent) and attempt < policy.attempts:
                    self.clock.sleep(policy.backoff(attempt))
                    continue
                cls = UncertainWrite if sent and not idempotent else Unreachable
                raise cls(
                    f"{service} {method} {urlsplit(url).path}: {what} after {attempt} attempt(s): "
                    f"{type(exc).__name__}",
                    hint="check the network path to the cloud's API endpoints",
                ) from None
            rid = request_id(resp)
            self._log(service, method, url, str(resp.status_code), started, rid, attempt)
            status = resp.status_code
            if status == 401 and token is not None and not reauthed:
                reauthed = True
                token(True)
                attempt -= 1  # a replay after re-auth is not a retry
                continue
            if status in allow:
                return resp
            if attempt < policy.attempts:
                wait: float | None = None
                if status == 429 or (status == 413 and _retry_after(resp) is not None):
                    after = _retry_after(resp)
                    wait = policy.backoff(attempt) if after is None else after
                    if wait > policy.max_retry_after:
                        wait = None
                elif idempotent and (status in RETRY_IDEMPOTENT or status == 500):
                    after = _retry_after(resp) if status == 503 else None
                    wait = min(after, policy.max_retry_after) if after is not None else policy.backoff(attempt)
                if wait is not None:
                    self.clock.sleep(wait)
                    continue
            raise_for_response(resp, service, uncertain=not idempotent)
            return resp


MAX_PAGES = 10000
ROOT_CHECK_EVERY = 60.0  # seconds a live endpoint root vouches for the 404s of its service
EVERY_ERROR = frozenset(range(400, 600))


class ServiceClient:
    """Calls to one service: its endpoint (resolved lazily from the catalog, again when it has moved), its
    token, its headers, and its listings."""

    service_type = ""

    def __init__(
        self,
        transport: Transport,
        endpoint: Callable[[], str],
        token: TokenSource,
        refresh_catalog: Callable[[], object] | None = None,
    ) -> None:
        self.transport = transport
        self._endpoint = endpoint
        self.token = token
        self._refresh_catalog = refresh_catalog
        self._url: str | None = None
        self._root_ok_at: float | None = None

    @property
    def url(self) -> str:
        if self._url is None:
            self._url = self.root(self._endpoint())
        return self._url

    def root(self, endpoint: str) -> str:
        """The catalog URL turned into the base that paths are appended to."""
        return endpoint.rstrip("/")

    def headers(self) -> dict[str, str]:
        return {}

    def relocated(self) -> None:
        """Hook: the endpoint moved; forget what was learnt from the old one (Nova: its microversion)."""

    def call(self, method: str, path: str, *, allow: Collection[int] = (), **kwargs: Any) -> requests.Response:
        """One call on this service. Relative paths go below the endpoint; if the endpoint has moved since
        the catalog was cached, the catalog is read again and the call replayed once at the new address."""
        extra = kwargs.pop("headers", None) or {}
        absolute = path.startswith(("http://", "https://"))
        for last in (False, True):
            try:
                url = path if absolute else self.url + path
                headers = {**self.headers(), **extra}  # Nova discovers its microversion here: may be unreachable too
                resp = self.transport.request(
                    self.service_type, method, url, headers=headers, token=self.token, allow={*allow, 404}, **kwargs
                )
            except Unreachable:
                if last or absolute or not self._relocate():
                    raise
                continue
            if resp.status_code == 404 and not (last or absolute) and self._endpoint_gone() and self._relocate():
                continue
            if resp.status_code == 404 and 404 not in allow:
                raise_for_response(resp, self.service_type)
            return resp
        raise AssertionError("unreachable")

    def _endpoint_gone(self) -> bool:
        """A 404 is the resource's (usual) or the whole endpoint's (it moved). The endpoint's own root tells
        them apart; a live root vouches for the service's 404s for ROOT_CHECK_EVERY seconds."""
        now = time.monotonic()
        if self._root_ok_at is not None and now - self._root_ok_at < ROOT_CHECK_EVERY:
            return False
        try:
            resp = self.transport.request(self.service_type, "GET", self._endpoint(), token=self.token, allow=EVERY_ERROR)
        except Unreachable:
            return True
        except ProviderError:
            return False
        if resp.status_code == 404:
            return True
        self._root_ok_at = now
        return False

    def _relocate(self) -> bool:
        """Read the catalog again; True when this service's endpoint changed (then calls go to the new one)."""
        if self._refresh_catalog is None:
            return False
        old = self.url
        self._refresh_catalog()
        self._url, self._root_ok_at = None, None
        if self.url == old:
            return False
        log.warning("%s endpoint moved: %s -> %s (catalog refreshed)", self.service_type, urlsplit(old).netloc + urlsplit(old).path,
                    urlsplit(self.url).netloc + urlsplit(self.url).path)
        self.relocated()
        return True

    def get_json(self, path: str, **kwargs: Any) -> Any | None:
        """GET a resource; None when it is 404."""
        resp = self.call("GET", path, allow=(404,), **kwargs)
        return None if resp.status_code == 404 else resp.json()

    def pages(
        self, path: str, *, key: str | None, params: Mapping[str, Any] | list[tuple[str, Any]] | None = None,
        missing_ok: bool = False,
    ) -> Iterator[dict[str, Any]]:
        """Every item of a listing, page after page (bounded): the one pagination loop of the provider.
        `key` names the list in the answer; None when the answer is the list (Swift). `missing_ok`: a 404
        (a Swift container not made yet) is an empty listing."""
        query: list[tuple[str, Any]] = list(params.items()) if isinstance(params, Mapping) else list(params or [])
        for _ in range(MAX_PAGES):
            resp = self.call("GET", path, params=query, allow=(404,) if missing_ok else ())
            if resp.status_code == 404:
                return
            data: Any = resp.json() if resp.content else ([] if key is None else {})
            items = data if key is None else data.get(key, [])
            yield from items
            nxt = next_page(data, key, items, path, query)
            if nxt is None or not items:
                return
            path, query = nxt
        raise ProviderError(f"{self.service_type}: more than {MAX_PAGES} pages of {key or 'objects'}; stopping")


def next_page(
    data: Any, key: str | None, items: list[Any], path: str, query: list[tuple[str, Any]]
) -> tuple[str, list[tuple[str, Any]]] | None:
    """Where a listing continues, in each service's way (openstacksdk's `_get_next_link`), or None at the end:

    - Nova, Neutron and Octavia: `<key>_links` rel=next (Designate: `links.next`). Only its query is taken (limit, marker and filters), on our
      own path: the link's host and path prefix may be the service's internal ones.
    - Glance: `next`, a path relative to the endpoint root.
    - Swift: no link. A full page (as many names as `limit`) continues after its last name.
    """
    if isinstance(data, dict):
        links = data.get(f"{key}_links")
        designate = data.get("links")  # Designate: {"links": {"self": ..., "next": url}}
        if isinstance(designate, dict) and not links:
            href = designate.get("next")
            return (path, parse_qsl(urlsplit(href).query)) if isinstance(href, str) and href else None
        if links:
            href = next((link.get("href") for link in links if link.get("rel") == "next"), None)
            return (path, parse_qsl(urlsplit(href).query)) if href else None
        nxt = data.get("next")
        if isinstance(nxt, str) and nxt:
            return (nxt if nxt.startswith("/") else "/" + nxt), []
        return None
    limit = dict(query).get("limit")
    if limit is not None and len(items) >= int(limit) and isinstance(items[-1], dict) and "name" in items[-1]:
        return path, [(k, v) for k, v in query if k != "marker"] + [("marker", items[-1]["name"])]
    return None


def create_then_find(
    create: Callable[[], T],
    find: Callable[[], T | None],
    *,
    what: str,
    attempts: int = 3,
    before: Callable[[], object] | None = None,
    settle: Callable[[], object] | None = None,
    on_conflict: str = "raise",
    pause: Callable[[int], None] | None = None,
) -> T:
    """Create something no OpenStack API creates idempotently (a server, a snapshot, a member, a monitor).

    A create whose answer was lost (UncertainWrite) may have worked: look for it (`find`, by the unique
    marker the create carried) before trying again, so a retry never makes a duplicate. `on_conflict` says
    what a 409 means: "raise" (a real conflict), "retry" (busy: try again), or "find" (maybe our own earlier
    try, or another runner's: adopt what is there, else raise). `before` runs before each try, `settle` before
    each look-up (e.g. wait for the load balancer to settle), `pause(attempt)` before a retry."""
    for attempt in range(1, attempts + 1):
        if before is not None:
            before()
        try:
            return create()
        except Conflict:
            if on_conflict == "raise" or (on_conflict == "retry" and attempt == attempts):
                raise
            if on_conflict == "retry":
                continue
            if settle is not None:
                settle()
            found = find()
            if found is not None:
                log.info("%s: adopted what is already there after a conflict", what)
                return found
            raise
        except UncertainWrite as exc:
            if settle is not None:
                settle()
            found = find()
            if found is not None:
                log.info("%s: it was created although the answer was lost: %s", what, exc)
                return found
            if attempt == attempts:
                raise
            if pause is not None:
                pause(attempt)
    raise AssertionError("unreachable")
