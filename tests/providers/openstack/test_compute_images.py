"""Nova servers and Glance images through the provider, against the simulator over HTTP."""

from __future__ import annotations

import pytest

from releasectl.errors import ConfigError, ResourceFailure
from releasectl.providers.base import ImageStatus, Label, Role, ServerSpec, ServerStatus
from releasectl.wait import wait_for


def bake(provider, version="1.0.0", **labels):
    return provider.bake_image(version, f"demo-{version}", {Label.CREATED_BY: "test", Label.PORT: "8000", **labels})


def spec(image_id, name="demo-1.0.0-a", *, env="production", release="r1", version="1.0.0", **labels) -> ServerSpec:
    return ServerSpec(name=name, image_id=image_id, app="demo", version=version, env=env, role=Role.CANDIDATE,
                      release_id=release, labels=labels)


def wait_active(provider, server_id):
    return wait_for(lambda: (s := provider.get_server(server_id)) and s.status is ServerStatus.ACTIVE and s,
                    timeout=10, interval=0.02, what="server active")


# ---- images ------------------------------------------------------------------------------------------


def test_bake_snapshots_the_builder_with_labels_and_tag(provider, openstack_sim) -> None:
    image = bake(provider, "1.0.0", extra="x")
    assert image.status is ImageStatus.ACTIVE and image.version == "1.0.0" and image.app == "demo"
    assert image.labels["extra"] == "x" and image.labels[Label.CREATED_BY] == "test"
    assert image.source.startswith("server demo-builder")
    state = {i["id"]: i for i in openstack_sim.state()["images"]}[image.id]
    assert "releasectl" in state["tags"] and state["properties"]["releasectl_app"] == "demo"
    assert state["properties"]["instance_uuid"] == openstack_sim.builder_id
    assert openstack_sim.request_count("compute", "POST", "/v2.1/servers/{id}/action") == 1
    assert [i.id for i in provider.list_images()] == [image.id]
    assert provider.get_image(image.id) == image
    assert provider.get_image("00000000-0000-0000-0000-000000000000") is None


def test_bake_takes_the_image_id_from_location_below_2_45(openstack_sim_factory, make_provider, tmp_path) -> None:
    from .conftest import write_clouds

    sim = openstack_sim_factory(nova_max_microversion="2.40")
    provider = make_provider(sim=sim, clouds=write_clouds(sim, tmp_path / "old.yaml"))
    assert provider.nova.microversion == (2, 40)
    assert bake(provider).status is ImageStatus.ACTIVE


def test_bake_is_atomic_when_nova_deletes_the_snapshot(provider, openstack_sim) -> None:
    openstack_sim.set_faults(next_snapshot_vanish=True)
    with pytest.raises(ResourceFailure, match="vanished"):
        bake(provider, "2.0.0")
    assert provider.list_images() == []
    left = [i for i in openstack_sim.state()["images"] if i["properties"].get("releasectl_version") == "2.0.0"]
    assert left == []
    assert bake(provider, "2.0.0").status is ImageStatus.ACTIVE  # and the builder is usable again


def test_a_pending_leftover_of_an_interrupted_bake_is_removed_by_the_next(provider, openstack_sim) -> None:
    # a bake that died right after createImage: an untagged, unfinished snapshot
    meta = {"releasectl_app": "demo", "releasectl_version": "3.0.0", "releasectl_bake": "deadbeef"}
    leftover = provider.nova.create_image(openstack_sim.builder_id, "demo-3.0.0", meta)
    image = bake(provider, "3.0.0")
    assert provider.get_image(leftover) is None
    assert [i.id for i in provider.list_images()] == [image.id]


def test_update_image_labels_and_protection(provider) -> None:
    image = bake(provider)
    updated = provider.update_image(image.id, labels={"role_production": "live", Label.OUTCOME: "released"}, protected=True)
    assert updated.protected and updated.labels["role_production"] == "live" and updated.outcome.value == "released"
    again = provider.update_image(image.id, labels={"role_production": None, "never_set": None})
    assert "role_production" not in again.labels and again.protected
    provider.delete_image(image.id)  # unprotects first
    assert provider.get_image(image.id) is None
    provider.delete_image(image.id)  # gone: success


