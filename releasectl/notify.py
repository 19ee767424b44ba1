"""Signed webhook notifications of a release's progress, sent from background threads.

A notification never blocks or fails a release: `publish` only queues it (a bounded queue per webhook,
one worker thread each, so one dead receiver does not hold up another and each receiver sees events in
order); a worker retries with exponential backoff inside the webhook's time budget and logs what it could
not deliver on stderr (the webhook's name and scheme://host:port, never the secret, the URL's path or
query). At exit `close` waits for what is still queued at most the longest timeout, once, then gives up.

The wire format (README.md, "Notifications"): a POST whose body is the JSON document of `Notification.body`
(or a Slack-compatible `{"text": ...}`), with the headers
    X-Releasectl-Event: started | step | paused | failed | rolled_back | succeeded
    X-Releasectl-Delivery: <32 hex digits, the same on every retry of one notification>
    X-Releasectl-Timestamp: <Unix seconds when this attempt was sent>
    X-Releasectl-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body bytes>" under the secret>
The signature covers the timestamp so that a receiver refusing old timestamps (`verify`, 5 minutes) also
refuses replays. Nothing heavy is imported until a notification is sent: read-only commands never pay.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping

from releasectl.timefmt import rfc3339

if TYPE_CHECKING:
    from releasectl.config import Webhook
    from releasectl.engine.events import Event

SIGNATURE_HEADER = "X-Releasectl-Signature"
TIMESTAMP_HEADER = "X-Releasectl-Timestamp"
EVENT_HEADER = "X-Releasectl-Event"
DELIVERY_HEADER = "X-Releasectl-Delivery"
SCHEMA_VERSION = 1
MAX_QUEUED = 100  # per webhook; a notification past it is dropped (and counted in the log)
MAX_BACKOFF = 60.0
REPLAY_WINDOW = 300.0  # what `verify` accepts, in seconds either side of now
KEYRING_SERVICE = "releasectl"

log = logging.getLogger("releasectl.notify")


# ---- signing --------------------------------------------------------------------------------------------


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    """`sha256=<hex>` of HMAC-SHA256 over `<timestamp>.<body>`: the exact bytes sent, timestamp included."""
    import hashlib
    import hmac

    return "sha256=" + hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()


def verify(secret: bytes, headers: Mapping[str, str], body: bytes, *, now: float | None = None,
           window: float = REPLAY_WINDOW) -> bool:
    """What a receiver checks (README.md shows the same steps): a fresh timestamp and a matching signature,
    compared in constant time. `headers` is looked up case-insensitively."""
    import hmac

    lower = {k.lower(): v for k, v in headers.items()}
    stamp, given = lower.get(TIMESTAMP_HEADER.lower(), ""), lower.get(SIGNATURE_HEADER.lower(), "")
    if not stamp.isdigit() or abs((time.time() if now is None else now) - int(stamp)) > window:
        return False
    return hmac.compare_digest(signature(secret, stamp, body), given)


# ---- what is sent ---------------------------------------------------------------------------------------


_SLACK_ICONS = {"started": ":rocket:", "step": ":arrow_forward:", "paused": ":double_vertical_bar:",
                "failed": ":x:", "rolled_back": ":leftwards_arrow_with_hook:", "succeeded": ":white_check_mark:"}


@dataclass(frozen=True)
class Notification:
    event: str  # one of config.NOTIFY_EVENTS
    app: str
    environment: str
    message: str
    at: float
    sequence: int  # 1, 2, ... in the order this process published them
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    release: Mapping[str, Any] | None = None  # the release object, when the command has it (the last event)
    exit_code: int | None = None  # on the last event of a command
    detail: Mapping[str, Any] = field(default_factory=dict)  # the engine event's data (step, phase, ...)
    wave: Mapping[str, Any] | None = None  # a multi-region wave's summary: its phase and each region's state


    def document(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "id": self.id,
            "event": self.event,
            "sequence": self.sequence,
            "at": rfc3339(self.at),
            "app": self.app,
            "environment": self.environment,
            "message": self.message,
            "release": dict(self.release) if self.release is not None else None,
            "exit_code": self.exit_code,
            "detail": dict(self.detail),
            **({"wave": dict(self.wave)} if self.wave is not None else {}),
        }

    def slack(self) -> dict[str, Any]:
        """Slack's incoming-webhook payload (Mattermost and Rocket.Chat read the same `text`)."""
        escape = lambda s: s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")  # noqa: E731
        version = f" {self.release['version']}" if self.release and self.release.get("version") else ""
        text = (f"{_SLACK_ICONS.get(self.event, '')} *{escape(self.app)}{escape(version)}* in "
                f"*{escape(self.environment)}*: {self.event.replace('_', ' ')}: {escape(self.message)}")
        return {"text": text.strip()}

    def body(self, fmt: str) -> bytes:
        import json

        return json.dumps(self.slack() if fmt == "slack" else self.document(), separators=(",", ":"),
                          default=str).encode("utf-8")


