"""Server-death benchmark: what GET clients see through the local HAProxy while pool members die or hang.

Run: python -m tests.bench.server_death [--servers 4] [--faults 3] [--clients 6] [--json PATH]

On a private state folder it starts the local provider's HAProxy and N servers of the sample app at equal
weight, sends bounded load (keep-alive + new-connection GET clients, loadgen), and then, every 2.5 s, sends
kill -9 to one server (scenario "kill9") or SIGSTOP (scenario "sigstop"); the last server is never touched.
No releasectl engine runs: the members stay in the pool, so only HAProxy's checks and retries stand
between the fault and the clients. A failed request is a non-2xx answer or a connection error.

Prints one line per scenario and exits 0 only when no request failed. A benchmark, not a pytest test.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from releasectl.loadgen import LoadGenerator
from releasectl.providers.base import Health, HealthCheck, ProviderContext, Role, ServerSpec
from releasectl.providers.local import LocalProvider, procs
from releasectl.wait import wait_for
from tests.helpers import free_port, processes_under, server_process

TEMPLATE_APP = Path(__file__).resolve().parents[2] / "releasectl" / "templates" / "app"
HEALTH = HealthCheck(interval=0.5, timeout=1.0, rise=2, fall=2)  # timeout server: 2 s


def run(folder: Path, sig: int, args: argparse.Namespace) -> dict[str, Any]:
    shutil.copytree(TEMPLATE_APP, folder / "app", ignore=shutil.ignore_patterns("__pycache__"))
    ctx = ProviderContext(app="bench", env="death", config_dir=folder, state_dir=folder / ".releasectl",
                          health=HEALTH, app_port=8000, options={"lb_port": free_port(), "stop_timeout": 3.0})
    provider = LocalProvider(ctx)
    stopped: list[procs.ProcId] = []
    try:
        provider.ensure_pool()
        image = provider.bake_image("1.0.0", "bench-1.0.0", {})
        for i in range(args.servers):
            server = provider.create_server(ServerSpec(name=f"bench-{i}", image_id=image.id, app="bench", version="1.0.0",
                                                       env="death", role=Role.STABLE, release_id="bench"))
            wait_for(lambda: provider.probe(provider.get_server(server.id), "/", 1.0).status == 200, timeout=30,
                     interval=0.05, what=f"server {i} to answer")
            member = provider.add_member(provider.get_server(server.id))
            wait_for(lambda: next(m for m in provider.list_members() if m.id == member.id).health is Health.HEALTHY,
                     timeout=30, interval=0.05, what=f"member {i} healthy")
            provider.set_weights({member.id: 100})
        victims = [server_process(provider, "1.0.0", index=i) for i in range(min(args.faults, args.servers - 1))]
        with LoadGenerator(provider.pool_endpoint(), duration=60, max_requests=args.max_requests,
                           keepalive_clients=args.clients, new_connection_clients=max(1, args.clients // 3),
                           timeout=args.timeout) as load:
            time.sleep(2.0)
            for proc in victims:
                os.kill(proc.pid, sig)
                if sig == signal.SIGSTOP:
                    stopped.append(proc)
                time.sleep(2.5)
            time.sleep(2.0)
            load.stop()
        whole = load.snapshot()
        return {"scenario": signal.Signals(sig).name, "faults": len(victims), "requests": whole.requests,
                "failed": whole.failed, "non_2xx": whole.non_2xx, "connection_errors": whole.connection_errors,
                "errors_by_kind": dict(whole.errors_by_kind), "p99_ms": whole.p99_ms, "max_ms": whole.max_ms}
    finally:
        for proc in stopped:
            if procs.is_alive(proc):
                os.kill(proc.pid, signal.SIGCONT)
        provider.destroy_pool()
        for server in provider.list_servers():
            provider.delete_server(server.id)
        provider.close()
        for pid, _ in processes_under(folder):  # never leave anything behind
            os.kill(pid, signal.SIGKILL)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.server_death", description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", type=int, default=4)
    parser.add_argument("--faults", type=int, default=3, help="servers killed or stopped, one every 2.5 s (at most servers-1)")
    parser.add_argument("--clients", type=int, default=6, help="keep-alive clients (a third as many new-connection ones)")
    parser.add_argument("--timeout", type=float, default=5.0, help="client timeout in seconds")
    parser.add_argument("--max-requests", type=int, default=400_000)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.servers < 2:
        parser.error("--servers must be at least 2 (one is never touched)")
    results = []
    for sig in (signal.SIGKILL, signal.SIGSTOP):
        folder = Path(tempfile.mkdtemp(prefix="releasectl-death-"))
        try:
            results.append(run(folder, sig, args))
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        r = results[-1]
        print(f"{r['scenario']:8} {r['faults']} of {args.servers} servers: {r['failed']} failed of {r['requests']} requests "
              f"({r['non_2xx']} non-2xx, {r['connection_errors']} connection errors {r['errors_by_kind']}); "
              f"p99 {r['p99_ms']:.1f} ms, max {r['max_ms']:.0f} ms", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"results": results}, indent=2) + "\n")
    return 0 if all(r["failed"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
