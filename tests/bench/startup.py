"""Start-up time of `releasectl --version` (median of N runs), against `python -c pass` measured in the
same run as the baseline. Run: python -m tests.bench.startup [--runs 30]

The target is a median under 0.3 s. This is a benchmark, not a test: timing assertions in the suite
would be flaky on a loaded CI machine.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path


def timed(cmd: list[str], runs: int, cwd: Path | None = None) -> list[float]:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        samples.append(time.perf_counter() - start)
    return samples


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    beside = Path(sys.executable).with_name("releasectl")
    script = str(beside) if beside.exists() else shutil.which("releasectl")
    cases = {
        "baseline: python -c pass": [sys.executable, "-c", "pass"],
        "python -m releasectl --version": [sys.executable, "-m", "releasectl", "--version"],
        "python -m releasectl --help (full CLI import)": [sys.executable, "-m", "releasectl", "--help"],
    }
    if script:
        cases["releasectl --version (console script)"] = [script, "--version"]
    results = {name: statistics.median(timed(cmd, args.runs)) for name, cmd in cases.items()}
    baseline = results["baseline: python -c pass"]
    print(f"{'command':<50} {'median':>9} {'x baseline':>11}")
    for name, median in results.items():
        print(f"{name:<50} {median * 1000:>7.1f}ms {median / baseline:>10.2f}x")
    version = results.get("releasectl --version (console script)", results["python -m releasectl --version"])
    verdict = "OK" if version < 0.3 else "OVER TARGET"
    print(f"releasectl --version median {version * 1000:.1f} ms (target < 300 ms): {verdict}")
    return 0 if version < 0.3 else 1


if __name__ == "__main__":
    raise SystemExit(main())
