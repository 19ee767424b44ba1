"""releasectl.yaml and pipeline files, validated into frozen typed objects.

One validation layer with a bound for every value (the table in README.md, "Validation rules"): a value
that passes here cannot crash a rollout later (`interval: .inf`), launch a hundred thousand servers
(`count: 100000`), never pass (`rise: 1e11`), or inject into the load balancer's config (a newline in
`health.path`). Files are read with `releasectl.safe_yaml` (size, alias, depth and tag limits).

Every problem is a ConfigError naming the file, the line, the key path and what was expected, e.g.
`releasectl.yaml:14: rollout.count: expected a whole number from 1 to 100, got "three"`. All problems of a
file are collected: the raised ConfigError carries the first as its message and all of them (up to
MAX_PROBLEMS) in `.problems`, which `config check` prints. Nothing here touches the network, the provider
or the state folder; a bad file changes nothing.
"""

from __future__ import annotations

import ipaddress
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from releasectl import safe_yaml
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
from releasectl.providers.base import PLACEHOLDER, HealthCheck
from releasectl.safe_yaml import YamlDoc, clip

if TYPE_CHECKING:
    from releasectl.config_extra import CheckReport, RegionSettings, Webhook
    from releasectl.providers.base import EnvSpec

CONFIG_NAME = "releasectl.yaml"
SECRET_KEYS = {"password", "secret", "token", "application_credential_secret", "api_key"}
BUILTIN_PIPELINE_DIRS = (Path(__file__).resolve().parent.parent / "pipelines",)

MAX_PROBLEMS = 20  # reported at once by `config check`
DEFAULT_MAX_COUNT = 100  # rollout.max_count: a guard against `count: 100000`
MAX_COUNT_CEILING = 10_000  # the highest rollout.max_count itself may be
MINUTE, HOUR, DAY = 60.0, 3600.0, 86400.0
WEEK = 7 * DAY


# ---- typed results ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RolloutSettings:
    """`rollout:` of releasectl.yaml, validated."""

    count: int = 2
    pipeline: str = "canary"
    progress_deadline: float = 600.0
    drain_timeout: float = 30.0  # rollbacks and expired warm fleets; pipelines set their own
    weight_tolerance: float = 1.0  # percentage points between requested and achieved share
    max_count: int = DEFAULT_MAX_COUNT  # the most instances `count` and a pipeline's launch.count may ask for


@dataclass(frozen=True)
class StageSettings:
    """`stage:` of releasectl.yaml, validated."""

    timeout: float = 60.0
    checks: tuple[SmokeCheck, ...] = ()


NOTIFY_EVENTS = ("started", "step", "paused", "failed", "rolled_back", "succeeded")
WEBHOOK_FORMATS = ("json", "slack")


def redact_url(url: str, *, keep_path: bool = False) -> str:
    """scheme://host[:port] (and the path when keep_path): never the query, the fragment or credentials."""
    import urllib.parse

    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or "?"
        netloc = f"[{host}]" if ":" in host else host
        if parts.port is not None:
            netloc += f":{parts.port}"
    except ValueError:
        return "(unparseable URL)"
    path = parts.path if keep_path else ("/..." if parts.path not in ("", "/") else "")
    return f"{parts.scheme}://{netloc}{path}" + ("?..." if parts.query else "")


@dataclass(frozen=True)
class NotifySettings:
    """`notify:` of releasectl.yaml, validated: the webhooks told about each release."""

    webhooks: tuple[Webhook, ...] = ()


WAVE_GATES = ("none", "pause")
WAVE_ON_FAILURE = ("keep_done", "rollback_all")
WAVE_NOTIFY = ("summary", "regions")  # one notification for the wave's start and end, or also each region's own
MAX_REGIONS = 20


@dataclass(frozen=True)
class WaveSettings:
    """How `rollout` walks the regions: a gate (`pause`: exit 4 until `promote`) and a hold before each
    region after the first, and what a failure does to the regions already done."""

    gate: str = "none"
    hold: float = 0.0
    on_failure: str = "keep_done"
    notify: str = "summary"  # `regions`: each region's release also sends its own notifications


@dataclass(frozen=True)
class Settings:
    """One environment's settings: releasectl.yaml, validated."""

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
    notify: NotifySettings = field(default_factory=NotifySettings)
    env_spec: EnvSpec | None = None  # the `env:` section (what `env up` builds); None when absent
    regions: tuple[RegionSettings, ...] = ()  # `regions:`: rollout releases them in waves
    waves: WaveSettings = field(default_factory=WaveSettings)
    region: str | None = None  # set on the settings of one region (for_region)

    @property
    def config_dir(self) -> Path:
        return self.path.parent

    def region_names(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.regions)

    def for_region(self, name: str, *, record_scope: str | None = None) -> "Settings":
        """This environment's settings bound to one of its regions: its provider options with the region's
        overrides, the region pinned, and its records and lock kept apart from the other regions'
        (`record_scope` WAVES: the wave record and lock, kept in that region's object store)."""
        import dataclasses

        chosen = next((r for r in self.regions if r.name == name), None)
        if chosen is None:
            raise ConfigError(f"region {clip(name, 64)} is not one of environment {self.env}'s regions",
                              hint=f"regions: {', '.join(self.region_names())}")
        options = {**self.provider_options, **chosen.options, "region": name, "scope_region": name,
                   "record_scope": record_scope or f"regions/{name}"}
        return dataclasses.replace(self, provider_options=options, regions=(), region=name)

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
                "notify": {"webhooks": [w.effective() for w in self.notify.webhooks]},
                **({"env": {k: v for k, v in vars(self.env_spec).items() if k != "public_key"}} if self.env_spec else {}),
                **({"regions": [{"name": r.name, self.provider: dict(r.options)} for r in self.regions],
                    "waves": vars(self.waves)} if self.regions else {}),
                **({"region": self.region} if self.region else {}),
            }
        )


