"""When releasectl's own probes run: once per health interval, except for a server that has never answered
(its port still closed while it boots), which is probed again on the next pass. In-process, no I/O."""

from __future__ import annotations

from releasectl.engine.health import HealthTracker
from releasectl.providers.base import HealthCheck, Probe

CHECK = HealthCheck(path="/healthz", expected_status=200, interval=1.0, timeout=1.0, rise=2, fall=2)
REFUSED = Probe(status=None, latency=0.001, error="ConnectionRefusedError: http://127.0.0.1:1/healthz")
OK = Probe(status=200, latency=0.001)
POOL_DOWN = Probe(status=None, latency=0.0, error="not a pool member yet (probe: false)", source="pool status")


def test_a_booting_server_is_probed_on_every_pass_until_it_answers_then_once_per_interval() -> None:
    tracker = HealthTracker(CHECK)
    assert tracker.due("s1", 0.0)
    tracker.record("s1", REFUSED, 0.0)
    assert tracker.due("s1", 0.2)  # its port was closed: look again on the next pass, not an interval later
    tracker.record("s1", OK, 0.2)
    assert not tracker.due("s1", 0.4) and not tracker.due("s1", 1.19)  # rise probes stay an interval apart
    assert tracker.due("s1", 1.2)
    tracker.record("s1", OK, 1.2)
    assert tracker.passing("s1")


def test_a_server_that_answered_once_is_probed_once_per_interval_even_when_it_stops_answering() -> None:
    tracker = HealthTracker(CHECK)
    tracker.record("s1", OK, 0.0)
    tracker.record("s1", REFUSED, 1.0)
    assert not tracker.due("s1", 1.5)  # `fall` failures in a row still take fall x interval
    assert tracker.due("s1", 2.0)


def test_a_wrong_status_counts_as_an_answer() -> None:
    tracker = HealthTracker(CHECK)
    tracker.record("s1", Probe(status=500, latency=0.001), 0.0)
    assert not tracker.due("s1", 0.5)


def test_pool_status_reads_stand_in_for_probes_once_per_interval() -> None:
    """probe: false reads the LB's view (an API call): never more often than the interval."""
    tracker = HealthTracker(CHECK, lb_verdicts=True)
    tracker.record("s1", POOL_DOWN, 0.0)
    assert not tracker.due("s1", 0.5)
