"""Webhook notifications in process: signing, filtering, retries, timeouts, dead receivers, the mapping
from engine events and command outcomes, and the `notify:` config (every error at file:line)."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from pathlib import Path

import pytest

from releasectl.config import Webhook, check_config
from releasectl.engine.events import Event
from releasectl.errors import ConfigError
from releasectl.notify import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Notification,
    Notifier,
    ReleaseNotifications,
    signature,
    verify,
)
from tests.helpers import WebhookReceiver, closed_port

SECRET = "s3cr3t-webhook-value"


def note(event: str = "step", seq: int = 1, **kw) -> Notification:
    return Notification(event=event, app="shop", environment="production", message=f"{event} {seq}", at=1_800_000_000.0,
                        sequence=seq, **kw)


class FakeTransport:
    """Answers from a script of statuses (an Exception instance is raised), then 204; records each call."""

    def __init__(self, *script) -> None:
        self.script = list(script)
        self.calls: list[tuple[str, bytes, dict, float, str | None]] = []

    def __call__(self, url, body, headers, timeout, cacert):
        self.calls.append((url, body, dict(headers), timeout, cacert))
        answer = self.script.pop(0) if self.script else 204
        if isinstance(answer, BaseException):
            raise answer
        return answer


def deliver(hooks, notes, transport, environ=None) -> Notifier:
    notifier = Notifier(hooks, transport=transport, environ=environ or {"SECRET": SECRET})
    for n in notes:
        notifier.publish(n)
    for w in notifier.workers:  # let the workers finish (fake transports answer at once)
        w.stop()
        assert w.join(10)
    return notifier


# ---- signing ------------------------------------------------------------------------------------------------


def test_signature_is_hmac_sha256_over_timestamp_dot_body():
    body = b'{"event":"step"}'
    expected = hmac.new(SECRET.encode(), b"1800000000." + body, hashlib.sha256).hexdigest()
    assert signature(SECRET.encode(), "1800000000", body) == "sha256=" + expected


def test_verify_accepts_the_exact_bytes_and_refuses_tampering_replays_and_other_secrets():
    body = note().body("json")
    now = 1_800_000_000
    headers = {TIMESTAMP_HEADER: str(now), SIGNATURE_HEADER: signature(SECRET.encode(), str(now), body)}
    assert verify(SECRET.encode(), headers, body, now=now)
    assert verify(SECRET.encode(), {k.lower(): v for k, v in headers.items()}, body, now=now + 299)
    assert not verify(SECRET.encode(), headers, body + b" ", now=now)  # one byte more
    assert not verify(b"other", headers, body, now=now)
    assert not verify(SECRET.encode(), headers, body, now=now + 301)  # a replay after the window
    assert not verify(SECRET.encode(), {**headers, TIMESTAMP_HEADER: str(now + 1)}, body, now=now)  # re-stamped
    assert not verify(SECRET.encode(), {SIGNATURE_HEADER: headers[SIGNATURE_HEADER]}, body, now=now)


def test_each_attempt_is_signed_with_its_own_timestamp_and_carries_the_headers():
    transport = FakeTransport()
    hook = Webhook(name="ops", url="https://hooks.example.com/r?team=ops", secret_env="SECRET", cacert="/ca.pem", timeout=2.5)
    deliver([hook], [note("started", 1)], transport)
    (url, body, headers, timeout, cacert), = transport.calls
    assert url == "https://hooks.example.com/r?team=ops" and timeout == 2.5 and cacert == "/ca.pem"
    assert headers[EVENT_HEADER] == "started" and len(headers[DELIVERY_HEADER]) == 32
    assert headers["Content-Type"] == "application/json"
    assert verify(SECRET.encode(), headers, body)
    document = json.loads(body)
    assert document["event"] == "started" and document["sequence"] == 1 and document["app"] == "shop"
    assert document["at"] == "2027-01-15T08:00:00Z" and document["schema_version"] == 1


def test_unsigned_without_a_secret_and_slack_format():
    transport = FakeTransport()
    hook = Webhook(name="chat", url="https://chat.example.com/hook", format="slack")
    deliver([hook], [note("failed", 1, release={"version": "1.2.0"})], transport)
    (_url, body, headers, _t, _c), = transport.calls
    assert SIGNATURE_HEADER not in headers
    text = json.loads(body)["text"]
    assert set(json.loads(body)) == {"text"} and "shop 1.2.0" in text and "failed" in text


def test_slack_text_escapes_markup():
    text = note("step", 1).__class__(event="step", app="a", environment="p", message="<!channel> & co", at=0.0,
                                     sequence=1).slack()["text"]
    assert "<!channel>" not in text and "&lt;!channel&gt; &amp; co" in text


# ---- filtering, order, retries, budget ---------------------------------------------------------------------


def test_each_webhook_gets_only_its_events_in_order():
    transport_all, transport_some = FakeTransport(), FakeTransport()
    events = ["started", "step", "step", "paused", "failed", "rolled_back", "succeeded"]
    notes = [note(e, i + 1) for i, e in enumerate(events)]
    deliver([Webhook(name="all", url="http://a.example/h")], notes, transport_all)
    deliver([Webhook(name="some", url="http://b.example/h", events=("failed", "rolled_back"))], notes, transport_some)
    assert [c[2][EVENT_HEADER] for c in transport_all.calls] == events
    assert [json.loads(c[1])["sequence"] for c in transport_all.calls] == [1, 2, 3, 4, 5, 6, 7]
    assert [c[2][EVENT_HEADER] for c in transport_some.calls] == ["failed", "rolled_back"]


def test_network_errors_and_5xx_are_retried_with_backoff_then_delivered_in_order():
    transport = FakeTransport(ConnectionRefusedError(111, "refused"), 503, TimeoutError("timed out"))
    hook = Webhook(name="ops", url="http://a.example/h", retries=3, backoff=0.001)
    notifier = deliver([hook], [note("started", 1), note("step", 2)], transport)
    assert [c[2][EVENT_HEADER] for c in transport.calls] == ["started"] * 4 + ["step"]
    ids = {c[2][DELIVERY_HEADER] for c in transport.calls[:4]}
    assert len(ids) == 1  # one delivery id across the retries of one notification
    worker = notifier.workers[0]
    assert (worker.delivered, worker.failed, worker.attempts) == (2, 0, 5)


def test_retries_stop_at_the_limit_and_a_4xx_is_not_retried(caplog):
    caplog.set_level(logging.WARNING, "releasectl.notify")
    failing = FakeTransport(*([500] * 10))
    notifier = deliver([Webhook(name="ops", url="http://a.example/h", retries=2, backoff=0.001)], [note()], failing)
    assert len(failing.calls) == 3 and notifier.workers[0].failed == 1
    refused = FakeTransport(403, 403)
    notifier = deliver([Webhook(name="ops", url="http://a.example/h", retries=5, backoff=0.001)], [note()], refused)
    assert len(refused.calls) == 1 and notifier.workers[0].failed == 1
    redirected = FakeTransport(302)
    deliver([Webhook(name="ops", url="http://a.example/h", retries=5)], [note()], redirected)
    assert len(redirected.calls) == 1
    assert "not delivered after 3 attempts: HTTP 500" in caplog.text and "HTTP 403" in caplog.text
    assert "a redirect, not followed" in caplog.text


def test_the_budget_bounds_all_attempts_of_one_notification():
    clock = [0.0]

    def slow_failure(url, body, headers, timeout, cacert):
        clock[0] += 4.0  # each attempt "takes" 4 s of the budget
        return 503

    notifier = Notifier([Webhook(name="ops", url="http://a.example/h", retries=10, backoff=0.001, budget=10.0)],
                        transport=slow_failure, environ={}, clock=lambda: clock[0])
    notifier.publish(note())
    worker = notifier.workers[0]
    worker.stop()
    assert worker.join(10)
    assert worker.attempts == 3 and worker.failed == 1  # 0 -> 4 -> 8 -> 12 s: past the 10 s budget


def test_publish_never_blocks_and_a_full_queue_drops_the_newest(caplog):
    gate = threading.Event()

    def stuck(url, body, headers, timeout, cacert):
        gate.wait(10)
        return 204

    notifier = Notifier([Webhook(name="ops", url="http://a.example/h", timeout=0.2)], transport=stuck, environ={})
    started = time.monotonic()
    for i in range(150):
        notifier.publish(note(seq=i + 1))
    assert time.monotonic() - started < 1.0
    assert notifier.workers[0].dropped == 50
    gate.set()
    notifier.close()
    assert "dropping the newest" in caplog.text


# ---- dead receivers: never block, and at exit wait at most the timeout once -----------------------------------


def test_dead_receivers_cost_the_caller_at_most_one_timeout_at_close(caplog):
    """A closed port (refused at once, retried) and a receiver that never answers (each attempt runs into the
    timeout): publishing returns at once, and close() waits at most the longest timeout, once, for all."""
    caplog.set_level(logging.WARNING, "releasectl.notify")
    timeout = 0.5
    with WebhookReceiver(hang=True) as silent:
        hooks = (
            Webhook(name="refused", url=f"http://127.0.0.1:{closed_port()}/h?team=ops", timeout=timeout, retries=3, backoff=0.05,
                    secret_env="SECRET"),
            Webhook(name="silent", url=silent.url("/h?team=ops"), timeout=timeout, retries=3, backoff=0.05, secret_env="SECRET"),
        )
        notifier = Notifier(hooks, environ={"SECRET": SECRET})
        began = time.monotonic()
        for i, event in enumerate(["started", "step", "step", "step", "succeeded"]):
            notifier.publish(note(event, i + 1))
        published = time.monotonic() - began
        began = time.monotonic()
        left = notifier.close()
        closed = time.monotonic() - began
    assert published < 0.5
    assert closed <= timeout + 0.5, f"close() waited {closed:.2f} s for dead receivers with a {timeout} s timeout"
    assert left >= 4  # the silent one got through at most one attempt per timeout
    assert "webhook refused" in caplog.text and "webhook silent" in caplog.text and "gave up at exit" in caplog.text
    assert SECRET not in caplog.text and "team=ops" not in caplog.text and "/h" not in caplog.text


def test_a_missing_secret_sends_nothing_unsigned_and_says_which_variable(caplog):
    transport = FakeTransport()
    deliver([Webhook(name="ops", url="http://a.example/h", secret_env="RELEASECTL_WEBHOOK_SECRET")], [note()], transport,
            environ={})
    assert transport.calls == []
    assert "$RELEASECTL_WEBHOOK_SECRET is not set" in caplog.text


def test_the_secret_from_the_keyring(monkeypatch):
    import keyring

    asked = []
    monkeypatch.setattr(keyring, "get_password", lambda service, user: asked.append((service, user)) or SECRET)
    transport = FakeTransport()
    deliver([Webhook(name="ops", url="http://a.example/h", secret_keyring="ops")], [note()], transport, environ={})
    assert asked == [("releasectl", "webhook:ops")]
    assert verify(SECRET.encode(), transport.calls[0][2], transport.calls[0][1])


def test_url_env_reads_the_url_from_the_environment():
    transport = FakeTransport()
    hook = Webhook(name="chat", url_env="SLACK_URL", format="slack")
    deliver([hook], [note()], transport, environ={"SLACK_URL": "https://hooks.slack.com/services/T/B/X"})
    assert transport.calls[0][0] == "https://hooks.slack.com/services/T/B/X"


def test_a_real_receiver_gets_signed_requests_despite_a_503():
    with WebhookReceiver(fail_first=1) as receiver:
        notifier = Notifier([Webhook(name="ops", url=receiver.url("/h?team=ops"), secret_env="SECRET", backoff=0.01)],
                            environ={"SECRET": SECRET})
        for i, event in enumerate(["started", "step", "succeeded"]):
            notifier.publish(note(event, i + 1))
        got = receiver.wait_for(3, timeout=10)
        assert notifier.close() == 0
    assert [h[EVENT_HEADER] for _p, h, _b in got] == ["started", "step", "succeeded"]
    assert all(path == "/h?team=ops" and verify(SECRET.encode(), h, b) for path, h, b in got)


# ---- from engine events and outcomes to notifications --------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.notes: list[Notification] = []
        self.closed = False

    def publish(self, n: Notification) -> None:
        self.notes.append(n)

    def close(self) -> int:
        self.closed = True
        return 0


def sink() -> tuple[ReleaseNotifications, Recorder]:
    recorder = Recorder()
    return ReleaseNotifications("shop", "production", (), notifier=lambda: recorder), recorder  # type: ignore[arg-type]


def feed(n: ReleaseNotifications, *kinds: str) -> None:
    for i, kind in enumerate(kinds):
        n(Event(kind=kind, message=f"{kind} message", at=1_800_000_000.0 + i, data={"step": i, "phase": "progressing"}))


def test_engine_events_map_to_notifications_and_start_events_are_sent_as_one():
    n, rec = sink()
    feed(n, "start", "start", "act", "wait", "step", "step")
    n.release = {"kind": "rollout", "version": "1.1.0", "state": "succeeded", "reason": "done"}
    n.finish(0)
    assert [x.event for x in rec.notes] == ["started", "step", "step", "succeeded"]
    assert rec.notes[0].message == "start message; start message"
    assert [x.sequence for x in rec.notes] == [1, 2, 3, 4]
    assert rec.notes[-1].release["version"] == "1.1.0" and rec.notes[-1].exit_code == 0
    assert rec.notes[1].detail == {"step": 4, "phase": "progressing"}
    assert rec.closed


@pytest.mark.parametrize("events, release, code, expected", [
    (("start", "step", "fail", "rollback", "done"), {"kind": "rollout", "state": "failed"}, 1,
     ["started", "step", "failed", "rolled_back"]),
    (("start", "step", "fail", "rollback", "done"), None, 1, ["started", "step", "failed", "rolled_back"]),
    (("start", "step"), None, 1, ["started", "step", "failed", "rolled_back"]),
    (("start", "step", "pause"), None, 4, ["started", "step", "paused"]),
    (("start", "step"), None, 4, ["started", "step", "paused"]),
    (("promote", "step", "done"), {"kind": "rollout", "state": "succeeded"}, 0, ["step", "succeeded"]),
    (("abort", "fail", "rollback", "done"), {"kind": "rollout", "state": "aborted"}, 0, ["rolled_back"]),
    (("start", "done"), {"kind": "rollback", "state": "succeeded"}, 0, ["started", "rolled_back"]),
    (("start", "step"), None, 5, ["started", "step", "failed"]),
    (("resume", "step"), None, 130, ["started", "step", "failed"]),
    (("bake", "bake"), None, 0, []),  # not a release: nothing sent, no notifier made
    (("bake",), None, 5, []),
    ((), None, 2, []),
])
def test_outcomes(events, release, code, expected):
    n, rec = sink()
    feed(n, *events)
    n.release = release
    n.finish(code)
    assert [x.event for x in rec.notes] == expected
    if expected and code and "pause" not in events:  # the last one came from the outcome
        assert rec.notes[-1].exit_code == code


def test_the_sink_never_raises_into_the_engine(caplog):
    def broken() -> Notifier:
        raise RuntimeError("boom")

    n = ReleaseNotifications("shop", "production", (), notifier=broken)
    feed(n, "start", "step")
    n.finish(0)
    assert "ignoring RuntimeError" in caplog.text


# ---- the CLI's wiring: read-only commands get no sink; a release command sends its outcome ------------------


def write_config(tmp_path: Path, notify: str, extra: str = "") -> Path:
    config = tmp_path / "releasectl.yaml"
    config.write_text("app: shop\nlocal: {builder: app, start_command: [python, app.py]}\n" + extra + notify)
    return config


@pytest.fixture
def keep_signal_handlers():
    """engine_context installs SIGINT/SIGTERM handlers: put pytest's back."""
    import signal

    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def test_read_only_commands_get_the_plain_printer_and_release_commands_notify(tmp_path, monkeypatch, keep_signal_handlers):
    from releasectl.cli import runtime

    with WebhookReceiver() as receiver:
        config = write_config(tmp_path, f"notify:\n  webhooks:\n    - url: {receiver.url()}\n      secret_env: SECRET\n")
        monkeypatch.setenv("SECRET", SECRET)
        g = runtime.Globals(config=config)
        assert runtime.engine_context(g, writes=False).emit is g.printer
        ectx = runtime.engine_context(g)
        assert ectx.emit is not g.printer
        ectx.event("start", "rollout of shop 1.0.0")
        ectx.event("step", "step 2/3: weight 100%")
        runtime.note_release({"release": {"kind": "rollout", "version": "1.0.0", "state": "succeeded"}})
        runtime.finish_notifications(0)
        got = receiver.wait_for(3, timeout=10)
    assert [json.loads(b)["event"] for _p, _h, b in got] == ["started", "step", "succeeded"]
    assert json.loads(got[-1][2])["release"]["version"] == "1.0.0"


