"""Where the OpenStack credentials come from: clouds.yaml, secure.yaml, OS_* variables and the OS keyring.

The rules are python-openstackclient's (openstacksdk's `openstack/config/loader.py` plus the argparse
defaults that keystoneauth and osc-lib take from OS_* variables), without the rewriting machinery:

1. clouds.yaml: `OS_CLIENT_CONFIG_FILE` (which must exist), else `./clouds.{yaml,yml,json}`, the user config
   folder (`$XDG_CONFIG_HOME/openstack` or `~/.config/openstack`; `~/Library/Application Support/openstack`
   on macOS) and `/etc/openstack`. The first file found wins.
2. `secure.yaml` is searched in the same places (`OS_CLIENT_SECURE_FILE` first) and deep-merged over it.
3. If non-selector `OS_*` variables are set, they make an extra cloud named `envvars` (`OS_CLOUD_NAME`
   renames it; a file cloud of that name is an error, as in openstacksdk).
4. The cloud: `--os-cloud`, else `OS_CLOUD`, else `openstack.cloud` from releasectl.yaml, else `envvars`
   when it exists, else the only cloud of the files.
5. The OS_* variables overlay the chosen cloud as `openstack --os-cloud NAME` does: OS_AUTH_TYPE beats the
   cloud's auth_type; the auth variables of that auth type (OS_AUTH_URL, OS_USERNAME, OS_PASSWORD,
   OS_PROJECT_NAME, ..., or OS_APPLICATION_CREDENTIAL_ID/NAME/SECRET) beat the cloud's `auth:` values; the
   variables of the other auth type are ignored; OS_REGION_NAME, OS_INTERFACE and OS_CACERT beat the cloud
   and releasectl.yaml; OS_DEFAULT_DOMAIN (default `default`) fills a missing user or project domain.
   OS_INSECURE only counts in the `envvars` cloud (the openstack CLI has no variable for --insecure).
6. A password or application-credential secret found nowhere above comes from the OS keyring (service
   `releasectl`, username `<cloud>:password` or `<cloud>:application_credential_secret`), where
   `releasectl login` puts it.

TLS never fails open: `verify` (and the legacy `insecure`, and `OS_INSECURE`) must be a boolean (true/false,
yes/no, on/off, 1/0); anything else, a CA path included, is a ConfigError rather than "verification off".
`verify: false` beats `cacert`, as in openstacksdk; a `cacert` that would be used must be a readable file.

Secrets never appear in `repr`, in messages or in logs. A clouds.yaml or secure.yaml that holds a secret and
that the group or others can read gets a warning (as ssh does for a private key), once per file and process.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from releasectl.errors import ConfigError, CredentialsError, UsageError

log = logging.getLogger("releasectl.providers.openstack.credentials")

KEYRING_SERVICE = "releasectl"
SECRET_KINDS = ("password", "application_credential_secret")
CONFIG_NAMES = ("clouds.yaml", "clouds.yml", "clouds.json")
SECURE_NAMES = ("secure.yaml", "secure.yml", "secure.json")
# OS_* variables that only select a cloud or a file: they never create the `envvars` cloud.
SELECTOR_VARS = {"OS_CLOUD", "OS_REGION_NAME", "OS_CLIENT_CONFIG_FILE", "OS_CLIENT_SECURE_FILE", "OS_CLOUD_NAME"}
# OS_<NAME> -> auth key (everything else lands at the top level of the cloud, lower-cased)
AUTH_VARS = {
    "AUTH_URL": "auth_url",
    "USERNAME": "username",
    "USER_ID": "user_id",
    "PASSWORD": "password",
    "USER_DOMAIN_NAME": "user_domain_name",
    "USER_DOMAIN_ID": "user_domain_id",
    "PROJECT_NAME": "project_name",
    "PROJECT_ID": "project_id",
    "TENANT_NAME": "project_name",
    "TENANT_ID": "project_id",
    "PROJECT_DOMAIN_NAME": "project_domain_name",
    "PROJECT_DOMAIN_ID": "project_domain_id",
    "DOMAIN_NAME": "domain_name",
    "DOMAIN_ID": "domain_id",
    "APPLICATION_CREDENTIAL_ID": "application_credential_id",
    "APPLICATION_CREDENTIAL_NAME": "application_credential_name",
    "APPLICATION_CREDENTIAL_SECRET": "application_credential_secret",
}
# openstacksdk leaves these prefixes out of the `envvars` cloud (CI and oslotest variables)
IGNORED_PREFIXES = ("OS_TEST", "OS_STD", "OS_LOG")
# The auth variables that overlay a named cloud: osc-lib registers `--os-<option>` (default: $OS_<OPTION>, then
# the deprecated names) and openstacksdk hands the chosen auth plugin only the options it has.
COMMON_AUTH_VARS = {
    "auth_url": ("OS_AUTH_URL",),
    "user_id": ("OS_USER_ID",),
    "username": ("OS_USERNAME", "OS_USER_NAME"),
    "user_domain_id": ("OS_USER_DOMAIN_ID",),
    "user_domain_name": ("OS_USER_DOMAIN_NAME",),
    "domain_id": ("OS_DOMAIN_ID",),
    "domain_name": ("OS_DOMAIN_NAME",),
    "project_id": ("OS_PROJECT_ID", "OS_TENANT_ID"),
    "project_name": ("OS_PROJECT_NAME", "OS_TENANT_NAME"),
    "project_domain_id": ("OS_PROJECT_DOMAIN_ID",),
    "project_domain_name": ("OS_PROJECT_DOMAIN_NAME",),
}
PLUGIN_AUTH_VARS = {
    "password": {"password": ("OS_PASSWORD",)},
    "v3applicationcredential": {
        "application_credential_id": ("OS_APPLICATION_CREDENTIAL_ID",),
        "application_credential_name": ("OS_APPLICATION_CREDENTIAL_NAME",),
        "application_credential_secret": ("OS_APPLICATION_CREDENTIAL_SECRET",),
    },
}
# osc-lib's global options with an OS_* default: they beat the cloud's value (and releasectl.yaml's)
GLOBAL_VARS = {"region_name": "OS_REGION_NAME", "interface": "OS_INTERFACE", "cacert": "OS_CACERT"}
PASSWORD = "password"
APP_CREDENTIAL = "v3applicationcredential"
AUTH_TYPES = {
    "password": PASSWORD,
    "v3password": PASSWORD,
    "v3applicationcredential": APP_CREDENTIAL,
    "applicationcredential": APP_CREDENTIAL,
    "application_credential": APP_CREDENTIAL,
}


@dataclass(frozen=True)
class Credentials:
    """One resolved cloud. `password` and `application_credential_secret` never show in repr."""

    cloud: str
    auth_url: str
    auth_type: str  # PASSWORD or APP_CREDENTIAL
    source: str  # where the cloud came from, for messages
    username: str | None = None
    user_id: str | None = None
    user_domain_name: str | None = None
    user_domain_id: str | None = None
    project_name: str | None = None
    project_id: str | None = None
    project_domain_name: str | None = None
    project_domain_id: str | None = None
    application_credential_id: str | None = None
    application_credential_name: str | None = None
    region: str | None = None
    interface: str = "public"
    verify: bool | str = True  # False, True or a CA bundle path (requests' `verify`)
    endpoint_overrides: Mapping[str, str] = field(default_factory=dict)  # service type -> URL
    api_timeout: float | None = None
    password: str | None = field(default=None, repr=False)
    application_credential_secret: str | None = field(default=None, repr=False)
    secret_source: str = ""  # "clouds.yaml", "secure.yaml", "OS_PASSWORD" (a variable's name), "keyring", "login"
    chosen_by: str = ""  # what picked the cloud: "--os-cloud", "OS_CLOUD", "releasectl.yaml", ...
    files: tuple[str, ...] = ()  # the clouds.yaml and secure.yaml read
    overlay: tuple[str, ...] = ()  # OS_* variables laid over a named cloud (names only)
    ignored: tuple[str, ...] = ()  # OS_* variables that do not apply to this cloud's auth type

    def __repr__(self) -> str:
        secret = self.password if self.auth_type == PASSWORD else self.application_credential_secret
        return (
            f"Credentials(cloud={self.cloud!r}, auth_url={self.auth_url!r}, auth_type={self.auth_type!r}, "
            f"user={self.user_label!r}, project={self.project_label!r}, region={self.region!r}, "
            f"interface={self.interface!r}, verify={self.verify!r}, "
            f"secret={'***' if secret else None!r}, secret_source={self.secret_source!r})"
        )

    __str__ = __repr__

    def describe(self) -> dict[str, Any]:
        """Which cloud, why, from which files and where the secret came from: for `-v` and `config check`.
        Names only, never a secret."""
        return {
            "cloud": self.cloud,
            "chosen_by": self.chosen_by,
            "files": list(self.files),
            "environment": list(self.overlay),
            "ignored_environment": list(self.ignored),
            "auth_type": self.auth_type,
            "auth_url": self.auth_url,
            "user": self.user_label,
            "project": self.project_label,
            "region": self.region,
            "interface": self.interface,
            "secret_source": self.secret_source,
        }

    def summary(self) -> str:
        """One line for `-v` and `config check`: the cloud, why, the files and the secret's source."""
        files = ", ".join(self.files) or "no clouds.yaml"
        env = f"; OS_* applied: {', '.join(self.overlay)}" if self.overlay else ""
        ignored = f"; ignored: {', '.join(self.ignored)}" if self.ignored else ""
        secret = "password" if self.auth_type == PASSWORD else "application credential secret"
        return (f"cloud {self.cloud!r} (chosen by {self.chosen_by}; read {files}{env}{ignored}); "
                f"{secret} from {self.secret_source}")

    @property
    def user_label(self) -> str:
        if self.auth_type == APP_CREDENTIAL:
            return f"application credential {self.application_credential_id or self.application_credential_name}"
        return self.user_id or self.username or "?"

    @property
    def project_label(self) -> str:
        return self.project_id or self.project_name or ""

    @property
    def identity_url(self) -> str:
        """The Keystone v3 root: `/v3` appended unless the auth URL already ends with it."""
        url = self.auth_url.rstrip("/")
        return url if url.endswith("/v3") else url + "/v3"


