"""`releasectl login` checks the secret with Keystone (the simulator's) before the keyring sees it."""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any, Iterator

import keyring
import pytest
import yaml

from tests.conftest import run_cli_in_process
from tests.openstack_sim.fixtures import FAST
from tests.openstack_sim.simulator import Simulator
from tests.providers.openstack.test_credentials import MemoryKeyring


@pytest.fixture
def sim() -> Iterator[Simulator]:
    simulator = Simulator(**FAST).start()
    yield simulator
    simulator.stop()


@pytest.fixture
def backend() -> Iterator[MemoryKeyring]:
    previous = keyring.get_keyring()
    memory = MemoryKeyring()
    keyring.set_keyring(memory)
    yield memory
    keyring.set_keyring(previous)


def login(sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, secret: str, *extra: str) -> Any:
    """`login --cloud sim --password-stdin` against a clouds.yaml that holds no secret."""
    doc = sim.clouds_yaml("sim", "password")
    del doc["clouds"]["sim"]["auth"]["password"]
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text(yaml.safe_dump(doc))
    monkeypatch.setattr(sys, "stdin", io.StringIO(secret + "\n"))
    return run_cli_in_process("login", "--cloud", "sim", "--password-stdin", "-o", "json", *extra, cwd=tmp_path,
                              env={"OS_CLIENT_CONFIG_FILE": str(clouds), "HOME": str(tmp_path)})


def test_a_secret_keystone_accepts_is_stored(sim, backend, tmp_path, monkeypatch) -> None:
    result = login(sim, tmp_path, monkeypatch, sim.password)
    assert result.code == 0, result.stderr
    assert result.json()["verified"] is True and result.json()["stored"] == "password"
    assert backend.items == {("releasectl", "sim:password"): sim.password}
    assert sim.password not in result.stdout + result.stderr


def test_a_secret_keystone_refuses_is_never_stored(sim, backend, tmp_path, monkeypatch) -> None:
    result = login(sim, tmp_path, monkeypatch, "not-the-password")
    assert result.code == 2, result.stderr
    assert [e["code"] for e in result.json()["errors"]] == ["credentials"]
    assert backend.items == {}
    assert "not-the-password" not in result.stdout + result.stderr


def test_the_wrong_kind_of_secret_is_refused_before_keystone(sim, backend, tmp_path, monkeypatch) -> None:
    result = login(sim, tmp_path, monkeypatch, "whatever", "--application-credential")
    assert result.code == 2, result.stderr
    assert backend.items == {}
