"""`releasectl init`: a working releasectl.yaml, and for the local provider a sample app to bake."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
{resources}
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


RESOURCES = ("builder", "flavor", "network", "pool")


@dataclass
class Scaffolded:
    """What init wrote and, for openstack, what it found in the cloud and chose from it."""

    written: list[Path]
    choices: list[Any] = field(default_factory=list)  # providers/openstack/inventory.py Choice
    inventory: dict[str, Any] | None = None
    cloud_error: str | None = None  # why the cloud could not be looked at (then every choice is a placeholder)

    @property
    def placeholders(self) -> list[str]:
        return [c.key for c in self.choices if c.placeholder]


def look_at_cloud(directory: Path, app: str, cloud: str | None) -> tuple[list[Any], dict[str, Any] | None, str | None]:
    """init's choices from what the project has (read-only); placeholders, and why, when it cannot be read.
    Its state folder is a temporary one: the look leaves no token cache behind, so the first real command
    authenticates with the credentials as they are then."""
    import tempfile

    from releasectl.errors import ReleasectlError
    from releasectl.providers import load
    from releasectl.providers.base import HealthCheck, ProviderContext
    from releasectl.providers.openstack.inventory import PLACEHOLDER, Choice, choose, read_inventory

    with tempfile.TemporaryDirectory(prefix="releasectl-init-") as state_dir:
        ctx = ProviderContext(app=app, env="production", config_dir=directory, state_dir=Path(state_dir),
                              health=HealthCheck(), app_port=8000, options={"cloud": cloud})
        provider = load("openstack", ctx)
        try:
            inventory = read_inventory(provider)
        except ReleasectlError as exc:
            why = "the cloud could not be read at init: name yours, or `releasectl env up`, then `config check --remote`"
            return [Choice(key, PLACEHOLDER, why) for key in RESOURCES], None, exc.message
        finally:
            provider.close()
    found = inventory.to_dict()
    found["cloud"] = provider.creds.cloud  # the clouds.yaml entry (or OS_* `envvars`) that was read
    return choose(inventory, app), found, None


def _resource_lines(choices: list[Any]) -> str:
    lines = []
    for choice in choices:
        value = choice.value if _plain(choice.value) else json.dumps(choice.value)  # a JSON string is YAML: no injection
        why = CONTROL.sub(" ", choice.why)
        note = f"PLACEHOLDER: {why}" if choice.placeholder else why
        lines.append(f"{f'  {choice.key}: {value}':<36} # {note}")
    return "\n".join(lines)


CONTROL = re.compile(r"[\x00-\x1f\x7f]")
PLAIN = re.compile(r"[A-Za-z][A-Za-z0-9._-]{0,200}")


def _plain(value: str) -> bool:
    """A name YAML reads back as itself unquoted (not `true`, `null`, `no`, ...)."""
    import yaml

    return bool(PLAIN.fullmatch(value)) and yaml.safe_load(value) == value


def scaffold(directory: Path, *, provider: str, app: str | None, cloud: str | None, port: int, force: bool,
             look: bool = True) -> Scaffolded:
    """Every check first (arguments, what exists, what can be written), then the writes: a refused init
    writes nothing. For openstack, the builder, flavor, network and pool are chosen from what the cloud has
    (`look`), or written as marked placeholders."""
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
    result = Scaffolded(written=[])
    written = result.written
    if provider == "local":
        body = LOCAL_CONFIG.format(app=name, port=port, staging_port=port + 1)
        app_dir.mkdir(exist_ok=True)
        if not target.exists() or force:
            shutil.copyfile(TEMPLATES / "app" / "app.py", target)
            written.append(target)
    else:
        if look:
            result.choices, result.inventory, result.cloud_error = look_at_cloud(directory, name, cloud)
        else:
            from releasectl.providers.openstack.inventory import PLACEHOLDER, Choice

            result.choices = [Choice(key, PLACEHOLDER, "not looked up (init without a cloud)") for key in RESOURCES]
        body = OPENSTACK_CONFIG.format(app=name, cloud_line=_cloud_line(cloud), resources=_resource_lines(result.choices))
    config.write_text(body)
    written.insert(0, config)
    return result


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
