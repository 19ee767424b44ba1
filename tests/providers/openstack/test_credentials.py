"""clouds.yaml / secure.yaml / OS_* / keyring resolution (files only, no network)."""

from __future__ import annotations

from pathlib import Path

import keyring
import pytest
import yaml
from keyring.backend import KeyringBackend

from releasectl.errors import ConfigError, CredentialsError, UsageError
from releasectl.providers.openstack.credentials import (
    APP_CREDENTIAL,
    PASSWORD,
    default_cloud_name,
    load_credentials,
    store_secret,
)


class MemoryKeyring(KeyringBackend):
    priority = 1

    def __init__(self) -> None:
        super().__init__()
        self.items: dict[tuple[str, str], str] = {}

    def get_password(self, service, username):
        return self.items.get((service, username))

    def set_password(self, service, username, password):
        self.items[(service, username)] = password

    def delete_password(self, service, username):
        self.items.pop((service, username), None)


@pytest.fixture
def memory_keyring():
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


def dump(path: Path, clouds: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"clouds": clouds}))
    return path


AUTH = {"auth_url": "https://keystone.example:5000", "username": "alice", "project_name": "web",
        "user_domain_name": "Default", "project_domain_name": "Default"}


def test_search_order_env_file_then_cwd_then_user_then_etc(tmp_path) -> None:
    home, cwd = tmp_path / "home", tmp_path / "work"
    dump(home / ".config" / "openstack" / "clouds.yaml", {"c": {"auth": {**AUTH, "password": "user"}}})
    env = {"XDG_CONFIG_HOME": str(home / ".config")}
    assert load_credentials("c", env=env, cwd=cwd, home=home).password == "user"
    dump(cwd / "clouds.yml", {"c": {"auth": {**AUTH, "password": "cwd"}}})
    assert load_credentials("c", env=env, cwd=cwd, home=home).password == "cwd"
    named = dump(tmp_path / "elsewhere.yaml", {"c": {"auth": {**AUTH, "password": "named"}}})
    env["OS_CLIENT_CONFIG_FILE"] = str(named)
    creds = load_credentials("c", env=env, cwd=cwd, home=home)
    assert creds.password == "named" and creds.source == str(named)
    env["OS_CLIENT_CONFIG_FILE"] = str(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="OS_CLIENT_CONFIG_FILE"):
        load_credentials("c", env=env, cwd=cwd, home=home)


def test_secure_yaml_is_merged_over_clouds_yaml(tmp_path) -> None:
    dump(tmp_path / "clouds.yaml", {"c": {"auth": AUTH, "region_name": "RegionOne"}})
    dump(tmp_path / "secure.yaml", {"c": {"auth": {"password": "from-secure"}}})
    creds = load_credentials("c", env={}, cwd=tmp_path, home=tmp_path / "h")
    assert creds.password == "from-secure" and creds.secret_source == "secure.yaml"
    assert creds.username == "alice" and creds.region == "RegionOne"
    secure = dump(tmp_path / "s2.yaml", {"c": {"auth": {"password": "from-env-secure"}}})
    assert load_credentials("c", env={"OS_CLIENT_SECURE_FILE": str(secure)}, cwd=tmp_path, home=tmp_path / "h").password == "from-env-secure"


def test_cloud_selection(tmp_path) -> None:
    dump(tmp_path / "clouds.yaml", {"a": {"auth": {**AUTH, "password": "a"}}, "b": {"auth": {**AUTH, "password": "b"}}})
    home = tmp_path / "h"
    with pytest.raises(ConfigError, match="several clouds"):
        load_credentials(None, env={}, cwd=tmp_path, home=home)
    assert load_credentials(None, env={"OS_CLOUD": "b"}, cwd=tmp_path, home=home).password == "b"
    assert load_credentials("a", env={"OS_CLOUD": "b"}, cwd=tmp_path, home=home).password == "b"  # OS_CLOUD beats releasectl.yaml
    assert load_credentials("a", os_cloud="a", env={"OS_CLOUD": "b"}, cwd=tmp_path, home=home).password == "a"  # --os-cloud beats both
    with pytest.raises(ConfigError, match="cloud 'zzz' is not defined"):
        load_credentials("zzz", env={}, cwd=tmp_path, home=home)
    dump(tmp_path / "one" / "clouds.yaml", {"only": {"auth": {**AUTH, "password": "x"}}})
    assert load_credentials(None, env={}, cwd=tmp_path / "one", home=home).cloud == "only"


