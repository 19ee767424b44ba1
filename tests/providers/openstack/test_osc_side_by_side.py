"""The precedence table of tests/unit/test_os_precedence.py, side by side with the real `openstack` CLI:
each comparable case runs `openstack configuration show --unmask -f json` (no network) with the same files
and variables, and releasectl must resolve the same cloud and values. Skipped when python-openstackclient
is not installed: `python3 -m venv /tmp/osc && /tmp/osc/bin/pip install python-openstackclient`, then
RELEASECTL_OSC_BIN=/tmp/osc/bin/openstack (or `openstack` on PATH). Slow by folder (~1-4 s per CLI call)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from releasectl.providers.openstack.credentials import APP_CREDENTIAL, load_credentials
from tests.unit.test_os_precedence import CASES, Case, write

OSC = os.environ.get("RELEASECTL_OSC_BIN") or shutil.which("openstack")
pytestmark = pytest.mark.skipif(not OSC or not Path(OSC).exists(), reason="python-openstackclient is not installed")

# Credentials attribute -> how to read the same thing from `configuration show` (argparse values sit at the
# top level there, and beat `auth.*` when the auth plugin loads: loader.py _validate_auth_correctly)
AUTH_KEYS = ("password", "username", "project_name", "auth_url", "application_credential_id",
             "application_credential_secret")
PLAIN = {"cloud": "cloud", "region": "region_name", "interface": "interface", "auth_type": "auth_type"}
# Error cases where the CLI fails before any network too
CLI_ERRORS = {"OS_CLOUD-naming-no-cloud-is-an-error", "a-file-cloud-named-like-the-env-cloud-is-an-error",
              "OS_REGION_NAME-must-be-a-region-of-the-cloud"}


def comparable(case: Case) -> bool:
    if set(case.kwargs) - {"os_cloud"} or case.keyring:
        return False
    if case.error is not None:
        return case.id in CLI_ERRORS
    return bool(set(case.expect) & (set(AUTH_KEYS) | set(PLAIN)))


def osc(case: Case, folder: Path) -> tuple[int, dict]:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(folder / "home"), "XDG_CONFIG_HOME": str(folder / "xdg"), **case.env}
    args = [OSC, "configuration", "show", "--unmask", "-f", "json"]
    if case.kwargs.get("os_cloud"):
        args[1:1] = ["--os-cloud", case.kwargs["os_cloud"]]
    done = subprocess.run(args, cwd=folder, env=env, capture_output=True, text=True, timeout=60)
    return done.returncode, json.loads(done.stdout) if done.returncode == 0 else {}


def effective(shown: dict, key: str):
    if key in PLAIN:
        return shown.get(PLAIN[key])
    return shown.get(key) if shown.get(key) not in (None, "") else shown.get(f"auth.{key}")


@pytest.mark.parametrize("case", [c for c in CASES if comparable(c)], ids=[c.id for c in CASES if comparable(c)])
def test_releasectl_resolves_what_the_openstack_cli_resolves(case: Case, tmp_path: Path) -> None:
    if case.clouds is not None:
        write(tmp_path / "clouds.yaml", case.clouds)
    if case.secure is not None:
        write(tmp_path / "secure.yaml", case.secure)
    code, shown = osc(case, tmp_path)
    if case.error is not None:
        assert code != 0
        with pytest.raises(case.error[0]):
            load_credentials(env={"XDG_CONFIG_HOME": str(tmp_path / "xdg"), **case.env}, cwd=tmp_path,
                             home=tmp_path / "home", use_keyring=False, **case.kwargs)
        return
    assert code == 0
    creds = load_credentials(env={"XDG_CONFIG_HOME": str(tmp_path / "xdg"), **case.env}, cwd=tmp_path,
                             home=tmp_path / "home", use_keyring=False, **case.kwargs)
    keys = [k for k in case.expect if k in AUTH_KEYS or k in PLAIN]
    if creds.auth_type == APP_CREDENTIAL:  # osc-lib reads OS_PASSWORD for every plugin; this one has no password option
        keys = [k for k in keys if k != "password"]
    ours = {k: getattr(creds, k) for k in keys}
    theirs = {k: effective(shown, k) for k in keys}
    if "cloud" in keys and theirs["cloud"] is None:  # the CLI shows no name for the cloud the OS_* variables make
        theirs["cloud"] = case.env.get("OS_CLOUD_NAME", "envvars")
    assert ours == theirs
