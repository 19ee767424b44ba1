"""Which OpenStack cloud and which values releasectl uses, case by case, next to what the `openstack` CLI
(python-openstackclient = osc-lib + openstacksdk's `openstack/config/loader.py` + keystoneauth's argparse
options) does with the same files and variables. Files only, no network, no keyring of the machine."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keyring
import pytest
import yaml
from keyring.backend import KeyringBackend

from releasectl.errors import ConfigError, CredentialsError
from releasectl.providers.openstack.credentials import APP_CREDENTIAL, PASSWORD, load_credentials

AUTH = {"auth_url": "https://keystone.example/v3", "username": "alice", "project_name": "web",
        "user_domain_name": "Default", "project_domain_name": "Default"}
ENV_AUTH = {"OS_AUTH_URL": "https://env.example/v3", "OS_USERNAME": "envuser", "OS_PASSWORD": "envpw",
            "OS_PROJECT_NAME": "envproj"}
APPCRED = {"auth_type": "v3applicationcredential",
           "auth": {"auth_url": "https://keystone.example/v3", "application_credential_id": "ac-1",
                    "application_credential_secret": "ac-secret"}}
TWO = {"prod": {"auth": {**AUTH, "password": "prod-pw"}, "region_name": "R-prod"},
       "dev": {"auth": {**AUTH, "password": "dev-pw"}, "region_name": "R-dev"}}
NOPW = {"ci": {"auth": AUTH, "region_name": "R1"}}
BARE = {"auth_url": "https://k/v3", "username": "u", "project_name": "p", "password": "pw-secret-3"}  # no domains
NO_DOMAIN = {"c": {"auth": BARE}}


@dataclass(frozen=True)
class Case:
    id: str
    mirrors: str  # the openstack CLI / openstacksdk behaviour this case follows
    clouds: dict[str, Any] | None = None  # ./clouds.yaml
    env: dict[str, str] = field(default_factory=dict)
    kwargs: dict[str, Any] = field(default_factory=dict)  # releasectl.yaml options and --os-cloud
    secure: dict[str, Any] | None = None  # ./secure.yaml
    expect: dict[str, Any] = field(default_factory=dict)  # Credentials attribute -> value
    error: tuple[type, str] | None = None
    keyring: dict[str, str] = field(default_factory=dict)


CASES = [
    Case("os-cloud-option-beats-OS_CLOUD",
         "osc-lib shell.py: --os-cloud has default=$OS_CLOUD, so the option wins over the variable",
         TWO, {"OS_CLOUD": "dev"}, {"os_cloud": "prod"}, expect={"cloud": "prod", "password": "prod-pw", "chosen_by": "--os-cloud"}),
    Case("OS_CLOUD-beats-releasectl-yaml",
         "loader.py: default_cloud = $OS_CLOUD; releasectl.yaml's cloud is only the project's default (issue 10)",
         TWO, {"OS_CLOUD": "dev"}, {"cloud": "prod"}, expect={"cloud": "dev", "password": "dev-pw", "chosen_by": "OS_CLOUD"}),
    Case("os-cloud-option-beats-releasectl-yaml",
         "osc-lib shell.py: --os-cloud names the cloud whatever else is configured",
         TWO, {}, {"cloud": "dev", "os_cloud": "prod"}, expect={"cloud": "prod"}),
    Case("releasectl-yaml-cloud-with-OS-vars-is-overlaid",
         "`openstack --os-cloud prod` with OS_* set: the named cloud, with the variables laid over it",
         TWO, {"OS_PASSWORD": "from-env"}, {"cloud": "prod"},
         expect={"cloud": "prod", "password": "from-env", "secret_source": "OS_PASSWORD", "overlay": ("OS_PASSWORD",)}),
    Case("OS-vars-alone-make-the-envvars-cloud",
         "loader.py: non-selector OS_* make clouds['envvars'], the default when OS_CLOUD is unset",
         TWO, ENV_AUTH, expect={"cloud": "envvars", "username": "envuser", "auth_url": "https://env.example/v3",
                                "chosen_by": "OS_* variables (no cloud named)", "secret_source": "OS_PASSWORD"}),
    Case("OS_CLOUD_NAME-renames-the-envvars-cloud",
         "loader.py: envvar_key = $OS_CLOUD_NAME (default 'envvars')",
         None, {**ENV_AUTH, "OS_CLOUD_NAME": "mine"}, expect={"cloud": "mine"}),
    Case("selector-variables-make-no-cloud",
         "loader.py: only OS_CLOUD/OS_REGION_NAME/OS_CLIENT_*_FILE/OS_CLOUD_NAME set -> no envvars cloud; "
         "a single file cloud is then the default",
         {"ci": {"auth": AUTH}}, {"OS_REGION_NAME": "R9", "OS_PASSWORD": ""}, {"secret": "typed"},
         expect={"cloud": "ci", "region": "R9", "chosen_by": "the only cloud in clouds.yaml"}),
    Case("test-runner-variables-make-no-cloud",
         "loader.py _get_os_environ: OS_TEST*, OS_STD*, OS_LOG* are left out (CI and oslotest variables)",
         NOPW, {"OS_TEST_TIMEOUT": "60", "OS_STDOUT_CAPTURE": "1", "OS_LOG_CAPTURE": "1"}, {"secret": "typed"},
         expect={"cloud": "ci"}),
    Case("OS_CLOUD-plus-OS_PASSWORD-is-the-ci-pattern",
         "keystoneauth: --os-password defaults to $OS_PASSWORD; get_one_cloud_osc lets argparse values beat the cloud",
         NOPW, {"OS_CLOUD": "ci", "OS_PASSWORD": "ci-secret"},
         expect={"cloud": "ci", "password": "ci-secret", "secret_source": "OS_PASSWORD", "region": "R1", "username": "alice"}),
    Case("OS_PASSWORD-beats-clouds-and-secure-yaml",
         "_validate_auth_correctly: a value given outside `auth:` (argparse, from OS_*) wins over auth:",
         {"c": {"auth": {**AUTH, "password": "in-clouds"}}}, {"OS_CLOUD": "c", "OS_PASSWORD": "env-pw"},
         secure={"c": {"auth": {"password": "in-secure"}}}, expect={"password": "env-pw", "secret_source": "OS_PASSWORD"}),
    Case("secure-yaml-is-merged-over-clouds-yaml",
         "loader.py: _util.merge_clouds(clouds.yaml, secure.yaml)",
         NOPW, {"OS_CLOUD": "ci"}, secure={"ci": {"auth": {"password": "from-secure"}}},
         expect={"password": "from-secure", "secret_source": "secure.yaml", "username": "alice"}),
    Case("OS_USERNAME-and-OS_PROJECT_NAME-overlay-auth",
         "keystoneauth password plugin options --os-username/--os-project-name default to their OS_* variables",
         TWO, {"OS_CLOUD": "prod", "OS_USERNAME": "bob", "OS_PROJECT_NAME": "shop"},
         expect={"username": "bob", "project_name": "shop", "password": "prod-pw", "secret_source": "clouds.yaml"}),
    Case("OS_TENANT_NAME-is-the-deprecated-project-name",
         "keystoneauth Opt('project-name', deprecated=[Opt('tenant-name')]): $OS_PROJECT_NAME first, then $OS_TENANT_NAME",
         TWO, {"OS_CLOUD": "prod", "OS_TENANT_NAME": "legacy"}, expect={"project_name": "legacy"}),
    Case("OS_PROJECT_NAME-beats-OS_TENANT_NAME",
         "keystoneauth opts.argparse_default: the first non-empty of the option's own variable, then deprecated ones",
         TWO, {"OS_CLOUD": "prod", "OS_TENANT_NAME": "legacy", "OS_PROJECT_NAME": "new"}, expect={"project_name": "new"}),
    Case("OS_PASSWORD-is-ignored-by-an-application-credential-cloud",
         "loader.py _validate_auth_correctly moves only the chosen plugin's options into auth: v3applicationcredential has no password",
         {"ci": APPCRED}, {"OS_CLOUD": "ci", "OS_PASSWORD": "pw-secret-4"},
         expect={"auth_type": APP_CREDENTIAL, "application_credential_secret": "ac-secret", "password": None,
                 "ignored": ("OS_PASSWORD",)}),
    Case("OS_APPLICATION_CREDENTIAL_SECRET-overlays-an-application-credential-cloud",
         "keystoneauth ApplicationCredential option application_credential_secret defaults to its OS_* variable",
         {"ci": APPCRED}, {"OS_CLOUD": "ci", "OS_APPLICATION_CREDENTIAL_SECRET": "rotated"},
         expect={"application_credential_secret": "rotated", "secret_source": "OS_APPLICATION_CREDENTIAL_SECRET"}),
    Case("OS_APPLICATION_CREDENTIAL_SECRET-is-ignored-by-a-password-cloud",
         "keystoneauth: the password plugin has no application_credential_secret option, so the variable is never used",
         NOPW, {"OS_CLOUD": "ci", "OS_APPLICATION_CREDENTIAL_SECRET": "s"},
         error=(CredentialsError, "no password for cloud 'ci'")),
    Case("OS_AUTH_TYPE-switches-the-auth-plugin",
         "keystoneauth register_argparse_arguments: --os-auth-type defaults to $OS_AUTH_TYPE over the cloud's auth_type",
         NOPW, {"OS_CLOUD": "ci", "OS_AUTH_TYPE": "v3applicationcredential", "OS_APPLICATION_CREDENTIAL_ID": "id9",
                "OS_APPLICATION_CREDENTIAL_SECRET": "s9"},
         expect={"auth_type": APP_CREDENTIAL, "application_credential_id": "id9", "application_credential_secret": "s9"}),
    Case("OS_REGION_NAME-beats-the-cloud-and-releasectl-yaml",
         "osc-lib shell.py: --os-region-name defaults to $OS_REGION_NAME, an argument over the cloud's region_name",
         {"c": {"auth": {**AUTH, "password": "pw-secret-2"}, "regions": ["R-one", "R-env"]}},
         {"OS_CLOUD": "c", "OS_REGION_NAME": "R-env"}, {"region": "R-yaml"}, expect={"region": "R-env"}),
    Case("OS_REGION_NAME-must-be-a-region-of-the-cloud",
         "loader.py _get_region: 'Region X is not a valid region name for cloud C' when the cloud lists regions",
         TWO, {"OS_CLOUD": "prod", "OS_REGION_NAME": "R-env"}, error=(ConfigError, "not a region of cloud 'prod'")),
    Case("the-first-of-regions-is-the-default",
         "loader.py _get_region: no region asked -> the first of the cloud's regions",
         {"c": {"auth": {**AUTH, "password": "pw-secret-2"}, "regions": ["R-one", "R-two"]}}, {"OS_CLOUD": "c"},
         expect={"region": "R-one"}),
    Case("releasectl-yaml-region-beats-clouds-yaml",
         "releasectl.yaml plays the part of a command-line option over clouds.yaml (get_one: args beat the cloud)",
         TWO, {"OS_CLOUD": "prod"}, {"region": "R-yaml"}, expect={"region": "R-yaml"}),
    Case("OS_INTERFACE-beats-the-cloud",
         "osc-lib shell.py: --os-interface defaults to $OS_INTERFACE",
         {"c": {"auth": {**AUTH, "password": "pw-secret-2"}, "interface": "admin"}}, {"OS_CLOUD": "c", "OS_INTERFACE": "internal"},
         expect={"interface": "internal"}),
    Case("OS_INSECURE-is-ignored-for-a-named-cloud",
         "osc-lib shell.py: --insecure has no environment variable; TLS stays verified",
         NOPW, {"OS_CLOUD": "ci", "OS_PASSWORD": "pw-secret-1", "OS_INSECURE": "true"}, expect={"verify": True}),
    Case("OS_INSECURE-counts-in-the-envvars-cloud",
         "loader.py _get_os_environ: every OS_* becomes a key of the envvars cloud (insecure: true)",
         None, {**ENV_AUTH, "OS_INSECURE": "true"}, expect={"cloud": "envvars", "verify": False}),
    Case("OS_DEFAULT_DOMAIN-fills-missing-domains",
         "osc-lib client_config._auth_default_domain: password auth without user/project domain gets $OS_DEFAULT_DOMAIN",
         NO_DOMAIN,
         {"OS_CLOUD": "c", "OS_DEFAULT_DOMAIN": "corp"}, expect={"user_domain_id": "corp", "project_domain_id": "corp"}),
    Case("default-domain-is-default",
         "osc-lib shell.py: --os-default-domain defaults to 'default'; given domain names are kept",
         {"c": {"auth": {**BARE, "user_domain_name": "Users"}}},
         {"OS_CLOUD": "c"}, expect={"user_domain_name": "Users", "user_domain_id": None, "project_domain_id": "default"}),
    Case("OS_DOMAIN_NAME-fills-both-domains",
         "loader.py _handle_domain_id: a lone domain_name becomes user_ and project_domain_name when they are unset",
         NO_DOMAIN,
         {"OS_CLOUD": "c", "OS_DOMAIN_NAME": "corp"}, expect={"user_domain_name": "corp", "project_domain_name": "corp"}),
    Case("OS_AUTH_URL-overlays-the-cloud",
         "keystoneauth: --os-auth-url defaults to $OS_AUTH_URL",
         NOPW, {"OS_CLOUD": "ci", "OS_PASSWORD": "pw-secret-1", "OS_AUTH_URL": "https://other.example:5000"},
         expect={"identity_url": "https://other.example:5000/v3"}),
    Case("OS_CLOUD-naming-no-cloud-is-an-error",
         "loader.py _get_base_cloud_config: 'Cloud X was not found' (no fallback to the envvars cloud)",
         NOPW, {**ENV_AUTH, "OS_CLOUD": "nope"}, error=(ConfigError, "cloud 'nope' is not defined")),
    Case("releasectl-yaml-cloud-missing-with-OS-vars-says-how-to-use-them",
         "releasectl never swaps to another cloud silently; the hint names OS_CLOUD=envvars",
         None, ENV_AUTH, {"cloud": "prod"}, error=(ConfigError, "cloud 'prod' is not defined")),
    Case("a-file-cloud-named-like-the-env-cloud-is-an-error",
         "loader.py: 'defines a cloud named envvars, but OS_CLOUD_NAME is also set to envvars' (ConfigException)",
         {"envvars": {"auth": {**AUTH, "password": "pw-secret-2"}}}, ENV_AUTH, error=(ConfigError, "defines a cloud named 'envvars'")),
    Case("several-clouds-and-none-named",
         "loader.py: only a single cloud becomes the default; openstack then fails on missing auth",
         TWO, {}, error=(ConfigError, "several clouds")),
    Case("keyring-is-the-last-source-of-the-secret",
         "releasectl extension: `releasectl login` stores the secret in the OS keyring; used only when nothing else has one",
         NOPW, {"OS_CLOUD": "ci"}, keyring={"ci:password": "from-keyring"},
         expect={"password": "from-keyring", "secret_source": "keyring"}),
]


class MemoryKeyring(KeyringBackend):
    priority = 1

    def __init__(self, items: dict[str, str]) -> None:
        super().__init__()
        self.items = items

    def get_password(self, service, username):
        return self.items.get(username) if service == "releasectl" else None

    def set_password(self, service, username, password):
        self.items[username] = password

    def delete_password(self, service, username):
        self.items.pop(username, None)


@pytest.fixture
def memory_keyring():
    previous = keyring.get_keyring()
    backend = MemoryKeyring({})
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


def write(path: Path, clouds: dict[str, Any]) -> None:
    path.write_text(yaml.safe_dump({"clouds": clouds}))
    path.chmod(0o600)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_precedence_as_the_openstack_cli(case: Case, tmp_path: Path, memory_keyring) -> None:
    assert case.mirrors
    memory_keyring.items.update(case.keyring)
    if case.clouds is not None:
        write(tmp_path / "clouds.yaml", case.clouds)
    if case.secure is not None:
        write(tmp_path / "secure.yaml", case.secure)
    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg"), **case.env}
    kwargs = dict(case.kwargs)
    cloud = kwargs.pop("cloud", None)
    if case.error is not None:
        kind, text = case.error
        with pytest.raises(kind, match=text):
            load_credentials(cloud, env=env, cwd=tmp_path, home=tmp_path / "home", **kwargs)
        return
    creds = load_credentials(cloud, env=env, cwd=tmp_path, home=tmp_path / "home", **kwargs)
    got = {key: getattr(creds, key) for key in case.expect}
    assert got == case.expect
    described = repr(creds) + str(creds.describe()) + creds.summary()
    for secret in (creds.password, creds.application_credential_secret):
        assert not secret or secret not in described  # names and sources, never the secret


def test_there_are_at_least_fifteen_cases() -> None:
    assert len(CASES) >= 15 and len({c.id for c in CASES}) == len(CASES)


def test_the_error_for_ignored_variables_names_them(tmp_path: Path, memory_keyring) -> None:
    write(tmp_path / "clouds.yaml", NOPW)
    env = {"OS_CLOUD": "ci", "OS_APPLICATION_CREDENTIAL_SECRET": "s"}
    with pytest.raises(CredentialsError) as err:
        load_credentials(env=env, cwd=tmp_path, home=tmp_path / "home")
    assert "OS_APPLICATION_CREDENTIAL_SECRET is ignored" in (err.value.hint or "")
    assert "OS_PASSWORD" in (err.value.hint or "")


def test_summary_names_cloud_files_variables_and_the_secret_source(tmp_path: Path) -> None:
    write(tmp_path / "clouds.yaml", NOPW)
    creds = load_credentials(env={"OS_CLOUD": "ci", "OS_PASSWORD": "s3cr3t-value"}, cwd=tmp_path, home=tmp_path / "home")
    line = creds.summary()
    assert "'ci'" in line and "OS_CLOUD" in line and str(tmp_path / "clouds.yaml") in line
    assert line.endswith("password from OS_PASSWORD") and "s3cr3t-value" not in line
    assert creds.describe()["files"] == [str(tmp_path / "clouds.yaml")] and creds.auth_type == PASSWORD


@pytest.mark.parametrize("given, written", [(None, None), ("prod", "prod")])
def test_init_writes_cloud_only_when_given(given, written, tmp_path: Path, monkeypatch) -> None:
    """`init --provider openstack` without --cloud leaves the choice to --os-cloud / OS_CLOUD / OS_*, even
    when OS_CLOUD is set while it runs (it wrote `cloud: envvars`, which then beat OS_CLOUD)."""
    from releasectl.cli.scaffold import scaffold

    monkeypatch.setenv("OS_CLOUD", "from-env")
    # offline: the inventory's choices do not change the rule (tests/integration/test_init_remote.py looks)
    [config] = scaffold(tmp_path, provider="openstack", app="demo", cloud=given, port=8080, force=False, look=False).written
    section = yaml.safe_load(config.read_text())["openstack"]
    assert section.get("cloud") == written
    assert "from-env" not in config.read_text()