def test_envvars_cloud_from_os_variables(tmp_path) -> None:
    env = {"OS_AUTH_URL": "https://k.example/v3", "OS_USERNAME": "bob", "OS_PASSWORD": "pw",
           "OS_TENANT_NAME": "legacy", "OS_DOMAIN_NAME": "corp", "OS_REGION_NAME": "R2", "OS_INTERFACE": "internal"}
    creds = load_credentials(None, env=env, cwd=tmp_path, home=tmp_path)
    assert creds.cloud == "envvars" and creds.source == "OS_* environment variables"
    assert (creds.project_name, creds.user_domain_name, creds.project_domain_name) == ("legacy", "corp", "corp")
    assert creds.region == "R2" and creds.interface == "internal" and creds.identity_url == "https://k.example/v3"
    renamed = load_credentials(None, env={**env, "OS_CLOUD_NAME": "mine"}, cwd=tmp_path, home=tmp_path)
    assert renamed.cloud == "mine"
    # selector-only variables make no cloud
    with pytest.raises(ConfigError, match="no OpenStack credentials"):
        load_credentials(None, env={"OS_REGION_NAME": "R"}, cwd=tmp_path, home=tmp_path)


def test_application_credential_is_inferred_and_needs_its_secret(tmp_path) -> None:
    dump(tmp_path / "clouds.yaml", {"ci": {"auth": {"auth_url": "https://k.example", "application_credential_id": "abc",
                                                     "application_credential_secret": "s3"}}})
    creds = load_credentials("ci", env={}, cwd=tmp_path, home=tmp_path)
    assert creds.auth_type == APP_CREDENTIAL and creds.application_credential_secret == "s3"
    assert creds.identity_url == "https://k.example/v3"


def test_keyring_is_the_fallback_for_a_missing_secret(tmp_path, memory_keyring) -> None:
    dump(tmp_path / "clouds.yaml", {"c": {"auth": AUTH}, "ci": {"auth_type": "v3applicationcredential",
                                                                 "auth": {"auth_url": "https://k", "application_credential_id": "x"}}})
    with pytest.raises(CredentialsError) as err:
        load_credentials("c", env={}, cwd=tmp_path, home=tmp_path)
    assert "releasectl login --cloud c" in err.value.hint
    where = store_secret("c", "password", "kept-in-keyring")
    assert "kept-in-keyring" not in where and "releasectl" in where and "c:password" in where
    assert memory_keyring.items[("releasectl", "c:password")] == "kept-in-keyring"
    creds = load_credentials("c", env={}, cwd=tmp_path, home=tmp_path)
    assert creds.password == "kept-in-keyring" and creds.secret_source == "keyring"
    assert creds.auth_type == PASSWORD
    store_secret("ci", "application_credential_secret", "app-secret")
    assert load_credentials("ci", env={}, cwd=tmp_path, home=tmp_path).application_credential_secret == "app-secret"
    dump(tmp_path / "secure.yaml", {"c": {"auth": {"password": "file-wins"}}})
    assert load_credentials("c", env={}, cwd=tmp_path, home=tmp_path).password == "file-wins"


def test_store_secret_without_cloud_uses_the_default_cloud(tmp_path, memory_keyring, monkeypatch) -> None:
    monkeypatch.setenv("OS_CLOUD", "prod")
    store_secret(None, "password", "pw")
    assert ("releasectl", "prod:password") in memory_keyring.items
    with pytest.raises(UsageError):
        store_secret("prod", "token", "x")
    monkeypatch.delenv("OS_CLOUD")
    dump(tmp_path / "clouds.yaml", {"solo": {"auth": AUTH}})
    assert default_cloud_name() == "solo"


def test_store_secret_without_a_keyring_backend_says_what_to_do(tmp_path) -> None:
    from keyring.backends import fail

    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    try:
        with pytest.raises(UsageError) as err:
            store_secret("c", "password", "pw")
    finally:
        keyring.set_keyring(previous)
    assert "secure.yaml" in err.value.hint and "pw" not in str(err.value)


def test_repr_masks_secrets_and_tls_options(tmp_path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("pem")
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "ca.pem").write_text("pem")
    dump(tmp_path / "clouds.yaml", {"c": {"auth": {**AUTH, "password": "hunter2-xyz"}, "cacert": str(ca)}})
    creds = load_credentials("c", env={}, cwd=tmp_path, home=tmp_path)
    assert "hunter2-xyz" not in repr(creds) and "hunter2-xyz" not in str(creds) and "***" in repr(creds)
    assert creds.verify == str(ca)
    assert load_credentials("c", insecure=True, env={}, cwd=tmp_path, home=tmp_path).verify is False
    local = load_credentials("c", cacert="certs/ca.pem", config_dir=tmp_path, env={}, cwd=tmp_path, home=tmp_path)
    assert local.verify == str(tmp_path / "certs" / "ca.pem")
    dump(tmp_path / "clouds.yaml", {"c": {"auth": {**AUTH, "password": "p"}, "verify": False, "cacert": "/no/ca.pem"}})
    assert load_credentials("c", env={}, cwd=tmp_path, home=tmp_path).verify is False  # verify beats cacert