def mask_secrets(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: ("***" if k in SECRET_KEYS and v else mask_secrets(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_secrets(v) for v in value]
    return value


# ---- value parsers: each returns the value or raises ValueError("expected ..., got ...") ------------

_DURATION = re.compile(r"^\s*(\d{1,15}(?:\.\d{1,9})?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": MINUTE, "h": HOUR, "d": DAY, None: 1.0}
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# RFC 3986 path-absolute with an optional query; no whitespace, control characters or fragment. `$` and
# `'` are left out as well although RFC 3986 allows them: HAProxy's config parser gives them meaning.
_PCHAR = r"(?:[A-Za-z0-9\-._~!&()*+,;=:@]|%[0-9A-Fa-f]{2})"
_URL_PATH = re.compile(rf"/(?:{_PCHAR}|/)*(?:\?(?:{_PCHAR}|[/?])*)?")
APP_NAME = re.compile(r"[a-z][a-z0-9-]{0,39}")
ENV_NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")
MAX_URL_PATH = 255
MAX_TEXT = 255


def _got(value: Any) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return ".nan" if math.isnan(value) else (".inf" if value > 0 else "-.inf")
    return clip(value)


def _seconds_text(seconds: float) -> str:
    if seconds == 0:
        return "0s"
    for unit, size in (("d", DAY), ("h", HOUR), ("m", MINUTE), ("s", 1.0)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds * 1000:g}ms" if seconds < 1 else f"{seconds:g}s"


def _to_seconds(value: Any) -> float:
    """'500ms', '10s', '5m', '1h', '7d' or a number of seconds; finite, else ValueError."""
    if isinstance(value, bool):
        raise ValueError
    if isinstance(value, int):
        return float(value) if abs(value) < 10**15 else math.inf
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError
        return value
    match = _DURATION.match(value) if isinstance(value, str) else None
    if not match:
        raise ValueError
    return float(match.group(1)) * _UNITS[match.group(2)]


def duration(low: float, high: float) -> Callable[[Any], float]:
    """A duration parser bounded to [low, high] seconds."""

    def parse(value: Any) -> float:
        expected = f"a duration from {_seconds_text(low)} to {_seconds_text(high)} like 10s, 5m or 500ms"
        try:
            seconds = _to_seconds(value)
        except ValueError:
            raise ValueError(f"expected {expected}, got {_got(value)}") from None
        if not low <= seconds <= high:
            raise ValueError(f"expected {expected}, got {_got(value)}")
        return seconds

    return parse


def parse_duration(value: Any) -> float:
    """Any duration from 0 to 7 days (the widest bound; keys have narrower ones)."""
    return duration(0.0, WEEK)(value)


def integer(low: int, high: int) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high:
            return value
        raise ValueError(f"expected a whole number from {low} to {high}, got {_got(value)}")

    return parse


def positive_int(value: Any) -> int:
    """A whole number of at least 1; its upper bound is checked against another key (max_count)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    raise ValueError(f"expected a whole number of at least 1, got {_got(value)}")


def parse_percent(value: Any) -> float:
    """'10%' or 10 -> 10.0, within 0..100."""
    number: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value) if not isinstance(value, int) or abs(value) < 10**6 else math.inf
    elif isinstance(value, str) and re.fullmatch(r"\s*\d{1,6}(\.\d{1,6})?\s*%?\s*", value):
        number = float(value.strip().rstrip("%"))
    if number is None or not 0 <= number <= 100:  # NaN fails the comparison too
        raise ValueError(f"expected a percentage from 0 to 100 like 10%, got {_got(value)}")
    return number


def parse_rate(value: Any) -> float:
    """An error-rate percentage ('1%', 0.5) as a fraction."""
    return parse_percent(value) / 100.0


def port(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535:
        return value
    raise ValueError(f"expected a TCP port from 1 to 65535, got {_got(value)}")


def http_status(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
        return value
    raise ValueError(f"expected one HTTP status code from 100 to 599 like 200, got {_got(value)}")


def text(max_len: int = MAX_TEXT) -> Callable[[Any], str]:
    """A non-empty single-line string of at most max_len characters, no control characters."""

    def parse(value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"expected a non-empty string, got {_got(value)}")
        if CONTROL_CHARACTERS.search(value):
            raise ValueError(f"expected a string without control characters (newline, tab, ...), got {_got(value)}")
        if len(value) > max_len:
            raise ValueError(f"expected at most {max_len} characters, got {len(value)}")
        return value

    return parse


string = text()


def url_path(value: Any) -> str:
    """An RFC 3986 absolute path (and optional query), as real Octavia requires of a monitor's url_path."""
    if not isinstance(value, str) or not value.startswith("/"):
        raise ValueError(f"expected a URL path starting with /, got {_got(value)}")
    if len(value) > MAX_URL_PATH:
        raise ValueError(f"expected a URL path of at most {MAX_URL_PATH} characters, got {len(value)}")
    if not _URL_PATH.fullmatch(value):
        bad = next((c for c in value if not re.fullmatch(r"[A-Za-z0-9\-._~!&()*+,;=:@/?%]", c)), None)
        what = f"the character {_got(bad)}" if bad is not None else "a % not followed by two hex digits"
        raise ValueError(
            f"expected a URL path (RFC 3986: letters, digits and -._~!&()*+,;=:@/ or %XX escapes), got {_got(value)} with {what}"
        )
    return value


def boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise ValueError(f"expected true or false, got {_got(value)}")


def string_list(value: Any, *, max_items: int = 50) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or len(items) > max_items:
        raise ValueError(f"expected a list of 1 to {max_items} strings, got {_got(value)}")
    return [string(item) for item in items]


def command(value: Any) -> list[str]:
    """A list of arguments, or one string split as a POSIX shell would (quotes kept together)."""
    if isinstance(value, str):
        import shlex  # here: a command given as a list (as `init` writes it) is not split

        if "\x00" in value or "\n" in value:
            raise ValueError("expected a command on one line, without NUL characters")
        try:
            value = shlex.split(value)
        except ValueError as exc:
            raise ValueError(f"cannot split the command line: {exc} (or write it as a list of arguments)") from None
        if not value:
            raise ValueError("expected a command, got an empty string")
    if not isinstance(value, list) or not 1 <= len(value) <= 64:
        raise ValueError(f'expected a command: a list of 1 to 64 arguments like ["{{python}}", "app.py"], got {_got(value)}')
    for arg in value:
        if not isinstance(arg, str) or "\x00" in arg or len(arg) > 4096:
            raise ValueError(f"expected each argument to be a string (no NUL, at most 4096 characters), got {_got(arg)}")
    return list(value)


def app_name(value: Any) -> str:
    if isinstance(value, str) and APP_NAME.fullmatch(value):
        return value
    raise ValueError(
        f"expected a name of 1 to 40 lower-case letters, digits and dashes starting with a letter, got {_got(value)}"
    )


def env_name(value: Any) -> str:
    if isinstance(value, str) and ENV_NAME.fullmatch(value):
        return value
    raise ValueError(
        f"expected an environment name of 1 to 32 lower-case letters, digits, - and _ starting with a letter, got {_got(value)}"
    )


# The patterns of sections most configs lack (`notify:`, `env:`) are compiled on first use (re caches them):
# compiling every one at import costs each command's start-up, `status` included (issue 12).
ENV_VARIABLE = r"[A-Za-z_][A-Za-z0-9_]{0,127}"
WEBHOOK_NAME = r"[a-z0-9][a-z0-9_-]{0,31}"
MAX_WEBHOOK_URL = 2048
# query keys that carry a credential: such a URL is a secret and belongs in url_env
_SECRET_QUERY_KEY = r"(?i)(token|secret|key|sig|signature|password|passwd|auth|code)"
_SECRET_URL_HOSTS = ("hooks.slack.com", "discord.com", "discordapp.com", "webhook.office.com", "chat.googleapis.com")


def env_variable(value: Any) -> str:
    if isinstance(value, str) and re.fullmatch(ENV_VARIABLE, value):
        return value
    raise ValueError(f"expected an environment variable name like RELEASECTL_WEBHOOK_SECRET, got {_got(value)}")


def webhook_name(value: Any) -> str:
    if isinstance(value, str) and re.fullmatch(WEBHOOK_NAME, value):
        return value
    raise ValueError(f"expected a name of 1 to 32 lower-case letters, digits, - and _, got {_got(value)}")


def webhook_url(value: Any) -> str:
    """An absolute http(s) URL with a host and no credentials in it. Messages never echo the URL itself
    past its host: a webhook URL is often half a secret."""
    import urllib.parse

    if not isinstance(value, str) or not value:
        raise ValueError(f"expected an http:// or https:// URL, got {_got(value) if not isinstance(value, str) else 'an empty string'}")
    if CONTROL_CHARACTERS.search(value) or " " in value:
        raise ValueError("expected a URL without spaces or control characters")
    if len(value) > MAX_WEBHOOK_URL:
        raise ValueError(f"expected a URL of at most {MAX_WEBHOOK_URL} characters, got {len(value)}")
    try:
        parts = urllib.parse.urlsplit(value)
        parts.port  # noqa: B018 (raises ValueError on a bad port)
    except ValueError:
        raise ValueError("expected a URL like https://hooks.example.com/releasectl (its host or port does not parse)") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"expected an http:// or https:// URL, got the scheme {_got(parts.scheme)}")
    if not parts.hostname:
        raise ValueError("expected a URL with a host, like https://hooks.example.com/releasectl")
    if parts.username is not None or parts.password is not None:
        raise ValueError("a user name or password in the URL is a secret, and secrets never go in releasectl.yaml: "
                         "put the URL in an environment variable and name that with `url_env`")
    if parts.fragment:
        raise ValueError("expected a URL without a #fragment")
    host = parts.hostname.lower()
    if any(host == h or host.endswith("." + h) for h in _SECRET_URL_HOSTS) or any(
        re.search(_SECRET_QUERY_KEY, k) for k, _v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    ):
        raise ValueError(f"a URL like this one ({host}) carries its own secret, and secrets never go in releasectl.yaml: "
                         "put it in an environment variable and name that with `url_env`")
    return value


def event_names(value: Any) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    expected = f"a list of events from {', '.join(NOTIFY_EVENTS)}"
    if not isinstance(items, list) or not items:
        raise ValueError(f"expected {expected}, got {_got(value)}")
    for item in items:
        if item not in NOTIFY_EVENTS:
            raise ValueError(f"expected {expected}, got {_got(item)}")
    if len(set(items)) != len(items):
        raise ValueError(f"expected each event once, got {_got(value)}")
    return tuple(items)


def one_of(*choices: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        if value in choices:
            return value
        raise ValueError(f"expected one of {', '.join(choices)}, got {_got(value)}")

    return parse


def image_template(value: Any) -> str:
    template = text(128)(value)
    if "{version}" not in template:
        raise ValueError(f'expected a template containing {{version}}, like "{{app}}-{{version}}", got {_got(value)}')
    try:
        sample = template.format(app="a", version="1.0.0")
    except (KeyError, IndexError, ValueError, AttributeError):
        raise ValueError(f"expected only the fields {{app}} and {{version}}, got {_got(value)}") from None
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._:+-]*", sample):
        raise ValueError(f"expected letters, digits and ._:+- around the fields, got {_got(value)}")
    return template


def bind_address(value: Any) -> str:
    try:
        return str(ipaddress.ip_address(value if isinstance(value, str) else ""))
    except ValueError:
        raise ValueError(f"expected an IP address like 127.0.0.1 or 0.0.0.0, got {_got(value)}") from None


def swift_container(value: Any) -> str:
    name = text(256)(value)
    if "/" in name:
        raise ValueError(f"expected a Swift container name without '/', got {_got(value)}")
    return name


Parser = Callable[[Any], Any]
interval = duration(0.01, HOUR)  # how often: health checks
short_wait = duration(0.0, HOUR)  # a single bounded wait
long_wait = duration(0.0, WEEK)  # holds, pauses, drains, warm fleets
deadline = duration(1.0, WEEK)  # a whole phase

# The schema: section -> {key: parser}. Unknown keys are errors. Defaults live in the dataclasses and in
# the providers (which read their own section as plain values). Bounds: README.md, "Validation rules".
HEALTH_KEYS: dict[str, Parser] = {
    "path": url_path,
    "expected_status": http_status,
    "interval": interval,
    "timeout": interval,
    "rise": integer(1, 100),
    "fall": integer(1, 100),
}
ROLLOUT_KEYS: dict[str, Parser] = {
    "count": positive_int,  # and at most max_count, checked per environment
    "max_count": integer(1, MAX_COUNT_CEILING),
    "pipeline": text(1024),
    "progress_deadline": deadline,
    "drain_timeout": long_wait,
    "weight_tolerance": parse_percent,
}
STAGE_KEYS: dict[str, Parser] = {"timeout": deadline, "checks": lambda v: v}
CHECK_KEYS: dict[str, Parser] = {
    "path": url_path,
    "expected_status": http_status,
    "body_contains": text(1024),
    "max_latency": duration(0.001, HOUR),
}
MAX_CHECKS = 50

# ---- the `env:` section: what `env up` builds ----
RESOURCE_NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}"  # compiled on first use, as ENV_VARIABLE
DNS_LABEL = r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)"
MAX_PUBLIC_KEY = 16 * 1024
PUBLIC_KEY_TYPES = ("ssh-rsa", "ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
                    "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com")


