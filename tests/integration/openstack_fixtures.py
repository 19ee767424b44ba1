"""A releasectl folder driven through the real CLI against the OpenStack simulator, for the CLI and chaos
tests: a clouds.yaml from ``sim.clouds_yaml``, ``OS_CLIENT_CONFIG_FILE``, ``releasectl init --provider
openstack --cloud sim``, fast pipelines; plus what kill -9 tests need: a child process whose progress lines
can be waited on, and the invariants checked from both ``status`` and ``sim.state()``.
"""

from __future__ import annotations

import http.client
import json
import os
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import yaml

from tests.conftest import CliRun, run_cli, run_cli_in_process
from tests.helpers import fast_pipelines
from tests.integration.procs import Running, start_cli
from tests.openstack_sim import Simulator
from tests.openstack_sim import server as sim_server

LABEL = "releasectl_"
APP = "demo"

def whole_bodies_only(monkeypatch: Any) -> None:
    """Make the simulator drop a request whose client died before sending its whole body.

    Its HTTP handler reads ``Content-Length`` bytes and dispatches whatever arrived: when releasectl is
    killed between the headers and the body of a Swift PUT (http.client sends a body of 2920 bytes or more
    in a second write, and a release record is larger), the simulator stores an EMPTY object in place of the
    record, and the release is lost. A real Swift answers 499 (client disconnect) and keeps the old object.
    Until the simulator does the same, kill -9 tests patch its body reader (for the test's duration).
    """
    read_body = sim_server._Handler._read_body

    def read_whole_body(self: Any) -> bytes:
        body = read_body(self)
        if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
            expected = int(self.headers.get("Content-Length") or 0)
            if len(body) < expected:
                raise ConnectionResetError(f"client disconnected after {len(body)} of {expected} bytes")
        return body

    monkeypatch.setattr(sim_server._Handler, "_read_body", read_whole_body)


def cli_env(home: Path, clouds: Path) -> dict[str, str]:
    """The machine's environment without any OS_* variable, keyring or user config: only our clouds.yaml."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env.update({
        "OS_CLIENT_CONFIG_FILE": str(clouds),
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring",
    })
    return env


@dataclass
class Cloud:
    """A releasectl folder pointed at one simulator."""

    sim: Simulator
    path: Path
    env: dict[str, str]

    def cli(self, *args: str, timeout: float = 240) -> CliRun:
        return run_cli(*args, cwd=self.path, env=self.env, timeout=timeout, inherit=False)

    def ok(self, *args: str) -> CliRun:
        result = self.cli(*args)
        assert result.code == 0, f"releasectl {' '.join(args)} exited {result.code}:\n{result.stderr[-4000:]}"
        return result

    def start(self, *args: str) -> Running:
        """`releasectl ARGS` as a child process whose progress lines (stderr) can be waited on."""
        return start_cli(*args, cwd=self.path, env=self.env, inherit=False)

    def status(self) -> dict:
        """`status --output json`, run in this process: a read of the state, with no process of its own to
        test (every other command here is a new process)."""
        result = run_cli_in_process("status", "--output", "json", cwd=self.path, env=self.env, inherit=False)
        assert result.code == 0, f"releasectl status exited {result.code}:\n{result.stderr[-4000:]}"
        return result.json()

    def state(self) -> dict:
        return self.sim.state()

    def control(self, method: str, path: str, body: dict | None = None) -> Any:
        """The simulator's control API over HTTP (faults, builder), as another process would drive it."""
        resp = requests.request(method, f"{self.sim.url}/_sim/{path}", json=body, timeout=10)
        assert resp.status_code == 200, resp.text
        return resp.json()

    def fail_health(self, on: bool) -> None:
        assert self.control("POST", "builder", {"fail_health": on})["fail_health"] is on

    def bake(self, version: str, broken: bool = False) -> None:
        if broken:
            self.sim.set_builder_fail_health(True)
        try:
            self.ok("bake", version)
        finally:
            if broken:
                self.sim.set_builder_fail_health(False)

    def images(self) -> dict[str, str]:
        return {i["version"]: i["status"] for i in self.ok("images", "--output", "json").json()["images"]}

    def tune(self, count: int | None = None, drain: str = "1s") -> None:
        """Fast health checks (200ms) and pipelines (holds of 300ms); every drain (`rollout.drain_timeout`
        and the pipelines' retire step) lasts `drain`, because Octavia cannot count sessions. The scaffold's
        values are for real clouds."""
        config = self.path / "releasectl.yaml"
        doc = yaml.safe_load(config.read_text())
        doc["health"].update({"interval": "200ms", "timeout": "1s"})
        doc["rollout"].update({"progress_deadline": "60s", "pipeline": "canary-fast.yaml", "drain_timeout": drain})
        if count is not None:
            doc["rollout"]["count"] = count
        doc["openstack"].update({"boot_timeout": "60s", "snapshot_timeout": "60s", "lb_timeout": "60s"})
        config.write_text(yaml.safe_dump(doc, sort_keys=False))
        for name, body in fast_pipelines(hold="300ms", drain=drain).items():
            (self.path / name).write_text(body)


