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
  a body, a query string or a token.
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
from typing import Any, Callable, Collection, Mapping
from urllib.parse import urlsplit

import requests
from requests import exceptions as rex

from releasectl.errors import AuthError, Conflict, NotFound, ProviderError
from releasectl.wait import REAL_CLOCK, Clock

log = logging.getLogger("releasectl.providers.openstack.http")

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
    {"message"}}`, Octavia (WSME) `{"faultstring"}`, Glance `{"message", "code", "title"}` (JSON when asked,
    else an HTML page), Swift plain text; otherwise the reason phrase.
    """
    body = resp.text or ""
    data: Any = None
    if body.strip().startswith(("{", "[")):
        try:
            data = jsonlib.loads(body)
        except ValueError:
            data = None
    if isinstance(data, dict):
        for key in ("faultstring", "message"):
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
        self.session = requests.Session()
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
                cls = UncertainWrite if sent and not idempotent else ProviderError
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


class ServiceClient:
    """Calls to one service: its endpoint (resolved lazily from the catalog), its token, its headers."""

    service_type = ""

    def __init__(self, transport: Transport, endpoint: Callable[[], str], token: TokenSource) -> None:
        self.transport = transport
        self._endpoint = endpoint
        self.token = token
        self._url: str | None = None

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

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        url = path if path.startswith(("http://", "https://")) else self.url + path
        headers = {**self.headers(), **(kwargs.pop("headers", None) or {})}
        return self.transport.request(self.service_type, method, url, headers=headers, token=self.token, **kwargs)

    def get_json(self, path: str, **kwargs: Any) -> Any | None:
        """GET a resource; None when it is 404."""
        resp = self.call("GET", path, allow=(404,), **kwargs)
        return None if resp.status_code == 404 else resp.json()