def resource_name(value: Any) -> str:
    if isinstance(value, str) and re.fullmatch(RESOURCE_NAME, value):
        return value
    raise ValueError(f"expected a name of 1 to 63 letters, digits, '.', '_' and '-', got {_got(value)}")


def subnet_cidr(value: Any) -> str:
    """A network address with its prefix: IPv4 /8 to /29, IPv6 /48 to /124 (`10.20.0.0/24`)."""
    try:
        net = ipaddress.ip_network(str(value), strict=True) if isinstance(value, str) else None
    except ValueError:
        net = None
    if net is None:
        raise ValueError(f"expected a network address with a prefix like 10.20.0.0/24 (host bits zero), got {_got(value)}")
    low, high = (8, 29) if net.version == 4 else (48, 124)
    if not low <= net.prefixlen <= high:
        raise ValueError(f"expected an IPv{net.version} prefix from /{low} to /{high}, got /{net.prefixlen}")
    return str(net)


def source_cidr(value: Any) -> str:
    """Where SSH may come from: an address or a network (`203.0.113.0/24`); 0.0.0.0/0 is refused."""
    try:
        net = ipaddress.ip_network(str(value), strict=False) if isinstance(value, str) else None
    except ValueError:
        net = None
    if net is None:
        raise ValueError(f"expected an address or network like 203.0.113.0/24, got {_got(value)}")
    if net.prefixlen == 0:
        raise ValueError("SSH from the whole internet is refused: give your own network (e.g. 203.0.113.0/24)")
    return str(net)


def dns_zone(value: Any) -> str:
    """A zone name; the trailing dot is added (`example.com` -> `example.com.`)."""
    name = value if isinstance(value, str) else ""
    name = name if name.endswith(".") else name + "."
    labels = name[:-1].split(".")
    if len(labels) < 2 or len(name) > 254 or not all(re.fullmatch(DNS_LABEL, label) for label in labels):
        raise ValueError(f"expected a DNS zone like example.com (at least two labels), got {_got(value)}")
    return name.lower()


