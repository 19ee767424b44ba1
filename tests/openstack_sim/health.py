"""Member health checks over real HTTP, as an amphora runs them, when ``serve_apps`` is on.

One background thread checks each monitored member every ``delay`` seconds of its pool's monitor
(GET ``url_path`` on the member's address and port, or a TCP connect for TCP monitors), the checks of
one round in parallel (as an amphora's HAProxy runs them: a round over 100 members one by one took
longer than the monitor's delay). A member goes ``up`` after ``max_retries`` passing checks in a row
and ``down`` after ``max_retries_down`` failing ones. A finished load-balancer update wakes the thread,
so new members are checked at once, as HAProxy checks a server as soon as it is configured. Without
``serve_apps`` Octavia derives health from the simulated servers instead.
"""

from __future__ import annotations

import http.client
import socket
import sys
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .octavia import expected_codes_match

MIN_WAIT, MAX_WAIT = 0.01, 0.5
CONCURRENCY = 16  # checks in flight at once


class HealthChecker:
    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="openstack-sim-health", daemon=True)
        self._pool = ThreadPoolExecutor(max_workers=CONCURRENCY, thread_name_prefix="openstack-sim-check")

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        """Check the members that are due now (a load-balancer update just finished), not at the next round."""
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _run(self) -> None:
        wait = MIN_WAIT
        # Service loop: lives until stop(); each wait is bounded by MAX_WAIT.
        while True:
            self._wake.wait(wait)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                wait = self.run_once()
            except Exception:
                print("openstack_sim: health check pass failed:", file=sys.stderr)
                traceback.print_exc()
                wait = MAX_WAIT

    def run_once(self) -> float:
        """Check every due member once; return how long to sleep until the next one is due."""
        now = time.monotonic()
        due: list[tuple[str, str, dict]] = []
        next_due = now + MAX_WAIT
        store = self.ctx.store
        with store.lock:
            for member in store.members.values():
                pool = store.pools.get(member.pool_id)
                monitor = self.ctx.octavia.monitor_of(pool) if pool else None
                if monitor is None or not monitor.admin_state_up or not member.admin_state_up:
                    continue
                if member.provisioning_status in ("PENDING_CREATE", "PENDING_DELETE"):
                    continue
                if member.next_check > now:
                    next_due = min(next_due, member.next_check)
                    continue
                member.next_check = now + max(float(monitor.delay), MIN_WAIT)
                next_due = min(next_due, member.next_check)
                target = {
                    "type": monitor.type,
                    "address": member.monitor_address or member.address,
                    "port": member.monitor_port or member.protocol_port,
                    "path": monitor.url_path or "/",
                    "method": monitor.http_method or "GET",
                    "expected": monitor.expected_codes or "200",
                    "timeout": min(max(float(monitor.timeout), 0.5), 2.0),
                    "domain": monitor.domain_name,
                }
                due.append((member.id, monitor.id, target))
        targets = [target for _, _, target in due]
        codes = self._pool.map(self.probe, targets) if len(targets) > 1 else map(self.probe, targets)
        for (member_id, monitor_id, target), code in zip(due, codes):
            if self._stop.is_set():
                break
            ok = code is not None and (target["type"] not in ("HTTP", "HTTPS")
                                       or expected_codes_match(target["expected"], code))
            self._record(member_id, monitor_id, ok, code)
        return min(max(next_due - time.monotonic(), MIN_WAIT), MAX_WAIT)

    @staticmethod
    def probe(target: dict) -> int | None:
        """HTTP status of the check (0 for a successful TCP connect), or None if it failed."""
        if target["type"] not in ("HTTP", "HTTPS"):
            try:
                with socket.create_connection((target["address"], target["port"]), timeout=target["timeout"]):
                    return 0
            except OSError:
                return None
        conn = http.client.HTTPConnection(target["address"], target["port"], timeout=target["timeout"])
        try:
            headers = {"Host": target["domain"]} if target["domain"] else {}
            conn.request(target["method"], target["path"], headers=headers)
            resp = conn.getresponse()
            resp.read()
            return resp.status
        except (OSError, http.client.HTTPException):
            return None
        finally:
            conn.close()

    def _record(self, member_id: str, monitor_id: str, ok: bool, code: int | None) -> None:
        store = self.ctx.store
        with store.lock:
            member = store.members.get(member_id)
            pool = store.pools.get(member.pool_id) if member else None
            if member is None or pool is None or pool.healthmonitor_id != monitor_id:
                return  # deleted or re-monitored while we were checking
            monitor = store.healthmonitors[monitor_id]
            member.last_check = {"time": time.time(), "status": code, "ok": ok}
            if ok:
                member.ok_streak, member.fail_streak = member.ok_streak + 1, 0
                if member.ok_streak >= monitor.max_retries:
                    member.health = "up"
            else:
                member.fail_streak, member.ok_streak = member.fail_streak + 1, 0
                if member.fail_streak >= monitor.max_retries_down:
                    member.health = "down"
