"""Serve a real Keystone (PyPI `keystone`) with the standard library: a threaded wsgiref server.

Run by `.ci/keystone` with the Keystone venv's Python:

    OS_KEYSTONE_CONFIG_FILES=<state>/keystone.conf python keystone_server.py 127.0.0.1 PORT

keystone 30 has no `keystone-wsgi-public` script; `keystone.wsgi.api:application` reads its config from
OS_KEYSTONE_CONFIG_FILES, and oslo.config parses sys.argv, so the arguments are removed before the import.
SIGTERM and SIGINT stop it.
"""

from __future__ import annotations

import signal
import sys
import threading
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server


class Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class Handler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (stdlib signature)
        sys.stderr.write(f"{self.address_string()} {format % args}\n")


def main() -> int:
    host, port = sys.argv[1], int(sys.argv[2])
    sys.argv = sys.argv[:1]
    from keystone.wsgi.api import application  # noqa: PLC0415 (after sys.argv is cleaned)

    serve(application, host, port, "keystone_server")
    return 0


def serve(application: object, host: str, port: int, name: str) -> None:
    """Serve a WSGI application with threads until SIGTERM or SIGINT (also used by octavia_server.py)."""
    httpd = make_server(host, port, application, server_class=Server, handler_class=Handler)
    stop = threading.Event()

    def on_signal(*_: object) -> None:
        if not stop.is_set():
            stop.set()
            threading.Thread(target=httpd.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(f"{name}: serving http://{host}:{port}", file=sys.stderr, flush=True)
    httpd.serve_forever(poll_interval=0.2)
    httpd.server_close()


if __name__ == "__main__":
    sys.exit(main())
