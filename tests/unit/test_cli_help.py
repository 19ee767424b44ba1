"""Issue 10 item 9 in the CLI: every command's --help has an example and the exit-code table; `pipelines`
marks the pipeline the environment uses. In-process (run_cli_in_process)."""

from __future__ import annotations

import pytest
import typer

from releasectl.cli import app as app_module
from releasectl.cli.exitcodes import ExitCode
from releasectl.cli.help_text import EXAMPLES
from tests.conftest import run_cli_in_process


def commands() -> list[tuple[str, ...]]:
    """Every command path of the app, sub-commands included."""
    root = typer.main.get_command(app_module.app)
    found = []
    for name, command in root.commands.items():
        found.append((name,))
        for sub in getattr(command, "commands", {}):
            found.append((name, sub))
    return found


@pytest.mark.parametrize("path", commands(), ids=" ".join)
def test_every_command_help_shows_an_example_and_the_exit_codes(path, tmp_path):
    result = run_cli_in_process(*path, "--help", cwd=tmp_path)
    assert result.code == 0, result.stderr
    assert "Exit codes:" in result.stdout
    for code in ExitCode:
        assert f"  {int(code)}  " in result.stdout
    if " ".join(path) != "config":  # a group whose commands have the examples
        assert "Example:" in result.stdout and "releasectl " + " ".join(path) in result.stdout


def test_every_example_names_a_command():
    paths = {" ".join(p) for p in commands()}
    assert set(EXAMPLES) - {""} <= paths


def test_root_help_offers_shell_completion(tmp_path):
    result = run_cli_in_process("--help", cwd=tmp_path)
    assert "--install-completion" in result.stdout and "Exit codes:" in result.stdout


def test_pipelines_marks_the_configured_pipeline(tmp_path):
    assert run_cli_in_process("init", str(tmp_path / "shop"), "--app", "shop", cwd=tmp_path).code == 0
    config = tmp_path / "shop" / "releasectl.yaml"
    listed = run_cli_in_process("pipelines", "--output", "json", cwd=tmp_path / "shop").json()
    assert listed["configured"]["name"] == "canary" and listed["configured"]["environment"] == "production"
    assert [p["name"] for p in listed["pipelines"] if p["configured"]] == ["canary"]
    # a pipeline file of the config's own is listed and marked
    (tmp_path / "shop" / "mine.yaml").write_text("name: mine\nsteps:\n  - launch: {}\n  - weight: {percent: 100}\n  - retire: {}\n")
    config.write_text(config.read_text().replace("pipeline: canary", "pipeline: mine.yaml", 1))
    listed = run_cli_in_process("pipelines", "--output", "json", cwd=tmp_path / "shop").json()
    assert [p["name"] for p in listed["pipelines"] if p["configured"]] == ["mine"]


def test_pipelines_without_a_config_marks_nothing(tmp_path):
    listed = run_cli_in_process("pipelines", "--output", "json", cwd=tmp_path).json()
    assert listed["configured"] is None and not any(p["configured"] for p in listed["pipelines"])
