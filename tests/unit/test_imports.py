"""Read-only commands and `abort` import no HTTP library, no provider they do not call, and not pydantic
(issue 12: their start-up sits on every rollback's path). A behaviour test, not a timing test: a fresh
interpreter per command dispatches it through the real entry point and reports which modules it loaded."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import run_cli_in_process

FORBIDDEN = ("requests", "urllib3", "pydantic", "releasectl.providers.openstack", "rich.live")  # rich.live: only `--watch`
RELEASE_LOOP = "releasectl.engine.reconcile"  # no read-only command runs it (abort may: it rolls back)
WITHOUT_TYPER = ("status", "images", "history", "pipelines")  # cli/fastpath.py: dispatched before typer is imported

CHILD = """
import contextlib, io, json, sys
from releasectl.cli import main
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    code = main(sys.argv[1:])
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""

COMMANDS = {
    "status": 0,
    "images": 0,
    "history": 0,
    "pipelines": 0,
    "--help": 0,
    "abort": 2,  # no release in progress: the command reaches its decision and refuses
}


def loaded(modules: list[str]) -> list[str]:
    return [m for m in modules if any(m == f or m.startswith(f + ".") for f in FORBIDDEN)]


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict[str, dict]:
    """Every command in its own interpreter, all started at once, in a project made by `releasectl init`."""
    project = tmp_path_factory.mktemp("imports") / "shop"
    assert run_cli_in_process("init", str(project), cwd=project.parent).code == 0
    children = {
        command: subprocess.Popen([sys.executable, "-c", CHILD, *command.split()], cwd=project, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        for command in COMMANDS
    }
    found = {}
    for command, child in children.items():
        try:
            out, err = child.communicate(timeout=120)
        finally:
            child.kill()
        assert child.returncode == 0, err
        found[command] = json.loads(out)
    return found


@pytest.mark.parametrize("command", list(COMMANDS))
def test_command_imports_no_http_library_nor_unused_provider(report, command):
    assert report[command]["code"] == COMMANDS[command]
    assert loaded(report[command]["modules"]) == []
    if command != "abort":
        assert RELEASE_LOOP not in report[command]["modules"]


def test_status_on_the_local_provider_loads_the_local_provider_only(report):
    assert "releasectl.providers.local" in report["status"]["modules"]


@pytest.mark.parametrize("command", WITHOUT_TYPER)
def test_plain_read_only_commands_do_not_import_typer(report, command):
    assert [m for m in report[command]["modules"] if m == "typer" or m.startswith("typer.")] == []


# issue 12: modules `status` never calls into, loaded on first use by the commands that need them
LAZY_FOR_STATUS = ("releasectl.engine.health", "releasectl.loadgen", "releasectl.providers.base_env",
                   "releasectl.providers.local.builder", "releasectl.engine.live", "releasectl.engine.doctor", "tarfile",
                   "releasectl.config_extra", "releasectl.engine.failure", "releasectl.providers.base_extra",
                   "releasectl.engine.timeline", "hashlib", "secrets", "shutil", "subprocess", "socket", "zlib", "shlex",
                   "logging", "traceback")


def test_status_does_not_import_what_it_never_calls(report):
    assert [m for m in LAZY_FOR_STATUS if m in report["status"]["modules"]] == []
