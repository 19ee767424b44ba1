"""The CI templates' shell steps, for real: every `run:`/`script:` passes `bash -n`, and a small runner
executes each template's jobs in order, as its CI would, in a project made by `releasectl init` on the
local provider: a first release on a tag (exit 0), a release that pauses at a gate (exit 4 -> the promote
job) and one whose runner is stopped midway (exit 5 -> the resume job)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
import yaml

from tests.helpers import processes_under
from tests.integration.conftest import Workspace

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
GITHUB = ROOT / "pipelines" / "ci" / "github-actions.yml"
GITLAB = ROOT / "pipelines" / "ci" / "gitlab-ci.yml"
BASH = ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c"]


def github_scripts() -> dict[str, list[str]]:
    jobs = yaml.safe_load(GITHUB.read_text())["jobs"]
    return {name: [s["run"] for s in job["steps"] if "run" in s] for name, job in jobs.items()}


def gitlab_scripts() -> dict[str, list[str]]:
    ci = yaml.safe_load(GITLAB.read_text())
    before = ci["default"]["before_script"]
    return {name: ["\n".join([*before, *job["script"]])] for name, job in ci.items() if isinstance(job, dict) and "script" in job}


@pytest.mark.parametrize("scripts", [github_scripts, gitlab_scripts], ids=["github", "gitlab"])
def test_every_shell_step_passes_bash_n(scripts):
    for job, steps in scripts().items():
        for script in steps:
            checked = subprocess.run(["bash", "-n"], input=script, text=True, capture_output=True, timeout=30)
            assert checked.returncode == 0, f"{job}: {checked.stderr}\n{script}"


# ---- the runner ----------------------------------------------------------------------------------------------


def run_script(script: str, ws: Workspace, env: dict[str, str], *, interrupt: bool = False) -> int:
    """One shell step in the project folder, releasectl from this checkout first on PATH. With `interrupt`,
    SIGTERM goes to the `releasectl ... rollout` process once its release is under way (exit 5 follows)."""
    full = {**os.environ, **env, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    full.pop("OS_CLOUD", None)
    proc = subprocess.Popen([*BASH, script], cwd=ws.path, env=full, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(proc.stdout), daemon=True)  # type: ignore[arg-type]
    reader.start()
    if interrupt:
        stopped = False
        deadline = time.monotonic() + 60
        while not stopped and time.monotonic() < deadline and proc.poll() is None:
            if any("weight 10%" in line for line in output):  # the canary is past its launch
                for pid, cmd in processes_under(ws.path):
                    argv0 = cmd.split(" ", 1)[0]
                    if "python" in argv0 and "releasectl" in cmd and " rollout " in f"{cmd} " and "--resume" not in cmd:
                        os.kill(pid, signal.SIGTERM)
                        stopped = True
            time.sleep(0.05)
        assert stopped, "".join(output)[-3000:]
    try:
        code = proc.wait(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(timeout=10)
    ws.last_output = "".join(output)  # type: ignore[attr-defined]
    return code


def run_github(ws: Workspace, tag: str, *, interrupt: bool = False) -> list[str]:
    """bake -> stage -> rollout, then the job whose `if:` matches the rollout's exit_code output. Returns the
    jobs run; each must succeed."""
    jobs = github_scripts()
    wf = yaml.safe_load(GITHUB.read_text())
    ran = []
    with tempfile.TemporaryDirectory() as scratch:
        outputs = Path(scratch) / "outputs"
        env = {"RELEASECTL_TAG": tag, "GITHUB_OUTPUT": str(outputs), "RELEASECTL_PIP": "releasectl"}
        for job in ("bake", "stage", "rollout"):
            for script in jobs[job]:
                outputs.write_text("")
                code = run_script(script, ws, env, interrupt=interrupt and job == "rollout" and "rollout" in script)
                assert code == 0, f"{job} exited {code}:\n{ws.last_output[-3000:]}"
            ran.append(job)
        exit_code = dict(line.split("=", 1) for line in outputs.read_text().split())["exit_code"]
        for job in ("promote", "resume"):
            wanted = re.fullmatch(r"needs\.rollout\.outputs\.exit_code == '(\d)'", wf["jobs"][job]["if"]).group(1)
            if wanted == exit_code:
                for script in jobs[job]:
                    code = run_script(script, ws, env)
                    assert code == 0, f"{job} exited {code}:\n{ws.last_output[-3000:]}"
                ran.append(job)
    return ran


def run_gitlab(ws: Workspace, tag: str, *, interrupt: bool = False) -> list[str]:
    """bake -> stage -> rollout, then the gate stage with the rollout's dotenv report: `resume` (automatic)
    always, `promote` (manual) when an operator would click it, i.e. when the rollout paused."""
    jobs = gitlab_scripts()
    env = {"CI_COMMIT_TAG": tag, "RELEASECTL_PIP": "releasectl"}
    ran = []
    for job in ("bake", "stage", "rollout"):
        code = run_script(jobs[job][0], ws, env, interrupt=interrupt and job == "rollout")
        assert code == 0, f"{job} exited {code}:\n{ws.last_output[-3000:]}"
        ran.append(job)
    dotenv = dict(line.split("=", 1) for line in (ws.path / "rollout.env").read_text().split())
    env.update(dotenv)
    gate = ["resume"] + (["promote"] if dotenv["RELEASECTL_EXIT"] == "4" else [])
    for job in gate:
        code = run_script(jobs[job][0], ws, env)
        assert code == 0, f"{job} exited {code}:\n{ws.last_output[-3000:]}"
        ran.append(job)
    return ran


@pytest.mark.parametrize("runner", [run_github, run_gitlab], ids=["github", "gitlab"])
def test_template_jobs_release_for_real_with_the_exit_code_mapping(workspace, runner):
    ws = workspace
    config = ws.path / "releasectl.yaml"

    ran = runner(ws, "v1.0.0")  # a first release
    assert ran[:3] == ["bake", "stage", "rollout"] and "promote" not in ran
    assert ws.status()["live_version"] == "1.0.0"

    config.write_text(config.read_text().replace("pipeline: canary", "pipeline: gate-fast.yaml"))
    ran = runner(ws, "v1.1.0")  # exit 4 -> promote
    assert "promote" in ran
    assert ws.status()["live_version"] == "1.1.0" and ws.status()["release"] is None
    history = ws.ok("history", "-o", "json").json()["releases"]
    assert history[0]["version"] == "1.1.0" and history[0]["state"] == "succeeded"

    config.write_text(config.read_text().replace("pipeline: gate-fast.yaml", "pipeline: canary-fast.yaml"))
    ran = runner(ws, "v1.2.0", interrupt=True)  # SIGTERM mid-rollout: exit 5 -> resume
    assert "resume" in ran and "promote" not in ran
    assert ws.status()["live_version"] == "1.2.0" and ws.status()["release"] is None
    assert ws.ok("history", "-o", "json").json()["releases"][0]["state"] == "succeeded"
