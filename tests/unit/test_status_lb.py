"""`status` and the LB's state: exit 5 while it is down or in ERROR, with the JSON still complete (no I/O)."""

from __future__ import annotations

import io
import json

import pytest

from releasectl.cli.render import emit_result
from releasectl.cli.views import status_result
from releasectl.engine.observe import lb_state
from releasectl.engine.status import StatusView
from releasectl.errors import ProviderError
from releasectl.providers.base import LBState, LBStatus


def view(status: str, detail: str = "") -> StatusView:
    return StatusView(app="shop", environment="production", provider="local", live_version="1.0.0",
                      endpoint="http://127.0.0.1:8080", members=[], servers=[], release=None, lock=None,
                      lb={"status": status, "detail": detail})


@pytest.mark.parametrize(("status", "code"), [("up", 0), ("absent", 0), ("busy", 0), ("down", 5), ("error", 5)])
def test_status_exit_code_follows_the_lb(status, code):
    result = status_result(view(status, "haproxy pid 42 is gone"))
    assert result.exit_code == code
    out = io.StringIO()
    emit_result(result, "json", out)
    document = json.loads(out.getvalue())
    assert document["lb"] == {"status": status, "detail": "haproxy pid 42 is gone"}
    assert document["exit_code"] == code and document["live_version"] == "1.0.0"
    assert [e["code"] for e in document["errors"]] == ([f"lb_{status}"] if code else [])
    text = result.text()
    assert f"load balancer: {status.upper()} (haproxy pid 42 is gone)" in text


class _Provider:
    def __init__(self, outcome):
        self.outcome = outcome

    def lb_state(self):
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return self.outcome


def test_lb_state_one_reading_for_status_and_the_runner():
    assert lb_state(_Provider(LBState(LBStatus.DOWN, "x"))) == LBState(LBStatus.DOWN, "x")
    assert lb_state(_Provider(NotImplementedError())).status is LBStatus.UP
    assert lb_state(_Provider(ProviderError("octavia said 500"))) == LBState(LBStatus.ERROR, "octavia said 500")
