"""Without own probes (openstack `probe: false`), `fall` polls in a row of the LB calling a member unhealthy
(Octavia ERROR) fail the health gate at once, with a reason that says so. In-process, no I/O."""

from __future__ import annotations

from dataclasses import replace

import pytest

from releasectl.engine.decide import Kind, decide
from releasectl.engine.health import HealthTracker, snapshot
from releasectl.providers.base import Health, HealthCheck, Probe

from .test_decide import CANARY, NEW, NOW, OLD, member, obs, release

CHECK = HealthCheck(path="/healthz", expected_status=200, interval=1.0, timeout=1.0, rise=2, fall=3)
LB_VIEW = Probe(status=None, latency=0.0, error="load balancer reports the member ERROR in Octavia (probe: false)")


def error_member(server):
    return replace(member(server, 0, Health.UNHEALTHY), health_detail="ERROR in Octavia")


def polls(tracker: HealthTracker, n: int, health: Health = Health.UNHEALTHY, start: float = 0.0) -> None:
    for i in range(n):
        m = error_member(NEW[0]) if health is Health.UNHEALTHY else member(NEW[0], 0, health)
        tracker.record(NEW[0].id, LB_VIEW, start + i * CHECK.interval, m)


def gate(tracker: HealthTracker):
    members = [member(s, 100) for s in OLD] + [error_member(s) for s in NEW]
    observed = obs(OLD + NEW, members, health=snapshot(tracker), asserted=frozenset(s.id for s in NEW))
    return decide(observed, release(*CANARY), NOW)


def test_fall_polls_of_octavia_error_fail_the_gate_and_say_so() -> None:
    tracker = HealthTracker(CHECK, lb_verdicts=True)
    polls(tracker, CHECK.fall - 1)
    assert not tracker.failed_at_launch(NEW[0].id)
    assert gate(tracker).kind is Kind.WAIT  # fall - 1 polls: still waiting
    polls(tracker, 1, start=CHECK.fall)
    assert tracker.failed_at_launch(NEW[0].id) and tracker.failed_in_service(NEW[0].id)
    decision = gate(tracker)
    assert decision.kind is Kind.FAIL
    assert f"{NEW[0].name}: member ERROR in Octavia for {CHECK.fall} polls in a row" in decision.reason


def test_a_poll_without_error_starts_the_count_again() -> None:
    tracker = HealthTracker(CHECK, lb_verdicts=True)
    polls(tracker, CHECK.fall - 1)
    polls(tracker, 1, Health.UNKNOWN, start=10)  # OFFLINE / not reported yet
    polls(tracker, CHECK.fall - 1, start=11)
    assert not tracker.failed_at_launch(NEW[0].id)
    assert gate(tracker).kind is Kind.WAIT


@pytest.mark.parametrize("detail, expected", [("", "member unhealthy in the load balancer for 3 polls")])
def test_without_the_lb_word_the_reason_is_generic(detail, expected) -> None:
    tracker = HealthTracker(CHECK, lb_verdicts=True)
    for i in range(CHECK.fall):
        tracker.record(NEW[0].id, LB_VIEW, float(i), member(NEW[0], 0, Health.UNHEALTHY))
    assert expected in tracker.describe(NEW[0].id)


def test_with_own_probes_the_lb_verdict_alone_is_a_slow_start() -> None:
    """Own probes judge the app (a wrong status fails it); an LB still marking a booting member down is not
    counted, so a slow start keeps its grace."""
    tracker = HealthTracker(CHECK, lb_verdicts=False)
    refused = Probe(status=None, latency=0.0, error="connection refused")
    for i in range(CHECK.fall * 3):
        tracker.record(NEW[0].id, refused, float(i), error_member(NEW[0]))
    assert not tracker.failed_at_launch(NEW[0].id)
    assert gate(tracker).kind is Kind.WAIT