# ---- the keyring (`releasectl login`) --------------------------------------------------------------------


def _keyring():
    import keyring  # imported lazily: its backend discovery is slow and only `login` and fallbacks need it

    return keyring


def keyring_username(cloud: str, kind: str) -> str:
    return f"{cloud}:{kind}"


def store_secret(cloud: str | None, kind: str, secret: str) -> str:
    """Put a password or application-credential secret in the OS keyring; say where, never what."""
    if kind not in SECRET_KINDS:
        raise UsageError(f"unknown secret kind {kind!r}", hint=f"one of: {', '.join(SECRET_KINDS)}")
    if not secret:
        raise UsageError(f"an empty {kind.replace('_', ' ')} was given: nothing stored")
    name = cloud or default_cloud_name()
    keyring = _keyring()
    from keyring.errors import KeyringError

    try:
        keyring.set_password(KEYRING_SERVICE, keyring_username(name, kind), secret)
    except KeyringError as exc:  # includes NoKeyringError (no usable backend)
        raise UsageError(
            f"the OS keyring cannot store secrets here: {type(exc).__name__}",
            hint=f"put `{kind}` under `clouds: {name}: auth:` in secure.yaml (mode 0600) instead",
        ) from None
    backend = type(keyring.get_keyring()).__name__
    return f"the OS keyring ({backend}), service {KEYRING_SERVICE!r}, user {keyring_username(name, kind)!r}"


