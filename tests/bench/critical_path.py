"""Critical path: a release's wall time against the least its pipeline and the cloud's latencies allow.

Run: python -m tests.bench.critical_path [--provider openstack,local] [--n 1,5,10,20,50] [--local-n 1,5,10,20]
                                         [--pipelines blue-green,canary] [--build 5] [--lb 2] [--quick]
                                         [--json PATH]

For each fleet size N it starts a fresh environment, releases 1.0.0 on N servers (not timed), then times
`releasectl rollout` of 1.1.0 with the blue-green pipeline and of 1.2.0 with the canary one (each from N
servers to N), as subprocesses, the way a CD job runs them:

    blue-green   launch; weight 100 %; retire (drain 1 s)
    canary       launch; 10 % (hold 1 s); analyze 1 s; 50 % (hold 1 s); analyze 1 s; 100 %; retire (drain 1 s)

openstack: the simulator (tests/openstack_sim) with fixed latencies: a server boots in --build seconds, every
Octavia write keeps the load balancer PENDING_UPDATE for --lb seconds, a delete takes 0.5 s, and its health
monitor checks every second; real app processes answer the health checks. The bound is the critical path:

    launch    build + max(lb, (rise - 1) x interval)   (boots in parallel; the fleet joins in one LB write,
                                                        while releasectl's own probes pass `rise` times)
    weight    lb per weight step, + its hold            analyze   its duration
    retire    drain timeout (Octavia cannot count sessions) + lb (remove) + delete; the drain itself costs no
              LB write: both pipelines reach 100 % first, which already set the old fleet's weights to 0

local: HAProxy and app processes. The bound is one app process's boot (measured in the same run) + rise x
interval (HAProxy's checks) + holds + analyses (a drain with no sessions ends at once). The CLI's own
start-up is not in either bound, so it weighs most for small N and short pipelines. HAProxy 2.6 checks a
new member first a whole interval after it joins, which is what rise x interval assumes; releasectl now
passes `downinter` (0.1 s) so a member that is still down is checked every 0.1 s, and its gate can pass
after boot + 0.1 s + (rise - 1) x interval. The local rows are therefore also given against that tighter
bound ("tight"), which leaves nothing for the CLI's start-up, the launch of N processes on this machine's
cores, or the retire. The CLI runs with bytecode cached on both providers (tests/bench/_env.py); the untimed
first release compiles the rollout path before the timed ones.

Prints, per provider, pipeline and N: seconds, bound, measured / bound, and (openstack) API calls and writes
per service. `--quick` is a short run: N = 1,5 on the simulator with --build 2 --lb 1, and N = 1,5 locally.
The issue's target is <= 1.15 x for N = 1..50 on the simulator and N = 1..20 locally. This is a benchmark,
not a pytest test; every run is bounded (a command that runs over 15 minutes fails the bench).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from tabulate import tabulate

from releasectl.providers.local.haproxy import DOWN_INTER  # HAProxy's checks of a member still down
from tests.bench.openstack_calls import FAST_CANARY, FIRST, init_on_sim
from tests.conftest import run_cli
from tests.helpers import free_port

INTERVAL, RISE, DRAIN, HOLD, ANALYZE, DELETE, MONITOR = 1.0, 2, 1.0, 1.0, 1.0, 0.5, 1.0

PIPELINES = {
    "blue-green": FIRST.replace("bench-first", "cp-blue-green"),  # launch; 100 %; retire (drain 1 s)
    "canary": FAST_CANARY,  # 10 % (hold 1 s); analyze 1 s; 50 % (hold 1 s); analyze 1 s; 100 %; retire (drain 1 s)
}
WEIGHT_STEPS = {"blue-green": 1, "canary": 3}
WAITS = {"blue-green": 0.0, "canary": 2 * HOLD + 2 * ANALYZE}  # holds and analyses
VERSIONS = {"blue-green": "1.1.0", "canary": "1.2.0"}
COMMAND_TIMEOUT = 900
VERBOSE = False  # --verbose: show each timed command's progress (stderr)


@dataclass
class Row:
    provider: str
    pipeline: str
    n: int
    seconds: float
    bound: float
    calls: dict[str, int]
    writes: dict[str, int]
    load: float | None = None  # 1-minute load average when the timed command ended
    tight: float | None = None  # local: the bound with releasectl's downinter (tight_local_bound)
    phases: dict[str, float] | None = None  # local: where the seconds went (local_phases)

    @property
    def ratio(self) -> float:
        return self.seconds / self.bound


def bound(provider: str, pipeline: str, build: float, lb: float) -> float:
    """The critical path; for local, `build` is the measured boot of one app process."""
    waits = WAITS[pipeline]
    if provider == "local":
        return build + RISE * INTERVAL + waits
    launch = build + max(lb, (RISE - 1) * INTERVAL)
    weights = WEIGHT_STEPS[pipeline] * lb
    retire = DRAIN + lb + DELETE  # the 100 % step's write drained the old fleet (weight 0): no write of its own
    return launch + weights + waits + retire


def log(message: str) -> None:
    print(f"[critical_path] {message}", file=sys.stderr, flush=True)


def cli(args: list[str], cwd: Path, env: dict[str, str] | None) -> float:
    started = time.monotonic()
    proc = run_cli(*args, cwd=cwd, env=env, timeout=COMMAND_TIMEOUT, inherit=env is None)
    took = time.monotonic() - started
    if VERBOSE and args[0] == "rollout":
        sys.stderr.write(proc.stderr)
    if proc.code != 0:
        sys.stderr.write(proc.stderr[-3000:])
        raise SystemExit(f"releasectl {' '.join(args)} exited {proc.code}")
    return took


def configure(work: Path, n: int, extra: dict[str, Any] | None = None) -> None:
    config = work / "releasectl.yaml"
    doc = yaml.safe_load(config.read_text())
    doc.setdefault("health", {}).update(interval=f"{INTERVAL:g}s", rise=RISE, fall=2, timeout="1s")
    doc.setdefault("rollout", {})["count"] = n
    for key, value in (extra or {}).items():
        doc.setdefault(key, {}).update(value)
    config.write_text(yaml.safe_dump(doc, sort_keys=False))
    (work / "cp-first.yaml").write_text(FIRST)  # the first release: 1.0.0 on n servers
    for name, text in PIPELINES.items():
        (work / f"cp-{name}.yaml").write_text(text)


def by_service(counts: dict[str, int]) -> tuple[dict[str, int], dict[str, int]]:
    calls: Counter[str] = Counter()
    writes: Counter[str] = Counter()
    for key, count in counts.items():
        service, method, _ = key.split(" ", 2)
        calls[service] += count
        if method not in ("GET", "HEAD"):
            writes[service] += count
    return dict(calls), dict(writes)


def run_openstack(n: int, pipelines: list[str], build: float, lb: float) -> list[Row]:
    """The CLI runs with bytecode cached, as a pip-installed tool has it (tests/bench/_env.py); the untimed
    bakes and first release compile the rollout path before the timed ones."""
    from tests.bench._env import bytecode_cache, bytecode_mode, cli_env
    from tests.openstack_sim import Simulator

    root = Path(tempfile.mkdtemp(prefix="releasectl-critical-path-"))
    sim = Simulator(serve_apps=True, build_delay=build, lb_delay=lb, delete_delay=DELETE, monitor_delay=MONITOR,
                    snapshot_delay=0.2, max_servers=2 * n + 5).start()
    try:
        with bytecode_cache() as additions:
            work, env = init_on_sim(sim, root)
            env = cli_env(additions, env)
            log(f"openstack N={n}: {bytecode_mode(additions)}")
            return timed_releases("openstack", work, env, n, pipelines, build, lb, sim)
    finally:
        sim.stop()
        shutil.rmtree(root, ignore_errors=True)


def tight_local_bound(pipeline: str, build: float) -> float:
    """The local bound with releasectl's `downinter`: the first passing check 0.1 s after boot, then
    (rise - 1) more at the interval."""
    return build + DOWN_INTER + (RISE - 1) * INTERVAL + WAITS[pipeline]


def app_boot(env: dict[str, str]) -> float:
    """Seconds from starting the sample app (what a local server runs) to its first answer, median of 5."""
    import statistics
    import subprocess
    import urllib.request

    app = Path(__file__).resolve().parents[2] / "releasectl" / "templates" / "app" / "app.py"
    times = []
    for _ in range(5):
        port = free_port()
        started = time.monotonic()
        proc = subprocess.Popen([sys.executable, str(app)], env={**env, "PORT": str(port)},
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = started + 30
            while time.monotonic() < deadline:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).read()
                    break
                except OSError:
                    time.sleep(0.01)
            times.append(time.monotonic() - started)
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    return statistics.median(times)


PHASES = ("start-up", "launch", "traffic", "retire", "finish")


def local_phases(work: Path, started: float, ended: float) -> dict[str, float]:
    """Where a local rollout's seconds went, from the float times in its release record: start-up (the
    command's start to the release's), launch (to step 1 done: boots, the fleet joining the pool, the health
    gate), traffic (the weight steps, holds and analyses), retire (the last step: drain, remove, stop), and
    finish (the last step done to the command's exit: marking the fleet stable, the record, the exit)."""
    from tests.helpers import local_provider

    provider = local_provider(work / "releasectl.yaml")
    rec = json.loads(provider.read_record(max(provider.list_records("history/"))) or "{}")
    done = [float(e["at"]) for e in rec.get("events", []) if str(e.get("message", "")).startswith("step ")
            and " done: " in str(e.get("message", ""))]
    if not done:
        return {}
    begin = float(rec["started_at"])
    marks = [started, begin, done[0], done[-2] if len(done) > 1 else done[0], done[-1], ended]
    return {name: round(b - a, 3) for name, a, b in zip(PHASES, marks, marks[1:])}


def run_local(n: int, pipelines: list[str]) -> list[Row]:
    from tests.bench._env import bytecode_cache, bytecode_mode, cli_env

    root = Path(tempfile.mkdtemp(prefix="releasectl-critical-path-local-"))
    work = root / "app"
    with bytecode_cache() as additions:
        env = cli_env(additions)
        log(f"local N={n}: {bytecode_mode(additions)}")
        try:
            work.mkdir()
            cli(["init", ".", "--app", "cp", "--port", str(free_port())], work, env)
            return timed_releases("local", work, env, n, pipelines, app_boot(env), 0.0, None)
        finally:
            run_cli("down", cwd=work, timeout=300)  # stops the servers and HAProxy this bench started
            shutil.rmtree(root, ignore_errors=True)


def timed_releases(provider: str, work: Path, env: dict[str, str] | None, n: int, pipelines: list[str],
                   build: float, lb: float, sim: Any) -> list[Row]:
    """1.0.0 on n servers (not timed), then each pipeline's release timed; API calls counted by `sim`."""
    configure(work, n)
    for version in ["1.0.0", *(VERSIONS[p] for p in pipelines)]:
        cli(["bake", version], work, env)
    log(f"{provider} N={n}: first release of 1.0.0")
    cli(["rollout", "1.0.0", "--pipeline", "cp-first.yaml"], work, env)
    rows = []
    for pipeline in pipelines:
        if sim is not None:
            sim.reset_requests()
        started = time.time()
        seconds = cli(["rollout", VERSIONS[pipeline], "--pipeline", f"cp-{pipeline}.yaml"], work, env)
        phases = local_phases(work, started, time.time()) if provider == "local" else None
        calls, writes = by_service(sim.request_counts()) if sim is not None else ({}, {})
        rows.append(Row(provider, pipeline, n, seconds, bound(provider, pipeline, build, lb), calls, writes,
                        load=os.getloadavg()[0], tight=tight_local_bound(pipeline, build) if provider == "local" else None,
                        phases=phases))
        log(f"{provider} N={n} {pipeline}: {seconds:.1f}s ({rows[-1].ratio:.2f} x the bound; load {rows[-1].load:.1f})")
    return rows


def sizes(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--provider", default="openstack,local", help="openstack, local or both (default)")
    parser.add_argument("--n", default="1,5,10,20,50", help="fleet sizes on the simulator (default 1,5,10,20,50)")
    parser.add_argument("--local-n", default="1,5,10,20", help="fleet sizes locally (default 1,5,10,20)")
    parser.add_argument("--pipelines", default="blue-green,canary")
    parser.add_argument("--build", type=float, default=5.0, help="simulated boot time, seconds (default 5)")
    parser.add_argument("--lb", type=float, default=2.0, help="simulated Octavia update time, seconds (default 2)")
    parser.add_argument("--quick", action="store_true", help="N = 1,5, build 2 s, LB 1 s")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON to this file")
    parser.add_argument("--verbose", action="store_true", help="show the progress of every rollout")
    args = parser.parse_args(argv)
    global VERBOSE
    VERBOSE = args.verbose
    if args.quick:
        args.n, args.local_n, args.build, args.lb = "1,5", "1,5", 2.0, 1.0
    pipelines = [p for p in args.pipelines.split(",") if p]
    providers = args.provider.split(",")
    rows: list[Row] = []
    if "openstack" in providers:
        for n in sizes(args.n):
            rows += run_openstack(n, pipelines, args.build, args.lb)
    if "local" in providers:
        for n in sizes(args.local_n):
            rows += run_local(n, pipelines)

    services = sorted({s for r in rows for s in r.calls})
    table = [
        [r.provider, r.pipeline, r.n, f"{r.seconds:.1f}", f"{r.bound:.1f}", f"{r.ratio:.2f}",
         *(f"{r.calls.get(s, 0)}/{r.writes.get(s, 0)}" for s in services)]
        for r in rows
    ]
    print(f"\nCritical path (openstack: build {args.build:g} s, LB update {args.lb:g} s, delete {DELETE:g} s; health "
          f"interval {INTERVAL:g} s, rise {RISE}); API calls/writes per service\n")
    print(tabulate(table, headers=["provider", "pipeline", "N", "seconds", "bound", "measured/bound", *services],
                   tablefmt="github"))
    local = [r for r in rows if r.provider == "local"]
    if local:
        print(f"\nlocal, also against the tight bound (app boot + {DOWN_INTER:g} s + (rise - 1) x interval + holds "
              "and analyses; see the docstring); load = 1-minute load average on this machine\n")
        print(tabulate([[r.pipeline, r.n, f"{r.seconds:.2f}", f"{r.bound:.2f}", f"{r.ratio:.2f}", f"{r.tight:.2f}",
                         f"{r.seconds / (r.tight or r.bound):.2f}", f"{r.load:.1f}"] for r in local],
                       headers=["pipeline", "N", "seconds", "bound", "ratio", "tight bound", "ratio (tight)", "load"],
                       tablefmt="github"))
        print("\nlocal, where the seconds went (local_phases; the app boot in the bound is one process alone)\n")
        print(tabulate([[r.pipeline, r.n, f"{r.seconds:.2f}", *(f"{(r.phases or {}).get(p, float('nan')):.2f}" for p in PHASES)]
                        for r in local], headers=["pipeline", "N", "seconds", *PHASES], tablefmt="github"))
    worst = max((r.ratio for r in rows), default=0.0)
    print(f"\nworst ratio {worst:.2f} (target <= 1.15)")
    if args.json:
        args.json.write_text(json.dumps([r.__dict__ | {"ratio": r.ratio} for r in rows], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
