"""`releasectl init`: a working releasectl.yaml, and for the local provider a sample app to bake."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from releasectl.config import APP_NAME, CONFIG_NAME, text
from releasectl.errors import UsageError

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"

LOCAL_CONFIG = """\
# releasectl.yaml, written by `releasectl init`. See README.md for every key.
app: {app}
provider: local

local:
  builder: app                      # the "builder server": `releasectl bake` snapshots this folder
  start_command: ["{{python}}", "app.py"]

image:
  name: "{{app}}-{{version}}"
  keep: 5                           # `releasectl images prune` default

health:
  path: /healthz
  expected_status: 200
  interval: 1s
  timeout: 2s
  rise: 2
  fall: 2

rollout:
  count: 2                          # instances of each version
  pipeline: canary                  # or blue-green, canary-manual, or a path to a YAML file
  progress_deadline: 5m

stage:
  checks:
    - path: /
      expected_status: 200

default_environment: production
environments:
  production:
    local: {{lb_port: {port}}}
  staging:
    local: {{lb_port: {staging_port}}}
    rollout: {{count: 1}}
"""

OPENSTACK_CONFIG = """\
# releasectl.yaml for the openstack provider, written by `releasectl init --provider openstack`.
# Credentials come from clouds.yaml / secure.yaml, OS_* variables or `releasectl login`; never from here.
app: {app}
provider: openstack

openstack:
{cloud_line}
  region: RegionOne
  builder: demo-builder              # the configured server that `releasectl bake` snapshots
  flavor: m1.small
  network: private
  pool: demo-pool                    # the Octavia pool of the load balancer
  create_monitor: false              # refuse to roll out without a health monitor

app_port: 8000

health:
  path: /healthz
  expected_status: 200
  interval: 5s
  timeout: 3s
  rise: 2
  fall: 3

rollout:
  count: 2
  pipeline: canary
  progress_deadline: 15m

default_environment: production
environments:
  production: {{}}
"""


def scaffold(directory: Path, *, provider: str, app: str | None, cloud: str | None, port: int, force: bool) -> list[Path]:
    """Every check first (arguments, what exists, what can be written), then the writes: a refused init
    writes nothing."""
    if provider not in ("local", "openstack"):
        raise UsageError(f"--provider must be local or openstack, got {provider!r}")
    if not 1 <= port <= 65534:
        raise UsageError(f"--port must be from 1 to 65534, got {port}")
    if cloud is not None:
        try:
            text(255)(cloud)
        except ValueError as exc:
            raise UsageError(f"--cloud: {exc}") from None
    name = app or ("demo" if provider == "openstack" else _app_name(directory))
    if not APP_NAME.fullmatch(name):
        raise UsageError(f"{name!r} is not a valid app name", hint="use lower-case letters, digits and dashes, e.g. --app shop")
    config = directory / CONFIG_NAME
    app_dir, target = directory / "app", directory / "app" / "app.py"
    _must_be_folder(directory)
    if config.is_dir():
        raise UsageError(f"{config} is a folder", hint="remove it, or init another folder")
    if config.exists() and not force:
        raise UsageError(f"{config} already exists", hint="use --force to overwrite it")
    if provider == "local":
        _must_be_folder(app_dir)
        if target.is_dir():
            raise UsageError(f"{target} is a folder", hint="remove it, or init another folder")
    _must_be_writable(directory)

    directory.mkdir(parents=True, exist_ok=True)
    written = []
    if provider == "local":
        body = LOCAL_CONFIG.format(app=name, port=port, staging_port=port + 1)
        app_dir.mkdir(exist_ok=True)
        if not target.exists() or force:
            shutil.copyfile(TEMPLATES / "app" / "app.py", target)
            written.append(target)
    else:
        body = OPENSTACK_CONFIG.format(app=name, cloud_line=_cloud_line(cloud))
    config.write_text(body)
    written.insert(0, config)
    return written


def _cloud_line(cloud: str | None) -> str:
    """`cloud:` only when --cloud names one: a written cloud would be the project's default for everyone, and
    OS_CLOUD (set when init runs, or later in CI) already chooses, as the openstack CLI does."""
    if cloud is not None:
        return f"  cloud: {json.dumps(cloud)}            # --os-cloud and OS_CLOUD beat it"
    return ("  # cloud: NAME                      # unset: --os-cloud, then OS_CLOUD, then the OS_* variables,\n"
            "  #                                  # then the only cloud of clouds.yaml")


def _must_be_folder(path: Path) -> None:
    if path.exists() and not path.is_dir():
        raise UsageError(f"{path} exists and is not a folder", hint="init another folder, or move it away")


def _must_be_writable(directory: Path) -> None:
    from releasectl.cli.runtime import unwritable_folder

    problem = unwritable_folder(directory)
    if problem:
        raise UsageError(f"{directory} {problem}", hint="init a folder you can write to")


def _app_name(directory: Path) -> str:
    name = re.sub(r"[^a-z0-9-]+", "-", directory.resolve().name.lower()).strip("-")
    if not name or not name[0].isalpha():
        name = "shop"
    return name[:40]
