"""Warm rollback: from `releasectl rollback` starting to every response coming from the old version.

Run: python -m tests.bench.warm_rollback [--runs 5] [--json PATH]

In a new temporary folder, on the local provider (real HAProxy and app processes), it releases 1.0.0, then
1.1.0 with a blue-green pipeline that keeps 1.0.0 warm (drained, weight 0). Then, `--runs` times: with
releasectl/loadgen.py sending load through the load balancer (2 keep-alive clients, 1 new-connection
client; each response's body is the version that served it), it runs `releasectl rollback` as a
subprocess and measures the time from launching it to the first moment after which every response is
1.0.0; then rolls 1.1.0 out again (1.0.0 warm again) for the next run. The figure includes the CLI's own
start-up, so each run also times `releasectl --version` just before (the part of the figure that is
interpreter start-up on this machine at this moment). Prints each run and the median (issue 12's target: <= 0.5 s), and the failed requests (0 expected).
Every load is bounded in time and requests. This is a benchmark, not a pytest test.

The CLI runs with bytecode cached, as a pip-installed tool has it (tests/bench/_env.py); one rollback and
its rollout before the timed runs are not counted (they compile what the rollback path imports).
`--no-bytecode-cache` measures the plain mode (PYTHONDONTWRITEBYTECODE=1: every run recompiles). The output
says which mode ran and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml
from tabulate import tabulate

from releasectl.loadgen import LoadGenerator
from tests.bench._env import bytecode_cache, bytecode_mode
from tests.bench.openstack_calls import FIRST
from tests.conftest import run_cli
from tests.helpers import free_port

KEEP_WARM = """\
name: bench-keep-warm
steps:
  - launch: {}
  - weight: {percent: 100}
  - retire: {drain_timeout: 2s, keep_previous: 10m}
"""
OLD, NEW = "1.0.0", "1.1.0"
RESOLUTION = 0.005  # seconds: how finely the switch-over moment is located


def must(work: Path, *args: str, env: dict[str, str] | None = None) -> str:
    proc = run_cli(*args, cwd=work, env=env, timeout=300)
    if proc.code != 0:
        raise SystemExit(f"releasectl {' '.join(args)} exited {proc.code}:\n{proc.stderr[-3000:]}")
    return proc.stderr


def switched_at(load: LoadGenerator, since: float, until: float) -> float | None:
    """The earliest time from which every response (started then or later, before `until`) is OLD."""

    def all_old(t: float) -> bool:
        stats = load.stats(since=t, until=until)
        return stats.requests > 0 and set(stats.by_body) == {OLD} and stats.failed == 0

    if not all_old(until - RESOLUTION * 20):
        return None
    lo, hi = since, until - RESOLUTION * 20
    if all_old(lo):
        return lo
    while hi - lo > RESOLUTION:
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if all_old(mid) else (mid, hi)
    return hi


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--verbose", action="store_true", help="show each rollback's progress (-v)")
    parser.add_argument("--no-bytecode-cache", dest="cached", action="store_false",
                        help="run the CLI as this environment has it (PYTHONDONTWRITEBYTECODE=1: recompiling)")
    args = parser.parse_args(argv)
    with bytecode_cache(args.cached) as additions:
        print(bytecode_mode(additions), file=sys.stderr)
        return bench(args, additions)


def bench(args: argparse.Namespace, additions: dict[str, str]) -> int:
    root = Path(tempfile.mkdtemp(prefix="releasectl-warm-rollback-"))
    work = root / "app"
    port = free_port()
    rows = []
    loads = []

    def cli(*cli_args: str) -> str:
        return must(work, *cli_args, env=additions)

    try:
        work.mkdir()
        cli("init", ".", "--app", "warm", "--port", str(port))
        config = work / "releasectl.yaml"
        doc = yaml.safe_load(config.read_text())
        doc.setdefault("health", {}).update(interval="500ms", timeout="1s")
        config.write_text(yaml.safe_dump(doc, sort_keys=False))
        (work / "keep-warm.yaml").write_text(KEEP_WARM)
        (work / "first.yaml").write_text(FIRST)
        cli("bake", OLD)
        cli("bake", NEW)
        cli("rollout", OLD, "--pipeline", "first.yaml")
        cli("rollout", NEW, "--pipeline", "keep-warm.yaml")  # warm-up, not counted: compiles the rollback path
        cli("rollback")
        url = f"http://127.0.0.1:{port}/"
        for run in range(1, args.runs + 1):
            cli("rollout", NEW, "--pipeline", "keep-warm.yaml")
            started = time.monotonic()
            cli("--version")
            startup = time.monotonic() - started  # the interpreter and CLI start-up, in the same conditions
            load = LoadGenerator(url, duration=60, max_requests=500_000, keepalive_clients=2, new_connection_clients=1,
                                 timeout=5.0)
            with load:
                time.sleep(1.0)  # load flowing to NEW first
                loads.append(os.getloadavg()[0])
                launched = time.time()
                started = time.monotonic()
                stderr = cli(*(["-v"] if args.verbose else []), "rollback")
                took = time.monotonic() - started
                time.sleep(0.5)
                end = time.time()
            at = switched_at(load, launched, end)
            during = load.stats(since=launched - 1.0, until=end)
            warm = "warm server(s)" in stderr
            if args.verbose:
                sys.stderr.write(stderr)
            rows.append({"run": run, "switch_s": None if at is None else at - launched, "command_s": took, "startup_s": startup,
                         "requests": during.requests, "failed": during.failed, "warm": warm})
            print(f"run {run}: 100% {OLD} {rows[-1]['switch_s'] if at is None else f'{at - launched:.3f}'} s after "
                  f"launch; command {took:.2f} s; `--version` {startup:.2f} s; {during.failed} failed of {during.requests}", file=sys.stderr)
    finally:
        run_cli("down", cwd=work, env=additions, timeout=300)
        shutil.rmtree(root, ignore_errors=True)
    print(tabulate([[r["run"], "-" if r["switch_s"] is None else f"{r['switch_s']:.3f}", f"{r['startup_s']:.3f}",
                     f"{r['command_s']:.2f}", r["requests"], r["failed"], r["warm"]] for r in rows],
                   headers=["run", "launch -> 100% old (s)", "`releasectl --version` (s)", "command (s)", "requests",
                            "failed", "warm fleet"],
                   tablefmt="github"))
    switches = [r["switch_s"] for r in rows if r["switch_s"] is not None]
    if switches:
        print(f"\nmedian launch -> 100% {OLD}: {statistics.median(switches):.3f} s over {len(switches)} run(s) "
              f"(target <= 0.5 s); failed requests: {sum(r['failed'] for r in rows)}; load average "
              f"{min(loads):.1f}-{max(loads):.1f} on {os.cpu_count()} cores")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0 if switches and len(switches) == len(rows) and not any(r["failed"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