# ---- config -----------------------------------------------------------------------------------------------


def test_config_webhooks_and_an_environment_override(tmp_path):
    config = write_config(tmp_path, """\
notify:
  webhooks:
    - name: ops
      url: https://hooks.example.com/releasectl?team=ops
      secret_env: RELEASECTL_WEBHOOK_SECRET
      events: [failed, rolled_back]
      timeout: 2s
      retries: 5
      backoff: 500ms
      cacert: ca.pem
    - url_env: SLACK_URL
      format: slack
""", extra="environments:\n  production: {}\n  staging:\n    local: {lb_port: 9090}\n    notify: {webhooks: []}\n")
    report = check_config(config, "production")
    ops, chat = report.settings.notify.webhooks
    assert (ops.name, ops.events, ops.timeout, ops.retries, ops.backoff) == ("ops", ("failed", "rolled_back"), 2.0, 5, 0.5)
    assert ops.cacert == str(tmp_path / "ca.pem")
    assert (chat.name, chat.url_env, chat.format, chat.secret_env) == ("webhook-2", "SLACK_URL", "slack", None)
    assert check_config(config, "staging").settings.notify.webhooks == ()
    shown = report.settings.effective()["notify"]["webhooks"]
    assert shown[0]["url"] == "https://hooks.example.com/releasectl?..."
    assert shown[0]["signing_secret_from"] == "env $RELEASECTL_WEBHOOK_SECRET" and shown[1]["url"] == "$SLACK_URL"


