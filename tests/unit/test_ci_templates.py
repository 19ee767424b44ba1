"""The CI templates in pipelines/ci/ against the official schemas (check-jsonschema's bundled copies, no
network), and the promises their comments make: a tag triggers them, one concurrency group per environment,
exit 4 -> a manual promote job, exit 5 -> a resume job, OpenStack credentials only from CI secrets."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
GITHUB = ROOT / "pipelines" / "ci" / "github-actions.yml"
GITLAB = ROOT / "pipelines" / "ci" / "gitlab-ci.yml"
OS_VARIABLES = ("OS_AUTH_URL", "OS_USERNAME", "OS_PASSWORD", "OS_PROJECT_NAME", "OS_APPLICATION_CREDENTIAL_SECRET")


@pytest.mark.parametrize("template, schema", [(GITHUB, "vendor.github-workflows"), (GITLAB, "vendor.gitlab-ci")])
def test_templates_pass_their_official_schema(template, schema):
    pytest.importorskip("check_jsonschema", reason="pip install -e '.[test]'")
    from check_jsonschema import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out), pytest.raises(SystemExit) as done:
        main(["--builtin-schema", schema, str(template)])
    assert done.value.code == 0, out.getvalue()


def test_github_workflow_maps_exit_codes_and_serialises_each_environment():
    wf = yaml.safe_load(GITHUB.read_text())
    jobs = wf["jobs"]
    assert wf[True]["push"]["tags"]  # `on:` reads as True in YAML 1.1
    assert jobs["stage"]["needs"] == "bake" and jobs["rollout"]["needs"] == "stage"
    assert jobs["promote"]["if"] == "needs.rollout.outputs.exit_code == '4'"
    assert jobs["promote"]["environment"] == "production-gate"  # required reviewers make it manual
    assert jobs["resume"]["if"] == "needs.rollout.outputs.exit_code == '5'"
    groups = {name: job["concurrency"]["group"] for name, job in jobs.items()}
    assert groups["rollout"] == groups["promote"] == groups["resume"] == "releasectl-production"
    assert groups["stage"] == "releasectl-staging" and groups["bake"] == "releasectl-images"
    assert all(job["concurrency"]["cancel-in-progress"] is False for job in jobs.values())
    for name in OS_VARIABLES:
        assert wf["env"][name] == "${{ secrets.%s }}" % name
    text = GITHUB.read_text()
    assert not re.search(r"OS_PASSWORD:\s*[^$\s]", text)


def test_gitlab_pipeline_maps_exit_codes_and_serialises_each_environment():
    ci = yaml.safe_load(GITLAB.read_text())
    assert ci["workflow"]["rules"][0]["if"].startswith("$CI_COMMIT_TAG")
    assert ci["promote"]["when"] == "manual" and ci["promote"]["needs"] == ["rollout"]
    assert ci["resume"].get("when", "on_success") == "on_success"
    assert ci["rollout"]["artifacts"]["reports"]["dotenv"] == "rollout.env"
    assert ci["rollout"]["resource_group"] == ci["promote"]["resource_group"] == ci["resume"]["resource_group"]
    assert ci["stage"]["resource_group"] != ci["rollout"]["resource_group"]
    assert any('"$RELEASECTL_EXIT" != 4' in line for line in ci["promote"]["script"])
    assert any('"$RELEASECTL_EXIT" != 5' in line for line in ci["resume"]["script"])
    assert not re.search(r"OS_[A-Z_]+:\s", GITLAB.read_text())  # no credential is set in the file


def test_templates_ship_inside_the_wheel():
    """pipelines/ is the package releasectl.pipelines_builtin, so pipelines/ci/ is ...pipelines_builtin.ci."""
    import tomllib

    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "releasectl.pipelines_builtin.ci" in tool["packages"]
    assert tool["package-dir"]["releasectl.pipelines_builtin"] == "pipelines"
    globs = tool["package-data"]["releasectl.pipelines_builtin.ci"]
    for template in (GITHUB, GITLAB):
        assert any(Path(template.name).match(g) for g in globs), (template.name, globs)
