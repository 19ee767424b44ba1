"""releasectl.yaml and pipeline files, validated into frozen typed objects.

Every problem is reported as one ConfigError naming the file, the line, the key path and what was
expected, e.g. `releasectl.yaml:14: rollout.count: expected a positive integer, got "three"`. Nothing here
touches the network or the provider; a bad file changes nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import yaml

from releasectl.engine.model import (
    STEP_TYPES,
    Analyze,
    Launch,
    Pause,
    Pipeline,
    Retire,
    SetWeight,
    SmokeCheck,
    Step,
)
from releasectl.errors import ConfigError
from releasectl.providers.base import HealthCheck

CONFIG_NAME = "releasectl.yaml"
SECRET_KEYS = {"password", "secret", "token", "application_credential_secret", "api_key"}
BUILTIN_PIPELINE_DIRS = (Path(__file__).resolve().parent.parent / "pipelines",)


# ---- typed results ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RolloutSettings:
    count: int = 2
    pipeline: str = "canary"
    progress_deadline: float = 600.0
    drain_timeout: float = 30.0  # rollbacks and expired warm fleets; pipelines set their own
    weight_tolerance: float = 1.0  # percentage points between requested and achieved share


@dataclass(frozen=True)
class StageSettings:
    timeout: float = 60.0
    checks: tuple[SmokeCheck, ...] = ()


@dataclass(frozen=True)
class Settings:
    path: Path
    app: str
    provider: str
    env: str
    environments: tuple[str, ...]
    image_name: str
    image_keep: int
    app_port: int
    health: HealthCheck
    rollout: RolloutSettings
    stage: StageSettings
    provider_options: Mapping[str, Any]
    state_dir: Path

    @property
    def config_dir(self) -> Path:
        return self.path.parent

    def image_name_for(self, version: str) -> str:
        return self.image_name.format(app=self.app, version=version)

    def effective(self) -> dict[str, Any]:
        """The resolved settings as plain data, secrets masked, for `config check`."""
        return mask_secrets(
            {
                "file": str(self.path),
                "app": self.app,
                "provider": self.provider,
                "environment": self.env,
                "environments": list(self.environments),
                "state_dir": str(self.state_dir),
                "image": {"name": self.image_name, "keep": self.image_keep},
                "app_port": self.app_port,
                "health": vars(self.health),
                "rollout": vars(self.rollout),
                "stage": {
                    "timeout": self.stage.timeout,
                    "checks": [vars(c) for c in self.stage.checks],
                },
                self.provider: dict(self.provider_options),
            }
        )


def mask_secrets(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: ("***" if k in SECRET_KEYS and v else mask_secrets(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_secrets(v) for v in value]
    return value


# ---- YAML with line numbers -----------------------------------------------------------------------


class _Doc:
    """A parsed YAML document plus the line of every key path, for messages."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines: dict[str, int] = {}
        try:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{path.name}:{mark.line + 1}" if mark else path.name
            problem = getattr(exc, "problem", None) or str(exc)
            raise ConfigError(f"not valid YAML: {problem}", location=where) from None
        self.data = self._convert(node, "") if node is not None else {}

    def _convert(self, node: yaml.Node, path: str) -> Any:
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                key = str(key_node.value)
                sub = f"{path}.{key}" if path else key
                self.lines[sub] = key_node.start_mark.line + 1
                if key in out:
                    raise ConfigError(f"{sub}: duplicate key", location=self.where(sub))
                out[key] = self._convert(value_node, sub)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self._convert(v, f"{path}[{i}]") for i, v in enumerate(node.value)]
        return yaml.SafeLoader(" ").construct_object(node) if node.tag != "tag:yaml.org,2002:str" else node.value

    def where(self, path: str) -> str:
        probe = path
        while probe and probe not in self.lines:
            probe = probe.rpartition(".")[0]
        line = self.lines.get(probe)
        return f"{self.path.name}:{line}" if line else self.path.name

    def error(self, path: str, message: str, hint: str | None = None) -> ConfigError:
        return ConfigError(f"{path}: {message}", location=self.where(path), hint=hint)


