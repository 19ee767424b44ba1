"""Where the OpenStack credentials come from: clouds.yaml, secure.yaml, OS_* variables and the OS keyring.

The search order is openstacksdk's, without its rewriting machinery:

1. `OS_CLIENT_CONFIG_FILE` (which must exist), else `./clouds.{yaml,yml,json}`, the user config folder
   (`$XDG_CONFIG_HOME/openstack` or `~/.config/openstack`; `~/Library/Application Support/openstack` on
   macOS) and `/etc/openstack`. The first file found wins.
2. `secure.yaml` is searched in the same places (`OS_CLIENT_SECURE_FILE` first) and deep-merged over it.
3. If non-selector `OS_*` variables are set, they make an extra cloud named `envvars` (`OS_CLOUD_NAME`
   renames it). Variables are never merged into a named cloud.
4. The cloud is `openstack.cloud` from releasectl.yaml, else `OS_CLOUD`, else `envvars` when it exists,
   else the only cloud of the file.
5. A password or application-credential secret missing from the files comes from the OS keyring
   (service `releasectl`, username `<cloud>:password` or `<cloud>:application_credential_secret`), where
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
    secret_source: str = ""  # "clouds.yaml", "secure.yaml", "environment", "keyring"

    def __repr__(self) -> str:
        secret = self.password if self.auth_type == PASSWORD else self.application_credential_secret
        return (
            f"Credentials(cloud={self.cloud!r}, auth_url={self.auth_url!r}, auth_type={self.auth_type!r}, "
            f"user={self.user_label!r}, project={self.project_label!r}, region={self.region!r}, "
            f"interface={self.interface!r}, verify={self.verify!r}, "
            f"secret={'***' if secret else None!r}, secret_source={self.secret_source!r})"
        )

    __str__ = __repr__

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
    names = [k for k in env if k.startswith("OS_") and k not in SELECTOR_VARS and env[k] != ""]
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
        clouds = {**clouds, envvars_name: env_cloud}
    return CloudFiles(clouds, config_path, secure, secure_path, envvars_name, env_cloud is not None)


def _choose(files: CloudFiles, cloud: str | None, env: Mapping[str, str]) -> str:
    if cloud:
        return cloud
    if env.get("OS_CLOUD"):
        return env["OS_CLOUD"]
    if files.envvars_name in files.clouds:
        return files.envvars_name
    names = sorted(set(files.clouds) | set(files.secure_clouds))
    if len(names) == 1:
        return names[0]
    if not names:
        raise ConfigError(
            "no OpenStack credentials: no clouds.yaml was found and no OS_* variables are set",
            hint="write ~/.config/openstack/clouds.yaml (or source an openrc file) and set openstack.cloud",
        )
    raise ConfigError(
        f"clouds.yaml has several clouds ({', '.join(names)}) and none is chosen",
        hint="set openstack.cloud in releasectl.yaml, or OS_CLOUD",
    )


def default_cloud_name(env: Mapping[str, str] | None = None, cwd: Path | None = None, home: Path | None = None) -> str:
    """The cloud releasectl would use without `openstack.cloud` (for `releasectl login` without --cloud)."""
    env = os.environ if env is None else env
    try:
        return _choose(read_files(env, cwd, home), None, env)
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


def tls_verify(data: Mapping[str, Any], *, where: str, cacert: str | None, insecure: bool | None, config_dir: Path | None) -> bool | str:
    """requests' `verify` for this cloud: True, False, or a CA bundle path (openstacksdk's rules, strictly).
    releasectl.yaml's `openstack.insecure` / `openstack.cacert` (relative to its folder) win over the cloud's."""
    verify = True
    if data.get("verify") is not None:
        verify = _flag(data["verify"], "verify", where)
    elif data.get("insecure") is not None:
        verify = not _flag(data["insecure"], "insecure", where)
    if insecure:
        return False
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


def load_credentials(
    cloud: str | None = None,
    *,
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
    """Resolve one cloud. Options from releasectl.yaml (region, interface, cacert, insecure) win. `secret`:
    one given by `releasectl login`, used instead of the files and the keyring so it can be checked with
    Keystone before it is stored."""
    env = os.environ if env is None else env
    files = read_files(env, cwd, home)
    name = _choose(files, cloud, env)
    if name not in files.clouds and name not in files.secure_clouds:
        known = ", ".join(sorted(files.clouds)) or "none"
        where = files.config_path or "no clouds.yaml found"
        raise ConfigError(f"cloud {name!r} is not defined ({where}; clouds: {known})")
    raw = _merge(dict(files.clouds.get(name) or {}), dict(files.secure_clouds.get(name) or {}))
    from_env = files.from_env and name == files.envvars_name
    source = "OS_* environment variables" if from_env else str(files.config_path or files.secure_path)
    data = _normalise(raw)
    auth = data["auth"]

    if not auth.get("auth_url"):
        raise ConfigError(f"cloud {name!r} ({source}) has no auth.auth_url")
    raw_type = str(data.get("auth_type") or "").lower().replace("-", "")
    if not raw_type:
        raw_type = "v3applicationcredential" if (auth.get("application_credential_id") or auth.get("application_credential_name")) else "password"
    auth_type = AUTH_TYPES.get(raw_type)
    if auth_type is None:
        raise ConfigError(
            f"cloud {name!r}: auth_type {data.get('auth_type')!r} is not supported",
            hint="use password or v3applicationcredential",
        )

    secret_key = "password" if auth_type == PASSWORD else "application_credential_secret"
    given, secret = secret, secret or auth.get(secret_key)
    secret_source = ""
    if given:
        secret_source = "login"
    elif secret:
        in_secure = bool(((files.secure_clouds.get(name) or {}).get("auth") or {}).get(secret_key))
        secret_source = "secure.yaml" if in_secure else ("environment" if from_env else "clouds.yaml")
    elif use_keyring:
        secret = lookup_secret(name, secret_key)
        secret_source = "keyring" if secret else ""
    if not secret:
        raise CredentialsError(
            f"no {secret_key.replace('_', ' ')} for cloud {name!r}",
            hint=f"run `releasectl login --cloud {name}`"
            + (" --application-credential" if auth_type == APP_CREDENTIAL else "")
            + ", or put it in secure.yaml",
        )

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

    # region: releasectl.yaml, then clouds.yaml region_name, then the first of `regions:`
    chosen_region = region or data.get("region_name")
    if not chosen_region and isinstance(data.get("regions"), list) and data["regions"]:
        first = data["regions"][0]
        chosen_region = first.get("name") if isinstance(first, dict) else str(first)

    verify = tls_verify(data, where=f"cloud {name!r} ({source})", cacert=cacert, insecure=insecure, config_dir=config_dir)

    overrides = {}
    for key, value in data.items():
        if key.endswith("_endpoint_override") and value:
            overrides[key[: -len("_endpoint_override")].replace("_", "-")] = str(value)
    timeout = data.get("api_timeout")

    return Credentials(
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
        interface=str(interface or data.get("interface") or "public").replace("URL", ""),
        verify=verify,
        endpoint_overrides=overrides,
        api_timeout=float(timeout) if timeout not in (None, "") else None,
        password=secret if auth_type == PASSWORD else None,
        application_credential_secret=secret if auth_type == APP_CREDENTIAL else None,
        secret_source=secret_source,
    )