@pytest.mark.parametrize("cloud, verify", [
    ({}, True),
    ({"verify": True}, True),
    ({"verify": False}, False),
    ({"verify": "false"}, False),
    ({"verify": "True"}, True),
    ({"insecure": True}, False),
    ({"insecure": "no"}, True),
    ({"verify": True, "insecure": True}, True),  # verify is the key that counts when both are there
])
def test_tls_switches_behave_as_in_openstacksdk(tmp_path, cloud, verify) -> None:
    dump(tmp_path / "clouds.yaml", {"c": {"auth": {**AUTH, "password": "p"}, **cloud}})
    assert load_credentials("c", env={}, cwd=tmp_path, home=tmp_path).verify is verify


@pytest.mark.parametrize("cloud", [
    {"verify": "/etc/ssl/certs/ca.pem"},  # a CA path in the wrong key: never read as "off"
    {"verify": "maybe"},
    {"verify": ""},
    {"verify": 2},
    {"insecure": "sometimes"},
    {"cacert": "/nonexistent/ca.pem"},
    {"verify": True, "cacert": "/nonexistent/ca.pem"},
])
def test_tls_values_that_do_not_say_true_or_false_are_config_errors(tmp_path, cloud) -> None:
    dump(tmp_path / "clouds.yaml", {"c": {"auth": {**AUTH, "password": "p"}, **cloud}})
    with pytest.raises(ConfigError) as err:
        load_credentials("c", env={}, cwd=tmp_path, home=tmp_path)
    assert "cloud 'c'" in str(err.value)


def test_tls_from_the_environment_and_releasectl_yaml(tmp_path) -> None:
    base = {"OS_AUTH_URL": "https://k", "OS_USERNAME": "u", "OS_PASSWORD": "p", "OS_PROJECT_NAME": "x"}
    assert load_credentials(env={**base, "OS_INSECURE": "true"}, cwd=tmp_path, home=tmp_path).verify is False
    with pytest.raises(ConfigError):
        load_credentials(env={**base, "OS_INSECURE": "/ca.pem"}, cwd=tmp_path, home=tmp_path)
    with pytest.raises(ConfigError, match="no such file"):
        load_credentials(env={**base, "OS_CACERT": str(tmp_path / "missing.pem")}, cwd=tmp_path, home=tmp_path)
    with pytest.raises(ConfigError, match="releasectl.yaml"):  # openstack.cacert, relative to its folder
        load_credentials(env=base, cacert="certs/none.pem", config_dir=tmp_path, cwd=tmp_path, home=tmp_path)


def test_a_readable_file_holding_a_secret_gets_one_warning(tmp_path, caplog) -> None:
    clouds = dump(tmp_path / "a" / "clouds.yaml", {"c": {"auth": {**AUTH, "password": "hunter2-xyz"}}})
    clouds.chmod(0o644)
    caplog.set_level("WARNING", logger="releasectl")
    load_credentials("c", env={}, cwd=tmp_path / "a", home=tmp_path)
    load_credentials("c", env={}, cwd=tmp_path / "a", home=tmp_path)
    warnings = [r.getMessage() for r in caplog.records if "chmod 600" in r.getMessage()]
    assert len(warnings) == 1 and "0644" in warnings[0] and "hunter2-xyz" not in caplog.text
    caplog.clear()
    private = dump(tmp_path / "b" / "clouds.yaml", {"c": {"auth": {**AUTH, "password": "p"}}})
    private.chmod(0o600)
    secretless = dump(tmp_path / "c" / "clouds.yaml", {"c": {"auth": AUTH}})
    secretless.chmod(0o644)
    secure = dump(tmp_path / "c" / "secure.yaml", {"c": {"auth": {"password": "p"}}})
    secure.chmod(0o640)
    load_credentials("c", env={}, cwd=tmp_path / "b", home=tmp_path)
    load_credentials("c", env={}, cwd=tmp_path / "c", home=tmp_path)
    warned = [r.getMessage() for r in caplog.records if "chmod 600" in r.getMessage()]
    assert len(warned) == 1 and str(secure) in warned[0]  # not the 0600 file, not the secret-less 0644 one


def test_password_auth_needs_a_project(tmp_path) -> None:
    dump(tmp_path / "clouds.yaml", {"c": {"auth": {"auth_url": "https://k", "username": "u", "password": "p"}}})
    with pytest.raises(ConfigError, match="needs a project"):
        load_credentials("c", env={}, cwd=tmp_path, home=tmp_path)
