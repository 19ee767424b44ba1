"""Keystone auth against the simulator: scope rules, the token cache, 401 replay, catalog regions, TLS."""

from __future__ import annotations

import json
import logging
import shutil
import ssl
import stat
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from releasectl.errors import ConfigError, CredentialsError, ProviderError
from releasectl.providers.openstack.auth import Auth, Token
from releasectl.providers.openstack.credentials import load_credentials
from releasectl.providers.openstack.http import Transport

from .conftest import write_clouds

TOKENS = "/v3/auth/tokens"


def token_posts(sim) -> int:
    return sim.request_count("identity", "POST", TOKENS)


def test_password_auth_sends_a_project_scope_and_gets_a_catalog(provider, openstack_sim) -> None:
    body = provider.auth.auth_body()
    assert body["auth"]["scope"] == {"project": {"name": "demo", "domain": {"name": "Default"}}}
    token = provider.auth.token()
    assert token.project_id == openstack_sim.project_id
    assert {e["type"] for e in token.catalog} >= {"compute", "image", "load-balancer", "network"}
    assert provider.auth.endpoint("compute") == f"{openstack_sim.url}/compute/v2.1"


def test_application_credential_sends_no_scope(make_provider, openstack_sim) -> None:
    provider = make_provider(auth_type="v3applicationcredential")
    body = provider.auth.auth_body()
    assert "scope" not in body["auth"]
    assert body["auth"]["identity"]["methods"] == ["application_credential"]
    assert provider.list_servers() == []  # the simulator refuses an app credential with a scope: this worked
    assert provider.auth.token().project_id == openstack_sim.project_id


def test_wrong_password_is_an_auth_error_without_the_secret(make_provider, openstack_sim, tmp_path) -> None:
    clouds = write_clouds(openstack_sim, tmp_path / "bad.yaml")
    doc = json.loads(json.dumps(__import__("yaml").safe_load(clouds.read_text())))
    doc["clouds"]["sim"]["auth"]["password"] = "not-the-password-xyz"
    clouds.write_text(__import__("yaml").safe_dump(doc))
    provider = make_provider(clouds=clouds)
    with pytest.raises(CredentialsError) as err:
        provider.list_servers()
    assert "401" in str(err.value) and "not-the-password-xyz" not in str(err.value)
    assert "releasectl login" in (err.value.hint or "")


def test_one_token_per_run_and_cached_between_runs_with_mode_0600(make_provider, openstack_sim) -> None:
    first = make_provider()
    first.list_servers()
    first.list_images()
    first.list_members()
    assert token_posts(openstack_sim) == 1
    path = first.auth.cache_path()
    assert path is not None and path.is_file()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert openstack_sim.password not in path.read_text()
    second = make_provider()  # a new run on the same state dir
    second.list_servers()
    assert token_posts(openstack_sim) == 1
    other_state = make_provider(state="elsewhere")
    other_state.list_servers()
    assert token_posts(openstack_sim) == 2


def test_cache_is_keyed_by_auth_url_user_and_project(make_provider, openstack_sim) -> None:
    password = make_provider()
    appcred = make_provider(auth_type="v3applicationcredential")
    assert password.auth.cache_path() != appcred.auth.cache_path()
    password.list_servers()
    appcred.list_servers()
    assert token_posts(openstack_sim) == 2


def test_token_near_expiry_is_refreshed(make_provider, openstack_sim) -> None:
    first = make_provider()
    first.list_servers()
    path = first.auth.cache_path()
    cached = json.loads(path.read_text())
    cached["expires_at"] = time.time() + 100  # a run 58 minutes later finds it with under 2 minutes left
    cached["issued_at"] = time.time() - 3500
    path.write_text(json.dumps(cached))
    second = make_provider()
    second.list_servers()
    assert token_posts(openstack_sim) == 2
    assert json.loads(path.read_text())["expires_at"] > time.time() + 3000  # the new token was cached


def test_short_lived_tokens_serve_a_run(openstack_sim_factory, make_provider, tmp_path) -> None:
    sim = openstack_sim_factory(token_ttl=100.0)
    provider = make_provider(sim=sim, clouds=write_clouds(sim, tmp_path / "short.yaml"))
    provider.list_servers()
    provider.list_images()
    provider.list_members()
    assert token_posts(sim) == 1


def test_cache_with_a_loose_mode_is_ignored(make_provider, openstack_sim) -> None:
    first = make_provider()
    first.list_servers()
    path = first.auth.cache_path()
    path.chmod(0o644)
    make_provider().list_servers()
    assert token_posts(openstack_sim) == 2
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # rewritten


def test_401_reauthenticates_once_and_replays(provider, openstack_sim) -> None:
    provider.list_servers()
    openstack_sim.set_faults(expire_tokens=True)
    openstack_sim.reset_requests()
    assert provider.list_servers() == []
    counts = openstack_sim.request_counts()
    assert counts["identity POST /v3/auth/tokens"] == 1
    assert openstack_sim.request_count("compute", "GET", "/v2.1/servers/detail") == 2  # the 401, then the replay
    cached = json.loads(provider.auth.cache_path().read_text())
    assert cached["token"] == provider.auth.token().value  # the cache holds the new token


def test_401_replay_works_for_a_post_too(provider, openstack_sim) -> None:
    provider.ensure_pool()
    openstack_sim.set_faults(expire_tokens=True)
    image = provider.list_images()
    assert image == []
    assert token_posts(openstack_sim) == 2


def _token(catalog: list[dict]) -> Token:
    return Token(value="t", expires_at=time.time() + 3600, catalog=catalog, project_id="p", user_id="u")