def lookup_secret(cloud: str, kind: str) -> str | None:
    """The secret `releasectl login` stored for this cloud, or None (also when no keyring works here)."""
    try:
        keyring = _keyring()
        from keyring.errors import KeyringError

        try:
            return keyring.get_password(KEYRING_SERVICE, keyring_username(cloud, kind))
        except KeyringError:
            return None
    except ImportError:
        return None


# ---- files ---------------------------------------------------------------------------------------------


def _config_dirs(env: Mapping[str, str], cwd: Path, home: Path) -> list[Path]:
    dirs = [cwd]
    if sys.platform == "darwin":
        dirs.append(home / "Library" / "Application Support" / "openstack")
    xdg = env.get("XDG_CONFIG_HOME")
    dirs.append(Path(xdg) / "openstack" if xdg else home / ".config" / "openstack")
    dirs.append(Path("/etc/openstack"))
    return dirs


def find_file(names: tuple[str, ...], override: str | None, env: Mapping[str, str], cwd: Path, home: Path) -> Path | None:
    """The first file found. A file named by OS_CLIENT_CONFIG_FILE / OS_CLIENT_SECURE_FILE must exist:
    openstacksdk would quietly fall back to the other places, which hides a typo."""
    if override:
        path = Path(override).expanduser()
        if path.is_file():
            return path
        var = "OS_CLIENT_CONFIG_FILE" if names[0].startswith("clouds") else "OS_CLIENT_SECURE_FILE"
        raise ConfigError(f"{override}: no such file (named by {var})")
    for folder in _config_dirs(env, cwd, home):
        for name in names:
            if (folder / name).is_file():
                return folder / name
    return None


