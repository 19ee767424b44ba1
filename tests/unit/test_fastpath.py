"""Read-only commands dispatched without typer (cli/fastpath.py) say exactly what the typer app says: the same
stdout, stderr and exit code for the plain forms it takes, and everything else is left to typer. In process."""

from __future__ import annotations

import pytest

from releasectl.cli import fastpath, hoist_global_options
from tests.conftest import run_cli_in_process


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("fastpath")
    assert run_cli_in_process("init", str(root / "shop"), "--app", "shop", cwd=root).code == 0
    return root / "shop"


def through_typer(monkeypatch, *args, cwd):
    from releasectl.cli import app

    calls = []
    with monkeypatch.context() as patched:
        patched.setattr(fastpath, "run", lambda argv: None)
        patched.setattr(app, "run", lambda argv, run=app.run: calls.append(argv) or run(argv))
        done = run_cli_in_process(*args, cwd=cwd)
    assert len(calls) == 1
    return done


SAME = [
    ("status",),
    ("status", "-o", "json"),
    ("--output=json", "images"),
    ("images", "--output", "table", "-v"),
    ("history", "-o", "json"),
    ("pipelines",),
    ("pipelines", "-o", "json"),
    ("--env", "production", "status", "-o", "json"),
    ("--env", "qa", "status", "-o", "json"),  # an environment the config does not define: exit 2
    ("-o", "xml", "status"),  # the callback's own usage error
    ("--config", "missing.yaml", "images"),
    ("--state-dir", "elsewhere", "history", "--output", "json"),
    ("rollback", "-o", "json"),  # nothing released yet: nothing to return to (exit 2, nothing changed)
    ("rollback",),
]


@pytest.mark.parametrize("args", SAME, ids=" ".join)
def test_fast_path_says_what_typer_says(project, monkeypatch, args):
    assert fastpath.parse(hoist_global_options(list(args))) is not None  # the fast path takes it
    fast = run_cli_in_process(*args, cwd=project)
    typer_run = through_typer(monkeypatch, *args, cwd=project)
    assert (fast.code, fast.stdout, fast.stderr) == (typer_run.code, typer_run.stdout, typer_run.stderr)


@pytest.mark.parametrize("argv", [
    ["status", "--help"], ["--help"], ["status", "--watch"], ["status", "-w"], ["images", "prune"], ["history", "show"],
    ["status", "extra"], ["--bogus", "status"], ["-o=json", "status"], ["-ojson", "status"], ["--env", "a", "--env", "b", "status"],
    ["--env", "", "status"], ["--config", "a\x00b", "status"], ["--env", "--verbose", "status"], ["rollout"], [],
    ["--output"], ["--", "status"], ["rollback", "--to", "1.0.0"], ["rollback", "--help"],
], ids=repr)
def test_everything_else_is_left_to_typer(argv):
    assert fastpath.parse(argv) is None


def test_plain_forms_are_taken(tmp_path):
    command, options = fastpath.parse(["--config", "x/releasectl.yaml", "--env=staging", "-o", "json", "-v", "status"])
    assert command == "status" and options["env"] == "staging" and options["output"] == "json" and options["verbose"]
    assert str(options["config"]) == "x/releasectl.yaml"


def test_shell_completion_is_left_to_typer(monkeypatch):
    monkeypatch.setenv(fastpath.COMPLETION_VARIABLE, "complete_bash")
    assert fastpath.run(["status"]) is None
