"""API calls of one canary rollout on OpenStack, as the cloud counts them.

Run: python -m tests.bench.openstack_calls [--count 3,10] [--pipeline fast|canary|PATH] [--health-interval 5s]
                                           [--json PATH] [--verbose]

Starts the OpenStack simulator (tests/openstack_sim: Keystone, Nova, Glance, Octavia, Neutron and Swift on
loopback, a real app process per server, real HTTP health checks) and, in a new temporary folder, drives
releasectl through its CLI as subprocesses, as an operator or a CD job does:

  releasectl init --provider openstack --cloud sim      (clouds.yaml via OS_CLIENT_CONFIG_FILE)
  releasectl bake 1.0.0 && releasectl rollout 1.0.0      (3 instances: `rollout.count`)
  releasectl bake 1.1.0
  -- the simulator's request counter is reset here --
  releasectl rollout 1.1.0                              (a canary from 3 members of 1.0.0 to 3 of 1.1.0)

and prints the calls of that canary alone: by service, then by method and path template (ids shown as
`{id}`), then the Swift objects written (which records, the lock). `--count 3,10` runs both sizes (one
simulator each) and ends with a summary against issue 12's targets (3 -> 3: <= 24 writes and <= 100 calls;
10 -> 10: <= 40 writes and <= 130 calls). The default pipeline `fast` has the built-in canary's shape (10 %, analysis, 50 %, analysis,
100 %, retire) with holds of one second; `--pipeline canary` uses the built-in one (10 s holds and a 30 s
drain per old server, so a few minutes). The health settings are the scaffold's (`interval: 5s`, so the
engine observes the cloud once a second, its fastest); `--health-interval 200ms` shows what a fast health
interval costs. Calls made while waiting (polls) grow with the holds, the drains and the polling rate; the
writes do not. Health checks by the load balancer and releasectl's probes of the servers are not API calls
and are not counted.

Exits 0 when every command did what was expected. This is a benchmark, not a pytest test.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import yaml
from tabulate import tabulate

from tests.conftest import CliRun, run_cli
from tests.integration.openstack_fixtures import cli_env
from tests.openstack_sim import Simulator
from tests.openstack_sim.fixtures import FAST

TARGETS = {3: (24, 100), 10: (40, 130)}  # count -> (writes, calls), issue 12
SERVICES = ("identity", "compute", "image", "load-balancer", "object-store", "network")

FAST_CANARY = """\
name: bench-canary
description: The built-in canary's shape with holds of one second.
steps:
  - launch: {}
  - weight: {percent: 10, hold: 1s}
  - analyze: {duration: 1s, max_error_rate: 1%, min_requests: 0}
  - weight: {percent: 50, hold: 1s}
  - analyze: {duration: 1s, max_error_rate: 1%, min_requests: 0}
  - weight: {percent: 100}
  - retire: {drain_timeout: 1s}
"""

FIRST = """\
name: bench-first
steps:
  - launch: {}
  - weight: {percent: 100}
  - retire: {drain_timeout: 1s}