# ---- value parsers: each returns the value or raises ValueError(expected ...) -----------------------

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def _got(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value)


def parse_duration(value: Any) -> float:
    """'500ms', '10s', '5m', '1h' or a number of seconds."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like 10s, 5m or 500ms, got {_got(value)}")
    if isinstance(value, (int, float)) and value >= 0:
        return float(value)
    match = _DURATION.match(value) if isinstance(value, str) else None
    if not match:
        raise ValueError(f"expected a duration like 10s, 5m or 500ms, got {_got(value)}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_percent(value: Any) -> float:
    """'10%' or 10 -> 10.0, within 0..100."""
    number: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str) and re.fullmatch(r"\s*\d+(\.\d+)?\s*%?\s*", value):
        number = float(value.strip().rstrip("%"))
    if number is None or not 0 <= number <= 100:
        raise ValueError(f"expected a percentage from 0 to 100 like 10%, got {_got(value)}")
    return number


def parse_rate(value: Any) -> float:
    """An error-rate percentage ('1%', 0.5) as a fraction."""
    return parse_percent(value) / 100.0


def positive_int(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    raise ValueError(f"expected a positive integer, got {_got(value)}")


def non_negative_int(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise ValueError(f"expected a whole number of 0 or more, got {_got(value)}")


def port(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535:
        return value
    raise ValueError(f"expected a TCP port from 1 to 65535, got {_got(value)}")


def http_status(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
        return value
    raise ValueError(f"expected an HTTP status code like 200, got {_got(value)}")


def string(value: Any) -> str:
    if isinstance(value, str) and value.strip():
        return value
    raise ValueError(f"expected a non-empty string, got {_got(value)}")


def url_path(value: Any) -> str:
    if isinstance(value, str) and value.startswith("/"):
        return value
    raise ValueError(f"expected a URL path starting with /, got {_got(value)}")


def boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise ValueError(f"expected true or false, got {_got(value)}")


def string_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) and v for v in value):
        return list(value)
    raise ValueError(f"expected a list of strings, got {_got(value)}")


def command(value: Any) -> list[str]:
    if isinstance(value, str) and value.strip():
        return value.split()
    return string_list(value)


def app_name(value: Any) -> str:
    if isinstance(value, str) and re.fullmatch(r"[a-z][a-z0-9-]{0,39}", value):
        return value
    raise ValueError(
        f"expected a name of lower-case letters, digits and dashes starting with a letter, got {_got(value)}"
    )


def image_template(value: Any) -> str:
    text = string(value)
    if "{version}" not in text:
        raise ValueError(f'expected a template containing {{version}}, like "{{app}}-{{version}}", got {_got(value)}')
    try:
        text.format(app="a", version="1.0.0")
    except (KeyError, IndexError, ValueError):
        raise ValueError(f"expected only the fields {{app}} and {{version}}, got {_got(value)}") from None
    return text


Parser = Callable[[Any], Any]

# The schema: section -> {key: parser}. Unknown keys are errors. Defaults live in the dataclasses and in
# the providers (which read their own section as plain values).
HEALTH_KEYS: dict[str, Parser] = {
    "path": url_path,
    "expected_status": http_status,
    "interval": parse_duration,
    "timeout": parse_duration,
    "rise": positive_int,
    "fall": positive_int,
}
ROLLOUT_KEYS: dict[str, Parser] = {
    "count": positive_int,
    "pipeline": string,
    "progress_deadline": parse_duration,
    "drain_timeout": parse_duration,
    "weight_tolerance": parse_percent,
}
STAGE_KEYS: dict[str, Parser] = {"timeout": parse_duration, "checks": lambda v: v}
CHECK_KEYS: dict[str, Parser] = {
    "path": url_path,
    "expected_status": http_status,
    "body_contains": string,
    "max_latency": parse_duration,
}
IMAGE_KEYS: dict[str, Parser] = {"name": image_template, "keep": positive_int}
PROVIDER_KEYS: dict[str, dict[str, Parser]] = {
    "local": {
        "builder": string,
        "start_command": command,
        "lb_port": port,
        "lb_bind": string,
        "stop_timeout": parse_duration,
        "drain_timeout": parse_duration,
        "haproxy": string,
    },
    "openstack": {
        "cloud": string,
        "region": string,
        "interface": string,
        "builder": string,
        "flavor": string,
        "network": string,
        "pool": string,
        "key_name": string,
        "security_groups": string_list,
        "user_data": string,
        "create_monitor": boolean,
        "cacert": string,
        "insecure": boolean,
        "boot_timeout": parse_duration,
        "snapshot_timeout": parse_duration,
        "lb_timeout": parse_duration,
        "lock_container": string,
        "probe": boolean,
    },
}
TOP_KEYS = {
    "app",
    "provider",
    "state_dir",
    "app_port",
    "image",
    "health",
    "rollout",
    "stage",
    "default_environment",
    "environments",
    *PROVIDER_KEYS,
}
ENV_KEYS = {"health", "rollout", "stage", "app_port", *PROVIDER_KEYS}


def _section(doc: _Doc, data: Any, path: str, keys: Mapping[str, Parser]) -> dict[str, Any]:
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise doc.error(path, f"expected a mapping of keys, got {_got(data)}")
    out: dict[str, Any] = {}
    for key, value in data.items():
        sub = f"{path}.{key}"
        if key in SECRET_KEYS:
            raise doc.error(
                sub,
                "secrets never go in releasectl.yaml",
                hint="store it with `releasectl login`, or in clouds.yaml / secure.yaml",
            )
        parser = keys.get(key)
        if parser is None:
            raise doc.error(sub, "unknown key", hint=_did_you_mean(key, keys))
        try:
            out[key] = parser(value)
        except ValueError as exc:
            raise doc.error(sub, str(exc)) from None
    return out


def _did_you_mean(key: str, keys: Any) -> str:
    import difflib

    close = difflib.get_close_matches(key, list(keys), n=1)
    return f"did you mean `{close[0]}`?" if close else f"known keys: {', '.join(sorted(keys))}"


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    return {**base, **over}


def find_config(start: Path | None = None) -> Path:
    """releasectl.yaml in the current folder or the nearest parent."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / CONFIG_NAME
        if candidate.is_file():
            return candidate
    raise ConfigError(
        f"no {CONFIG_NAME} in {here} or its parents",
        hint="run `releasectl init` to create one, or pass --config PATH",
    )


