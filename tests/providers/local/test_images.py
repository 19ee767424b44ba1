"""Images: the archive store under <state_dir>/images."""

from __future__ import annotations

import json
import os
import tarfile
import time

import pytest

import releasectl
from releasectl.errors import Conflict, DamagedState
from releasectl.providers.base import ImageStatus
from releasectl.providers.local import images as images_mod

from .conftest import spec


def folders(store):
    return sorted(p.name for p in store.iterdir() if p.is_dir())


def test_bake_list_get(provider, factory):
    (factory.builder / "__pycache__").mkdir()
    (factory.builder / "__pycache__" / "junk.pyc").write_bytes(b"x")
    image = provider.bake_image("1.0.0", "demo-1.0.0", {"port": "8000"})

    assert image.status is ImageStatus.ACTIVE
    assert image.id.startswith("img-") and image.app == "demo" and image.version == "1.0.0"
    assert image.name == "demo-1.0.0" and image.source == str(factory.builder.resolve())
    assert image.labels["port"] == "8000"
    assert image.labels["created_by"] == releasectl.__version__
    assert [i.id for i in provider.list_images()] == [image.id]
    assert provider.get_image(image.id) == image
    assert provider.get_image("img-000000000000") is None
    assert provider.get_image("../../etc") is None

    folder = factory.project / ".releasectl" / "images" / image.id
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["sha256"] == image.checksum and manifest["size"] == image.size
    assert manifest["created_by"] == releasectl.__version__
    assert manifest["labels"]["releasectl_port"] == "8000"
    with tarfile.open(folder / "image.tar.gz") as tar:
        names = tar.getnames()
    assert "./app.py" in names
    assert not any("__pycache__" in n or ".releasectl" in n for n in names)

    # another app sharing the state folder does not see it
    assert factory(app="other").list_images() == []


def test_labels_protect_and_delete(provider):
    image = provider.bake_image("1.0.0", "demo-1.0.0", {"outcome": "failed"})
    updated = provider.update_image(image.id, labels={"outcome": "released", "role_prod": "live"}, protected=True)
    assert updated.outcome is not None and updated.outcome.value == "released"
    assert updated.labels["role_prod"] == "live" and updated.protected

    removed = provider.update_image(image.id, labels={"role_prod": None})
    assert "role_prod" not in removed.labels and removed.protected
    assert provider.get_image(image.id) == removed

    provider.delete_image(image.id)  # protected: unprotected first
    assert provider.get_image(image.id) is None and provider.list_images() == []
    provider.delete_image(image.id)  # idempotent


def test_bake_never_replaces_a_version(provider):
    first = provider.bake_image("1.0.0", "demo-1.0.0", {})
    with pytest.raises(Conflict, match=first.id):
        provider.bake_image("1.0.0", "demo-1.0.0", {})
    provider.delete_image(first.id)
    second = provider.bake_image("1.0.0", "demo-1.0.0", {})
    assert second.id != first.id and [i.id for i in provider.list_images()] == [second.id]


def test_interrupted_bake_leaves_nothing_listed(provider, factory, monkeypatch):
    store = factory.project / ".releasectl" / "images"

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # as if the user hit Ctrl-C between writing and publishing

    monkeypatch.setattr(images_mod.os, "rename", crash)
    with pytest.raises(KeyboardInterrupt):
        provider.bake_image("1.0.0", "demo-1.0.0", {})
    monkeypatch.undo()
    assert provider.list_images() == []
    assert folders(store) == []  # the temp folder was removed on the way out

    # a process killed mid-bake leaves its temp folder: never listed, swept by the next bake
    leftover = store / ".tmp-img-0123456789ab-999999999"
    leftover.mkdir()
    (leftover / "manifest.json").write_text(json.dumps({"id": "img-0123456789ab", "app": "demo", "version": "1.0.0"}))
    old = store / f".tmp-img-ba9876543210-{os.getpid()}"
    old.mkdir()
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    assert provider.list_images() == []
    image = provider.bake_image("1.0.0", "demo-1.0.0", {})
    assert [i.id for i in provider.list_images()] == [image.id]
    assert folders(store) == [image.id]


def test_tampered_archive_is_detected(provider, factory):
    image = provider.bake_image("1.0.0", "demo-1.0.0", {})
    archive = factory.project / ".releasectl" / "images" / image.id / "image.tar.gz"
    assert provider.verify_image(image.id).status is ImageStatus.ACTIVE

    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, different content
    archive.write_bytes(bytes(data))

    assert provider.get_image(image.id).status is ImageStatus.FAILED
    assert [i.status for i in provider.list_images()] == [ImageStatus.FAILED]
    with pytest.raises(DamagedState, match=image.id):
        provider.verify_image(image.id)
    with pytest.raises(DamagedState, match=image.id):
        provider.create_server(spec("1.0.0", image.id))
    assert provider.list_servers() == []

    # a tamper that even restores the mtime is still caught before use
    st = archive.stat()
    archive.write_bytes(bytes(data[:-1]) + b"\0")
    os.utime(archive, ns=(st.st_atime_ns, st.st_mtime_ns))
    with pytest.raises(DamagedState, match="integrity"):
        provider.create_server(spec("1.0.0", image.id))

    archive.unlink()
    assert provider.get_image(image.id).status is ImageStatus.FAILED