# ---- transport --------------------------------------------------------------------------------------------

# (url, body, headers, timeout, cacert) -> HTTP status; raises OSError (URLError, timeouts) on network errors
Transport = Callable[[str, bytes, Mapping[str, str], float, "str | None"], int]


def urllib_post(url: str, body: bytes, headers: Mapping[str, str], timeout: float, cacert: str | None) -> int:
    """One POST with the standard library: TLS verified against the system CAs (or `cacert`), redirects
    not followed (a 3xx is a failure: the signed body goes only where it was configured to)."""
    import ssl
    import urllib.error
    import urllib.request

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    handlers: list[Any] = [NoRedirect()]
    if url.startswith("https:"):
        handlers.append(urllib.request.HTTPSHandler(context=ssl.create_default_context(cafile=cacert)))
    opener = urllib.request.build_opener(*handlers)
    request = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")
    try:
        with opener.open(request, timeout=timeout) as response:
            response.read(64 * 1024)
            return int(response.status)
    except urllib.error.HTTPError as exc:
        exc.close()
        return int(exc.code)


def _describe(exc: BaseException, url: str) -> str:
    """An error for the log, with the URL (whose path or query may carry a token) cut out."""
    import urllib.error

    reason: Any = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    text = f"{type(reason).__name__}: {reason}" if str(reason) else type(reason).__name__
    return text.replace(url, "<url>").split("?", 1)[0][:200]


class NotifyError(Exception):
    """A webhook that cannot send at all (its secret or URL variable is missing)."""


def _secret(hook: Webhook, environ: Mapping[str, str]) -> bytes | None:
    if hook.secret_env:
        value = environ.get(hook.secret_env, "")
        if not value:
            raise NotifyError(f"the signing secret ${hook.secret_env} is not set (nothing is sent unsigned)")
        return value.encode("utf-8")
    if hook.secret_keyring:
        username = f"webhook:{hook.secret_keyring}"
        try:
            import keyring

            value = keyring.get_password(KEYRING_SERVICE, username)
        except Exception as exc:  # no backend, a locked keyring: never the secret in the message
            raise NotifyError(f"the keyring could not give {KEYRING_SERVICE}/{username}: {type(exc).__name__}") from None
        if not value:
            raise NotifyError(f"no secret {KEYRING_SERVICE}/{username} in the keyring (nothing is sent unsigned)")
        return value.encode("utf-8")
    return None


def _url(hook: Webhook, environ: Mapping[str, str]) -> str:
    url = hook.url or environ.get(hook.url_env or "", "")
    if not url.startswith(("http://", "https://")) or any(c.isspace() for c in url):
        raise NotifyError(f"${hook.url_env} does not hold an http:// or https:// URL" if hook.url_env else "bad URL")
    return url


# ---- the workers ------------------------------------------------------------------------------------------


