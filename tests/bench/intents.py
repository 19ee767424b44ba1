"""How fast an operator intent returns: `releasectl abort` while a (stand-in) runner holds the lock, against
`releasectl config check` (the same interpreter start, CLI import and config load, no provider call) and
`python -c pass`, medians of N runs measured in the same run, and the engine's part alone, in process. Run: python -m tests.bench.intents [--runs 15]

Wall time on a shared machine is mostly waiting for a core; the CPU time each command used (user + system,
the mean over the runs) is what it costs on a quiet core, so both are printed.

No HAProxy and no servers: this process writes a release record and holds the lock as a live `rollout`
would, so each `abort` takes the intent path (read the lock, read the record, one create-only write) and
returns; the intents it posts are counted afterwards. This is a benchmark, not a test: timing assertions
in the suite would be flaky on a loaded machine. The issue's target: an intent verb returns within 1 s.
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from releasectl.config import load_settings
from releasectl.engine import intents, records
from releasectl.engine.model import Launch, Pipeline, Release, ReleaseKind, SetWeight
from releasectl.providers.base import ProviderContext, this_host
from releasectl.providers.local import LocalProvider
from tests.bench.startup import timed
from tests.helpers import free_port


def in_process_abort(project: Path, runs: int) -> list[float]:
    """The intent path alone, after the imports: settings, provider, read the lock and record, one write."""
    from releasectl.cli.render import ProgressPrinter
    from releasectl.cli.runtime import Globals, engine_context
    from releasectl.engine.release import abort

    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        abort(engine_context(Globals(config=project / "releasectl.yaml", printer=ProgressPrinter(io.StringIO()))))
        samples.append(time.perf_counter() - start)
    return samples


def wall_and_cpu(cmd: list[str], runs: int, cwd: Path) -> tuple[float, float]:
    """(median wall seconds, mean CPU seconds) of `runs` runs of the command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = statistics.median(timed(cmd, runs, cwd))
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu / runs


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="releasectl-bench-intents-"))
    try:
        project = root / "shop"
        cli = [sys.executable, "-m", "releasectl"]
        subprocess.run([*cli, "init", str(project), "--app", "shop", "--port", str(free_port())], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        s = load_settings(project / "releasectl.yaml", None)
        provider = LocalProvider(ProviderContext(app=s.app, env=s.env, config_dir=s.config_dir, state_dir=s.state_dir,
                                                 health=s.health, app_port=s.app_port, options=dict(s.provider_options)))
        now = time.time()
        release = Release(id="bench1", app="shop", env=s.env, kind=ReleaseKind.ROLLOUT, version="1.1.0", image_id="x",
                          previous_version="1.0.0", pipeline=Pipeline("bench", (Launch(), SetWeight(10, 3600))),
                          count=2, step_index=1, started_at=now, updated_at=now)
        records.save(provider, release)
        owner = {"command": "rollout", "host": this_host(), "pid": str(os.getpid()), "user": "bench"}
        lease = provider.acquire_lock(owner, ttl=3600)
        cases = {
            "baseline: python -c pass": [sys.executable, "-c", "pass"],
            "releasectl config check": [*cli, "config", "check"],
            "releasectl abort (intent to a live runner)": [*cli, "abort", "-o", "json"],
        }
        measured = {name: wall_and_cpu(cmd, args.runs, project) for name, cmd in cases.items()}
        results = {name: wall for name, (wall, _) in measured.items()}
        cpu = {name: used for name, (_, used) in measured.items()}
        results["in process: engine abort (no interpreter start)"] = statistics.median(in_process_abort(project, args.runs))
        provider.release_lock(lease)
        posted = len(intents.pending(provider, release.id)) - args.runs  # the in-process ones too
    finally:
        shutil.rmtree(root, ignore_errors=True)
    baseline = results["baseline: python -c pass"]
    floor = results["releasectl config check"]
    print(f"{'command':<46} {'median':>9} {'x baseline':>11} {'x config check':>15} {'CPU (mean)':>11}")
    for name, median in results.items():
        used = f"{cpu[name] * 1000:>9.1f}ms" if name in cpu else f"{'-':>11}"
        print(f"{name:<46} {median * 1000:>7.1f}ms {median / baseline:>10.2f}x {median / floor:>14.2f}x {used}")
    name = "releasectl abort (intent to a live runner)"
    abort = results[name]
    print(f"intents posted: {posted} of {args.runs}; abort median {abort * 1000:.0f} ms, "
          f"{(abort - floor) * 1000:.0f} ms above config check, {cpu[name] * 1000:.0f} ms of CPU; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (target: returns within 1 s)")
    return 0 if posted == args.runs and abort < 1.0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
