"""Start-up cost of the CLI: CPU time (user + sys of the child, from wait4) and wall time of read-only
commands and `abort`, each as a ratio to `python -c pass` measured in the same run (runs interleaved, so
load on the machine hits every command alike). Run: python -m tests.bench.startup [--runs 15]

`status`, `images` and `abort` run in a real small project folder (`releasectl init` with the local
provider, one baked image); `abort` there finds no release and stops at its decision (exit 2), which is
the start-up path an operator's abort takes before it posts its intent. Issue 12 targets `status` at
<= 0.12 s CPU (median) and `--version` under 0.3 s wall. This is a benchmark, not a test: timing
assertions in the suite would be flaky on a loaded CI machine.

Children run with bytecode cached, as a pip-installed tool has it (tests/bench/_env.py; one warm-up round
is not counted); `--no-bytecode-cache` measures the plain mode, where PYTHONDONTWRITEBYTECODE=1 makes every
run recompile what it imports. The first line of the output says which mode ran.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.bench._env import bytecode_cache, bytecode_mode, cli_env

STATUS_CPU_TARGET = 0.12
VERSION_WALL_TARGET = 0.3


def measure(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[float, float, int]:
    """(cpu seconds, wall seconds, exit code) of one run of `cmd`; `env` is the child's whole environment."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_utime + usage.ru_stime, wall, proc.returncode


def make_project(root: Path) -> Path:
    """`releasectl init` (local provider) and one baked image, so `images` has a row to render."""
    project = root / "shop"
    for args, cwd in ((["init", str(project)], root), (["bake", "1.0.0"], project)):
        done = subprocess.run([sys.executable, "-m", "releasectl", *args], cwd=cwd, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"releasectl {' '.join(args)}: exit {done.returncode}\n{done.stderr}")
    return project


def timed(cmd: list[str], runs: int, cwd: Path | None = None, env: dict[str, str] | None = None) -> list[float]:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        samples.append(time.perf_counter() - start)
    return samples


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--no-bytecode-cache", dest="cached", action="store_false",
                        help="run children as this environment has them (PYTHONDONTWRITEBYTECODE=1: recompiling)")
    args = parser.parse_args()
    beside = Path(sys.executable).with_name("releasectl")
    script = str(beside) if beside.exists() else shutil.which("releasectl")
    cli = [sys.executable, "-m", "releasectl"]
    cases: dict[str, tuple[list[str], set[int]]] = {
        "baseline: python -c pass": ([sys.executable, "-c", "pass"], {0}),
        "releasectl --version": (cli + ["--version"], {0}),
        "releasectl --help": (cli + ["--help"], {0}),
        "releasectl status": (cli + ["status"], {0}),
        "releasectl images": (cli + ["images"], {0}),
        "releasectl abort (no release: exit 2)": (cli + ["abort"], {2}),
    }
    if script:
        cases["releasectl --version (console script)"] = ([script, "--version"], {0})
    with tempfile.TemporaryDirectory(prefix="releasectl-bench-") as tmp, bytecode_cache(args.cached) as additions:
        mode = bytecode_mode(additions)
        env = cli_env(additions)
        project = make_project(Path(tmp))
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
        for round_ in range(args.runs + 1):  # round 0 warms the bytecode cache up: not counted
            for name, (cmd, expected) in cases.items():
                cpu, wall, code = measure(cmd, project, env)
                if code not in expected:
                    raise SystemExit(f"{name}: exit {code}, expected {sorted(expected)}")
                if round_:
                    samples[name].append((cpu, wall))
    cpu = {name: statistics.median(c for c, _ in runs) for name, runs in samples.items()}
    wall = {name: statistics.median(w for _, w in runs) for name, runs in samples.items()}
    base_cpu, base_wall = cpu["baseline: python -c pass"], wall["baseline: python -c pass"]
    print(f"children: {mode}")
    print(f"median of {args.runs} runs; ratios against the baseline measured in the same run; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"{'command':<40} {'cpu':>9} {'x base':>7} {'wall':>9} {'x base':>7}")
    for name in cases:
        print(f"{name:<40} {cpu[name] * 1000:>7.1f}ms {cpu[name] / base_cpu:>6.2f}x"
              f" {wall[name] * 1000:>7.1f}ms {wall[name] / base_wall:>6.2f}x")
    status_ok = cpu["releasectl status"] <= STATUS_CPU_TARGET
    version = wall.get("releasectl --version (console script)", wall["releasectl --version"])
    version_ok = version < VERSION_WALL_TARGET
    print(f"status cpu median {cpu['releasectl status'] * 1000:.1f} ms (target <= {STATUS_CPU_TARGET * 1000:.0f} ms): "
          f"{'OK' if status_ok else 'OVER TARGET'}")
    print(f"--version wall median {version * 1000:.1f} ms (target < {VERSION_WALL_TARGET * 1000:.0f} ms): "
          f"{'OK' if version_ok else 'OVER TARGET'}")
    return 0 if status_ok and version_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