class _Worker:
    """One webhook: a bounded FIFO and a daemon thread that delivers it in order."""

    def __init__(self, hook: Webhook, transport: Transport, environ: Mapping[str, str], abandon: threading.Event,
                 clock: Callable[[], float]) -> None:
        from releasectl.config import redact_url

        self.hook = hook
        self.transport = transport
        self.abandon = abandon
        self.clock = clock
        self.where = f"webhook {hook.name} ({redact_url(hook.url) if hook.url else '$' + str(hook.url_env)})"
        self.queue: queue.Queue[Notification | None] = queue.Queue()
        self.pending = 0  # queued or in flight
        self.delivered = self.failed = self.dropped = 0
        self.attempts = 0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._problem: str | None = None
        self._secret: bytes | None = None
        self._url = ""
        try:
            self._url = _url(hook, environ)
            if not hook.secret_keyring:  # the keyring may be slow: looked up by the worker instead
                self._secret = _secret(hook, environ)
        except NotifyError as exc:
            self._problem = str(exc)
        self._environ = environ

    def put(self, n: Notification) -> None:
        with self._lock:
            if self.pending >= MAX_QUEUED:
                self.dropped += 1
                if self.dropped == 1:
                    log.warning("%s: more than %d notifications waiting; dropping the newest", self.where, MAX_QUEUED)
                return
            self.pending += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=f"releasectl-notify-{self.hook.name}", daemon=True)
                self._thread.start()
        self.queue.put(n)

    def stop(self) -> None:
        if self._thread is not None:
            self.queue.put(None)

    def join(self, timeout: float) -> bool:
        """True when the worker finished everything."""
        if self._thread is not None:
            self._thread.join(max(0.0, timeout))
            return not self._thread.is_alive()
        return True

    def _run(self) -> None:
        if self._problem is None and self.hook.secret_keyring:
            try:
                self._secret = _secret(self.hook, self._environ)
            except NotifyError as exc:
                self._problem = str(exc)
        if self._problem is not None:
            log.warning("%s: not sending notifications: %s", self.where, self._problem)
        while True:
            n = self.queue.get()
            if n is None:
                return
            try:
                if self._problem is None and not self.abandon.is_set():
                    self._deliver(n)
                else:
                    self.failed += 1
            except Exception as exc:  # a bug here must not escape the thread, or hide the rest
                self.failed += 1
                log.warning("%s: %s %s not delivered: internal error %s", self.where, n.event, n.id, type(exc).__name__)
            finally:
                with self._lock:
                    self.pending -= 1

    def _deliver(self, n: Notification) -> None:
        hook = self.hook
        body = n.body(hook.format)
        give_up_at = self.clock() + hook.budget
        attempt = 0
        while True:
            attempt += 1
            stamp = str(int(time.time()))
            headers = {
                "Content-Type": "application/json",
                "User-Agent": "releasectl-notify",
                EVENT_HEADER: n.event,
                DELIVERY_HEADER: n.id,
                TIMESTAMP_HEADER: stamp,
            }
            if self._secret is not None:
                headers[SIGNATURE_HEADER] = signature(self._secret, stamp, body)
            self.attempts += 1
            try:
                status = self.transport(self._url, body, headers, hook.timeout, hook.cacert)
            except Exception as exc:  # refused, timed out, TLS refused: worth another try
                problem, retry = _describe(exc, self._url), True
            else:
                if 200 <= status < 300:
                    self.delivered += 1
                    return
                problem = f"HTTP {status}" + (" (a redirect, not followed)" if 300 <= status < 400 else "")
                retry = status in (408, 425, 429) or status >= 500
            delay = min(MAX_BACKOFF, hook.backoff * 2 ** (attempt - 1))
            why = ("" if not retry or attempt > hook.retries
                   else " (its time budget is spent)" if self.clock() + delay >= give_up_at
                   else " (gave up at exit)" if self.abandon.wait(delay)
                   else None)
            if why is not None:
                self.failed += 1
                log.warning("%s: %s notification not delivered after %d attempt%s%s: %s", self.where, n.event,
                            attempt, "" if attempt == 1 else "s", why, problem)
                return


