"""A stand-in Octavia controller for the real Octavia API with the noop provider driver.

With the noop provider nothing leaves PENDING_*: the amphora driver's controller worker and the amphorae's
heartbeats are missing. This thread plays both, writing Octavia's own database as they would:

- PENDING_CREATE / PENDING_UPDATE -> ACTIVE on load balancers, listeners, pools, members, monitors, L7 objects;
- PENDING_DELETE: the row goes (a load balancer is marked DELETED, as Octavia keeps it, after its children go);
- member operating_status from a real probe of the member, as an amphora's health check reports it: the
  pool's monitor (HTTP/HTTPS: GET url_path, answer in expected_codes; TCP and others: a TCP connect) at the
  monitor's delay. Up with weight > 0 -> ONLINE, up with weight 0 -> DRAINING, down -> ERROR, admin down ->
  OFFLINE, no monitor (or a disabled one) -> NO_MONITOR. One probe decides (no rise/fall counting).

It runs inside the API process (started by .ci/octavia_server.py) and holds the API's request lock for each
database pass: a second writer process would get sqlite's "database is locked". Probes run outside the lock.
Standard library and SQLAlchemy only (the Octavia venv's).
"""

from __future__ import annotations

import http.client
import socket
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text

PENDING_DONE = ("load_balancer", "listener", "pool", "member", "health_monitor", "l7policy", "l7rule")
# children first: sqlite enforces Octavia's foreign keys
DELETE_ORDER = (
    ("l7rule", "provisioning_status = 'PENDING_DELETE' OR l7policy_id IN (SELECT id FROM l7policy WHERE {policy})"),
    ("l7policy", "{policy}"),
    ("member", "provisioning_status = 'PENDING_DELETE' OR pool_id IN (SELECT id FROM pool WHERE {pool})"),
    ("health_monitor", "provisioning_status = 'PENDING_DELETE' OR pool_id IN (SELECT id FROM pool WHERE {pool})"),
    ("session_persistence", "pool_id IN (SELECT id FROM pool WHERE {pool})"),
    ("sni", "listener_id IN (SELECT id FROM listener WHERE {listener})"),
    ("listener_cidr", "listener_id IN (SELECT id FROM listener WHERE {listener})"),
    ("listener", "{listener}"),
    ("pool", "{pool}"),
)
LB_GONE = "load_balancer_id IN (SELECT id FROM load_balancer WHERE provisioning_status = 'PENDING_DELETE')"
WHERE = {
    "listener": f"provisioning_status = 'PENDING_DELETE' OR {LB_GONE}",
    "pool": f"provisioning_status = 'PENDING_DELETE' OR {LB_GONE}",
}
WHERE["policy"] = ("provisioning_status = 'PENDING_DELETE' OR listener_id IN (SELECT id FROM listener WHERE "
                   f"{WHERE['listener']}) OR redirect_pool_id IN (SELECT id FROM pool WHERE {WHERE['pool']})")


@dataclass
class Target:
    member_id: str
    address: str
    port: int
    weight: int
    enabled: bool
    monitor: dict[str, Any] | None


def codes_match(expected: str | None, status: int) -> bool:
    """Octavia's expected_codes: "200", "200,202", "200-204"."""
    for part in (expected or "200").split(","):
        lo, _, hi = part.strip().partition("-")
        try:
            if int(lo) <= status <= int(hi or lo):
                return True
        except ValueError:
            continue
    return False


def probe(address: str, port: int, monitor: dict[str, Any]) -> bool:
    timeout = max(0.2, float(monitor.get("timeout") or 1))
    kind = str(monitor.get("type") or "TCP").upper()
    try:
        if kind in ("HTTP", "HTTPS"):
            cls = http.client.HTTPSConnection if kind == "HTTPS" else http.client.HTTPConnection
            conn = cls(address, port, timeout=timeout)
            try:
                conn.request(str(monitor.get("http_method") or "GET"), str(monitor.get("url_path") or "/"),
                             headers={"Connection": "close"})
                resp = conn.getresponse()
                resp.read()
                return codes_match(monitor.get("expected_codes"), resp.status)
            finally:
                conn.close()
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except (OSError, http.client.HTTPException):
        return False


class Controller:
    def __init__(self, engine: Any, lock: threading.Lock, interval: float = 0.2) -> None:
        self.engine = engine
        self.lock = lock
        self.interval = interval
        self.last_probe: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="octavia-stand-in-controller", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.tick()
            except Exception as exc:  # keep playing the controller; say what went wrong
                print(f"octavia_controller: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)

    def tick(self) -> None:
        with self.lock, self.engine.begin() as db:
            self._finish_deletes(db)
            for table in PENDING_DONE:
                db.execute(text(f"UPDATE {table} SET provisioning_status = 'ACTIVE' "
                                "WHERE provisioning_status IN ('PENDING_CREATE', 'PENDING_UPDATE')"))
            for table in ("load_balancer", "listener", "pool"):
                db.execute(text(f"UPDATE {table} SET operating_status = CASE WHEN enabled THEN 'ONLINE' ELSE 'OFFLINE' END "
                                "WHERE provisioning_status = 'ACTIVE'"))
            targets = self._targets(db)
        results = {}
        now = time.monotonic()
        for t in targets:
            if not t.enabled:
                results[t.member_id] = "OFFLINE"
            elif t.monitor is None:
                results[t.member_id] = "NO_MONITOR"
            elif now - self.last_probe.get(t.member_id, 0.0) >= float(t.monitor.get("delay") or 1):
                self.last_probe[t.member_id] = now
                up = probe(t.address, t.port, t.monitor)
                results[t.member_id] = ("ONLINE" if t.weight > 0 else "DRAINING") if up else "ERROR"
        if results:
            with self.lock, self.engine.begin() as db:
                for member_id, status in results.items():
                    db.execute(text("UPDATE member SET operating_status = :s WHERE id = :id AND operating_status != :s "
                                    "AND provisioning_status != 'PENDING_DELETE'"), {"s": status, "id": member_id})
        live = {t.member_id for t in targets}
        for gone in set(self.last_probe) - live:
            del self.last_probe[gone]

    def _finish_deletes(self, db: Any) -> None:
        for table, where in DELETE_ORDER:
            db.execute(text(f"DELETE FROM {table} WHERE " + where.format(**WHERE)))
        db.execute(text("UPDATE load_balancer SET provisioning_status = 'DELETED', operating_status = 'OFFLINE' "
                        "WHERE provisioning_status = 'PENDING_DELETE'"))

    @staticmethod
    def _targets(db: Any) -> list[Target]:
        monitors = {}
        for row in db.execute(text("SELECT pool_id, type, url_path, expected_codes, http_method, delay, timeout, enabled "
                                   "FROM health_monitor WHERE provisioning_status != 'PENDING_DELETE'")).mappings():
            if row["enabled"]:
                monitors[row["pool_id"]] = dict(row)
        targets = []
        for row in db.execute(text("SELECT id, pool_id, ip_address, protocol_port, weight, enabled, monitor_address, "
                                   "monitor_port FROM member WHERE provisioning_status != 'PENDING_DELETE'")).mappings():
            targets.append(Target(
                member_id=row["id"], address=row["monitor_address"] or row["ip_address"],
                port=int(row["monitor_port"] or row["protocol_port"]), weight=int(row["weight"] or 0),
                enabled=bool(row["enabled"]), monitor=monitors.get(row["pool_id"])))
        return targets
