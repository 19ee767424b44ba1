"""Zero-downtime benchmark: what clients see through the load balancer while releasectl changes versions.

Run: python -m tests.bench.zero_downtime [--duration 20] [--port P] [--json PATH]

In a new temporary folder it sets up the sample app on the local provider (real HAProxy, real app
processes), then drives releasectl through its CLI, as subprocesses, the way an operator or a CD job does:

  (a) canary      `releasectl rollout 1.1.0` with a canary pipeline (10 %, analysis, 50 %, 100 %, keep 1.0.0 warm)
  (b) auto-rollback  `releasectl rollout 1.2.0` of a build whose /healthz answers 500: the engine rolls back
  (c) manual rollback  `releasectl rollback --to 1.0.0`

During each scenario releasectl/loadgen.py sends load through the LB with keep-alive clients and
new-connection clients: a baseline of a few seconds before the command starts ("before"), then while it
runs ("during"), and on until the scenario has lasted at least --duration seconds. Each scenario's load is
bounded in time and in requests. A failed request is a non-2xx response or a connection error; the stdlib
clients do not retry, so nothing is hidden.

Prints a table (and writes JSON with --json). Exits 0 only when every scenario had 0 failed requests and
releasectl did what was expected (exit 0, 1 and 0). This is a benchmark, not a pytest test.
"""

from __future__ import annotations

from tests.conftest import CliRun, run_cli
from tests.helpers import free_port

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tabulate import tabulate

from releasectl.loadgen import LoadGenerator, LoadStats

CANARY = """\
name: bench-canary
description: The canary's shape with holds of a few seconds; keeps the previous fleet warm for rollback.
steps:
  - launch: {}
  - weight: {percent: 10, hold: 3s}
  - analyze: {duration: 2s, max_error_rate: 1%}
  - weight: {percent: 50, hold: 3s}
  - weight: {percent: 100, hold: 2s}
  - retire: {drain_timeout: 5s, keep_previous: 10m}
"""

FIRST = """\
name: bench-first
steps:
  - launch: {}
  - weight: {percent: 100, hold: 1s}
  - retire: {drain_timeout: 5s}
"""