def make_cloud(sim: Simulator, root: Path, count: int | None = None, *, auth_type: str = "password",
               drain: str | None = "1s") -> Cloud:
    """`releasectl init --provider openstack --cloud sim` in a fresh folder under root, with a clouds.yaml
    of its own; tuned for speed (see Cloud.tune) unless drain is None (the scaffold as a user gets it)."""
    root.mkdir(parents=True)
    clouds = root / "clouds.yaml"
    clouds.write_text(yaml.safe_dump(sim.clouds_yaml("sim", auth_type)))
    work = root / "app"
    work.mkdir()
    cloud = Cloud(sim, work, cli_env(root / "home", clouds))
    init = cloud.cli("init", "--provider", "openstack", "--cloud", "sim")
    assert init.code == 0, init.stderr
    if drain is not None:
        cloud.tune(count, drain)
    return cloud


def ours(state: dict) -> list[dict]:
    return [s for s in state["servers"] if (s["metadata"] or {}).get(LABEL + "app") == APP
            and LABEL + "env" in s["metadata"]]


def assert_converged(cloud: Cloud, live: str, count: int) -> dict:
    """The invariants after chaos, from `status` and from the simulator itself:

    exactly one version live, its members ONLINE with weight > 0; every releasectl-tagged server is the live
    fleet or a warm previous fleet in the pool; every member belongs to a live server and the simulator sees
    no orphan; no duplicate server; one image per version; the lock released."""
    status = cloud.status()
    assert status["release"] is None, status["release"]
    assert status["lock"] is None, status["lock"]
    assert status["live_version"] == live, status["live_version"]
    serving = [m for m in status["members"] if m["weight"] > 0]
    assert len(serving) == count and {m["version"] for m in serving} == {live}, status["members"]
    assert all(m["health"] == "healthy" and m["role"] == "stable" for m in serving), serving
    for server in status["servers"]:
        assert server["status"] == "active", server
        assert server["role"] in ("stable", "previous"), f"orphaned server {server}"

    state = cloud.state()
    assert state["orphans"] == {"processes": [], "members": []}, state["orphans"]
    tagged = ours(state)
    names = [s["name"] for s in tagged]
    assert len(names) == len(set(names)), f"duplicate servers: {names}"
    by_id = {s["id"]: s for s in tagged}
    members = {}
    for m in state["members"]:
        assert m["server_id"] in by_id, f"member {m['name']} ({m['address']}) belongs to no live server of ours"
        assert m["server_id"] not in members, f"two members for server {m['server_id']}"
        assert m["provisioning_status"] == "ACTIVE", m
        members[m["server_id"]] = m
    for server in tagged:
        meta = server["metadata"]
        role, version = meta[LABEL + "role"], meta[LABEL + "version"]
        assert server["status"] == "ACTIVE" and server["task_state"] is None, server
        member = members.get(server["id"])
        assert member is not None, f"server {server['name']} ({role} {version}) is not in the pool"
        if role == "stable":
            assert version == live, f"server {server['name']} is stable {version}, but {live} is live"
            assert member["weight"] > 0 and member["admin_state_up"], member
            assert member["operating_status"] == "ONLINE", member
        else:
            assert role == "previous", f"server {server['name']} is {role} {version}: neither live nor warm"
            assert member["weight"] == 0, member
    assert sum(1 for s in tagged if s["metadata"][LABEL + "version"] == live) == count
    images = Counter(i["properties"].get(LABEL + "version") for i in state["images"]
                     if i["properties"].get(LABEL + "app") == APP)
    assert images and all(n == 1 for n in images.values()), f"several images of one version: {images}"
    assert all(i["status"] == "active" for i in state["images"]), [(i["name"], i["status"]) for i in state["images"]]
    processes = state["processes"]
    assert len(processes) == len(tagged) + 1, (processes, names)  # one app per server, and the builder's
    assert all(p["alive"] for p in processes), processes
    return status


