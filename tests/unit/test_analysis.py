"""The analysis verdict: error rates over the window from LB counters (deltas against the baseline), our
own probes when the provider has no counters, and p95 latency of the probes."""

from __future__ import annotations

from releasectl.engine.health import HealthTracker, percentile
from releasectl.engine.model import Analyze
from releasectl.engine.reconcile import analyse
from releasectl.providers.base import AdminState, Health, HealthCheck, Member, MemberStats, Probe


def member(mid: str) -> Member:
    return Member(id=mid, name=mid, address="127.0.0.1", port=1, weight=10, admin=AdminState.READY, health=Health.HEALTHY)


NEW, OLD = [member("n1"), member("n2")], [member("o1")]
BASE = {"n1": {"requests": 100, "bad": 5}, "n2": {"requests": 100, "bad": 0}, "o1": {"requests": 1000, "bad": 1}}


def stats(**counts: tuple[int, int]) -> dict[str, MemberStats]:
    return {mid: MemberStats(mid, requests=r, http_5xx=b, errors=0) for mid, (r, b) in counts.items()}


def tracker() -> HealthTracker:
    return HealthTracker(HealthCheck(expected_status=200))


def test_only_the_window_counts_not_errors_before_it():
    # n1 had 5 errors before the window; in the window: 200 requests, 1 error -> 0.5 %
    now = stats(n1=(200, 6), n2=(200, 0), o1=(2000, 1))
    verdict = analyse(Analyze(duration=10, max_error_rate=0.01), now, BASE, NEW, OLD, tracker())
    assert not verdict.failed
    assert "0.50%" in verdict.reason and "load balancer" in verdict.reason


def test_new_error_rate_above_the_limit_fails_and_names_both_rates():
    now = stats(n1=(200, 15), n2=(200, 5), o1=(2000, 2))  # new: 15 bad of 200 = 7.5 %; old: 1 of 1000
    verdict = analyse(Analyze(duration=10, max_error_rate=0.05), now, BASE, NEW, OLD, tracker())
    assert verdict.failed
    assert "7.50%" in verdict.reason and "0.10%" in verdict.reason and "> 5%" in verdict.reason


def test_without_lb_counters_the_probes_decide():
    t = tracker()
    for i in range(10):
        t.record("n1", Probe(status=200 if i % 5 else 500, latency=0.01), now=float(i))
    verdict = analyse(Analyze(duration=10, max_error_rate=0.1, min_requests=10), {}, {}, NEW, OLD, t)
    assert verdict.failed and "20.00%" in verdict.reason and "releasectl probes" in verdict.reason


def test_p95_latency_limit():
    t = tracker()
    for i in range(100):
        t.record("n1", Probe(status=200, latency=0.300 if i >= 90 else 0.010), now=float(i))
    assert percentile(t.latencies, 95) == 0.3
    slow = analyse(Analyze(duration=10, max_error_rate=0.5, max_p95_ms=100), {}, {}, NEW, OLD, t)
    assert slow.failed and "p95 latency 300ms > 100ms" in slow.reason
    fine = analyse(Analyze(duration=10, max_error_rate=0.5, max_p95_ms=500), {}, {}, NEW, OLD, t)
    assert not fine.failed


def test_health_streaks_need_rise_in_a_row_and_fall_to_fail():
    t = HealthTracker(HealthCheck(rise=2, fall=2, expected_status=200))
    t.record("s", Probe(status=None, latency=0, error="refused"), 0.0)
    assert not t.failed_at_launch("s")  # a slow start is not a failure
    t.record("s", Probe(status=200, latency=0), 1.0)
    assert not t.passing("s")
    t.record("s", Probe(status=200, latency=0), 2.0)
    assert t.passing("s")
    t.record("s", Probe(status=500, latency=0), 3.0)
    t.record("s", Probe(status=500, latency=0), 4.0)
    assert t.failed_at_launch("s") and t.failed_in_service("s") and not t.passing("s")


def test_an_unreadable_release_record_is_an_error_not_no_release():
    import pytest

    from releasectl.engine.records import load_current
    from releasectl.errors import DamagedState

    class Records:  # the record part of a provider, nothing else is touched
        def __init__(self, text):
            self.text = text

        def read_record(self, key):
            return self.text

    assert load_current(Records(None)) is None
    for broken in ("", "{", '{"id": "x"}'):
        with pytest.raises(DamagedState, match="release record 'current' is damaged"):
            load_current(Records(broken))


# ---- min_requests and the inconclusive policy -----------------------------------------------------------


def test_two_requests_are_inconclusive_not_a_pass():
    now = stats(n1=(101, 5), n2=(101, 0), o1=(1000, 1))  # 2 requests in the window, no error
    verdict = analyse(Analyze(duration=10, max_error_rate=0.01), now, BASE, NEW, OLD, tracker())
    assert verdict.inconclusive and not verdict.failed
    assert verdict.requests == 2 and verdict.source == "load balancer stats"


def test_errors_that_exceed_the_limit_whatever_comes_next_fail_before_min_requests():
    now = stats(n1=(110, 10), n2=(100, 0), o1=(1000, 1))  # 5 errors in 10: 5 of the 50 needed is 10 % > 5 %
    verdict = analyse(Analyze(duration=10, max_error_rate=0.05), now, BASE, NEW, OLD, tracker())
    assert verdict.failed and not verdict.inconclusive


def test_pool_status_reads_are_labelled_as_such():
    t = tracker()
    for i in range(60):
        t.record("n1", Probe(status=200, latency=0.0, source="pool status"), now=float(i))
    verdict = analyse(Analyze(duration=10, max_error_rate=0.01), {}, {}, NEW, OLD, t)
    assert not verdict.failed and not verdict.inconclusive
    assert verdict.source == "pool status reads" and "pool status reads" in verdict.reason
    assert t.latencies == []  # a pool read has no latency to take a percentile of


def test_the_verdict_carries_its_figures_and_the_worst_member():
    now = stats(n1=(200, 15), n2=(200, 5), o1=(2000, 2))  # n1: 10 errors of 100 in the window; n2: 5 of 100
    verdict = analyse(Analyze(duration=10, max_error_rate=0.05), now, BASE, NEW, OLD, tracker())
    figures = verdict.analysis
    assert figures.result == "failed" and figures.requests == 200 and figures.errors == 15
    assert figures.new_error_rate_pct == 7.5 and figures.old_error_rate_pct == 0.1 and figures.max_error_rate_pct == 5
    assert figures.failing_member.name == "n1" and figures.failing_member.id == "n1"  # no server id: the member's


def test_without_lb_counters_the_worst_member_is_the_one_whose_probes_failed():
    t = tracker()
    for i in range(10):
        t.record("n1", Probe(status=200, latency=0.01), now=float(i))
        t.record("n2", Probe(status=200 if i % 2 else 500, latency=0.01), now=float(i))
    verdict = analyse(Analyze(duration=10, max_error_rate=0.1, min_requests=10), {}, {}, NEW, OLD, t)
    assert verdict.failed and verdict.analysis.source == "releasectl probes" and verdict.analysis.failing_member.name == "n2"
    t.reset_window()
    t.record("n1", Probe(status=200, latency=0.01), now=11.0)
    assert analyse(Analyze(duration=10, max_error_rate=0.1, min_requests=1), {}, {}, NEW, OLD, t).analysis.failing_member is None
