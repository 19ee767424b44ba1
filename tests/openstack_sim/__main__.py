"""Run the simulator by hand: ``python -m tests.openstack_sim --host 127.0.0.1 --port 8777``.

Prints the URL and credentials as one JSON line on stdout, then serves until SIGINT or SIGTERM,
and stops everything it started (app processes included) before exiting.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading

from .simulator import Options, Simulator


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = Options()
    parser = argparse.ArgumentParser(prog="python -m tests.openstack_sim", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=defaults.host, help="loopback address to listen on")
    parser.add_argument("--port", type=int, default=8777, help="port (0 = any free port)")
    parser.add_argument("--serve-apps", action="store_true", help="run a real HTTP app per ACTIVE server")
    parser.add_argument("--bare", action="store_true",
                        help="an empty project: a base image, a flavor and the external network only")
    parser.add_argument("--dns-delay", type=float, default=defaults.dns_delay)
    parser.add_argument("--token-ttl", type=float, default=defaults.token_ttl)
    parser.add_argument("--build-delay", type=float, default=defaults.build_delay)
    parser.add_argument("--delete-delay", type=float, default=defaults.delete_delay)
    parser.add_argument("--snapshot-delay", type=float, default=defaults.snapshot_delay)
    parser.add_argument("--lb-delay", type=float, default=defaults.lb_delay)
    parser.add_argument("--monitor-delay", type=float, default=defaults.monitor_delay)
    parser.add_argument("--app-port", type=int, default=defaults.app_port)
    parser.add_argument("--address-prefix", default=defaults.address_prefix)
    parser.add_argument("--external-keystone", default="", metavar="URL",
                        help="validate service tokens against this real Keystone instead of the built-in one")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    parser.add_argument("--second-region", default="", metavar="NAME",
                        help="also serve region NAME (own state and port, in the same Keystone catalog)")
    parser.add_argument("--second-address-prefix", default="127.0.2", help="server addresses of the second region")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sim = Simulator(
        host=args.host, port=args.port, serve_apps=args.serve_apps, token_ttl=args.token_ttl,
        build_delay=args.build_delay, delete_delay=args.delete_delay, snapshot_delay=args.snapshot_delay,
        lb_delay=args.lb_delay, monitor_delay=args.monitor_delay, app_port=args.app_port, bare=args.bare,
        dns_delay=args.dns_delay,
        address_prefix=args.address_prefix, verbose=args.verbose, external_keystone=args.external_keystone,
    )
    done = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: done.set())
    sim.start()
    try:
        if args.second_region:
            sim.add_region(args.second_region, address_prefix=args.second_address_prefix)
        print(json.dumps({"url": sim.url, **sim.credentials(),
                          **({"regions": {r.region: r.url for r in sim.regions}} if sim.regions else {})}), flush=True)
        done.wait()
    finally:
        sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
