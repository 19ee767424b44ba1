"""The README's Python API example, run exactly as written, against the local provider with a real HAProxy."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run_cli_in_process

pytestmark = pytest.mark.slow

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_block(name: str) -> str:
    """The fenced block of README.md tagged `name=NAME`, verbatim."""
    found = re.findall(rf"^```python name={re.escape(name)}\n(.*?)^```$", README.read_text(), flags=re.S | re.M)
    assert len(found) == 1, f"README.md has {len(found)} blocks named {name}"
    return found[0]


def test_readme_api_example_bakes_rolls_out_and_rolls_back(workspace):
    config = workspace.path / "releasectl.yaml"
    config.write_text(config.read_text().replace("pipeline: canary", "pipeline: canary-fast.yaml"))
    script = workspace.path / "api_example.py"
    script.write_text(readme_block("api-example"))

    run = subprocess.run([sys.executable, str(script)], cwd=workspace.path, capture_output=True, text=True,
                         timeout=300, stdin=subprocess.DEVNULL)
    assert run.returncode == 0, run.stderr[-3000:]

    status = run_cli_in_process("status", "--output", "json", cwd=workspace.path)
    assert status.code == 0, status.stderr
    assert status.json()["live_version"] == "1.0.0"
    assert {m["version"] for m in status.json()["members"] if m["weight"] > 0} == {"1.0.0"}
    history = run_cli_in_process("history", "--output", "json", cwd=workspace.path).json()["releases"]
    assert [(r["kind"], r["version"], r["state"]) for r in history] == [
        ("rollback", "1.0.0", "succeeded"), ("rollout", "1.1.0", "succeeded"), ("rollout", "1.0.0", "succeeded")]
    images = run_cli_in_process("images", "--output", "json", cwd=workspace.path).json()["images"]
    assert sorted(i["version"] for i in images) == ["1.0.0", "1.1.0"]  # 9.9.9 was refused: nothing baked


CANCEL_AND_RESUME = """
import json
from releasectl import api
from releasectl.errors import Interrupted

client = api.Client("releasectl.yaml")
client.bake("1.0.0")
events = []
handle = client.rollout("1.0.0", pipeline="first-fast.yaml", wait=False, on_event=events.append)
handle.cancel()
finished = handle.wait(120)
try:
    handle.result()
    error = None
except Interrupted as exc:
    error = {"type": type(exc).__name__, "exit_code": exc.exit_code}
stopped = client.status().release
done = client.rollout(resume=True)
print(json.dumps({"finished": finished, "error": error, "stopped": stopped and stopped["state"],
                  "done": done.to_dict(), "live": client.status().live_version,
                  "typed_events": bool(events) and all(isinstance(e, api.Event) for e in events)}))
"""


def test_a_cancelled_rollout_stops_resumable_and_resume_finishes_it(workspace):
    """handle.cancel() is the API's Ctrl-C: the release stops at a safe point (Interrupted, exit 5) and
    `rollout(resume=True)` takes it to the end. In a process of its own: HAProxy and the app servers are
    its children, not pytest's."""
    script = workspace.path / "cancel_and_resume.py"
    script.write_text(CANCEL_AND_RESUME)
    run = subprocess.run([sys.executable, str(script)], cwd=workspace.path, capture_output=True, text=True,
                         timeout=300, stdin=subprocess.DEVNULL)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["finished"] and out["error"] == {"type": "Interrupted", "exit_code": 5}
    assert out["stopped"] in ("interrupted", "progressing")  # unfinished: resumable
    assert (out["done"]["version"], out["done"]["state"]) == ("1.0.0", "succeeded")
    assert out["live"] == "1.0.0" and out["typed_events"]