class Bench:
    def __init__(self, folder: Path, port: int, args: argparse.Namespace) -> None:
        self.folder = folder
        self.port = port
        self.args = args
        self.url = f"http://127.0.0.1:{port}/"
        self.log = folder / "bench-cli.log"

    def cli(self, *argv: str, timeout: float = 300) -> CliRun:
        """`releasectl ARGV` in the folder, as a new process; its stderr (progress) goes to the log."""
        started = time.monotonic()
        proc = run_cli(*argv, cwd=self.folder, timeout=timeout)
        with open(self.log, "a") as log:
            log.write(f"$ releasectl {' '.join(argv)}  (exit {proc.code}, {time.monotonic() - started:.1f}s)\n")
            log.write(proc.stderr)
        return proc

    def must(self, *argv: str) -> CliRun:
        proc = self.cli(*argv)
        if proc.code != 0:
            raise RuntimeError(f"releasectl {' '.join(argv)} exited {proc.code}:\n{proc.stderr[-2000:]}")
        return proc

    def bake(self, version: str, *, broken: bool = False) -> None:
        flag = self.folder / "app" / "FAIL_HEALTH"
        if broken:
            flag.touch()
        try:
            self.must("bake", version)
        finally:
            flag.unlink(missing_ok=True)

    def setup(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.must("init", ".", "--app", "bench", "--port", str(self.port))
        config = self.folder / "releasectl.yaml"
        text = config.read_text()
        for old, new in (("interval: 1s", "interval: 500ms"), ("timeout: 2s", "timeout: 1s"), ("progress_deadline: 5m", "progress_deadline: 60s")):
            if old not in text:
                raise RuntimeError(f"releasectl init no longer writes {old!r}: update the benchmark")
            text = text.replace(old, new)
        config.write_text(text)
        (self.folder / "bench-canary.yaml").write_text(CANARY)
        (self.folder / "bench-first.yaml").write_text(FIRST)
        log(f"setup: {self.folder}, load balancer {self.url}")
        self.bake("1.0.0")
        self.must("rollout", "1.0.0", "--pipeline", "bench-first.yaml")
        self.bake("1.1.0")
        self.bake("1.2.0", broken=True)
        log("setup: 1.0.0 live; 1.1.0 and a broken 1.2.0 baked")

    def scenario(self, name: str, argv: list[str], expect_exit: int) -> dict[str, Any]:
        a = self.args
        generator = LoadGenerator(
            self.url,
            duration=a.duration + a.max_extra,
            max_requests=a.max_requests,
            keepalive_clients=a.keepalive,
            new_connection_clients=a.new_connections,
            timeout=a.timeout,
        )
        log(f"{name}: load with {a.keepalive} keep-alive + {a.new_connections} new-connection clients, "
            f"{a.baseline:g}s baseline, then `releasectl {' '.join(argv)}`")
        with generator:
            load_start = time.time()
            time.sleep(a.baseline)
            change_start = time.time()
            proc = self.cli(*argv)
            change_end = time.time()
            remaining = a.duration - (time.time() - load_start)
            if remaining > 0 and generator.running:
                time.sleep(remaining)
        whole = generator.snapshot()
        before = generator.stats(until=change_start)
        during = generator.stats(since=change_start, until=change_end)
        note = ""
        if "warm server(s)" in proc.stderr:
            note = "warm fleet adopted"
        elif "a relaunch from its image" in proc.stderr:
            note = "relaunched from image"
        result = {
            "scenario": name,
            "command": "releasectl " + " ".join(argv),
            "exit_code": proc.code,
            "expected_exit_code": expect_exit,
            "as_expected": proc.code == expect_exit,
            "command_seconds": round(change_end - change_start, 2),
            "load_seconds": round(whole.seconds, 2),
            "load_stopped_by": whole.stopped_by,
            "requests": whole.requests,
            "non_2xx": whole.non_2xx,
            "connection_errors": whole.connection_errors,
            "failed": whole.failed,
            "rps": round(whole.rps, 1),
            "before": summary(before),
            "during": summary(during),
            "whole": whole.to_dict(),
            "note": note,
            "stderr_tail": proc.stderr[-600:] if proc.code != expect_exit else "",
        }
        log(f"{name}: exit {proc.code} (expected {expect_exit}), {whole.requests} requests, "
            f"{whole.non_2xx} non-2xx, {whole.connection_errors} connection errors, "
            f"p99 before {fmt(before.p99_ms)} ms / during {fmt(during.p99_ms)} ms {note}")
        return result

    def teardown(self) -> None:
        proc = self.cli("down")
        if proc.code != 0:  # an unfinished release blocks `down`: undo it, then stop
            self.cli("abort")
            self.cli("down")


def summary(stats: LoadStats) -> dict[str, Any]:
    return {
        "requests": stats.requests,
        "failed": stats.failed,
        "p50_ms": None if stats.p50_ms is None else round(stats.p50_ms, 2),
        "p99_ms": None if stats.p99_ms is None else round(stats.p99_ms, 2),
        "versions": dict(stats.by_body),
    }


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def table(results: list[dict[str, Any]]) -> str:
    rows = [
        [
            r["scenario"],
            f"{r['exit_code']}" + ("" if r["as_expected"] else f" (expected {r['expected_exit_code']})"),
            f"{r['command_seconds']:.1f}",
            f"{r['load_seconds']:.1f}",
            r["requests"],
            r["non_2xx"],
            r["connection_errors"],
            fmt(r["before"]["p50_ms"]),
            fmt(r["before"]["p99_ms"]),
            fmt(r["during"]["p50_ms"]),
            fmt(r["during"]["p99_ms"]),
            ", ".join(f"{v} {n}" for v, n in r["during"]["versions"].items()),
            r["note"] or "-",
        ]
        for r in results
    ]
    headers = ["scenario", "exit", "cmd s", "load s", "requests", "non-2xx", "conn err",
               "p50 before", "p99 before", "p50 during", "p99 during", "versions during", "rollback path"]
    return tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.zero_downtime", description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=20.0, help="minimum seconds of load per scenario (at least 20)")
    parser.add_argument("--port", type=int, default=None, help="load-balancer port (default: a free one)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON to this file")
    parser.add_argument("--baseline", type=float, default=3.0, help="seconds of load before each command")
    parser.add_argument("--max-extra", type=float, default=60.0, help="seconds the load may run past --duration while a command is still running")
    parser.add_argument("--max-requests", type=int, default=500_000, help="request budget per scenario")
    parser.add_argument("--keepalive", type=int, default=2, help="keep-alive clients")
    parser.add_argument("--new-connections", type=int, default=1, help="new-connection clients")
    parser.add_argument("--timeout", type=float, default=2.0, help="client timeout in seconds")
    parser.add_argument("--dir", type=Path, default=None, help="work folder (default: a new temporary one, removed afterwards)")
    args = parser.parse_args(argv)
    if args.duration < 20:
        parser.error("--duration must be at least 20 seconds")
    if args.keepalive < 1 or args.new_connections < 1:
        parser.error("the benchmark needs at least one keep-alive and one new-connection client")

    folder = args.dir.resolve() if args.dir else Path(tempfile.mkdtemp(prefix="releasectl-bench-"))
    bench = Bench(folder, args.port or free_port(), args)
    results: list[dict[str, Any]] = []
    started = time.monotonic()
    error: str | None = None
    try:
        bench.setup()
        results.append(bench.scenario("a) canary 1.0.0 -> 1.1.0", ["rollout", "1.1.0", "--pipeline", "bench-canary.yaml"], 0))
        results.append(bench.scenario("b) auto-rollback of broken 1.2.0", ["rollout", "1.2.0", "--pipeline", "bench-canary.yaml"], 1))
        results.append(bench.scenario("c) manual rollback to 1.0.0", ["rollback", "--to", "1.0.0"], 0))
    except Exception as exc:  # noqa: BLE001 - report, clean up, fail
        error = f"{type(exc).__name__}: {exc}"
        log(f"error: {error}")
    finally:
        bench.teardown()

    ok = error is None and len(results) == 3 and all(r["failed"] == 0 and r["as_expected"] for r in results)
    print(table(results))
    total = sum(r["requests"] for r in results)
    failed = sum(r["failed"] for r in results)
    print(f"\n{failed} failed of {total} requests across {len(results)} scenarios "
          f"(load through {bench.url}, {args.keepalive} keep-alive + {args.new_connections} new-connection clients); "
          f"{'PASS' if ok else 'FAIL'} in {time.monotonic() - started:.0f}s")
    if error:
        print(f"error: {error}")
    for r in results:
        if not r["as_expected"]:
            print(f"{r['scenario']}: releasectl exited {r['exit_code']}, expected {r['expected_exit_code']}:\n{r['stderr_tail']}")
    if args.json:
        document = {
            "ok": ok,
            "error": error,
            "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "url": bench.url,
            "scenarios": results,
            "totals": {"requests": total, "failed": failed},
        }
        args.json.write_text(json.dumps(document, indent=2) + "\n")
        print(f"wrote {args.json}")
    if args.dir is None and ok:
        shutil.rmtree(folder, ignore_errors=True)
    elif not ok:
        print(f"work folder kept for inspection: {folder} (CLI progress in {bench.log})")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