def load_settings(path: Path | None = None, env: str | None = None, state_dir: Path | None = None) -> Settings:
    path = (path or find_config()).resolve()
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file", hint="run `releasectl init` or pass --config PATH") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    doc = _Doc(path, text)
    data = doc.data
    if not isinstance(data, dict):
        raise ConfigError("expected a mapping at the top level", location=f"{path.name}:1")
    for key in data:
        if key not in TOP_KEYS:
            raise doc.error(key, "unknown key", hint=_did_you_mean(key, TOP_KEYS))
    if "app" not in data:
        raise ConfigError("app: required key missing", location=f"{path.name}:1", hint="add `app: NAME`")
    try:
        app = app_name(data["app"])
    except ValueError as exc:
        raise doc.error("app", str(exc)) from None
    provider = data.get("provider", "local")
    if provider not in PROVIDER_KEYS:
        raise doc.error("provider", f'expected one of {", ".join(sorted(PROVIDER_KEYS))}, got {_got(provider)}')

    envs_data = data.get("environments") or {"production": {}}
    if not isinstance(envs_data, dict) or not envs_data:
        raise doc.error("environments", f"expected a mapping of environment names, got {_got(envs_data)}")
    environments = tuple(envs_data)
    default_env = data.get("default_environment", "production" if "production" in envs_data else environments[0])
    chosen = env or default_env
    if chosen not in envs_data:
        raise ConfigError(
            f"environment {chosen!r} is not defined in {path.name}",
            hint=f"choose one of: {', '.join(environments)}",
        )
    for name, env_data in envs_data.items():
        if env_data is None:
            continue
        if not isinstance(env_data, dict):
            raise doc.error(f"environments.{name}", f"expected a mapping, got {_got(env_data)}")
        for key in env_data:
            if key not in ENV_KEYS:
                raise doc.error(f"environments.{name}.{key}", "unknown key", hint=_did_you_mean(key, ENV_KEYS))
    env_data = envs_data.get(chosen) or {}
    env_path = f"environments.{chosen}"

    def layered(name: str, keys: Mapping[str, Parser]) -> dict[str, Any]:
        base = _section(doc, data.get(name), name, keys)
        return _merge(base, _section(doc, env_data.get(name), f"{env_path}.{name}", keys))

    # validate every provider section and every environment's overrides, not only the chosen ones, so a
    # mistake (or a secret) anywhere in the file is caught before anything runs
    for section, keys in PROVIDER_KEYS.items():
        if section in data:
            _section(doc, data[section], section, keys)
    for name, other in envs_data.items():
        for section, keys in (("health", HEALTH_KEYS), ("rollout", ROLLOUT_KEYS), *PROVIDER_KEYS.items()):
            if other and section in other:
                _section(doc, other[section], f"environments.{name}.{section}", keys)

    health = HealthCheck(**layered("health", HEALTH_KEYS))
    if health.timeout > health.interval * 10:
        raise doc.error("health.timeout", "must not be more than ten times the interval")
    rollout = RolloutSettings(**layered("rollout", ROLLOUT_KEYS))
    stage_raw = layered("stage", STAGE_KEYS)
    checks = _smoke_checks(doc, stage_raw.pop("checks", None), health)
    stage = StageSettings(checks=checks, **stage_raw)
    image = _section(doc, data.get("image"), "image", IMAGE_KEYS)
    app_port_value = env_data.get("app_port", data.get("app_port", 8000))
    try:
        app_port = port(app_port_value)
    except ValueError as exc:
        raise doc.error("app_port", str(exc)) from None
    options = layered(provider, PROVIDER_KEYS[provider])

    if state_dir is None:
        raw_state = data.get("state_dir", ".releasectl")
        try:
            state_dir = Path(string(raw_state))
        except ValueError as exc:
            raise doc.error("state_dir", str(exc)) from None
    if not state_dir.is_absolute():
        state_dir = path.parent / state_dir

    return Settings(
        path=path,
        app=app,
        provider=provider,
        env=chosen,
        environments=environments,
        image_name=image.get("name", "{app}-{version}"),
        image_keep=image.get("keep", 5),
        app_port=app_port,
        health=health,
        rollout=rollout,
        stage=stage,
        provider_options=options,
        state_dir=state_dir,
    )