def _read(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ConfigError(f"{where}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with a `clouds:` key")
    clouds = data.get("clouds", {})
    if not isinstance(clouds, dict):
        raise ConfigError(f"{path}: `clouds:` must be a mapping of cloud names")
    return clouds


_warned: set[str] = set()
SECRET_FIELDS = ("password", "application_credential_secret", "token")


def _holds_secret(clouds: Mapping[str, Any]) -> bool:
    for cloud in clouds.values():
        auth = cloud.get("auth") if isinstance(cloud, Mapping) else None
        if isinstance(auth, Mapping) and any(auth.get(k) for k in SECRET_FIELDS):
            return True
    return False


def warn_if_readable(path: Path, clouds: Mapping[str, Any]) -> None:
    """Warn (once per file) when a file holding a secret can be read by the group or by others."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return
    key = str(path.resolve())
    if mode & 0o077 and key not in _warned and _holds_secret(clouds):
        _warned.add(key)
        log.warning(
            "%s holds a secret and its permissions %04o let others read it: run `chmod 600 %s`", path, mode, path
        )


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _env_cloud(env: Mapping[str, str]) -> dict[str, Any] | None:
    names = [k for k in env if k.startswith("OS_") and k not in SELECTOR_VARS and env[k] != ""
             and not k.startswith(IGNORED_PREFIXES)]
    if not names:
        return None
    cloud: dict[str, Any] = {"auth": {}}
    for var in names:
        key = var[3:]
        if key in AUTH_VARS:
            cloud["auth"][AUTH_VARS[key]] = env[var]
        elif key == "ENDPOINT_TYPE":
            cloud.setdefault("interface", env[var])
        else:
            cloud[key.lower()] = env[var]
    if env.get("OS_REGION_NAME"):
        cloud["region_name"] = env["OS_REGION_NAME"]
    return cloud


@dataclass(frozen=True)
class CloudFiles:
    clouds: dict[str, Any]
    config_path: Path | None
    secure_clouds: dict[str, Any]
    secure_path: Path | None
    envvars_name: str
    from_env: bool  # the `envvars` cloud was built from OS_* variables


def read_files(env: Mapping[str, str] | None = None, cwd: Path | None = None, home: Path | None = None) -> CloudFiles:
    env = os.environ if env is None else env
    cwd = Path.cwd() if cwd is None else cwd
    home = Path.home() if home is None else home
    config_path = find_file(CONFIG_NAMES, env.get("OS_CLIENT_CONFIG_FILE"), env, cwd, home)
    secure_path = find_file(SECURE_NAMES, env.get("OS_CLIENT_SECURE_FILE"), env, cwd, home)
    clouds = _read(config_path) if config_path else {}
    secure = _read(secure_path) if secure_path else {}
    for path, found in ((config_path, clouds), (secure_path, secure)):
        if path is not None:
            warn_if_readable(path, found)
    envvars_name = env.get("OS_CLOUD_NAME") or "envvars"
    env_cloud = _env_cloud(env)
    if env_cloud is not None:
        if envvars_name in clouds:
            raise ConfigError(
                f"{config_path} defines a cloud named {envvars_name!r}, the name of the cloud the OS_* variables make",
                hint="rename that cloud, or set OS_CLOUD_NAME to another name for the OS_* cloud",
            )
        clouds = {**clouds, envvars_name: env_cloud}
    return CloudFiles(clouds, config_path, secure, secure_path, envvars_name, env_cloud is not None)


def _choose(files: CloudFiles, cloud: str | None, env: Mapping[str, str], os_cloud: str | None = None) -> tuple[str, str]:
    """(cloud name, what chose it): --os-cloud, then OS_CLOUD (the openstack CLI's order), then releasectl.yaml,
    then the `envvars` cloud, then the only cloud of the files."""
    if os_cloud:
        return os_cloud, "--os-cloud"
    if env.get("OS_CLOUD"):
        return env["OS_CLOUD"], "OS_CLOUD"
    if cloud:
        return cloud, "openstack.cloud in releasectl.yaml"
    if files.envvars_name in files.clouds:
        return files.envvars_name, "OS_* variables (no cloud named)"
    names = sorted(set(files.clouds) | set(files.secure_clouds))
    if len(names) == 1:
        return names[0], "the only cloud in clouds.yaml"
    if not names:
        raise ConfigError(
            "no OpenStack credentials: no clouds.yaml was found and no OS_* variables are set",
            hint="write ~/.config/openstack/clouds.yaml (or source an openrc file) and set openstack.cloud",
        )
    raise ConfigError(
        f"clouds.yaml has several clouds ({', '.join(names)}) and none is chosen",
        hint="pass --os-cloud NAME, set OS_CLOUD, or set openstack.cloud in releasectl.yaml",
    )


def default_cloud_name(env: Mapping[str, str] | None = None, cwd: Path | None = None, home: Path | None = None) -> str:
    """The cloud releasectl would use without `openstack.cloud` (for `releasectl login` without --cloud)."""
    env = os.environ if env is None else env
    try:
        return _choose(read_files(env, cwd, home), None, env)[0]
    except ConfigError:
        return env.get("OS_CLOUD") or "envvars"


TRUE_WORDS = ("true", "yes", "on", "1")
FALSE_WORDS = ("false", "no", "off", "0")


def _flag(value: Any, key: str, where: str) -> bool:
    """A TLS switch: a boolean, or a word that plainly says one. Anything else is refused, never read as
    "off": `verify: /etc/ssl/ca.pem` is a CA path in the wrong key, not a request to stop verifying."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in TRUE_WORDS:
        return True
    if text in FALSE_WORDS:
        return False
    raise ConfigError(
        f"{where}: {key}: {str(value)[:100]!r} is not true or false",
        hint="a CA bundle goes in `cacert: PATH`; TLS stays verified unless verify is false (or insecure true)",
    )


def _ca_file(value: Any, where: str, base: Path | None = None) -> str:
    path = Path(str(value)).expanduser()
    if base is not None and not path.is_absolute():
        path = base / path
    if not path.is_file():
        raise ConfigError(f"{where}: cacert {str(path)!r}: no such file", hint="point cacert at the CA bundle (PEM) of the cloud")
    if not os.access(path, os.R_OK):
        raise ConfigError(f"{where}: cacert {str(path)!r}: not readable")
    return str(path)


def tls_verify(data: Mapping[str, Any], *, where: str, cacert: str | None, insecure: bool | None, config_dir: Path | None,
               env_cacert: str | None = None) -> bool | str:
    """requests' `verify` for this cloud: True, False, or a CA bundle path (openstacksdk's rules, strictly).
    releasectl.yaml's `openstack.insecure` turns verification off; otherwise OS_CACERT, then releasectl.yaml's
    `openstack.cacert` (relative to its folder), win over the cloud's `verify`/`cacert`: a CA given outside
    clouds.yaml always means "verify with it"."""
    verify = True
    if data.get("verify") is not None:
        verify = _flag(data["verify"], "verify", where)
    elif data.get("insecure") is not None:
        verify = not _flag(data["insecure"], "insecure", where)
    if insecure:
        return False
    if env_cacert:
        return _ca_file(env_cacert, "OS_CACERT")
    if cacert:
        return _ca_file(cacert, "openstack.cacert in releasectl.yaml", config_dir)
    if verify and data.get("cacert"):
        return _ca_file(data["cacert"], where)
    return verify


def _normalise(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Dashes to underscores, `tenant_*` to `project_*`, a lone domain to both domains."""
    cloud = {str(k).replace("-", "_"): v for k, v in raw.items()}
    auth = {str(k).replace("-", "_"): v for k, v in dict(cloud.get("auth") or {}).items()}
    for old, new in (("tenant_name", "project_name"), ("tenant_id", "project_id")):
        if old in auth and new not in auth:
            auth[new] = auth.pop(old)
    for kind in ("name", "id"):
        lone = auth.pop(f"domain_{kind}", None)
        if lone:
            auth.setdefault(f"user_domain_{kind}", lone)
            auth.setdefault(f"project_domain_{kind}", lone)
    cloud["auth"] = auth
    for key in list(cloud):
        if key.endswith("_endpoint_type") or key == "endpoint_type":
            cloud.setdefault("interface", cloud.pop(key))
    return cloud


def _first_env(env: Mapping[str, str], names: tuple[str, ...]) -> tuple[str, str] | None:
    """(variable, value) of the first non-empty one, as keystoneauth's `argparse_default` picks it."""
    return next(((n, env[n]) for n in names if env.get(n)), None)


def _auth_type(data: Mapping[str, Any], env: Mapping[str, str], name: str) -> str:
    """OS_AUTH_TYPE (or OS_AUTH_PLUGIN) beats the cloud's auth_type, as keystoneauth's --os-auth-type default
    does; with neither, an application credential id or name in the cloud or the variables means that type."""
    auth = data["auth"]
    raw = env.get("OS_AUTH_TYPE") or env.get("OS_AUTH_PLUGIN") or data.get("auth_type")
    raw_type = str(raw or "").lower().replace("-", "")
    if not raw_type:
        appcred = auth.get("application_credential_id") or auth.get("application_credential_name") or (
            not (auth.get("username") or auth.get("user_id"))
            and (env.get("OS_APPLICATION_CREDENTIAL_ID") or env.get("OS_APPLICATION_CREDENTIAL_NAME")))
        raw_type = "v3applicationcredential" if appcred else "password"
    auth_type = AUTH_TYPES.get(raw_type)
    if auth_type is None:
        raise ConfigError(
            f"cloud {name!r}: auth_type {str(raw)[:100]!r} is not supported",
            hint="use password or v3applicationcredential",
        )
    return auth_type


def _overlay(data: dict[str, Any], env: Mapping[str, str], auth_type: str) -> tuple[list[str], list[str]]:
    """Lay the OS_* variables over the chosen cloud, in place: (variables used, variables ignored because they
    belong to the other auth type). A set variable beats the cloud's value, as `openstack --os-cloud` does."""
    used: list[str] = []
    auth = data["auth"]
    plugin = {**COMMON_AUTH_VARS, **PLUGIN_AUTH_VARS[auth_type]}
    for key, names in plugin.items():
        found = _first_env(env, names)
        if found:
            used.append(found[0])
            auth[key] = found[1]
    used += [var for var in GLOBAL_VARS.values() if env.get(var)]  # applied where region, interface, TLS are chosen
    if env.get("OS_AUTH_TYPE") or env.get("OS_AUTH_PLUGIN"):
        used.append("OS_AUTH_TYPE" if env.get("OS_AUTH_TYPE") else "OS_AUTH_PLUGIN")
    other = [v for t, opts in PLUGIN_AUTH_VARS.items() if t != auth_type for names in opts.values() for v in names]
    return used, [v for v in other if env.get(v)]


def _regions(data: Mapping[str, Any]) -> list[str]:
    """The regions a cloud declares (`regions:` names, else `region_name`), as openstacksdk reads them."""
    if isinstance(data.get("regions"), list):
        return [str(r.get("name")) if isinstance(r, dict) else str(r) for r in data["regions"]]
    if data.get("region_name"):
        return [str(r).strip() for r in str(data["region_name"]).split(",") if str(r).strip()]
    return []


def _default_domain(auth: dict[str, Any], env: Mapping[str, str], auth_type: str) -> None:
    """osc-lib's `_auth_default_domain`: password auth without a user or project domain gets the domain id
    OS_DEFAULT_DOMAIN (default `default`)."""
    if auth_type != PASSWORD:
        return
    default = env.get("OS_DEFAULT_DOMAIN") or "default"
    for who in ("user", "project"):
        if not (auth.get(f"{who}_domain_id") or auth.get(f"{who}_domain_name")):
            auth[f"{who}_domain_id"] = default


def load_credentials(
    cloud: str | None = None,
    *,
    os_cloud: str | None = None,
    region: str | None = None,
    interface: str | None = None,
    cacert: str | None = None,
    insecure: bool | None = None,
    config_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    home: Path | None = None,
    use_keyring: bool = True,
    secret: str | None = None,
) -> Credentials:
    """Resolve one cloud. `cloud`: releasectl.yaml's openstack.cloud; `os_cloud`: the --os-cloud option.
    Precedence, highest first: --os-cloud, OS_* variables, releasectl.yaml (cloud, region, interface, cacert,
    insecure), secure.yaml, clouds.yaml, the keyring (secret only). `secret`: one given by `releasectl login`,
    used instead of everything else so it can be checked with Keystone before it is stored."""
    env = os.environ if env is None else env
    files = read_files(env, cwd, home)
    name, chosen_by = _choose(files, cloud, env, os_cloud)
    if name not in files.clouds and name not in files.secure_clouds:
        known = ", ".join(sorted(files.clouds)) or "none"
        where = files.config_path or "no clouds.yaml found"
        hint = None
        if files.from_env and chosen_by != "OS_CLOUD":
            hint = f"to use the OS_* variables instead, set OS_CLOUD={files.envvars_name}"
        raise ConfigError(f"cloud {name!r} is not defined ({where}; clouds: {known}; named by {chosen_by})", hint=hint)
    if cloud and name != cloud:
        log.warning("openstack: using cloud %r from %s, not %r from releasectl.yaml", name, chosen_by, cloud)
    raw = _merge(dict(files.clouds.get(name) or {}), dict(files.secure_clouds.get(name) or {}))
    from_env = files.from_env and name == files.envvars_name
    source = "OS_* environment variables" if from_env else str(files.config_path or files.secure_path)
    read = tuple(str(p) for p in (files.config_path, files.secure_path) if p is not None)
    data = _normalise(raw)
    file_auth = dict(data["auth"])
    auth_type = _auth_type(data, env, name)
    used, ignored = ([], []) if from_env else _overlay(data, env, auth_type)
    data = _normalise(data)  # an overlaid OS_DOMAIN_NAME fills the domains the cloud left empty
    auth = data["auth"]
    _default_domain(auth, env, auth_type)

    if not auth.get("auth_url"):
        raise ConfigError(f"cloud {name!r} ({source}) has no auth.auth_url")

    secret_key = "password" if auth_type == PASSWORD else "application_credential_secret"
    given, secret = secret, secret or auth.get(secret_key)
    secret_source = ""
    if given:
        secret_source = "login"
    elif secret:
        env_var = next((v for v in PLUGIN_AUTH_VARS[auth_type][secret_key] if env.get(v)), None)
        in_secure = bool(((files.secure_clouds.get(name) or {}).get("auth") or {}).get(secret_key))
        if env_var and (from_env or env_var in used):
            secret_source = env_var
        elif in_secure:
            secret_source = "secure.yaml"
        else:
            secret_source = "clouds.yaml" if file_auth.get(secret_key) else "environment"
    elif use_keyring:
        secret = lookup_secret(name, secret_key)
        secret_source = "keyring" if secret else ""
    if not secret:
        hint = (f"run `releasectl login --cloud {name}`" + (" --application-credential" if auth_type == APP_CREDENTIAL else "")
                + f", set {'OS_PASSWORD' if auth_type == PASSWORD else 'OS_APPLICATION_CREDENTIAL_SECRET'}, or put it in secure.yaml")
        if ignored:
            hint += f" ({', '.join(ignored)} is ignored: cloud {name!r} uses {auth_type} auth)"
        raise CredentialsError(f"no {secret_key.replace('_', ' ')} for cloud {name!r}", hint=hint)

    if auth_type == PASSWORD:
        if not (auth.get("username") or auth.get("user_id")):
            raise ConfigError(f"cloud {name!r} ({source}): password auth needs auth.username or auth.user_id")
        if not (auth.get("project_name") or auth.get("project_id")):
            raise ConfigError(
                f"cloud {name!r} ({source}): password auth needs a project (auth.project_name or auth.project_id)",
                hint="releasectl always asks Keystone for a project-scoped token",
            )
    elif not (auth.get("application_credential_id") or auth.get("application_credential_name")):
        raise ConfigError(f"cloud {name!r}: application-credential auth needs application_credential_id (or _name)")
    elif not auth.get("application_credential_id") and not (auth.get("user_id") or auth.get("username")):
        raise ConfigError(f"cloud {name!r}: an application credential given by name also needs the user")

    # region: OS_REGION_NAME, then releasectl.yaml, then clouds.yaml region_name, then the first of `regions:`
    known = _regions(data)
    if env.get("OS_REGION_NAME") and known and env["OS_REGION_NAME"] not in known:  # loader.py _get_region
        raise ConfigError(
            f"OS_REGION_NAME {env['OS_REGION_NAME'][:100]!r} is not a region of cloud {name!r} (regions: {', '.join(known)})",
            hint="unset OS_REGION_NAME, or add the region to the cloud's `regions:` in clouds.yaml",
        )
    chosen_region = env.get("OS_REGION_NAME") or region or data.get("region_name") or (known[0] if known else None)

    env_cacert = env.get("OS_CACERT")
    verify = tls_verify(data, where=f"cloud {name!r} ({source})", cacert=cacert, insecure=insecure, config_dir=config_dir,
                        env_cacert=env_cacert)

    overrides = {}
    for key, value in data.items():
        if key.endswith("_endpoint_override") and value:
            overrides[key[: -len("_endpoint_override")].replace("_", "-")] = str(value)
    timeout = data.get("api_timeout")
    chosen_interface = env.get("OS_INTERFACE") or interface or data.get("interface") or "public"

    creds = Credentials(
        cloud=name,
        auth_url=str(auth["auth_url"]),
        auth_type=auth_type,
        source=source,
        username=auth.get("username"),
        user_id=auth.get("user_id"),
        user_domain_name=auth.get("user_domain_name"),
        user_domain_id=auth.get("user_domain_id"),
        project_name=auth.get("project_name"),
        project_id=auth.get("project_id"),
        project_domain_name=auth.get("project_domain_name"),
        project_domain_id=auth.get("project_domain_id"),
        application_credential_id=auth.get("application_credential_id"),
        application_credential_name=auth.get("application_credential_name"),
        region=str(chosen_region) if chosen_region else None,
        interface=str(chosen_interface).replace("URL", ""),
        verify=verify,
        endpoint_overrides=overrides,
        api_timeout=float(timeout) if timeout not in (None, "") else None,
        password=secret if auth_type == PASSWORD else None,
        application_credential_secret=secret if auth_type == APP_CREDENTIAL else None,
        secret_source=secret_source,
        chosen_by=chosen_by,
        files=read,
        overlay=tuple(used),
        ignored=tuple(ignored),
    )
    log.info("openstack: %s", creds.summary())
    return creds


def credentials_report(options: Mapping[str, Any], config_dir: Path | None, os_cloud: str | None = None) -> dict[str, Any]:
    """`config check`'s view of the credentials, resolved as a command would (no network): `describe()`,
    or the error and its hint."""
    try:
        return load_credentials(
            options.get("cloud"), os_cloud=os_cloud, region=options.get("region"), interface=options.get("interface"),
            cacert=options.get("cacert"), insecure=options.get("insecure"), config_dir=config_dir,
        ).describe()
    except (ConfigError, CredentialsError, UsageError) as exc:
        return {"error": exc.message, **({"hint": exc.hint} if exc.hint else {})}