def test_bake_needs_a_builder(make_provider) -> None:
    with pytest.raises(ConfigError, match="no builder server"):
        bake(make_provider(builder="nope", state="x"))


# ---- servers -----------------------------------------------------------------------------------------


def test_create_returns_building_then_active_with_labels_and_address(provider, openstack_sim) -> None:
    image = bake(provider)
    server = provider.create_server(spec(image.id, extra="yes"))
    assert server.status is ServerStatus.BUILDING and server.role is Role.CANDIDATE
    active = wait_active(provider, server.id)
    assert active.address and active.address.startswith("127.0.1.") and active.port == 8000
    assert (active.app, active.version, active.env, active.release_id) == ("demo", "1.0.0", "production", "r1")
    assert active.labels["extra"] == "yes" and active.image_id == image.id
    meta = {s["id"]: s for s in openstack_sim.state()["servers"]}[server.id]["metadata"]
    assert meta["releasectl_role"] == "candidate" and meta["releasectl_app"] == "demo"


def test_list_servers_by_metadata_not_name_and_paginated(openstack_sim_factory, make_provider, tmp_path) -> None:
    from .conftest import write_clouds

    sim = openstack_sim_factory(max_limit=2)
    provider = make_provider(sim=sim, clouds=write_clouds(sim, tmp_path / "paged.yaml"))
    image = bake(provider)
    mine = [provider.create_server(spec(image.id, name=f"demo-1.0.0-{i}")).id for i in range(3)]
    provider.create_server(spec(image.id, name="demo-1.0.0-staging", env="staging"))
    other_app = make_provider(sim=sim, clouds=tmp_path / "paged.yaml", app="other", state="o")
    other_app.create_server(ServerSpec(name="demo-1.0.0-x", image_id=image.id, app="other", version="1.0.0",
                                       env="production", role=Role.STABLE, release_id="r9"))
    listed = provider.list_servers()
    assert sorted(s.id for s in listed) == sorted(mine)  # not the builder, not staging, not another app
    assert sim.request_count("compute", "GET", "/v2.1/servers/detail") >= 3  # it followed the next links


def test_error_status_carries_the_fault(provider, openstack_sim) -> None:
    image = bake(provider)
    openstack_sim.set_faults(next_create_error="No valid host was found.")
    server = provider.create_server(spec(image.id))
    broken = wait_for(lambda: (s := provider.get_server(server.id)) and s.status is ServerStatus.ERROR and s,
                      timeout=5, interval=0.02)
    assert broken.fault == "No valid host was found."


def test_update_labels_waits_out_build_and_removes(provider) -> None:
    image = bake(provider)
    server = provider.create_server(spec(image.id))
    updated = provider.update_server_labels(server.id, {Label.ROLE: Role.STABLE.value, "x": "1"})  # still BUILD: 409
    assert updated.role is Role.STABLE and updated.labels["x"] == "1"
    removed = provider.update_server_labels(server.id, {"x": None, Label.RETIRE_AFTER: None})
    assert "x" not in removed.labels


def test_delete_waits_until_gone_and_is_idempotent(provider, openstack_sim) -> None:
    image = bake(provider)
    server = wait_active(provider, provider.create_server(spec(image.id)).id)
    provider.delete_server(server.id)
    assert provider.get_server(server.id) is None
    assert provider.list_servers() == []
    provider.delete_server(server.id)


def test_probe_gets_the_app_over_http(openstack_sim_factory, make_provider, tmp_path) -> None:
    from .conftest import write_clouds

    sim = openstack_sim_factory(serve_apps=True)
    provider = make_provider(sim=sim, clouds=write_clouds(sim, tmp_path / "apps.yaml"))
    image = bake(provider)
    server = wait_active(provider, provider.create_server(spec(image.id)).id)
    ok = provider.probe(server, "/healthz", 2.0)
    assert ok.status == 200 and ok.passed(200) and ok.latency > 0
    missing = provider.probe(server, "/nope", 2.0)
    assert missing.status == 404
    provider.delete_server(server.id)
    down = provider.probe(server, "/healthz", 0.5)
    assert down.status is None and down.error
