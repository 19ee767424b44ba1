"""The ``/_sim/`` control endpoints (no auth): journal, state, faults and the builder toggle.

They mirror the ``Simulator`` Python methods, so a test in another process (or a human with curl
against ``python -m tests.openstack_sim``) can drive the simulator the same way a fixture does.
"""

from __future__ import annotations

import json
from typing import Any

from .server import Response, json_response


def _error(status: int, message: str) -> Response:
    return json_response(status, {"error": {"code": status, "message": message}})


class Control:
    def __init__(self, sim: Any) -> None:
        self.sim = sim
        self.routes = {
            ("GET", "/_sim/requests"): self.requests,
            ("POST", "/_sim/requests/reset"): self.reset_requests,
            ("GET", "/_sim/state"): self.state,
            ("GET", "/_sim/faults"): self.get_faults,
            ("POST", "/_sim/faults"): self.set_faults,
            ("GET", "/_sim/builder"): self.get_builder,
            ("POST", "/_sim/builder"): self.set_builder,
            ("GET", "/_sim/quota"): self.get_quota,
            ("POST", "/_sim/quota"): self.set_quota,
        }

    def handle(self, method: str, path: str, query: str, body: bytes) -> Response:
        path = path.rstrip("/")
        handler = self.routes.get(("GET" if method == "HEAD" else method, path))
        if handler is None:
            if any(p == path for _, p in self.routes):
                return _error(405, f"{method} is not allowed on {path}")
            return _error(404, f"no control endpoint {path}; known: {sorted({p for _, p in self.routes})}")
        payload: Any = {}
        if body:
            try:
                payload = json.loads(body)
            except ValueError as exc:
                return _error(400, f"malformed JSON: {exc}")
            if not isinstance(payload, dict):
                return _error(400, "the body must be a JSON object")
        try:
            return json_response(200, handler(payload))
        except (ValueError, TypeError) as exc:
            return _error(400, str(exc))

    def requests(self, payload: dict) -> dict:
        return self.sim.requests()

    def reset_requests(self, payload: dict) -> dict:
        self.sim.reset_requests()
        return self.sim.requests()

    def state(self, payload: dict) -> dict:
        return self.sim.state()

    def get_faults(self, payload: dict) -> dict:
        return self.sim.faults()

    def set_faults(self, payload: dict) -> dict:
        return self.sim.set_faults(**payload)

    def get_quota(self, payload: dict) -> dict:
        return self.sim.quota()

    def set_quota(self, payload: dict) -> dict:
        self.sim.set_quota(**payload)
        return self.sim.quota()

    def get_builder(self, payload: dict) -> dict:
        return self.sim.builder()

    def set_builder(self, payload: dict) -> dict:
        unknown = set(payload) - {"fail_health"}
        if unknown:
            raise ValueError(f"unknown builder settings {sorted(unknown)}; known: ['fail_health']")
        if "fail_health" in payload:
            if not isinstance(payload["fail_health"], bool):
                raise ValueError("fail_health must be a boolean")
            self.sim.set_builder_fail_health(payload["fail_health"])
        return self.sim.builder()