BAD_WEBHOOKS = [
    ("url: https://h.example/x\n      secret: abc", "notify.webhooks[0].secret: secrets never go in releasectl.yaml"),
    ("url: https://h.example/x\n      token: abc", "notify.webhooks[0].token: secrets never go in releasectl.yaml"),
    ("url: https://hooks.slack.com/services/T0/B0/XXXX", "notify.webhooks[0].url: a URL like this one (hooks.slack.com) carries its own secret"),
    ("url: https://h.example/x?access_token=abc", "carries its own secret"),
    ("url: https://user:pw@h.example/x", "a user name or password in the URL is a secret"),
    ("url: ftp://h.example/x", 'expected an http:// or https:// URL, got the scheme "ftp"'),
    ("url: https:///x", "expected a URL with a host"),
    ("url: https://h.example:99999/x", "its host or port does not parse"),
    ("url: https://h.example/x#frag", "without a #fragment"),
    ('url: "https://h.example/a b"', "without spaces or control characters"),
    ("url: 42", "expected an http:// or https:// URL, got 42"),
    ("url_env: 1X", "url_env: expected an environment variable name"),
    ("name: x", "notify.webhooks[0]: expected exactly one of `url` and `url_env`"),
    ("url: https://h.example/x\n      url_env: X", "expected exactly one of `url` and `url_env`"),
    ("url: https://h.example/x\n      secret_env: A\n      secret_keyring: b", "expected at most one of `secret_env` and `secret_keyring`"),
    ("url: https://h.example/x\n      secret_env: 'A B'", "secret_env: expected an environment variable name"),
    ("url: https://h.example/x\n      events: [failed, exploded]", 'events: expected a list of events from started, step, paused, failed, rolled_back, succeeded, got "exploded"'),
    ("url: https://h.example/x\n      events: []", "events: expected a list of events"),
    ("url: https://h.example/x\n      events: [failed, failed]", "expected each event once"),
    ("url: https://h.example/x\n      format: xml", 'format: expected one of json, slack, got "xml"'),
    ("url: https://h.example/x\n      timeout: 0", "timeout: expected a duration from 100ms to 1m"),
    ("url: https://h.example/x\n      timeout: .inf", "timeout: expected a duration from 100ms to 1m like 10s, 5m or 500ms, got .inf"),
    ("url: https://h.example/x\n      retries: 50", "retries: expected a whole number from 0 to 10, got 50"),
    ("url: https://h.example/x\n      backoff: 2h", "backoff: expected a duration from 0s to 1m"),
    ("url: https://h.example/x\n      budget: 1h", "budget: expected a duration from 1s to 10m"),
    ("url: https://h.example/x\n      timeout: 5s\n      budget: 2s", "budget: 2s is less than the timeout of one attempt (5s)"),
    ("url: https://h.example/x\n      name: Ops Team", "name: expected a name of 1 to 32 lower-case letters"),
    ("url: https://h.example/x\n      bogus: 1", "notify.webhooks[0].bogus: unknown key"),
]