class Notifier:
    """Queues notifications to every webhook whose `events` lists them; never blocks the caller."""

    def __init__(self, webhooks: tuple[Webhook, ...] | list[Webhook], *, transport: Transport | None = None,
                 environ: Mapping[str, str] | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self._abandon = threading.Event()
        self._clock = clock
        env = dict(os.environ if environ is None else environ)
        self.workers = [_Worker(h, transport or urllib_post, env, self._abandon, clock) for h in webhooks]
        self._closed = False

    def publish(self, n: Notification) -> None:
        if self._closed:
            return
        for worker in self.workers:
            if n.event in worker.hook.events:
                worker.put(n)

    def close(self) -> int:
        """Wait for what is queued, each webhook at most its timeout, all at the same time (so at most the
        longest timeout, once); give up on the rest (logged). Returns how many were left undelivered."""
        if self._closed:
            return 0
        self._closed = True
        busy = sorted((w for w in self.workers if w.pending), key=lambda w: w.hook.timeout)
        for worker in self.workers:
            worker.stop()
        start = self._clock()
        for worker in busy:
            worker.join(start + worker.hook.timeout - self._clock())
        self._abandon.set()  # a worker still sending stops at its next backoff and drops the rest
        left = 0
        for worker in busy:
            if worker.pending:
                left += worker.pending
                log.warning("%s: gave up at exit on %d notification%s not yet delivered", worker.where,
                            worker.pending, "" if worker.pending == 1 else "s")
        return left


# ---- from engine events and the command's outcome to notifications -----------------------------------------

# engine event kind -> notification event
ENGINE_EVENTS = {"start": "started", "resume": "started", "step": "step", "pause": "paused", "rollback": "failed"}
# engine event kinds that mean this command runs a release (so its outcome is worth a last notification)
RELEASE_KINDS = {*ENGINE_EVENTS, "promote", "abort", "done", "wave"}


class ReleaseNotifications:
    """The engine's event sink for notifications. Engine events give `started`, `step`, `paused` and
    `failed` (the release failed and rolls back; not sent for `abort`); the command's outcome (`finish`) gives the last one:
    `succeeded`, `rolled_back` (a failed or aborted release, or a rollback, is over), `paused` (exit 4) or
    `failed` (exit 5 and the like: unfinished, resumable). The notifier and its threads are made at the
    first notification, so a command that releases nothing starts none. Never raises into the engine."""

    def __init__(self, app: str, env: str, webhooks: tuple[Webhook, ...], *,
                 notifier: Callable[[], Notifier] | None = None, clock: Callable[[], float] = time.time) -> None:
        self.app, self.env = app, env
        self._make = notifier or (lambda: Notifier(webhooks))
        self._notifier: Notifier | None = None
        self._clock = clock
        self._sequence = 0
        self._started: list[Event] = []  # "start" events held until the next event, sent as one
        self.sent: list[str] = []
        self.in_release = False
        self._aborting = False
        self.release: Mapping[str, Any] | None = None  # set by the CLI from the command's result
        self.wave: Mapping[str, Any] | None = None  # a wave's summary, once an engine event carried one

    def __call__(self, event: Event) -> None:
        try:
            self._on_event(event)
        except Exception as exc:  # a notification never fails a release
            log.warning("notifications: ignoring %s while handling a %s event", type(exc).__name__, event.kind)

    def _on_event(self, event: Event) -> None:
        if event.kind in RELEASE_KINDS:
            self.in_release = True
        if isinstance(event.data.get("wave"), Mapping):
            self.wave = event.data["wave"]
        if self.wave is not None:
            return self._on_wave_event(event)
        self._aborting = self._aborting or event.kind == "abort"
        name = ENGINE_EVENTS.get(event.kind)
        if name == "failed" and self._aborting:  # an operator's abort rolls back; it is not a failure
            name = None
        if name == "started":
            if "started" not in self.sent:
                self._started.append(event)
            return
        self._flush_started()
        if name is not None:
            self._send(name, event.message, at=event.at, detail=event.data)

    def _on_wave_event(self, event: Event) -> None:
        """A multi-region wave (engine/waves.py) sends one summary: `started` when it starts or resumes, and
        its end (`succeeded`, `rolled_back`) or pause, each with every region's state in `wave`. What happens
        inside a region (steps, a region's failure, a rollback_all) is in that summary, not sent apart."""
        if event.kind in ("start", "resume") and "started" not in self.sent:
            self._send("started", event.message, at=event.at)
        elif event.kind == "wave":
            self._send(str(event.data.get("outcome")), _with_regions(event.message, self.wave), at=event.at)

    def _flush_started(self) -> None:
        if self._started:
            first = self._started[0]
            self._send("started", "; ".join(e.message for e in self._started), at=first.at, detail=first.data)
            self._started = []

    def _send(self, name: str, message: str, *, at: float | None = None, detail: Mapping[str, Any] | None = None,
              exit_code: int | None = None) -> None:
        if self._notifier is None:
            self._notifier = self._make()
        self._sequence += 1
        scalars = {k: v for k, v in (detail or {}).items() if isinstance(v, (str, int, float, bool)) or v is None}
        self._notifier.publish(Notification(
            event=name, app=self.app, environment=self.env, message=message, at=self._clock() if at is None else at,
            sequence=self._sequence, release=self.release, exit_code=exit_code, detail=scalars, wave=self.wave,
        ))
        self.sent.append(name)

    def finish(self, exit_code: int) -> None:
        """Send the command's outcome, then wait for delivery at most the longest timeout, once."""
        try:
            self._flush_started()
            for name, message in self.outcome(exit_code):
                self._send(name, message, exit_code=exit_code)
        except Exception as exc:
            log.warning("notifications: ignoring %s while sending the outcome", type(exc).__name__)
        finally:
            if self._notifier is not None:
                self._notifier.close()

    def outcome(self, exit_code: int) -> list[tuple[str, str]]:
        """The last notifications of this command, from its exit code and its release (if it returned one)."""
        rel = self.release
        if self.wave is not None:  # its end was sent as the engine announced it; else it stopped unfinished
            ended = self.sent and self.sent[-1] in ("succeeded", "rolled_back", "paused")
            if ended or exit_code == 0:
                return []
            text = f"the wave rollout of {self.wave.get('version')} is unfinished (exit {exit_code}) at region " \
                   f"{self.wave.get('current_region')}: `releasectl rollout --resume` continues it"
            return [("failed", _with_regions(text, self.wave))]
        if rel is not None:
            state, kind = rel.get("state"), rel.get("kind")
            text = f"{kind} of {self.app} {rel.get('version')} in {self.env}: {state}: {rel.get('reason') or ''}".rstrip(": ")
            if state == "succeeded":
                return [("rolled_back" if kind == "rollback" else "succeeded", text)]
            if state in ("failed", "aborted"):
                first = [] if state == "aborted" or "failed" in self.sent else [("failed", rel.get("failure") or text)]
                return [*first, ("rolled_back", text)]
            if state == "paused" and (not self.sent or self.sent[-1] != "paused"):
                return [("paused", text)]
            return []
        if not self.in_release:
            return []
        if exit_code == 1:
            failed = [] if "failed" in self.sent else [("failed", "the release failed")]
            return [*failed, ("rolled_back", "the release failed and was rolled back")]
        if exit_code == 4:
            return [] if self.sent and self.sent[-1] == "paused" else [("paused", "paused at a manual gate")]
        if exit_code != 0:
            return [("failed", f"the release is unfinished (exit {exit_code}): see `releasectl status`, then "
                               "`releasectl rollout --resume` or `releasectl abort`")]
        return []


def _with_regions(message: str, wave: Mapping[str, Any] | None) -> str:
    """A wave notification's text with each region's state (chat formats show only the text)."""
    regions = ", ".join(f"{r.get('region')}: {r.get('state')}" for r in (wave or {}).get("regions") or [])
    return f"{message} [{regions}]" if regions else message
