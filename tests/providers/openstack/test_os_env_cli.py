"""The openstack CLI's conventions through releasectl's CLI against the simulator: `OS_CLOUD=x OS_PASSWORD=...`
(the CI pattern), `--os-cloud` over `OS_CLOUD` over `openstack.cloud`, and `config check` naming the cloud,
the files and the secret's source, never the secret. Slow by folder."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.integration.openstack_fixtures import Cloud, make_cloud


@pytest.fixture
def cloud(openstack_sim_factory, tmp_path: Path) -> Cloud:
    # a password no JSON key or message contains, so "never printed" is checked for real
    return make_cloud(openstack_sim_factory(password="pw-Zq81-unusual"), tmp_path / "ws", count=1)


def _split_secret(cloud: Cloud) -> str:
    """clouds.yaml keeps the `sim` cloud without its password, plus a cloud `other` whose password is wrong;
    releasectl.yaml names no cloud. Returns the real password."""
    path = Path(cloud.env["OS_CLIENT_CONFIG_FILE"])
    doc = yaml.safe_load(path.read_text())
    sim = doc["clouds"]["sim"]
    password = sim["auth"].pop("password")
    doc["clouds"]["other"] = {**sim, "auth": {**sim["auth"], "password": "wrong-password-77"}}
    path.write_text(yaml.safe_dump(doc))
    path.chmod(0o600)
    config = cloud.path / "releasectl.yaml"
    settings = yaml.safe_load(config.read_text())
    settings["openstack"].pop("cloud", None)
    config.write_text(yaml.safe_dump(settings, sort_keys=False))
    return password


def _with(cloud: Cloud, **env: str) -> Cloud:
    return Cloud(cloud.sim, cloud.path, {**cloud.env, **env})


def test_os_cloud_and_os_password_is_enough(cloud: Cloud) -> None:
    password = _split_secret(cloud)
    ci = _with(cloud, OS_CLOUD="sim", OS_PASSWORD=password)
    result = ci.cli("-v", "status", "--output", "json")
    assert result.code == 0, result.stderr
    assert password not in result.stdout + result.stderr

    check = ci.cli("config", "check", "--output", "json")
    assert check.code == 0, check.stderr
    creds = check.json()["credentials"]
    assert creds["cloud"] == "sim" and creds["chosen_by"] == "OS_CLOUD"
    assert creds["secret_source"] == "OS_PASSWORD" and "OS_PASSWORD" in creds["environment"]
    assert creds["files"] == [cloud.env["OS_CLIENT_CONFIG_FILE"]]
    assert password not in check.stdout + check.stderr

    no_secret = _with(cloud, OS_CLOUD="sim").cli("status", "--output", "json")
    assert no_secret.code == 2 and "no password for cloud 'sim'" in no_secret.json()["errors"][0]["message"]


def test_os_cloud_option_beats_os_cloud_which_beats_the_config(cloud: Cloud) -> None:
    password = _split_secret(cloud)
    wrong = _with(cloud, OS_CLOUD="other", OS_PASSWORD=password)  # OS_PASSWORD overlays `other` too
    refused = _with(cloud, OS_CLOUD="other").cli("status", "--output", "json")
    assert refused.code == 2, refused.stderr  # `other`'s own password is wrong
    assert wrong.cli("--os-cloud", "sim", "status", "--output", "json").code == 0
    assert wrong.cli("status", "--os-cloud", "sim", "--output", "json").code == 0  # a global option anywhere

    config = cloud.path / "releasectl.yaml"
    settings = yaml.safe_load(config.read_text())
    settings["openstack"]["cloud"] = "other"
    config.write_text(yaml.safe_dump(settings, sort_keys=False))
    beats = _with(cloud, OS_CLOUD="sim", OS_PASSWORD=password).cli("config", "check", "--output", "json")
    assert beats.json()["credentials"]["cloud"] == "sim"
    assert _with(cloud, OS_CLOUD="sim", OS_PASSWORD=password).cli("status", "--output", "json").code == 0
    only_config = _with(cloud).cli("config", "check", "--output", "json").json()["credentials"]
    assert only_config["cloud"] == "other" and only_config["chosen_by"] == "openstack.cloud in releasectl.yaml"


def test_stage_with_probe_false_exits_2_before_anything_boots(cloud: Cloud) -> None:
    config = cloud.path / "releasectl.yaml"
    settings = yaml.safe_load(config.read_text())
    settings["openstack"]["probe"] = False
    config.write_text(yaml.safe_dump(settings, sort_keys=False))
    before = cloud.state()["servers"]
    result = cloud.cli("stage", "9.9.9", "--output", "json")  # refused before the image is even looked up
    assert result.code == 2, result.stderr
    error = result.json()["errors"][0]
    assert "probe: false" in error["message"] and "rollout" in error.get("hint", "")
    assert cloud.state()["servers"] == before  # nothing booted
