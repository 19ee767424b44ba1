"""Webhook notifications from real releases on the local provider: a loopback receiver verifies every
signature and the order of events of a canary, a failed canary and a manual gate; dead receivers (a closed
port, one that never answers) do not fail a release and delay it by at most one timeout."""

from __future__ import annotations

import json
import time

import pytest

from releasectl.notify import EVENT_HEADER, verify
from tests.helpers import WebhookReceiver, closed_port

pytestmark = pytest.mark.slow

SECRET = "s3cr3t-webhook-value"
ENV = {"RELEASECTL_WEBHOOK_SECRET": SECRET}


def add_notify(ws, webhooks: str) -> None:
    config = ws.path / "releasectl.yaml"
    text = config.read_text().split("\nnotify:\n")[0]
    config.write_text(text + "\nnotify:\n  webhooks:\n" + webhooks)


def receiver_webhooks(receiver: WebhookReceiver) -> str:
    return f"""\
    - name: ops
      url: {receiver.url('/ops?team=payments')}
      secret_env: RELEASECTL_WEBHOOK_SECRET
      timeout: 5s
      retries: 3
      backoff: 100ms
    - name: chat
      url: {receiver.url('/chat')}
      format: slack
      events: [paused, failed, rolled_back, succeeded]
"""


def take(receiver: WebhookReceiver, path: str, last: str) -> list[dict]:
    """The documents sent to `path` so far (polling until one `last` event came), each signature verified,
    taken out of the receiver's list."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        got = receiver.wait_for(1, timeout=1)
        if any(p.split("?")[0] == path.split("?")[0] and h.get(EVENT_HEADER) == last for p, h, _b in got):
            break
        time.sleep(0.05)
    with receiver.received:
        got = [r for r in receiver.requests if r[0].split("?")[0] == path.split("?")[0]]
        receiver.requests[:] = [r for r in receiver.requests if r not in got]
    docs = []
    for p, headers, body in got:
        if path.startswith("/ops"):
            assert verify(SECRET.encode(), headers, body), f"bad signature on {headers.get(EVENT_HEADER)}"
            assert p == path  # the query reached the receiver unchanged
        doc = json.loads(body)
        doc["_event"] = headers[EVENT_HEADER]
        docs.append(doc)
    return docs


def events(docs: list[dict]) -> list[str]:
    return [d["_event"] for d in docs]


def test_signed_notifications_in_order_for_a_canary_a_rollback_and_a_gate(live_100):
    ws = live_100
    with WebhookReceiver(fail_first=1) as receiver:  # the very first delivery gets a 503 and is retried
        add_notify(ws, receiver_webhooks(receiver))
        ws.bake("1.1.0")
        done = ws.cli("rollout", "1.1.0", "--pipeline", "canary-fast.yaml", "-o", "json", env=ENV)
        assert done.code == 0, done.stderr
        ops = take(receiver, "/ops?team=payments", "succeeded")
        names = events(ops)
        assert names[0] == "started" and names[-1] == "succeeded", names
        assert set(names[1:-1]) == {"step"} and len(names) >= 5, names
        assert [d["sequence"] for d in ops] == list(range(1, len(ops) + 1))
        assert all(d["event"] == d["_event"] and d["app"] == "shop" and d["environment"] == "production" for d in ops)
        assert ops[-1]["release"]["version"] == "1.1.0" and ops[-1]["release"]["state"] == "succeeded"
        assert ops[-1]["exit_code"] == 0 and "1.1.0" in ops[0]["message"]
        assert len({d["id"] for d in ops}) == len(ops)
        chat = take(receiver, "/chat", "succeeded")
        assert [set(d) for d in chat] == [{"text", "_event"}] and "shop 1.1.0" in chat[0]["text"]

        ws.bake("1.2.0", broken=True)
        failed = ws.cli("rollout", "1.2.0", "--pipeline", "canary-fast.yaml", env=ENV)
        assert failed.code == 1, failed.stderr
        ops = take(receiver, "/ops?team=payments", "rolled_back")
        names = events(ops)
        assert names[0] == "started" and names[-2:] == ["failed", "rolled_back"], names
        assert names.count("failed") == 1 and set(names[1:-2]) <= {"step"}, names
        assert ops[-1]["release"] is None and ops[-1]["exit_code"] == 1
        assert [d["sequence"] for d in ops] == list(range(1, len(ops) + 1))
        assert events(take(receiver, "/chat", "rolled_back")) == ["failed", "rolled_back"]

        ws.bake("1.3.0")
        paused = ws.cli("rollout", "1.3.0", "--pipeline", "gate-fast.yaml", env=ENV)
        assert paused.code == 4, paused.stderr
        names = events(take(receiver, "/ops?team=payments", "paused"))
        assert names[0] == "started" and names[-1] == "paused" and names.count("paused") == 1, names
        promoted = ws.cli("promote", "-o", "json", env=ENV)
        assert promoted.code == 0, promoted.stderr
        ops = take(receiver, "/ops?team=payments", "succeeded")
        assert events(ops)[-1] == "succeeded" and set(events(ops)[:-1]) <= {"step"}
        assert ops[-1]["release"]["version"] == "1.3.0"
        assert events(take(receiver, "/chat", "succeeded")) == ["paused", "succeeded"]

        # read-only commands send nothing
        ws.ok("status")
        ws.ok("history")
        assert receiver.wait_for(1, timeout=0.5) == []
    for run in (done, failed, paused, promoted):
        assert SECRET not in run.stdout + run.stderr


def test_dead_receivers_never_fail_a_release_and_delay_it_at_most_one_timeout(live_100):
    """Baseline: a rollout notifying a healthy receiver. Then the same rollout notifying a closed port and a
    receiver that never answers, each with a 3 s timeout and 2 retries: if sending blocked the release, each
    of its 5+ notifications would add 3 s or more (36 s and up with retries); it may add one timeout, at exit."""
    ws = live_100
    timeout = 3.0
    with WebhookReceiver() as healthy:
        add_notify(ws, receiver_webhooks(healthy))
        ws.bake("1.1.0")
        began = time.monotonic()
        baseline = ws.cli("rollout", "1.1.0", "--pipeline", "canary-fast.yaml", env=ENV)
        baseline_seconds = time.monotonic() - began
        assert baseline.code == 0, baseline.stderr
        assert len(take(healthy, "/ops?team=payments", "succeeded")) >= 5
    with WebhookReceiver(hang=True) as silent:
        add_notify(ws, f"""\
    - name: refused
      url: http://127.0.0.1:{closed_port()}/hook?team=payments
      secret_env: RELEASECTL_WEBHOOK_SECRET
      timeout: {timeout:g}s
      retries: 2
      backoff: 500ms
    - name: silent
      url: {silent.url('/hook?team=payments')}
      secret_env: RELEASECTL_WEBHOOK_SECRET
      timeout: {timeout:g}s
      retries: 2
      backoff: 500ms
""")
        ws.bake("1.2.0")
        began = time.monotonic()
        dead = ws.cli("rollout", "1.2.0", "--pipeline", "canary-fast.yaml", "-o", "json", env=ENV)
        dead_seconds = time.monotonic() - began
    assert dead.code == 0, dead.stderr
    assert dead.json()["release"]["state"] == "succeeded"
    assert dead_seconds <= baseline_seconds + timeout + 8, (baseline_seconds, dead_seconds)
    assert "webhook refused (http://127.0.0.1:" in dead.stderr and "webhook silent (http://127.0.0.1:" in dead.stderr
    assert "gave up at exit" in dead.stderr
    assert "team=payments" not in dead.stderr and "/hook" not in dead.stderr and SECRET not in dead.stderr
    assert ws.status()["live_version"] == "1.2.0"