def _smoke_checks(doc: _Doc, data: Any, health: HealthCheck) -> tuple[SmokeCheck, ...]:
    """The health path always runs first; configured checks follow."""
    checks = [SmokeCheck(path=health.path, expected_status=health.expected_status)]
    if data is None:
        return tuple(checks)
    if not isinstance(data, list):
        raise doc.error("stage.checks", f"expected a list of checks, got {_got(data)}")
    for i, item in enumerate(data):
        values = _section(doc, item, f"stage.checks[{i}]", CHECK_KEYS)
        if "path" not in values:
            raise doc.error(f"stage.checks[{i}]", "required key `path` missing")
        checks.append(SmokeCheck(**values))
    return tuple(checks)


# ---- pipelines ----------------------------------------------------------------------------------------

STEP_KEYS: dict[str, dict[str, Parser]] = {
    "launch": {"count": positive_int},
    "weight": {"percent": parse_percent, "hold": parse_duration},
    "pause": {"duration": parse_duration},
    "analyze": {"duration": parse_duration, "max_error_rate": parse_rate, "max_p95": parse_duration},
    "retire": {"drain_timeout": parse_duration, "keep_previous": parse_duration},
}
REQUIRED_STEP_KEYS = {"weight": ("percent",), "analyze": ("duration", "max_error_rate")}


def builtin_pipelines() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for folder in _builtin_dirs():
        for file in sorted(folder.glob("*.yaml")):
            found.setdefault(file.stem, file)
    return found


