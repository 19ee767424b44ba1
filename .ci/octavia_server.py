"""Serve a real Octavia API (PyPI `octavia`, noop provider driver, sqlite) with the stand-in controller inside.

Run by `.ci/real_services` with the Octavia venv's Python:

    python octavia_server.py CONFIG_FILE HOST PORT

- The schema: `octavia-db-manage upgrade head` needs MySQL (sqlite has no ALTER of constraints), so the
  database is built the way Octavia's own functional tests build it: `BASE.metadata.create_all(engine)` and
  `OctaviaDBTestBase._seed_lookup_tables` (octavia/tests/functional/db/base.py, shipped in the wheel).
- The noop provider never leaves PENDING_*: tests/real_services/octavia_controller.py plays the controller
  and the amphorae's health checks. It runs here, as a thread, and takes the same lock as each request:
  from another process sqlite answers "database is locked".
- `octavia.cmd.api:main` serves one request at a time with wsgiref; this is the same server with threads (the
  lock still serialises the requests) and SIGTERM/SIGINT handling.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "real_services"))
sys.path.insert(0, str(HERE))
from keystone_server import serve  # noqa: E402 (the same threaded wsgiref server and signal handling)


def build_schema(engine) -> None:  # type: ignore[no-untyped-def]
    """Octavia's functional-test schema path: create_all, then the lookup tables and DELETED placeholders."""
    from sqlalchemy import inspect
    from sqlalchemy.orm import sessionmaker

    from octavia.db import base_models
    from octavia.tests.functional.db.base import OctaviaDBTestBase

    if inspect(engine).has_table("load_balancer"):
        return
    base_models.BASE.metadata.create_all(engine)
    session = sessionmaker(bind=engine)()
    with session.begin():
        OctaviaDBTestBase(methodName="run")._seed_lookup_tables(session)
    session.close()


def locked(app, lock: threading.Lock):  # type: ignore[no-untyped-def]
    """One request at a time, never while the controller writes (sqlite has one writer)."""

    def wrapper(environ, start_response):  # type: ignore[no-untyped-def]
        with lock:
            return list(app(environ, start_response))

    return wrapper


def main() -> int:
    config, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    sys.argv = sys.argv[:1]
    from octavia.api import app as api_app
    from octavia.db import api as db_api

    import octavia_controller

    app = api_app.setup_app(argv=[sys.argv[0], "--config-file", config])
    engine = db_api.get_engine()
    build_schema(engine)
    lock = threading.Lock()
    controller = octavia_controller.Controller(engine, lock, interval=float(os.environ.get("OCTAVIA_CONTROLLER_INTERVAL", "0.2")))
    controller.start()

    try:
        serve(locked(app, lock), host, port, "octavia_server")
    finally:
        controller.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