def _catalog(*regions: str) -> list[dict]:
    return [{"type": "compute", "endpoints": [
        {"interface": "public", "region_id": r, "url": f"https://{r.lower()}.example/compute/v2.1"} for r in regions
    ] + [{"interface": "internal", "region_id": regions[0], "url": "https://internal.example/v2.1"}]}]


def _auth(tmp_path: Path, region: str | None, interface: str | None = None) -> Auth:
    clouds = tmp_path / "c.yaml"
    cloud = {"auth": {"auth_url": "https://keystone.example", "username": "u", "password": "p", "project_name": "x"}}
    if region:
        cloud["region_name"] = region
    clouds.write_text(__import__("yaml").safe_dump({"clouds": {"c": cloud}}))
    creds = load_credentials("c", interface=interface, env={"OS_CLIENT_CONFIG_FILE": str(clouds)})
    return Auth(creds, Transport(), None)


def test_catalog_with_several_regions_needs_a_region(tmp_path) -> None:
    auth = _auth(tmp_path, None)
    auth._token = _token(_catalog("RegionOne", "RegionTwo"))
    with pytest.raises(ConfigError) as err:
        auth.endpoint("compute")
    assert "RegionOne, RegionTwo" in str(err.value) and "openstack.region" in err.value.hint
    chosen = _auth(tmp_path, "RegionTwo")
    chosen._token = _token(_catalog("RegionOne", "RegionTwo"))
    assert chosen.endpoint("compute") == "https://regiontwo.example/compute/v2.1"
    internal = _auth(tmp_path, None, interface="internal")
    internal._token = _token(_catalog("RegionOne", "RegionTwo"))
    assert internal.endpoint("compute") == "https://internal.example/v2.1"  # one region offers internal


def test_unknown_region_and_missing_service_are_explained(make_provider) -> None:
    provider = make_provider(region="RegionTwo")
    with pytest.raises(ConfigError) as err:
        provider.list_servers()
    assert "RegionTwo" in str(err.value) and "RegionOne" in str(err.value)
    ok = make_provider(state="s2")
    with pytest.raises(ProviderError) as missing:
        ok.auth.endpoint("key-manager")  # (the simulator has dns since issue 11)
    assert "no public key-manager endpoint" in str(missing.value)


# ---- TLS -----------------------------------------------------------------------------------------------


def test_tls_is_verified_by_default_and_options_change_it(make_provider, tmp_path) -> None:
    provider = make_provider()
    assert provider.transport.session.verify is True
    assert make_provider(state="a", insecure=True).transport.session.verify is False
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    assert make_provider(state="b", cacert="ca.pem").transport.session.verify == str(ca)


@pytest.fixture
def https_keystone(tmp_path):
    """An HTTPS server with a self-signed certificate (made with the openssl CLI)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not available")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = b'{"error": {"code": 401, "title": "Unauthorized", "message": "nope"}}'
            self.send_response(401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}", cert
    server.shutdown()
    server.server_close()


def test_self_signed_keystone_fails_verification_unless_cacert_is_given(https_keystone, tmp_path, monkeypatch) -> None:
    url, cert = https_keystone
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")  # must not beat cacert
    clouds = tmp_path / "tls.yaml"
    clouds.write_text(__import__("yaml").safe_dump({"clouds": {"tls": {"auth": {
        "auth_url": url, "username": "u", "password": "p", "project_name": "x"}}}}))
    env = {"OS_CLIENT_CONFIG_FILE": str(clouds)}
    default = Auth(load_credentials("tls", env=env), Transport(verify=load_credentials("tls", env=env).verify), None)
    with pytest.raises(ProviderError) as err:
        default.token()
    assert "TLS verification failed" in str(err.value) and "cacert" in err.value.hint
    creds = load_credentials("tls", cacert=str(cert), env=env)
    with pytest.raises(CredentialsError):  # the handshake passed; the fake Keystone says 401
        Auth(creds, Transport(verify=creds.verify), None).token()


def test_verbose_log_has_no_secret(make_provider, openstack_sim_factory, caplog, tmp_path) -> None:
    caplog.set_level(logging.DEBUG, logger="releasectl")
    openstack_sim = openstack_sim_factory(password="pw-Zq81-unique")
    provider = make_provider(verbose=True, sim=openstack_sim, clouds=write_clouds(openstack_sim, tmp_path / "v.yaml"))
    provider.list_servers()
    provider.ensure_pool()
    openstack_sim.set_faults(expire_tokens=True)
    provider.list_images()
    appcred = make_provider(auth_type="v3applicationcredential", state="s3", verbose=True, sim=openstack_sim,
                            clouds=write_clouds(openstack_sim, tmp_path / "va.yaml", auth_type="v3applicationcredential"))
    appcred.list_servers()
    text = caplog.text
    lines = [r.getMessage() for r in caplog.records if r.name == "releasectl.providers.openstack.http"]
    assert any(line.startswith("identity POST /v3/auth/tokens -> 201") for line in lines)
    assert any(line.startswith("image GET /image/v2/images -> 401") for line in lines)
    assert all("request id" in line for line in lines)
    assert any("req-" in line for line in lines)
    assert all(r.levelno == logging.INFO for r in caplog.records if r.name.endswith(".http"))
    for secret in (openstack_sim.password, openstack_sim.app_credential_secret, provider.auth.token().value,
                   appcred.auth.token().value):
        assert secret not in text
    assert openstack_sim.password not in repr(provider.creds)
    assert openstack_sim.app_credential_secret not in repr(appcred.creds)
    assert provider.auth.token().value not in repr(provider.auth.token())
