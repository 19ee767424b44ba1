"""`releasectl init`: a working releasectl.yaml, and for the local provider a sample app to bake."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from releasectl.config import CONFIG_NAME
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
  cloud: {cloud}
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
    if provider not in ("local", "openstack"):
        raise UsageError(f"--provider must be local or openstack, got {provider!r}")
    if not 1 <= port <= 65534:
        raise UsageError(f"--port must be from 1 to 65534, got {port}")
    config = directory / CONFIG_NAME
    if config.exists() and not force:
        raise UsageError(f"{config} already exists", hint="use --force to overwrite it")
    name = app or ("demo" if provider == "openstack" else _app_name(directory))
    if not re.fullmatch(r"[a-z][a-z0-9-]{0,39}", name):
        raise UsageError(f"{name!r} is not a valid app name", hint="use lower-case letters, digits and dashes, e.g. --app shop")
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    if provider == "local":
        text = LOCAL_CONFIG.format(app=name, port=port, staging_port=port + 1)
        app_dir = directory / "app"
        app_dir.mkdir(exist_ok=True)
        target = app_dir / "app.py"
        if not target.exists() or force:
            shutil.copyfile(TEMPLATES / "app" / "app.py", target)
            written.append(target)
    else:
        text = OPENSTACK_CONFIG.format(app=name, cloud=cloud or "envvars")
    config.write_text(text)
    written.insert(0, config)
    return written


def _app_name(directory: Path) -> str:
    name = re.sub(r"[^a-z0-9-]+", "-", directory.resolve().name.lower()).strip("-")
    if not name or not name[0].isalpha():
        name = "shop"
    return name[:40]