"""


def run(args: list[str], cwd: Path, env: dict[str, str], verbose: bool) -> CliRun:
    started = time.monotonic()
    proc = run_cli(*args, cwd=cwd, env=env, timeout=1800, inherit=False)
    took = time.monotonic() - started
    print(f"$ releasectl {' '.join(args)}  -> exit {proc.code} in {took:.1f}s", file=sys.stderr)
    if verbose or proc.code != 0:
        sys.stderr.write(proc.stderr)
    if proc.code != 0:
        raise SystemExit(f"releasectl {' '.join(args)} exited {proc.code}")
    return proc


def tables(counts: dict[str, int]) -> tuple[list[list[Any]], list[list[Any]]]:
    by_service: Counter[str] = Counter()
    writes: Counter[str] = Counter()
    by_call: dict[str, Counter[str]] = defaultdict(Counter)
    for key, n in counts.items():
        service, method, template = key.split(" ", 2)
        by_service[service] += n
        if method not in ("GET", "HEAD"):
            writes[service] += n
        by_call[service][f"{method} {template}"] += n
    total = sum(by_service.values())
    services = list(SERVICES) + sorted(set(by_service) - set(SERVICES))
    service_rows = [[s, by_service[s], writes[s], by_service[s] - writes[s]] for s in services]
    service_rows.append(["total", total, sum(writes.values()), total - sum(writes.values())])
    call_rows = []
    for s in services:
        for call, n in sorted(by_call[s].items(), key=lambda kv: (-kv[1], kv[0])):
            method, template = call.split(" ", 1)
            call_rows.append([s, method, template, n])
    return service_rows, call_rows


def init_on_sim(sim: Simulator, root: Path, verbose: bool = False) -> tuple[Path, dict[str, str]]:
    """`releasectl init --provider openstack --cloud sim` in root/app, with a clouds.yaml for `sim`; returns
    the folder and the environment the CLI runs with."""
    clouds = root / "clouds.yaml"
    clouds.write_text(yaml.safe_dump(sim.clouds_yaml("sim")))
    work = root / "app"
    work.mkdir()
    env = cli_env(root / "home", clouds)
    run(["init", "--provider", "openstack", "--cloud", "sim"], work, env, verbose)
    return work, env


def swift_writes(journal: list[dict[str, Any]]) -> list[list[Any]]:
    """Swift writes by object, ids and timestamps folded: which records (and the lock) a rollout writes."""
    kinds: Counter[str] = Counter()
    for e in journal:
        if e["service"] == "object-store" and e["method"] not in ("GET", "HEAD"):
            path = str(e.get("path", e["template"])).split("/", 4)[-1]
            kinds[f"{e['method']} {re.sub(r'[0-9a-f]{8,}|[0-9]{6,}', '{id}', path)}"] += 1
    return [[k, n] for k, n in sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0]))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", default="3", help="instances per version, or a list: 3,10 (default 3)")
    parser.add_argument("--pipeline", default="fast", help="fast (default), a built-in pipeline name, or a YAML path")
    parser.add_argument("--health-interval", default=None,
                        help="health.interval for releasectl.yaml (default: the scaffold's, 5s)")
    parser.add_argument("--json", type=Path, help="also write the counts as JSON to this file")
    parser.add_argument("--trace", type=Path, help="also write the canary's calls in order, one a line, to this file "
                        "(seconds since the reset, method, path; `-<count>` is appended to the name per size)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--verbose", action="store_true", help="show every command's progress")
    args = parser.parse_args(argv)
    results = {}
    for count in [int(c) for c in str(args.count).split(",") if c.strip()]:
        results[count] = measure(args, count)
    rows = []
    for count, (calls, writes, took) in results.items():
        goal = TARGETS.get(count)
        rows.append([f"{count} -> {count}", calls, writes, f"{took:.1f}",
                     f"<= {goal[0]} writes, <= {goal[1]} calls" if goal else "-",
                     ("yes" if writes <= goal[0] and calls <= goal[1] else "NO") if goal else "-"])
    print()
    print(tabulate(rows, headers=["canary", "calls", "writes", "seconds", "target", "met"], tablefmt="github"))
    return 0


def measure(args: argparse.Namespace, count: int) -> tuple[int, int, float]:
    """One simulator, one canary of `count` servers; prints its tables; returns (calls, writes, seconds)."""
    root = Path(tempfile.mkdtemp(prefix="releasectl-openstack-calls-"))
    sim = Simulator(serve_apps=True, **FAST).start()
    try:
        work, env = init_on_sim(sim, root, args.verbose)
        config = work / "releasectl.yaml"
        doc = yaml.safe_load(config.read_text())
        if args.health_interval:
            doc["health"]["interval"] = args.health_interval
        doc["rollout"]["count"] = count
        config.write_text(yaml.safe_dump(doc, sort_keys=False))
        (work / "bench-canary.yaml").write_text(FAST_CANARY)
        (work / "bench-first.yaml").write_text(FIRST)
        pipeline = "bench-canary.yaml" if args.pipeline == "fast" else args.pipeline

        run(["bake", "1.0.0"], work, env, args.verbose)
        run(["rollout", "1.0.0", "--pipeline", "bench-first.yaml"], work, env, args.verbose)
        run(["bake", "1.1.0"], work, env, args.verbose)
        before = json.loads(run(["status", "-o", "json"], work, env, False).stdout)
        assert before["live_version"] == "1.0.0" and len(before["members"]) == count, before

        sim.reset_requests()
        started = time.monotonic()
        run(["rollout", "1.1.0", "--pipeline", pipeline], work, env, args.verbose)
        took = time.monotonic() - started
        counts = sim.request_counts()
        journal = sim.requests()["journal"]

        after = json.loads(run(["status", "-o", "json"], work, env, False).stdout)
        assert after["live_version"] == "1.1.0", after
        assert [m["version"] for m in after["members"]] == ["1.1.0"] * count, after["members"]
        assert all(s["version"] == "1.1.0" for s in after["servers"]), after["servers"]

        service_rows, call_rows = tables(counts)
        print(f"\nAPI calls of `releasectl rollout 1.1.0 --pipeline {args.pipeline}`: canary from {count} "
              f"members of 1.0.0 to {count} of 1.1.0, health interval {doc['health']['interval']}, "
              f"{took:.1f}s\n")
        print(tabulate(service_rows, headers=["service", "calls", "writes", "reads"], tablefmt="github"))
        print()
        print(tabulate(call_rows, headers=["service", "method", "path template", "calls"], tablefmt="github"))
        print()
        print(tabulate(swift_writes(journal), headers=["Swift write", "calls"], tablefmt="github"))
        if args.trace:
            start = journal[0]["time"] if journal else 0.0
            lines = [f"{e['time'] - start:8.3f} {e['service']:<13} {e['method']:<6} {e.get('path', e['template'])}"
                     for e in journal]
            args.trace.with_name(f"{args.trace.stem}-{count}{args.trace.suffix}").write_text("\n".join(lines) + "\n")
        if args.json:
            args.json.write_text(json.dumps({"count": count, "pipeline": args.pipeline, "seconds": took,
                                             "health_interval": doc["health"]["interval"], "counts": counts},
                                            indent=2))
        return service_rows[-1][1], service_rows[-1][2], took
    finally:
        sim.stop()
        if args.keep:
            print(f"kept {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