def counts(sim: Simulator) -> dict[str, Any]:
    """Requests the simulator served, by service and method."""
    per: Counter = Counter()
    for key, n in sim.request_counts().items():
        service, method, _ = key.split(" ", 2)
        per[f"{service} {method}"] += n
    return dict(sorted(per.items()))


@dataclass
class Traffic:
    """Bounded stand-in load for the simulated LB, whose VIP forwards nothing (see the chaos test's docstring).

    One thread reads the pool from ``sim.state()`` every 100 ms and keeps the members the LB would route to
    (weight > 0 and admin up). Another sends ``GET /`` round-robin to those members only, straight to their app
    processes, paced to ``rate`` per second, until ``max_seconds`` or ``max_requests``. A failed request is an
    error (refused, reset, timeout, non-200, or an answer from another version than the member's server) from a
    member that was in rotation in the latest view of the pool.
    """

    sim: Simulator
    max_seconds: float = 60.0
    max_requests: int = 50_000
    rate: float = 200.0
    poll: float = 0.1
    samples: int = 0
    sent: int = 0
    min_in_rotation: int = 10**9
    min_online_in_rotation: int = 10**9
    responses: Counter = field(default_factory=Counter)
    failures: Counter = field(default_factory=Counter)
    failed: list = field(default_factory=list)  # (time, member address, error), the first few
    _rotation: tuple = ()
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list = field(default_factory=list)

    def __enter__(self) -> "Traffic":
        self._refresh()  # the first view before the first request
        self._threads = [threading.Thread(target=self._pool_loop, daemon=True, name="traffic-pool"),
                         threading.Thread(target=self._load_loop, daemon=True, name="traffic-load")]
        self._deadline = time.monotonic() + self.max_seconds
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=10)

    def _refresh(self) -> None:
        state = self.sim.state()
        versions = {s["id"]: (s["metadata"] or {}).get(LABEL + "version") for s in state["servers"]}
        rotation = tuple((m["address"], m["protocol_port"], versions.get(m["server_id"]), m["operating_status"])
                         for m in state["members"] if m["weight"] > 0 and m["admin_state_up"])
        self._rotation = rotation
        self.samples += 1
        self.min_in_rotation = min(self.min_in_rotation, len(rotation))
        self.min_online_in_rotation = min(self.min_online_in_rotation, sum(1 for r in rotation if r[3] == "ONLINE"))

    def _pool_loop(self) -> None:
        while not self._stop.wait(self.poll) and time.monotonic() < self._deadline:
            self._refresh()

    def _load_loop(self) -> None:
        gap = 1.0 / self.rate
        index = 0
        while not self._stop.is_set() and time.monotonic() < self._deadline and self.sent < self.max_requests:
            started = time.monotonic()
            rotation = self._rotation
            if rotation:
                address, port, version, _ = rotation[index % len(rotation)]
                index += 1
                self.sent += 1
                error = self._request(address, port, version)
                if error is None:
                    self.responses[version] += 1
                else:
                    self.failures[error.split(":")[0]] += 1
                    if len(self.failed) < 20:
                        self.failed.append((time.strftime("%H:%M:%S"), f"{address}:{port} ({version})", error))
            self._stop.wait(max(0.0, gap - (time.monotonic() - started)))

    @staticmethod
    def _request(address: str, port: int, version: str | None) -> str | None:
        conn = http.client.HTTPConnection(address, port, timeout=3)
        try:
            conn.request("GET", "/", headers={"Connection": "close"})
            resp = conn.getresponse()
            body = resp.read()
            if resp.status != 200:
                return f"HTTP {resp.status}"
            served = json.loads(body).get("version")
            return None if served == version else f"wrong version: {served} from a {version} member"
        except (OSError, http.client.HTTPException, ValueError) as exc:
            return f"{type(exc).__name__}: {exc}"
        finally:
            conn.close()

    def summary(self) -> str:
        return (f"{self.sent} requests sent, {sum(self.responses.values())} served {dict(self.responses)}, "
                f"failed {sum(self.failures.values())} {dict(self.failures)}; {self.samples} pool views, "
                f"at least {self.min_in_rotation} member(s) in rotation ({self.min_online_in_rotation} ONLINE)")

    def assert_served_throughout(self) -> None:
        assert self.samples > 10 and self.sent > 100, self.summary()
        assert self.min_in_rotation >= 1, "the LB had no member in rotation at some point: " + self.summary()
        assert self.min_online_in_rotation >= 1, "no ONLINE member in rotation at some point: " + self.summary()
        assert not self.failures, f"failed requests: {self.failed}\n{self.summary()}"