@pytest.mark.parametrize("body, message", BAD_WEBHOOKS, ids=[m[:40] for _b, m in BAD_WEBHOOKS])
def test_bad_webhooks_are_refused_at_file_and_line(tmp_path, body, message):
    config = write_config(tmp_path, f"notify:\n  webhooks:\n    - {body}\n")
    with pytest.raises(ConfigError) as caught:
        check_config(config)
    found = [p.message for p in caught.value.problems]
    assert any(message in m for m in found), found
    assert all(m.startswith("releasectl.yaml:") for m in found)
    line = int(next(m for m in found if message in m).split(":")[1])
    assert 4 <= line <= 7
    assert "abc" not in " ".join(found) and "XXXX" not in " ".join(found) and "pw@" not in " ".join(found)


@pytest.mark.parametrize("notify, message", [
    ("notify: [1]", "notify: expected a mapping of keys"),
    ("notify:\n  hooks: []", "notify.hooks: unknown key"),
    ("notify:\n  webhooks: {url: x}", "notify.webhooks: expected a list of at most 10 webhooks"),
    ("notify:\n  webhooks:\n" + "    - url: https://h.example/x\n" * 11, "expected a list of at most 10 webhooks"),
    ("notify:\n  webhooks:\n    - {name: a, url: 'https://h.example/x'}\n    - {name: a, url: 'https://h.example/y'}",
     'notify.webhooks[1].name: "a" names another webhook too'),
    ("notify:\n  webhooks:\n    - 7", "notify.webhooks[0]: expected a mapping of keys, got 7"),
])
def test_bad_notify_sections(tmp_path, notify, message):
    config = write_config(tmp_path, notify + "\n")
    with pytest.raises(ConfigError) as caught:
        check_config(config)
    assert any(message in p.message and p.message.startswith("releasectl.yaml:") for p in caught.value.problems), \
        [p.message for p in caught.value.problems]


def test_an_environment_notify_is_checked_too(tmp_path):
    config = write_config(tmp_path, "", extra="environments:\n  production:\n    notify: {webhooks: [{url: 'ftp://x'}]}\n")
    with pytest.raises(ConfigError) as caught:
        check_config(config)
    assert caught.value.message.startswith("releasectl.yaml:5: environments.production.notify.webhooks[0].url: ")