def _builtin_dirs() -> list[Path]:
    dirs = []
    try:
        from importlib.resources import files

        packaged = Path(str(files("releasectl.pipelines_builtin")))
        if packaged.is_dir():
            dirs.append(packaged)
    except (ModuleNotFoundError, TypeError):
        pass
    dirs.extend(d for d in BUILTIN_PIPELINE_DIRS if d.is_dir())
    return dirs


def load_pipeline(name_or_path: str, config_dir: Path | None = None) -> Pipeline:
    """A built-in pipeline by name, or a YAML file by path (relative to the config's folder)."""
    looks_like_path = name_or_path.endswith((".yaml", ".yml")) or "/" in name_or_path
    if looks_like_path:
        file = Path(name_or_path)
        if not file.is_absolute() and config_dir is not None and not file.exists():
            file = config_dir / file
        if not file.is_file():
            raise ConfigError(f"pipeline file {name_or_path} not found")
    else:
        known = builtin_pipelines()
        if name_or_path not in known:
            raise ConfigError(
                f"unknown pipeline {name_or_path!r}",
                hint=f"built-in pipelines: {', '.join(sorted(known))}; or pass a path to a YAML file",
            )
        file = known[name_or_path]
    return parse_pipeline(file)


def parse_pipeline(file: Path) -> Pipeline:
    doc = _Doc(file, file.read_text())
    data = doc.data
    if not isinstance(data, dict):
        raise ConfigError("expected a mapping with `name` and `steps`", location=f"{file.name}:1")
    for key in data:
        if key not in ("name", "description", "steps"):
            raise doc.error(key, "unknown key", hint="known keys: name, description, steps")
    steps_data = data.get("steps")
    if not isinstance(steps_data, list) or not steps_data:
        raise doc.error("steps", "expected a non-empty list of steps")
    steps: list[Step] = []
    for i, item in enumerate(steps_data):
        path = f"steps[{i}]"
        if not isinstance(item, dict) or len(item) != 1:
            raise doc.error(path, f"expected one step like `- weight: {{percent: 10}}`; kinds: {', '.join(STEP_TYPES)}")
        (kind, body), = item.items()
        if kind not in STEP_KEYS:
            raise doc.error(f"{path}.{kind}", "unknown step kind", hint=_did_you_mean(kind, STEP_KEYS))
        values = _section(doc, body, f"{path}.{kind}", STEP_KEYS[kind])
        for required in REQUIRED_STEP_KEYS.get(kind, ()):
            if required not in values:
                raise doc.error(f"{path}.{kind}", f"required key `{required}` missing")
        steps.append(_make_step(kind, values))
    _check_order(doc, steps)
    name = data.get("name", file.stem)
    return Pipeline(name=str(name), description=str(data.get("description", "")), steps=tuple(steps), source=str(file))


def _make_step(kind: str, values: dict[str, Any]) -> Step:
    if kind == "launch":
        return Launch(**values)
    if kind == "weight":
        return SetWeight(**values)
    if kind == "pause":
        return Pause(**values)
    if kind == "analyze":
        p95 = values.pop("max_p95", None)
        return Analyze(max_p95_ms=None if p95 is None else p95 * 1000.0, **values)
    return Retire(**values)


def _check_order(doc: _Doc, steps: list[Step]) -> None:
    """A pipeline must launch first, reach 100 % and retire last; otherwise it can never finish."""
    if not isinstance(steps[0], Launch):
        raise doc.error("steps[0]", "the first step must be `launch`")
    if sum(isinstance(s, Launch) for s in steps) != 1:
        raise doc.error("steps", "expected exactly one `launch` step")
    weights = [s.percent for s in steps if isinstance(s, SetWeight)]
    if not weights or weights[-1] != 100:
        raise doc.error("steps", "the last `weight` step must send 100% of traffic to the new version")
    if not isinstance(steps[-1], Retire):
        raise doc.error(f"steps[{len(steps) - 1}]", "the last step must be `retire`")
    if sum(isinstance(s, Retire) for s in steps) != 1:
        raise doc.error("steps", "expected exactly one `retire` step")
