"""Issue 9 items 7 and 8: one table of exit classes (and README states it), SIGINT during bake, login
hygiene, and no request details from urllib3 at -v."""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import keyring
import pytest

from releasectl import errors
from releasectl.cli.exitcodes import ERROR_CODES, ExitCode, classify
from tests.hostile.state_harness import Project, build_template, copy_project, listing
from tests.providers.openstack.test_credentials import MemoryKeyring

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.mark.parametrize(
    "error, code, name",
    [
        (errors.ConfigError("bad"), ExitCode.USAGE, "usage"),
        (errors.CredentialsError("no password"), ExitCode.USAGE, "credentials"),
        (errors.AuthError("401 from Keystone"), ExitCode.USAGE, "credentials"),
        (errors.DamagedState("lb.json", "is empty"), ExitCode.USAGE, "damaged_state"),
        (errors.LockHeld("held"), ExitCode.LOCKED, "locked"),
        (errors.PausedAtGate("gate"), ExitCode.PAUSED, "paused"),
        (errors.ReleaseFailed("unhealthy"), ExitCode.ROLLED_BACK, "rolled_back"),
        (errors.Interrupted("SIGINT"), ExitCode.INFRA, "interrupted"),
        (KeyboardInterrupt(), ExitCode.INFRA, "interrupted"),
        (errors.ProviderError("503 after retries"), ExitCode.INFRA, "provider"),
        (errors.WaitTimeout("slow"), ExitCode.INFRA, "provider"),
        (RuntimeError("bug"), ExitCode.INFRA, "internal"),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v),
)
def test_every_error_class_has_one_exit_class(error, code, name):
    assert classify(error) == (code, name)


def test_an_auth_error_stays_a_provider_error_for_provider_code_but_exits_2():
    assert isinstance(errors.AuthError("x"), errors.ProviderError)
    assert isinstance(errors.AuthError("x"), errors.CredentialsError)


def test_the_readme_states_the_exit_class_table():
    text = README.read_text()
    section = text[text.index("## Exit codes"):]
    section = section[: section.index("\n## ", 4)]
    for _cls, code, name in ERROR_CODES:
        if name != "error":
            assert re.search(rf"\|\s*{int(code)}\s*\|.*`{name}`", section), f"README's exit table lacks {name} -> {int(code)}"


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Project:
    return build_template(tmp_path_factory.mktemp("template") / "shop")


@pytest.fixture
def project(template, tmp_path) -> Project:
    return copy_project(template, tmp_path / "shop")


def test_an_interrupted_bake_removes_its_partial_image_and_exits_5(project, monkeypatch):
    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt("SIGINT")

    monkeypatch.setattr(tarfile.TarFile, "add", interrupted)
    before = listing(project.state)
    result = project.run("bake", "2.0.0", "-o", "json")
    project.check(result, 5)
    error = result.json()["errors"][0]
    assert error["code"] == "interrupted" and "bake 2.0.0" in error["hint"]
    assert listing(project.state) == before  # no partial image, no temp folder


@pytest.mark.slow
def test_sigint_during_a_real_bake_stops_it(project):
    big = project.root / "app" / "blob.bin"
    with open(big, "wb") as f:
        for _ in range(48):
            f.write(os.urandom(1 << 20))
    images = project.state / "images"
    proc = subprocess.Popen([sys.executable, "-m", "releasectl", "bake", "2.0.0", "-o", "json"], cwd=project.root,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(p.name.startswith(".tmp-") for p in images.iterdir()):
            if proc.poll() is not None:
                pytest.fail(f"bake ended before it could be interrupted: {proc.stderr.read()}")
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 5, err
    assert '"interrupted"' in out
    assert not [p for p in images.iterdir() if p.name.startswith(".tmp-")]
    assert all("2.0.0" not in (d / "manifest.json").read_text() for d in project.image_dirs())


def _keystone_accepts(monkeypatch) -> None:
    """These tests are about the keyring and the prompt: Keystone's check of the secret (tested against the
    simulator in tests/providers/openstack/test_login.py) is taken as passed."""
    monkeypatch.setattr("releasectl.providers.openstack.auth.verify_secret", lambda cloud, kind, secret: cloud)


def test_login_without_a_keyring_backend_refuses_before_prompting(project, monkeypatch):
    import io

    from keyring.backends import fail

    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    stdin = io.StringIO("s3cret-value\n")
    monkeypatch.setattr(sys, "stdin", stdin)
    try:
        result = project.run("login", "--cloud", "c", "--password-stdin", "-o", "json")
    finally:
        keyring.set_keyring(previous)
    project.check(result, 2)
    assert "keyring" in result.json()["errors"][0]["message"]
    assert stdin.tell() == 0, "nothing was read: no secret typed for nothing"
    assert "s3cret" not in result.stdout + result.stderr


def test_login_password_stdin_stores_the_secret_and_prints_only_json(project, monkeypatch):
    import io

    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    monkeypatch.setattr(sys, "stdin", io.StringIO("s3cret-value\n"))
    _keystone_accepts(monkeypatch)
    try:
        result = project.run("login", "--cloud", "c", "--password-stdin", "-o", "json")
    finally:
        keyring.set_keyring(previous)
    project.check(result, 0)
    assert result.json()["stored"] == "password"
    assert backend.items == {("releasectl", "c:password"): "s3cret-value"}
    assert "s3cret" not in result.stdout + result.stderr


def test_login_prompts_on_stderr_so_json_stdout_stays_one_document(project, monkeypatch):
    import io

    previous = keyring.get_keyring()
    keyring.set_keyring(MemoryKeyring())
    monkeypatch.setattr(sys, "stdin", io.StringIO("typed-secret\n"))
    monkeypatch.setattr("getpass.getpass", lambda prompt="", stream=None: sys.stdin.readline().rstrip("\n"))
    _keystone_accepts(monkeypatch)
    try:
        result = project.run("login", "--cloud", "c", "-o", "json")
    finally:
        keyring.set_keyring(previous)
    project.check(result, 0)
    assert result.json()["stored"] == "password"  # stdout parses as exactly one document
    assert "password" in result.stderr.lower()  # the prompt went to stderr
    assert "typed-secret" not in result.stdout + result.stderr


def test_verbose_logging_keeps_urllib3_quiet(project):
    project.run("-v", "pipelines")
    for name in ("urllib3", "urllib3.connectionpool"):
        assert not logging.getLogger(name).isEnabledFor(logging.DEBUG)