def _section_of(keys: Mapping[str, Parser], what: str) -> Parser:
    """A nested mapping parsed key by key (the first problem raised)."""

    def parse(value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise ValueError(f"expected a mapping ({what}), got {_got(value)}")
        out = {}
        for key, raw in value.items():
            if key not in keys:
                raise ValueError(f"unknown key {_got(key)} ({_did_you_mean(key, keys)})")
            try:
                out[key] = keys[key](raw)
            except ValueError as exc:
                raise ValueError(f"{key}: {exc}") from None
        return out

    return parse


ENV_NETWORK_KEYS: dict[str, Parser] = {"name": resource_name, "cidr": subnet_cidr, "existing": resource_name}
ENV_KEYPAIR_KEYS: dict[str, Parser] = {"public_key": text(4096)}
ENV_DNS_KEYS: dict[str, Parser] = {
    "zone": dns_zone,
    "name": text(253),
    "ttl": integer(30, 86400),
    "create_zone": boolean,
    "email": text(254),
}
ENV_SECTION_KEYS: dict[str, Parser] = {
    "network": _section_of(ENV_NETWORK_KEYS, "name and cidr, or existing"),
    "keypair": _section_of(ENV_KEYPAIR_KEYS, "public_key: a file"),
    "ssh_from": source_cidr,
    "listener_port": port,
    "floating_ip": boolean,
    "dns": _section_of(ENV_DNS_KEYS, "zone, name, ttl"),
}
IMAGE_KEYS: dict[str, Parser] = {"name": image_template, "keep": integer(1, 1000)}
PROVIDER_KEYS: dict[str, dict[str, Parser]] = {
    "local": {
        "builder": text(4096),
        "start_command": command,
        "lb_port": port,
        "lb_bind": bind_address,
        "stop_timeout": short_wait,
        "drain_timeout": long_wait,
        "haproxy": text(4096),
    },
    "openstack": {
        "cloud": string,
        "region": string,
        "interface": string,
        "builder": string,
        "base_image": string,
        "flavor": string,
        "network": string,
        "pool": string,
        "key_name": string,
        "security_groups": string_list,
        "user_data": text(4096),
        "create_monitor": boolean,
        "cacert": text(4096),
        "insecure": boolean,
        "boot_timeout": deadline,
        "snapshot_timeout": deadline,
        "lb_timeout": deadline,
        "lock_container": swift_container,
        "probe": boolean,
    },
}
WEBHOOK_KEYS: dict[str, Parser] = {
    "name": webhook_name,
    "url": webhook_url,
    "url_env": env_variable,
    "events": event_names,
    "format": one_of(*WEBHOOK_FORMATS),
    "secret_env": env_variable,
    "secret_keyring": webhook_name,
    "timeout": duration(0.1, MINUTE),
    "retries": integer(0, 10),
    "backoff": duration(0.0, MINUTE),
    "budget": duration(1.0, 10 * MINUTE),
    "cacert": text(4096),
}
MAX_WEBHOOKS = 10
TOP_KEYS = {
    "app",
    "notify",
    "provider",
    "state_dir",
    "app_port",
    "image",
    "health",
    "rollout",
    "stage",
    "default_environment",
    "environments",
    "env",
    "regions",
    "waves",
    *PROVIDER_KEYS,
}
ENV_KEYS = {"health", "rollout", "stage", "app_port", "notify", "env", "regions", "waves", *PROVIDER_KEYS}
WAVE_KEYS: dict[str, Parser] = {"gate": one_of(*WAVE_GATES), "hold": long_wait, "on_failure": one_of(*WAVE_ON_FAILURE),
                                 "notify": one_of(*WAVE_NOTIFY)}
REGION_KEYS = ("name", "openstack")
LAYERED = {"health": HEALTH_KEYS, "rollout": ROLLOUT_KEYS, "stage": STAGE_KEYS, "env": ENV_SECTION_KEYS, **PROVIDER_KEYS}


# ---- collecting problems --------------------------------------------------------------------------------


class Problems:
    """Every ConfigError found in one pass, in file order; `raise_if_any` raises the first with all attached."""

    def __init__(self) -> None:
        self.items: list[ConfigError] = []

    def add(self, error: ConfigError) -> None:
        if all(error.message != seen.message for seen in self.items):
            self.items.append(error)

    def extend(self, error: ConfigError) -> None:
        for item in getattr(error, "problems", None) or [error]:
            self.add(item)

    def raise_if_any(self) -> None:
        if not self.items:
            return
        first = self.items[0]
        hint = first.hint
        more = len(self.items) - 1
        if more:
            also = f"{more} more problem{'s' if more > 1 else ''}: `releasectl config check` lists them all"
            hint = f"{hint}; {also}" if hint else also
        error = ConfigError(first.message, hint=hint)
        error.location = first.location
        error.problems = list(self.items)  # type: ignore[attr-defined]
        raise error


_BAD = object()  # a value that failed its parser (already reported)


class _Checker:
    """Walks one parsed file, reporting each problem once and carrying on."""

    def __init__(self, doc: YamlDoc, problems: Problems) -> None:
        self.doc = doc
        self.problems = problems

    def add(self, path: str, message: str, hint: str | None = None) -> None:
        self.problems.add(self.doc.error(path, message, hint))

    def value(self, path: str, raw: Any, parser: Parser) -> Any:
        try:
            return parser(raw)
        except ValueError as exc:
            self.add(path, str(exc))
            return _BAD

    def mapping(self, path: str, data: Any) -> dict[str, Any] | None:
        if data is None:
            return {}
        if not isinstance(data, dict):
            self.add(path, f"expected a mapping of keys, got {_got(data)}")
            return None
        return data

    def section(self, data: Any, path: str, keys: Mapping[str, Parser]) -> dict[str, Any]:
        """The section's valid values; each unknown key, secret or bad value is reported."""
        out: dict[str, Any] = {}
        body = self.mapping(path, data)
        for key, raw in (body or {}).items():
            sub = f"{path}.{key}"
            if key in SECRET_KEYS:
                self.add(sub, "secrets never go in releasectl.yaml",
                         hint="store it with `releasectl login`, or in clouds.yaml / secure.yaml")
            elif key not in keys:
                self.add(sub, "unknown key", hint=_did_you_mean(key, keys))
            elif (value := self.value(sub, raw, keys[key])) is not _BAD:
                out[key] = value
        return out


def _sub(data: Any, key: str) -> dict[str, Any]:
    """data[key] when both are mappings, else {} (a broken value was reported where it was read)."""
    value = data.get(key) if isinstance(data, dict) else None
    return value if isinstance(value, dict) else {}


def _did_you_mean(key: str, keys: Any) -> str:
    import difflib  # only for an unknown key: not on every command's start-up

    close = difflib.get_close_matches(str(key), [str(k) for k in keys], n=1)
    return f"did you mean `{close[0]}`?" if close else f"known keys: {', '.join(sorted(map(str, keys)))}"


# ---- releasectl.yaml ------------------------------------------------------------------------------------


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


@dataclass
class _EnvValues:
    """One environment's layered values (top-level section, then its override), before typing."""

    name: str
    sections: dict[str, dict[str, Any]]
    app_port: int
    pipeline_path: str  # the key path that set rollout.pipeline, for messages
    notify: tuple[Webhook, ...] = ()  # an environment's `notify` replaces the top-level one
    regions: tuple[RegionSettings, ...] = ()
    waves: WaveSettings = field(default_factory=WaveSettings)


@dataclass
class _Validated:
    """releasectl.yaml checked once: what each environment's Settings is made from."""

    doc: YamlDoc
    path: Path
    app: str
    provider: str
    image: dict[str, Any]
    state_dir: Any
    default_env: str
    envs: dict[str, _EnvValues]


def _read_config(path: Path) -> YamlDoc:
    try:
        exists = path.exists()
    except OSError as exc:  # a name too long for the file system, a loop of links
        raise ConfigError(f"{clip(str(path), 80)}: {exc.strerror or exc}") from None
    if not exists:
        raise ConfigError(f"{path}: no such file", hint="run `releasectl init` or pass --config PATH")
    return safe_yaml.load(path)


def _validate(doc: YamlDoc, path: Path, problems: Problems) -> _Validated | None:
    """Check the whole file, every environment included; None when it is not even a mapping."""
    check = _Checker(doc, problems)
    data = doc.data
    if data is None:
        data = {}
    if not isinstance(data, dict):
        check.add("", "expected a mapping of keys at the top level", hint="start with `app: NAME`")
        return None
    for key in data:
        if key not in TOP_KEYS:
            hint = "secrets never go in releasectl.yaml" if key in SECRET_KEYS else _did_you_mean(key, TOP_KEYS)
            check.add(key, "unknown key", hint=hint)
    app = _BAD
    if "app" not in data:
        problems.add(ConfigError("app: required key missing", location=f"{doc.name}:1", hint="add `app: NAME`"))
    else:
        app = check.value("app", data["app"], app_name)
    provider = data.get("provider", "local")
    if not isinstance(provider, str) or provider not in PROVIDER_KEYS:
        check.add("provider", f"expected one of {', '.join(sorted(PROVIDER_KEYS))}, got {_got(provider)}")
        provider = _BAD
    image = check.section(data.get("image"), "image", IMAGE_KEYS)
    state_dir = check.value("state_dir", data.get("state_dir", ".releasectl"), text(4096))
    base_port = check.value("app_port", data.get("app_port", 8000), port)

    base: dict[str, dict[str, Any]] = {}
    for section, keys in LAYERED.items():
        base[section] = check.section(data.get(section), section, keys)
    checks_base = _stage_checks(check, base["stage"].get("checks"), "stage.checks")
    notify_base = _notify(check, data.get("notify"), "notify", path.parent)

    envs_raw = data.get("environments")
    if envs_raw is None:
        envs_raw = {"production": {}}
    if not isinstance(envs_raw, dict) or not envs_raw:
        check.add("environments", f"expected a mapping of environment names, got {_got(envs_raw)}")
        envs_raw = {}
    envs: dict[str, _EnvValues] = {}
    for name, body in envs_raw.items():
        env_path = f"environments.{name}"
        if check.value(env_path, name, env_name) is _BAD:
            continue
        body = check.mapping(env_path, body)
        if body is None:
            continue
        for key in body:
            if key not in ENV_KEYS:
                check.add(f"{env_path}.{key}", "unknown key", hint=_did_you_mean(key, ENV_KEYS))
        sections = {}
        for section, keys in LAYERED.items():
            sections[section] = {**base[section], **check.section(body.get(section), f"{env_path}.{section}", keys)}
        if "checks" in _sub(body, "stage"):
            sections["stage"]["checks"] = _stage_checks(check, body["stage"]["checks"], f"{env_path}.stage.checks")
        else:
            sections["stage"]["checks"] = checks_base
        env_port = base_port if "app_port" not in body else check.value(f"{env_path}.app_port", body["app_port"], port)
        pipeline_path = f"{env_path}.rollout.pipeline" if "pipeline" in _sub(body, "rollout") else "rollout.pipeline"
        notify = notify_base if "notify" not in body else _notify(check, body["notify"], f"{env_path}.notify", path.parent)
        envs[name] = _EnvValues(name, sections, env_port, pipeline_path, notify)
        envs[name].regions, envs[name].waves = _regions(check, data, body, env_path, provider, sections)
        _cross_checks(check, envs[name], body)
        _env_section(check, envs[name], body, path.parent)

    default_env = data.get("default_environment", "production" if "production" in envs_raw else next(iter(envs_raw), ""))
    if "default_environment" in data and envs_raw and (not isinstance(default_env, str) or default_env not in envs_raw):
        check.add("default_environment", f"{_got(default_env)} is not one of the environments",
                  hint=f"environments: {', '.join(map(str, envs_raw)) or 'none'}")
    if provider == "local":
        _port_clashes(check, envs, data)
    # returned even when some values are bad (then a problem was reported), so that the pipelines the
    # environments name are checked too
    return _Validated(doc, path, app, provider, image, state_dir, default_env, envs)


def _regions(check: _Checker, data: dict[str, Any], body: dict[str, Any], env_path: str, provider: Any,
             sections: dict[str, dict[str, Any]]) -> tuple[tuple[RegionSettings, ...], WaveSettings]:
    """`regions:` and `waves:` of one environment (its own, else the top-level ones): every entry named once,
    its overrides checked like the provider section they override."""
    where = lambda key: f"{env_path}.{key}" if key in body else key  # noqa: E731
    raw = body["regions"] if "regions" in body else data.get("regions")
    waves_raw = body["waves"] if "waves" in body else data.get("waves")
    waves = WaveSettings(**check.section(waves_raw, where("waves"), WAVE_KEYS))
    if raw is None:
        if waves_raw is not None:
            check.add(where("waves"), "`waves` needs `regions`", hint="list the regions to release in waves, e.g. regions: [RegionOne, RegionTwo]")
        return (), waves
    if provider != "openstack":
        check.add(where("regions"), f"regions need the openstack provider, not {_got(provider)}")
        return (), waves
    if not isinstance(raw, list) or not raw or len(raw) > MAX_REGIONS:
        check.add(where("regions"), f"expected a list of 1 to {MAX_REGIONS} regions like [RegionOne, RegionTwo], got {_got(raw)}")
        return (), waves
    if "region" in sections["openstack"]:
        check.add(where("regions"), "`openstack.region` and `regions` both choose the region",
                  hint="drop openstack.region: each wave uses its entry of `regions`")
    provider_keys = {k: v for k, v in PROVIDER_KEYS["openstack"].items() if k not in ("region", "cloud")}
    from releasectl.config_extra import RegionSettings

    out: list[RegionSettings] = []
    for i, item in enumerate(raw):
        path = f"{where('regions')}[{i}]"
        if isinstance(item, dict):
            for key in item:
                if key not in REGION_KEYS:
                    check.add(f"{path}.{key}", "unknown key", hint=_did_you_mean(key, REGION_KEYS))
            if "name" not in item:
                check.add(path, "required key `name` missing")
                continue
            name, options = check.value(f"{path}.name", item["name"], resource_name), check.section(item.get("openstack"), f"{path}.openstack", provider_keys)
        else:
            name, options = check.value(path, item, resource_name), {}
        if name is _BAD:
            continue
        if any(r.name == name for r in out):
            check.add(path, f"region {name} is listed twice", hint="each region is released once per rollout")
            continue
        out.append(RegionSettings(name=name, options=options))
    return tuple(out), waves


def _stage_checks(check: _Checker, data: Any, path: str) -> list[dict[str, Any]]:
    if data is None:
        return []
    if not isinstance(data, list) or len(data) > MAX_CHECKS:
        check.add(path, f"expected a list of at most {MAX_CHECKS} checks, got {_got(data)}")
        return []
    out = []
    for i, item in enumerate(data):
        values = check.section(item, f"{path}[{i}]", CHECK_KEYS)
        if isinstance(item, dict) and "path" not in item:
            check.add(f"{path}[{i}]", "required key `path` missing")
        elif "path" in values:
            out.append(values)
    return out


def _notify(check: _Checker, data: Any, path: str, config_dir: Path) -> tuple[Webhook, ...]:
    """`notify: {webhooks: [...]}`: every webhook checked; the valid ones returned."""
    body = check.mapping(path, data)
    if not body:
        return ()
    for key in body:
        if key != "webhooks":
            check.add(f"{path}.{key}", "unknown key", hint="known keys: webhooks")
    hooks = body.get("webhooks")
    if not isinstance(hooks, list) or len(hooks) > MAX_WEBHOOKS:
        check.add(f"{path}.webhooks", f"expected a list of at most {MAX_WEBHOOKS} webhooks, got {_got(hooks)}")
        return ()
    from releasectl.config_extra import Webhook

    out: list[Webhook] = []
    for i, item in enumerate(hooks):
        where = f"{path}.webhooks[{i}]"
        before = len(check.problems.items)
        item = check.mapping(where, item)
        if item is None:
            continue
        for key in [k for k in item if k in SECRET_KEYS]:
            check.add(f"{where}.{key}", "secrets never go in releasectl.yaml",
                      hint="put it in an environment variable and name it with `secret_env`, or in the keyring (`secret_keyring`)")
        values = check.section({k: v for k, v in item.items() if k not in SECRET_KEYS}, where, WEBHOOK_KEYS)
        if ("url" in item) == ("url_env" in item):
            check.add(where, "expected exactly one of `url` and `url_env`",
                      hint="url_env names an environment variable holding a URL that is itself a secret")
        if "secret_env" in item and "secret_keyring" in item:
            check.add(f"{where}.secret_keyring", "expected at most one of `secret_env` and `secret_keyring`")
        if "budget" in values and "timeout" in values and values["budget"] < values["timeout"]:
            check.add(f"{where}.budget", f"{_seconds_text(values['budget'])} is less than the timeout of one attempt "
                      f"({_seconds_text(values['timeout'])})")
        values.setdefault("name", f"webhook-{i + 1}")
        if any(w.name == values["name"] for w in out):
            check.add(f"{where}.name", f"{_got(values['name'])} names another webhook too")
        if "cacert" in values and not Path(values["cacert"]).is_absolute():
            values["cacert"] = str(config_dir / values["cacert"])
        if len(check.problems.items) == before:
            out.append(Webhook(**values))
    return tuple(out)


def _cross_checks(check: _Checker, env: _EnvValues, body: dict[str, Any]) -> None:
    """Rules between keys, on the environment's effective values, reported where the value was set."""
    where = lambda section, key: (  # noqa: E731
        f"environments.{env.name}.{section}.{key}" if key in _sub(body, section) else f"{section}.{key}"
    )
    health = env.sections["health"]
    interval_s, timeout_s = health.get("interval", HealthCheck.interval), health.get("timeout", HealthCheck.timeout)
    if timeout_s > interval_s * 10:
        check.add(where("health", "timeout"),
                  f"{_seconds_text(timeout_s)} is more than ten times the interval ({_seconds_text(interval_s)})")
    rollout = env.sections["rollout"]
    count, most = rollout.get("count", RolloutSettings.count), rollout.get("max_count", DEFAULT_MAX_COUNT)
    if count > most:
        check.add(where("rollout", "count"), f"{count} is more than rollout.max_count ({most})",
                  hint="lower it, or raise rollout.max_count if you really mean that many instances")


def _env_section(check: _Checker, env: _EnvValues, body: dict[str, Any], config_dir: Path) -> None:
    """The `env:` section's rules between keys; reads the public key file into `keypair.key`."""
    section = env.sections["env"]
    if not section:
        return
    where = lambda key: f"environments.{env.name}.env.{key}" if key in _sub(body, "env") else f"env.{key}"  # noqa: E731
    network = section.get("network")
    if network is None and "network" not in _sub(body, "env") and "network" not in _sub(check.doc.data, "env"):
        check.add(where("network"), "required: `network: {name: NAME, cidr: 10.20.0.0/24}` or `network: {existing: NAME}`")
    elif network is None:
        pass  # its value was reported where it was read
    elif ("cidr" in network) == ("existing" in network):
        check.add(where("network"), "expected exactly one of `cidr` (create a network) and `existing` (use one)")
    elif "existing" in network and "name" in network:
        check.add(where("network"), "`name` is for a network releasectl creates; an existing one is named by `existing`")
    keypair = section.get("keypair")
    if keypair is not None:
        if "public_key" not in keypair:
            check.add(where("keypair"), "required key `public_key` (the path of an OpenSSH public key file) missing")
        else:
            file = Path(keypair["public_key"]).expanduser()
            file = file if file.is_absolute() else config_dir / file
            try:
                data = file.read_bytes()[: MAX_PUBLIC_KEY + 1]
            except OSError as exc:
                check.add(where("keypair"), f"cannot read the public key {clip(str(file), 120)}: {exc.strerror or exc}")
                data = None
            if data is not None:
                key = data.decode("utf-8", "replace").strip()
                if len(data) > MAX_PUBLIC_KEY or "PRIVATE KEY" in key or len(key.split()) < 2 \
                        or key.split()[0] not in PUBLIC_KEY_TYPES or "\n" in key:
                    check.add(where("keypair"), f"{clip(str(file), 120)} is not one OpenSSH public key (ssh-ed25519 AAAA... comment)",
                              hint="give the .pub file, never the private key")
                else:
                    section["keypair"] = {**keypair, "key": key}
    dns = section.get("dns")
    if dns is not None:
        for required in ("zone", "name"):
            if required not in dns:
                check.add(where("dns"), f"required key `{required}` missing")
        if "zone" in dns and "name" in dns:
            name = dns["name"]
            fqdn = name if name.endswith(".") else f"{name}.{dns['zone']}"
            labels = fqdn[:-1].split(".")
            if not fqdn.endswith("." + dns["zone"]) and fqdn != dns["zone"] or not all(re.fullmatch(DNS_LABEL, x) for x in labels):
                check.add(where("dns"), f"name {_got(name)} is not a host name inside zone {dns['zone']}")
            else:
                section["dns"] = {**dns, "fqdn": fqdn.lower()}


def _env_spec(section: dict[str, Any], app: str, env: str) -> EnvSpec | None:
    if not section or "network" not in section:
        return None
    from releasectl.providers.base import EnvSpec  # here: only a config with an `env:` section makes one

    network, dns = section["network"], section.get("dns") or {}
    return EnvSpec(
        network=network.get("existing") or network.get("name") or f"{app}-{env}",
        cidr=network.get("cidr"),
        public_key=(section.get("keypair") or {}).get("key"),
        ssh_from=section.get("ssh_from"),
        listener_port=section.get("listener_port", 80),
        floating_ip=section.get("floating_ip", False),
        dns_zone=dns.get("zone"),
        dns_name=dns.get("fqdn"),
        dns_ttl=dns.get("ttl", 300),
        create_zone=dns.get("create_zone", True),
        zone_email=dns.get("email") or f"hostmaster@{dns.get('zone', 'example.com.').rstrip('.')}",
    )


def _env_defaults(spec: EnvSpec | None, provider: str, options: Mapping[str, Any], app: str, env: str) -> dict[str, Any]:
    """With an `env:` section, the openstack options name what `env up` builds unless set explicitly."""
    if spec is None or provider != "openstack":
        return dict(options)
    prefix = f"{app}-{env}"
    made = {"pool": prefix, "network": spec.network, "security_groups": [prefix]}
    if spec.public_key:
        made["key_name"] = prefix
    # a value set in `openstack:` wins, except init's placeholder: `env up` makes the real thing
    return {**made, **{k: v for k, v in options.items() if not (k in made and v == PLACEHOLDER)}}


def _port_clashes(check: _Checker, envs: dict[str, _EnvValues], data: dict[str, Any]) -> None:
    """Two environments of the local provider cannot listen on the same load-balancer address."""
    seen: dict[int, list[tuple[str, str]]] = {}
    for env in envs.values():
        local = env.sections["local"]
        lb_port, bind = local.get("lb_port", 8080), local.get("lb_bind", "127.0.0.1")
        for other, other_bind in seen.get(lb_port, []):
            if bind == other_bind or "0.0.0.0" in (bind, other_bind) or "::" in (bind, other_bind):
                override = _sub(_sub(data, "environments"), env.name)
                path = (f"environments.{env.name}.local.lb_port" if "lb_port" in _sub(override, "local")
                        else f"environments.{env.name}")
                check.add(path, f"load-balancer port {lb_port} is also the port of environment {other}",
                          hint="give each environment its own local.lb_port")
                break
        seen.setdefault(lb_port, []).append((env.name, bind))


def _settings(v: _Validated, env: str, state_dir: Path | None) -> Settings:
    values = v.envs[env]
    stage = dict(values.sections["stage"])
    checks = [SmokeCheck(**c) for c in stage.pop("checks", [])]
    health = HealthCheck(**values.sections["health"])
    spec = _env_spec(values.sections["env"], v.app, env)
    if state_dir is None:
        state_dir = Path(v.state_dir)
    if not state_dir.is_absolute():
        state_dir = v.path.parent / state_dir
    return Settings(
        path=v.path,
        app=v.app,
        provider=v.provider,
        env=env,
        environments=tuple(v.envs),
        image_name=v.image.get("name", "{app}-{version}"),
        image_keep=v.image.get("keep", 5),
        app_port=values.app_port,
        health=health,
        rollout=RolloutSettings(**values.sections["rollout"]),
        # the health path always runs first; configured checks follow
        stage=StageSettings(checks=(SmokeCheck(path=health.path, expected_status=health.expected_status), *checks), **stage),
        provider_options=_env_defaults(spec, v.provider, values.sections[v.provider], v.app, env),
        state_dir=state_dir,
        notify=NotifySettings(webhooks=values.notify),
        env_spec=spec,
        regions=values.regions,
        waves=values.waves,
    )


def _chosen_env(v: _Validated, env: str | None) -> str:
    chosen = env or v.default_env
    if chosen not in v.envs:
        raise ConfigError(
            f"environment {chosen!r} is not defined in {v.doc.name}"
            if isinstance(chosen, str) and len(chosen) <= 64 and chosen.isprintable()
            else f"environment {_got(chosen)} is not defined in {v.doc.name}",
            hint=f"choose one of: {', '.join(v.envs)}",
        )
    return chosen


def load_settings(path: Path | None = None, env: str | None = None, state_dir: Path | None = None) -> Settings:
    """The chosen environment's settings, after validating exactly what `config check` validates: every
    command accepts or refuses the same file, before anything is created."""
    return _check(path, env, state_dir)[0]


def check_config(path: Path | None = None, env: str | None = None, state_dir: Path | None = None) -> CheckReport:
    """The whole file, every environment, every pipeline they name (resolved and read), and port clashes;
    all problems at once (ConfigError.problems)."""
    from releasectl.config_extra import CheckReport

    settings, environments, refs = _check(path, env, state_dir)
    return CheckReport(settings=settings, environments=environments, pipelines=refs)


def _check(path: Path | None, env: str | None, state_dir: Path | None) -> tuple[Settings, tuple[str, ...], dict[str, str]]:
    """check_config's work: (the chosen environment's settings, every environment, pipeline reference -> file)."""
    path = (path or find_config()).resolve()
    doc = _read_config(path)
    problems = Problems()
    validated = _validate(doc, path, problems)
    pipelines: dict[str, str] = {}
    if validated is not None:
        check = _Checker(doc, problems)
        for values in validated.envs.values():
            ref = values.sections["rollout"].get("pipeline", RolloutSettings.pipeline)
            most = values.sections["rollout"].get("max_count", DEFAULT_MAX_COUNT)
            key = f"{ref}\0{most}"
            if key in pipelines:
                continue
            try:
                file = resolve_pipeline(ref, path.parent)
                pipelines[key] = str(file)
                parse_pipeline(file, max_count=most)
            except ConfigError as exc:
                if exc.location is None:  # not found: point at the key that names it
                    check.add(values.pipeline_path, exc.message, hint=exc.hint)
                else:
                    problems.extend(exc)
    problems.raise_if_any()
    assert validated is not None
    settings = _settings(validated, _chosen_env(validated, env), state_dir)
    refs = {k.split("\0")[0]: f for k, f in pipelines.items()}
    return settings, tuple(validated.envs), refs


# ---- pipelines ----------------------------------------------------------------------------------------

STEP_KEYS: dict[str, dict[str, Parser]] = {
    "launch": {"count": positive_int},  # and at most rollout.max_count
    "weight": {"percent": parse_percent, "hold": long_wait},
    "pause": {"duration": long_wait},
    "analyze": {"duration": duration(0.001, WEEK), "max_error_rate": parse_rate, "max_p95": duration(0.001, HOUR),
                "min_requests": integer(0, 10**9), "inconclusive": one_of("extend", "fail", "pass")},
    "retire": {"drain_timeout": long_wait, "keep_previous": long_wait},
}
REQUIRED_STEP_KEYS = {"weight": ("percent",), "analyze": ("duration", "max_error_rate")}
MAX_STEPS = 100


def builtin_pipelines() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for folder in _builtin_dirs():
        for file in sorted(folder.glob("*.yaml")):
            found.setdefault(file.stem, file)
    return found


def _builtin_dirs() -> list[Path]:
    """The wheel's releasectl.pipelines_builtin folder (found, not imported: importlib.resources costs more
    start-up CPU than reading the files), then the source tree's pipelines/."""
    from importlib.util import find_spec

    dirs = []
    try:
        spec = find_spec("releasectl.pipelines_builtin")
    except (ImportError, ValueError):
        spec = None
    for location in (spec.submodule_search_locations or []) if spec is not None else []:
        if Path(location).is_dir():
            dirs.append(Path(location))
    dirs.extend(d for d in BUILTIN_PIPELINE_DIRS if d.is_dir())
    return dirs


def resolve_pipeline(name_or_path: str, config_dir: Path | None = None) -> Path:
    """A built-in pipeline's file by name, or a YAML file by path (relative to the cwd, then the config's folder)."""
    if not isinstance(name_or_path, str) or not name_or_path or "\x00" in name_or_path or len(name_or_path) > 1024:
        raise ConfigError(f"pipeline {_got(name_or_path)} is not a pipeline name or path")
    looks_like_path = name_or_path.endswith((".yaml", ".yml")) or "/" in name_or_path
    if looks_like_path:
        file = Path(name_or_path)
        try:
            if not file.is_absolute() and config_dir is not None and not file.exists():
                file = config_dir / file
            found = file.is_file()
        except OSError:  # a name too long for the file system, a loop of links
            found = False
        if not found:
            raise ConfigError(f"pipeline file {_got(name_or_path)} not found",
                              hint="a path is relative to the current folder or to releasectl.yaml's folder")
        return file
    known = builtin_pipelines()
    if name_or_path not in known:
        raise ConfigError(
            f"unknown pipeline {name_or_path!r}" if len(name_or_path) <= 64 else f"unknown pipeline {_got(name_or_path)}",
            hint=f"built-in pipelines: {', '.join(sorted(known))}; or pass a path to a YAML file",
        )
    return known[name_or_path]


def load_pipeline(name_or_path: str, config_dir: Path | None = None, *, max_count: int = DEFAULT_MAX_COUNT) -> Pipeline:
    """A built-in pipeline by name, or a YAML file by path (relative to the config's folder)."""
    return parse_pipeline(resolve_pipeline(name_or_path, config_dir), max_count=max_count)


def configured_pipeline(path: Path | None = None, env: str | None = None, state_dir: Path | None = None) -> tuple[Pipeline, str] | None:
    """(the pipeline `rollout` uses in the chosen environment, that environment), or None when there is no
    releasectl.yaml to say (an invalid one is an error, as for every command)."""
    if path is None:
        try:
            path = find_config()
        except ConfigError:
            return None
    settings = load_settings(path, env, state_dir)
    return load_pipeline(settings.rollout.pipeline, settings.config_dir, max_count=settings.rollout.max_count), settings.env


def parse_pipeline(file: Path, *, max_count: int = DEFAULT_MAX_COUNT) -> Pipeline:
    """A pipeline file, every problem reported at once (ConfigError.problems)."""
    doc = safe_yaml.load(file)
    problems = Problems()
    pipeline = _pipeline(doc, file, max_count, _Checker(doc, problems))
    problems.raise_if_any()
    assert pipeline is not None
    return pipeline


def _pipeline(doc: YamlDoc, file: Path, max_count: int, check: _Checker) -> Pipeline | None:
    data = doc.data
    if not isinstance(data, dict):
        check.add("", "expected a mapping with `name` and `steps`")
        return None
    for key in data:
        if key not in ("name", "description", "steps"):
            check.add(key, "unknown key", hint="known keys: name, description, steps")
    name = check.value("name", data["name"], text(64)) if "name" in data else CONTROL_CHARACTERS.sub("", file.stem)[:64] or "pipeline"
    description = data.get("description", "")
    if not isinstance(description, str) or len(description) > 4096 or re.search(r"[\x00-\x08\x0b-\x1f\x7f]", description):
        check.add("description", f"expected text of at most 4096 characters, got {_got(description)}")
    steps_data = data.get("steps")
    if not isinstance(steps_data, list) or not steps_data or len(steps_data) > MAX_STEPS:
        check.add("steps", f"expected a non-empty list of at most {MAX_STEPS} steps")
        return None
    steps: list[Step] = []
    broken = len(check.problems.items)
    for i, item in enumerate(steps_data):
        path = f"steps[{i}]"
        if not isinstance(item, dict) or len(item) != 1:
            check.add(path, f"expected one step like `- weight: {{percent: 10}}`; kinds: {', '.join(STEP_TYPES)}")
            continue
        ((kind, body),) = item.items()
        if kind not in STEP_KEYS:
            check.add(f"{path}.{kind}", "unknown step kind", hint=_did_you_mean(kind, STEP_KEYS))
            continue
        before = len(check.problems.items)
        values = check.section(body, f"{path}.{kind}", STEP_KEYS[kind])
        for required in REQUIRED_STEP_KEYS.get(kind, ()):
            if required not in values and not (isinstance(body, dict) and required in body):
                check.add(f"{path}.{kind}", f"required key `{required}` missing")
        if kind == "launch" and values.get("count", 1) > max_count:
            check.add(f"{path}.launch.count", f"{values['count']} is more than rollout.max_count ({max_count})",
                      hint="lower it, or raise rollout.max_count if you really mean that many instances")
        if len(check.problems.items) == before:
            steps.append(_make_step(kind, values))
    if len(check.problems.items) > broken or name is _BAD:
        return None
    if not _check_order(check, steps):
        return None
    return Pipeline(name=name, description=description, steps=tuple(steps), source=str(file))


def _make_step(kind: str, values: dict[str, Any]) -> Step:
    if kind == "launch":
        return Launch(**values)
    if kind == "weight":
        return SetWeight(**values)
    if kind == "pause":
        return Pause(**values)
    if kind == "analyze":
        values = dict(values)
        p95 = values.pop("max_p95", None)
        return Analyze(max_p95_ms=None if p95 is None else p95 * 1000.0, **values)
    return Retire(**values)


def _check_order(check: _Checker, steps: list[Step]) -> bool:
    """A pipeline must launch first, reach 100 % and retire last; otherwise it can never finish."""
    before = len(check.problems.items)
    if not isinstance(steps[0], Launch):
        check.add("steps[0]", "the first step must be `launch`")
    if sum(isinstance(s, Launch) for s in steps) != 1:
        check.add("steps", "expected exactly one `launch` step")
    weights = [s.percent for s in steps if isinstance(s, SetWeight)]
    if not weights or weights[-1] != 100:
        check.add("steps", "the last `weight` step must send 100% of traffic to the new version")
    if not isinstance(steps[-1], Retire):
        check.add(f"steps[{len(steps) - 1}]", "the last step must be `retire`")
    if sum(isinstance(s, Retire) for s in steps) != 1:
        check.add("steps", "expected exactly one `retire` step")
    return len(check.problems.items) == before


_EXTRA = frozenset({"Webhook", "RegionSettings", "CheckReport"})


def __getattr__(name: str) -> Any:
    """The settings types of config_extra.py, on first use (not on `status`'s path)."""
    if name in _EXTRA:
        from releasectl import config_extra

        return getattr(config_extra, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
